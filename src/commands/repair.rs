//! `doctor --repair`: sets damaged state files aside and rebuilds the registry from the VMs that
//! exist and carry their own owner record; adopts nothing that has no record of its owner.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::backend::{self, VmState};
use crate::cli::DoctorArgs;
use crate::output::{self, JSON_VERSION, Note};
use crate::registry::{self, Names};
use crate::state::{State, files};
use crate::tunnel;

/// Every JSON file git-vmoat keeps in a state dir.
fn state_files(state: &State) -> Vec<PathBuf> {
    let root = state.root();
    let mut out: Vec<PathBuf> = [files::NAMES, files::PORTS, files::TRUST, files::APPROVALS]
        .iter()
        .map(|f| root.join(f))
        .collect();
    for (dir, file) in [
        (files::VMS_DIR, None),
        (files::NETNS_DIR, Some(files::NETNS_META)),
        (crate::backend::rootless::DIR, Some(files::NETNS_META)),
        (files::JOBS_DIR, None),
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match file {
                Some(f) => out.push(p.join(f)),
                None if p.is_dir() => {
                    out.push(p.join(files::TUNNELS));
                    out.push(p.join(files::OWNER));
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

/// What `doctor --repair` found and did.
#[derive(Serialize, Debug, Default)]
struct RepairReport {
    version: u32,
    /// Damaged state files, renamed aside.
    set_aside: Vec<PathBuf>,
    /// Every VM the rebuilt registry knows.
    vms: Vec<String>,
    adopted: Vec<Adopted>,
    dropped: Vec<Dropped>,
    /// VMs with no owner record: never adopted.
    unowned: Vec<Unowned>,
}

#[derive(Serialize, Debug)]
struct Adopted {
    vm: String,
    worktree: PathBuf,
    backend: String,
    own_record: bool,
}

#[derive(Serialize, Debug)]
struct Dropped {
    vm: String,
    reason: &'static str,
}

#[derive(Serialize, Debug)]
struct Unowned {
    vm: String,
    backend: &'static str,
}

/// A VM the registry may keep: its name, owner, and whether the owner came from its own record.
type Candidate = (String, registry::Owner, bool);

pub fn run(args: &DoctorArgs) -> Result<()> {
    let state = State::open()?;
    // Hold the registry's lock throughout: no claim may interleave with the rebuild.
    let _names_lock = state.lock_names()?;
    let mut report = RepairReport {
        version: JSON_VERSION,
        ..Default::default()
    };
    for p in state_files(&state) {
        if is_damaged(&p) {
            crate::state::set_aside(&p);
            report.set_aside.push(p);
        }
    }
    let old: Names = registry::load(&state).unwrap_or_default();
    let candidates = candidates(&state, &old, &mut report);
    let rebuilt = rebuild(&state, &old, candidates, &mut report)?;
    write(&state, &rebuilt)?;
    report.vms = rebuilt.into_keys().collect();
    if args.json {
        return output::json(&report);
    }
    for n in report.notes() {
        n.emit();
    }
    Ok(())
}

/// The VMs' own records are the truth; a registry entry without one is kept only while its VM
/// exists (or is being made: its lock is held).
fn candidates(state: &State, old: &Names, report: &mut RepairReport) -> Vec<Candidate> {
    let mut candidates: Vec<Candidate> = registry::owner_records(state)
        .into_iter()
        .map(|(n, o)| (n, o, true))
        .collect();
    for (n, o) in old {
        if !candidates.iter().any(|(c, _, _)| c == n) {
            candidates.push((n.clone(), o.clone(), false));
        }
    }
    // VMs whose records in the state dir are lost still carry their owner with them.
    for kind in [
        backend::BackendKind::Colima,
        backend::BackendKind::Netns,
        backend::BackendKind::Rootless,
    ] {
        let Ok(b) = backend::select(kind, state) else {
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
                None => report.unowned.push(Unowned {
                    vm: name,
                    backend: kind.as_str(),
                }),
            }
        }
    }
    candidates
}

/// The registry as the VMs that exist say it is.
fn rebuild(
    state: &State,
    old: &Names,
    candidates: Vec<Candidate>,
    report: &mut RepairReport,
) -> Result<Names> {
    let mut rebuilt = Names::new();
    for (name, owner, own_record) in candidates {
        let exists = backend::select(owner.backend, state)
            .and_then(|b| b.info(&name))
            .map(|i| i.state != VmState::Missing);
        let busy = state.try_lock_vm(&name)?.is_none();
        match exists {
            Ok(true) => {}
            Ok(false) if busy => {}
            Ok(false) => {
                report.dropped.push(Dropped {
                    vm: name,
                    reason: "the VM does not exist",
                });
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
            report.adopted.push(Adopted {
                vm: name.clone(),
                worktree: owner.root.clone(),
                backend: owner.backend.to_string(),
                own_record,
            });
        }
        rebuilt.insert(name, owner);
    }
    Ok(rebuilt)
}

/// Writes the registry, the owner records it lacks, and a lost host-port registry.
fn write(state: &State, rebuilt: &Names) -> Result<()> {
    crate::state::write_json(&state.root().join(files::NAMES), rebuilt)?;
    for (name, o) in rebuilt {
        if registry::read_owner(state, name).is_none() {
            registry::write_owner(state, name, o)?;
        }
    }
    // Host ports: a damaged ports registry is rebuilt from the VMs' tunnel records.
    let ports = state.root().join(files::PORTS);
    if !ports.exists() {
        let mut reg = tunnel::Registry::new();
        for name in rebuilt.keys() {
            for (t, _) in tunnel::list(state, name).unwrap_or_default() {
                reg.entry(name.clone()).or_default().insert(t.guest, t.host);
            }
        }
        if !reg.is_empty() {
            crate::state::write_json(&ports, &reg)?;
        }
    }
    Ok(())
}

impl RepairReport {
    fn notes(&self) -> Vec<Note> {
        let mut out = vec![];
        for p in &self.set_aside {
            out.push(Note::Info(format!("damaged: {} (set aside)", p.display())));
        }
        for a in &self.adopted {
            out.push(Note::Info(format!(
                "recovered {} ({})",
                a.vm,
                a.worktree.display()
            )));
        }
        for d in &self.dropped {
            out.push(Note::Info(format!("forgot {}: {}", d.vm, d.reason)));
        }
        for u in &self.unowned {
            out.push(Note::Info(format!(
                "{} VM {} has no owner record: not adopted (a worktree finds it by its name, as VMs of the original vmoat)",
                u.backend, u.vm
            )));
        }
        let n = self.vms.len();
        out.push(Note::Info(format!(
            "registry rebuilt: {n} VM{} known",
            if n == 1 { "" } else { "s" }
        )));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_says_what_it_set_aside_recovered_and_forgot() {
        let r = RepairReport {
            version: JSON_VERSION,
            set_aside: vec!["/state/names.json".into()],
            vms: vec!["wt-app".into()],
            adopted: vec![Adopted {
                vm: "wt-app".into(),
                worktree: "/src/app".into(),
                backend: "colima".into(),
                own_record: true,
            }],
            dropped: vec![Dropped {
                vm: "wt-old".into(),
                reason: "the VM does not exist",
            }],
            unowned: vec![Unowned {
                vm: "legacy".into(),
                backend: "colima",
            }],
        };
        let text: Vec<String> = r.notes().iter().map(ToString::to_string).collect();
        insta::assert_snapshot!("repair_human", text.join("\n"));
        insta::assert_json_snapshot!("repair_json", r);
    }
}
