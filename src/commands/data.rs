//! `data`: the stack's volumes in this worktree's VM: list them (sizes, where each came from),
//! copy them again from a sibling, and keep snapshots to restore.

use std::io::IsTerminal;

use anyhow::Result;
use serde_json::{Value, json};

use crate::backend::VmState;
use crate::cli::{DataCloneArgs, DataCommand, DataLsArgs};
use crate::context::Ctx;
use crate::data::{self, clone, snap};
use crate::error::hint;
use crate::output;

pub fn run(ctx: &Ctx, cmd: &DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Ls(a) => ls(ctx, a),
        DataCommand::Clone(a) => clone_again(ctx, &vm(ctx)?, a),
        DataCommand::Snapshot { name } => {
            let (vols, bytes, paused) = snap::snapshot(ctx, &vm(ctx)?, name)?;
            output::info(format!(
                "snapshot {name}: {} ({}), its containers paused {:.1}s",
                vols.join(", "),
                data::size(bytes),
                paused.as_secs_f64()
            ));
            Ok(())
        }
        DataCommand::Restore { name } => {
            let vols = snap::restore(ctx, &vm(ctx)?, name)?;
            output::info(format!("restored {} from snapshot {name}", vols.join(", ")));
            Ok(())
        }
        DataCommand::Rm { name } => {
            let n = snap::remove(ctx, &vm(ctx)?, name)?;
            output::info(format!(
                "removed snapshot {name} ({n} volume{})",
                if n == 1 { "" } else { "s" }
            ));
            Ok(())
        }
    }
}

/// This worktree's VM, which must be up (a suspended one is woken by what follows).
fn vm(ctx: &Ctx) -> Result<String> {
    let vm = ctx.vm_name()?;
    match ctx.backend.info(&vm)?.state {
        VmState::Running | VmState::Suspended => {
            // Copies run as docker commands from the host: this keeps the watcher from
            // suspending the VM midway (a lease of this process, until it ends).
            std::mem::forget(crate::backend::suspend::lease(&ctx.state, &vm));
            Ok(vm)
        }
        VmState::Missing => Err(hint(
            "this worktree has no VM yet: it has no volumes",
            "start it with `git vmoat up`",
        )),
        s => Err(hint(
            format!("VM {vm} is not running ({s})"),
            "start it with `git vmoat up`",
        )),
    }
}

/// One VM's volumes and snapshots, with sizes and origins (the `ls --json` entry).
fn listing(ctx: &Ctx, b: &dyn crate::backend::Backend, vm: &str) -> Result<Value> {
    let all = data::volumes(b, vm)?;
    let dirs: Vec<String> = all.iter().map(|v| v.mountpoint.clone()).collect();
    let sizes: std::collections::HashMap<String, u64> = all
        .iter()
        .map(|v| v.name.clone())
        .zip(data::copy::sizes(b, vm, &dirs))
        .collect();
    let origins = data::origins(&ctx.state, vm);
    let volumes: Vec<_> = snap::stack(&all)
        .iter()
        .map(|v| json!({"name": v.name, "bytes": sizes[&v.name], "from": origins.get(&v.name)}))
        .collect();
    let snapshots: Vec<_> = snap::of(&all)
        .iter()
        .map(|(name, vols)| {
            let vols: Vec<_> = vols
                .iter()
                .map(|(of, v)| json!({"of": of, "volume": v.name, "bytes": sizes[&v.name]}))
                .collect();
            json!({"name": name, "volumes": vols})
        })
        .collect();
    Ok(json!({"vm": vm, "state": "Running", "volumes": volumes, "snapshots": snapshots}))
}

/// `ls`: this VM's volumes; with `--all`, every VM of the repository (those not running are
/// listed with their state, not started or woken to be measured).
fn ls(ctx: &Ctx, a: &DataLsArgs) -> Result<()> {
    let vms = if a.all {
        let names = crate::registry::load(&ctx.state)?;
        let mut list = vec![];
        for (vm, owner) in crate::registry::of_repo(&names, &ctx.wt_now()) {
            let b = crate::backend::select(owner.backend, &ctx.state)?;
            let state = b.info(&vm).map_or(VmState::Unknown, |i| i.state);
            list.push(if state == VmState::Running {
                listing(ctx, b.as_ref(), &vm)?
            } else {
                json!({"vm": vm, "state": state, "volumes": [], "snapshots": []})
            });
        }
        list
    } else {
        vec![listing(ctx, ctx.backend.as_ref(), &vm(ctx)?)?]
    };
    if a.json {
        let mut doc = if a.all {
            json!({ "vms": vms })
        } else {
            vms.into_iter().next().unwrap_or_default()
        };
        doc["version"] = json!(output::JSON_VERSION);
        return output::json(&doc);
    }
    let mut lines = vec![format!(
        "{:<20} {:<32} {:>10}  FROM",
        "VM", "VOLUME", "SIZE"
    )];
    for l in &vms {
        lines.extend(table_rows(l));
    }
    output::data(lines.join("\n"))
}

