//! `data`: the stack's volumes in this worktree's VM: list them (sizes, where each came from),
//! copy them again from a sibling, and keep snapshots to restore.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;
use serde_json::json;

use crate::backend::VmState;
use crate::cli::{DataCloneArgs, DataCommand};
use crate::context::Ctx;
use crate::data::{self, clone, snap};
use crate::error::hint;
use crate::output;

pub fn run(ctx: &Ctx, cmd: &DataCommand) -> Result<()> {
    let vm = vm(ctx)?;
    match cmd {
        DataCommand::Ls(a) => ls(ctx, &vm, a.json),
        DataCommand::Clone(a) => clone_again(ctx, &vm, a),
        DataCommand::Snapshot { name } => {
            let (vols, bytes, paused) = snap::snapshot(ctx, &vm, name)?;
            output::info(format!(
                "snapshot {name}: {} ({}), its containers paused {:.1}s",
                vols.join(", "),
                data::size(bytes),
                paused.as_secs_f64()
            ));
            Ok(())
        }
        DataCommand::Restore { name } => {
            let vols = snap::restore(ctx, &vm, name)?;
            output::info(format!("restored {} from snapshot {name}", vols.join(", ")));
            Ok(())
        }
        DataCommand::Rm { name } => {
            let n = snap::remove(ctx, &vm, name)?;
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
        VmState::Running | VmState::Suspended => Ok(vm),
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

fn ls(ctx: &Ctx, vm: &str, as_json: bool) -> Result<()> {
    let b = ctx.backend.as_ref();
    let all = data::volumes(b, vm)?;
    let dirs: Vec<String> = all.iter().map(|v| v.mountpoint.clone()).collect();
    let sizes: std::collections::HashMap<String, u64> = all
        .iter()
        .map(|v| v.name.clone())
        .zip(data::copy::sizes(b, vm, &dirs))
        .collect();
    let origins = data::origins(&ctx.state, vm);
    let stack = snap::stack(&all);
    let snaps = snap::of(&all);
    if as_json {
        let volumes: Vec<_> = stack
            .iter()
            .map(|v| json!({"name": v.name, "bytes": sizes[&v.name], "from": origins.get(&v.name)}))
            .collect();
        let snapshots: Vec<_> = snaps
            .iter()
            .map(|(name, vols)| {
                let vols: Vec<_> = vols
                    .iter()
                    .map(|(of, v)| json!({"of": of, "volume": v.name, "bytes": sizes[&v.name]}))
                    .collect();
                json!({"name": name, "volumes": vols})
            })
            .collect();
        return output::json(&json!({
            "version": output::JSON_VERSION,
            "vm": vm,
            "volumes": volumes,
            "snapshots": snapshots,
        }));
    }
    let mut lines = vec![format!("{:<32} {:>10}  FROM", "VOLUME", "SIZE")];
    for v in &stack {
        let from = origins
            .get(&v.name)
            .map_or("-".to_string(), |o| format!("{} ({})", o.from, o.volume));
        lines.push(format!(
            "{:<32} {:>10}  {from}",
            v.name,
            data::size(sizes[&v.name])
        ));
    }
    for (name, vols) in &snaps {
        let total: u64 = vols.iter().map(|(_, v)| sizes[&v.name]).sum();
        let of: Vec<&str> = vols.iter().map(|(of, _)| of.as_str()).collect();
        lines.push(format!(
            "{:<32} {:>10}  snapshot of {}",
            format!("snapshot {name}"),
            data::size(total),
            of.join(", ")
        ));
    }
    output::data(lines.join("\n"))
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
        None => output::info("nothing was copied"),
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
    eprint!("{what} (their containers are stopped meanwhile). Go on? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(hint(
            "not confirmed: nothing was changed",
            "answer y, or pass --yes",
        ))
    }
}
