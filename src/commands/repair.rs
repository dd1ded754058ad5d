//! `doctor --repair`: sets damaged state files aside and rebuilds the registry from the VMs that
//! exist and carry their own owner record; adopts nothing that has no record of its owner.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::json;

use crate::backend::{self, BackendKind, VmState};
use crate::output::{self, JSON_VERSION};
use crate::registry::{self, Names};
use crate::state::State;
use crate::tunnel;

/// Every JSON file git-vmoat keeps in a state dir.
fn state_files(state: &State) -> Vec<PathBuf> {
    let root = state.root();
    let mut out: Vec<PathBuf> = ["names.json", "ports.json", "trust.json", "approvals.json"]
        .iter()
        .map(|f| root.join(f))
        .collect();
    for (dir, file) in [("vms", None), ("netns", Some("vm.json")), ("jobs", None)] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match file {
                Some(f) => out.push(p.join(f)),
                None if p.is_dir() => {
                    out.push(p.join("tunnels.json"));
                    out.push(p.join(registry::OWNER));
                }
                None if p.extension().is_some_and(|x| x == "json") => out.push(p),
                None => {}
            }
        }
    }
    out.retain(|p| p.is_file());
    out
}

fn is_damaged(p: &Path) -> bool {
    crate::state::read_json::<serde_json::Value>(p).is_err()
}

pub fn run(as_json: bool) -> Result<()> {
    let state = State::open()?;
    // Hold the registry's lock throughout: no claim may interleave with the rebuild.
    let _names_lock = state.lock("names-json")?;
    let mut set_aside = vec![];
    for p in state_files(&state) {
        if is_damaged(&p) {
            tunnel::set_aside(&p);
            set_aside.push(p);
        }
    }
    let old: Names = registry::load(&state).unwrap_or_default();
    let mut rebuilt = Names::new();
    let mut adopted = vec![];
    let mut dropped = vec![];
    // The VMs' own records are the truth; a registry entry without one is kept only while its
    // VM exists (or is being made: its lock is held).
    let mut candidates: Vec<(String, registry::Owner, bool)> = registry::owner_records(&state)
        .into_iter()
        .map(|(n, o)| (n, o, true))
        .collect();
    for (n, o) in &old {
        if !candidates.iter().any(|(c, _, _)| c == n) {
            candidates.push((n.clone(), o.clone(), false));
        }
    }
    // VMs whose records in the state dir are lost still carry their owner with them.
    let mut unowned = vec![];
    for kind in [BackendKind::Colima, BackendKind::Netns] {
        let Ok(b) = backend::select(kind, &state) else {
            continue;
        };
        if b.ensure_installed().is_err() {
            continue;
        }
        for name in b.list_vms().unwrap_or_default() {
            if candidates.iter().any(|(c, _, _)| *c == name) {
                continue;
            }
            match b
                .owner_mark(&name)
                .and_then(|m| serde_json::from_str::<registry::Owner>(&m).ok())
            {
                Some(o) => candidates.push((name, o, true)),
                // Made by another tool (or the original vmoat): never adopted here.
                None => unowned.push(json!({"vm": name, "backend": kind})),
            }
        }
    }
    for (name, owner, own_record) in candidates {
        let exists = backend::select(owner.backend, &state)
            .and_then(|b| b.info(&name))
            .map(|i| i.state != VmState::Missing);
        let busy = state.try_lock(&format!("vm-{name}"))?.is_none();
        match exists {
            Ok(true) => {}
            Ok(false) if busy => {}
            Ok(false) => {
                dropped.push(json!({"vm": name, "reason": "the VM does not exist"}));
                continue;
            }
            // Cannot tell (backend not installed, a failed query): keep it, never guess.
            Err(e) => {
                output::warn(format!(
                    "{name}: cannot check the VM ({e:#}); its record is kept"
                ));
            }
        }
        if !old.contains_key(&name) {
            adopted.push(json!({"vm": name, "worktree": owner.root, "backend": owner.backend, "own_record": own_record}));
        }
        rebuilt.insert(name, owner);
    }
    crate::state::write_json(&state.root().join(registry::NAMES), &rebuilt)?;
    for (name, _) in rebuilt.iter() {
        if let Some(o) = rebuilt.get(name)
            && registry::read_owner(&state, name).is_none()
        {
            registry::write_owner(&state, name, o)?;
        }
    }
    // Host ports: a damaged ports registry is rebuilt from the VMs' tunnel records.
    let ports = state.root().join("ports.json");
    if !ports.exists() {
        let mut reg = tunnel::Registry::new();
        for name in rebuilt.keys() {
            for (t, _) in tunnel::list(&state, name).unwrap_or_default() {
                reg.entry(name.clone()).or_default().insert(t.guest, t.host);
            }
        }
        if !reg.is_empty() {
            crate::state::write_json(&ports, &reg)?;
        }
    }
    if as_json {
        return output::json(&json!({
            "version": JSON_VERSION,
            "set_aside": set_aside,
            "vms": rebuilt.keys().collect::<Vec<_>>(),
            "adopted": adopted,
            "dropped": dropped,
            "unowned": unowned,
        }));
    }
    for p in &set_aside {
        output::info(format!("damaged: {} (set aside)", p.display()));
    }
    for a in &adopted {
        output::info(format!(
            "recovered {} ({})",
            a["vm"].as_str().unwrap_or(""),
            a["worktree"].as_str().unwrap_or("")
        ));
    }
    for d in &dropped {
        output::info(format!(
            "forgot {}: {}",
            d["vm"].as_str().unwrap_or(""),
            d["reason"].as_str().unwrap_or("")
        ));
    }
    for u in &unowned {
        output::info(format!(
            "{} VM {} has no owner record: not adopted (a worktree finds it by its name, as VMs of the original vmoat)",
            u["backend"].as_str().unwrap_or(""),
            u["vm"].as_str().unwrap_or("")
        ));
    }
    output::info(format!(
        "registry rebuilt: {} VM{} known",
        rebuilt.len(),
        if rebuilt.len() == 1 { "" } else { "s" }
    ));
    Ok(())
}