fn table_rows(l: &Value) -> Vec<String> {
    let vm = l["vm"].as_str().unwrap_or_default();
    let row = |what: &str, bytes: u64, from: &str| {
        format!("{vm:<20} {what:<32} {:>10}  {from}", data::size(bytes))
    };
    if l["state"] != "Running" {
        return vec![format!(
            "{vm:<20} ({}: not running, not measured)",
            l["state"].as_str().unwrap_or("unknown")
        )];
    }
    let mut out = vec![];
    for v in l["volumes"].as_array().into_iter().flatten() {
        let from = match &v["from"] {
            Value::Null => "-".to_string(),
            o => format!(
                "{} ({})",
                o["from"].as_str().unwrap_or_default(),
                o["volume"].as_str().unwrap_or_default()
            ),
        };
        out.push(row(
            v["name"].as_str().unwrap_or_default(),
            v["bytes"].as_u64().unwrap_or(0),
            &from,
        ));
    }
    for s in l["snapshots"].as_array().into_iter().flatten() {
        let vols = s["volumes"].as_array().cloned().unwrap_or_default();
        let total: u64 = vols.iter().filter_map(|v| v["bytes"].as_u64()).sum();
        let of: Vec<&str> = vols.iter().filter_map(|v| v["of"].as_str()).collect();
        let name = format!("snapshot {}", s["name"].as_str().unwrap_or_default());
        out.push(row(&name, total, &format!("copy of {}", of.join(", "))));
    }
    out
}

fn clone_again(ctx: &Ctx, vm: &str, a: &DataCloneArgs) -> Result<()> {
    let keys = if a.volumes.is_empty() {
        ctx.cfg.warm_volumes.clone()
    } else {
        a.volumes.clone()
    };
    if keys.is_empty() {
        return Err(hint(
            "no volumes named, and warm.volumes is not set",
            "name them (`git vmoat data clone pgdata`, or `all`), or set warm.volumes in vmoat.toml",
        ));
    }
    let mine = snap::stack(&data::volumes(ctx.backend.as_ref(), vm)?);
    let replaced: Vec<String> = if keys == ["all"] {
        mine.iter().map(|v| v.name.clone()).collect()
    } else {
        keys.iter()
            .filter_map(|k| data::find(&mine, k).map(|v| v.name.clone()))
            .collect()
    };
    if !replaced.is_empty() && !a.yes {
        confirm(vm, &replaced)?;
    }
    let req = clone::Request {
        keys: &keys,
        from: a.from.as_deref(),
        replace: true,
        via: a.via,
    };
    match clone::clone(ctx, vm, &req)? {
        Some(r) => {
            output::info(r.line());
            if !r.missing.is_empty() {
                output::warn(format!("{} has no volume {}", r.from, r.missing.join(", ")));
            }
        }
        // Asked for by name, a copy that could not be made is an error (a script must know).
        None => {
            return Err(hint(
                format!(
                    "no sibling worktree's VM has {}{}; nothing was copied",
                    if keys == ["all"] {
                        "any volume".to_string()
                    } else {
                        keys.join(", ")
                    },
                    a.from
                        .as_deref()
                        .map(|f| format!(" (looked in {f})"))
                        .unwrap_or_default()
                ),
                "start the stack of a worktree that has the data (`git vmoat up` there), or name it with --from; see `git vmoat data ls --all`",
            ));
        }
    }
    Ok(())
}

/// Asks before volumes are replaced; refuses without a terminal.
fn confirm(vm: &str, volumes: &[String]) -> Result<()> {
    let what = format!(
        "copying replaces the data of {} in VM {vm}",
        volumes.join(", ")
    );
    if !std::io::stdin().is_terminal() {
        return Err(hint(
            format!("{what}, and there is no terminal to confirm; nothing was changed"),
            "pass --yes to replace them without asking",
        ));
    }
    if output::ask_yes(&format!(
        "{what} (their containers are stopped meanwhile). Go on?"
    ))? {
        Ok(())
    } else {
        Err(hint(
            "not confirmed: nothing was changed",
            "answer y, or pass --yes",
        ))
    }
}
