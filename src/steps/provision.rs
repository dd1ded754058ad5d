//! Provisioning, shared by `provision`, `up` and the background job: create or start the VM,
//! install packages, run the provision script, seed files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::backend::usage::{self, human_bytes};
use crate::backend::{Io, StartSpec, VmState};
use crate::context::Ctx;
use crate::error::hint;
use crate::output;
use crate::registry;
use crate::shell;
use crate::state::State;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `provision`: run every step.
    Always,
    /// `up`: skip packages and script when this VM already had them with the same config.
    IfNeeded,
}

/// Brings the VM to a provisioned, running state; returns its name. `force`: start it even over
/// the memory budget.
pub(crate) fn provision(ctx: &Ctx, mode: Mode, force: bool) -> Result<String> {
    ctx.backend.ensure_installed()?;
    if !ctx.backend.shares_host_fs() {
        check_mount(ctx)?;
    }
    let spec = StartSpec {
        cpus: ctx.cfg.cpus,
        memory_gib: ctx.cfg.memory,
        disk_gib: ctx.cfg.disk,
        vm_type: ctx.cfg.vm_type.as_deref(),
        mount_type: ctx.cfg.mount_type.as_deref(),
        mount: &ctx.cfg.mount,
    };
    // Everything that can be checked is checked before anything is recorded or started.
    ctx.backend.preflight(&spec)?;
    // A worktree with no VM recorded is about to get one: room for it first, then the name.
    let recorded = registry::find(&registry::load(&ctx.state)?, &ctx.wt_now()).is_some();
    if !recorded && let Err(e) = check_disk(ctx) {
        // Unless the VM exists unrecorded (a rebuilt registry): it needs no new room.
        let exists = ctx
            .vm_name()
            .and_then(|n| ctx.backend.info(&n))
            .is_ok_and(|i| i.state != VmState::Missing);
        if !exists {
            return Err(e);
        }
    }
    let vm = ctx.claim_vm_name()?;
    // One provisioning per VM at a time: a second `up` waits here, then finds it done.
    let _vm_lock = ctx.state.lock_vm(&vm)?;
    // A `down` that died midway (its guard too) is not finished now: the VM is asked to run.
    crate::backend::stopping::forget(&ctx.state, &vm);
    let stamp_path = ctx.state.vm_dir(&vm)?.join("provisioned");
    let info = ctx.backend.info(&vm)?;
    let state = info.state;
    let started = Instant::now();
    match &state {
        VmState::Running => {
            output::info(format!("VM {vm} is running"));
            if let Some(note) = size_change_note(info.cpus, info.memory_bytes, &spec) {
                output::warn(note);
            }
        }
        VmState::Missing => create(ctx, &vm, &spec, recorded, &stamp_path, force)?,
        VmState::Suspended => {
            crate::backend::suspend::wake_for_command(
                &ctx.state,
                ctx.backend.as_ref(),
                &vm,
                force,
            )?;
        }
        other => {
            super::admission::admit(ctx, &vm, force)?;
            output::info(format!("starting VM {vm} ({other})…"));
            ctx.backend.start(&vm, &spec, &state)?;
            output::info(format!(
                "VM {vm} started in {}",
                output::duration(started.elapsed())
            ));
        }
    }
    ctx.mark_owner(&vm);
    let stamp = provision_stamp(ctx);
    let done = std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp);
    if mode == Mode::IfNeeded && done {
        output::info("packages and provision script: already done for this config");
    } else {
        install_packages(ctx, &vm)?;
        run_script(ctx, &vm)?;
        std::fs::write(&stamp_path, &stamp).context("recording the provisioning")?;
    }
    seed_files(ctx)?;
    Ok(vm)
}

/// Makes the VM (recorded or not, it does not exist); a failure leaves no trace of it.
fn create(
    ctx: &Ctx,
    vm: &str,
    spec: &StartSpec<'_>,
    recorded: bool,
    stamp_path: &Path,
    force: bool,
) -> Result<()> {
    let started = Instant::now();
    let admitted = if recorded { check_disk(ctx) } else { Ok(()) }
        .and_then(|()| super::admission::admit(ctx, vm, force));
    if let Err(e) = admitted {
        // Nothing was made: the name goes back.
        let _ = ctx.give_back(vm);
        return Err(e);
    }
    if ctx.backend.reserves_memory() {
        ram_warning(ctx.cfg.memory);
    }
    let _ = std::fs::remove_file(stamp_path);
    output::info(format!("creating {}…", ctx.backend.describe_new(vm, spec)));
    if let Err(e) = ctx.backend.start(vm, spec, &VmState::Missing) {
        // Nothing was made: give the name back, leave no trace.
        if ctx
            .backend
            .info(vm)
            .is_ok_and(|i| i.state == VmState::Missing)
        {
            let _ = ctx.give_back(vm);
        }
        return Err(e);
    }
    output::info(format!(
        "VM {vm} created in {}",
        output::duration(started.elapsed())
    ));
    Ok(())
}

/// Refuses to make a VM where its disk would not fit: a VM that fills the disk midway is left
/// broken (a half-written Lima disk, a dockerd that cannot write), and so is all else there.
fn check_disk(ctx: &Ctx) -> Result<()> {
    let Some(need) = ctx.backend.disk_need() else {
        return Ok(());
    };
    let Some(free) = usage::free_bytes(&need.dir) else {
        return Ok(());
    };
    if free >= need.bytes {
        return Ok(());
    }
    let mut msg = format!(
        "not enough free disk space for a new VM: {} has {} free, and a new {} VM needs {}",
        need.dir.display(),
        human_bytes(free),
        ctx.backend.name(),
        human_bytes(need.bytes)
    );
    let biggest = biggest_vms(&ctx.state, 5);
    if !biggest.is_empty() {
        msg.push_str("\nthe biggest VMs of this state dir:");
        for (vm, bytes, root) in biggest {
            msg.push_str(&format!(
                "\n  {vm:<24} {:>10}  {}",
                human_bytes(bytes),
                root.display()
            ));
        }
    }
    Err(hint(
        msg,
        "free some space, then retry: `git vmoat destroy` in the worktree of a VM you no longer need, `git vmoat gc` for VMs whose worktree is gone",
    ))
}

/// The VMs of this state dir that take the most disk, biggest first: (name, bytes, worktree).
fn biggest_vms(state: &State, n: usize) -> Vec<(String, u64, PathBuf)> {
    let Ok(names) = registry::load(state) else {
        return vec![];
    };
    let mut out: Vec<(String, u64, PathBuf)> = names
        .into_iter()
        .filter_map(|(vm, owner)| {
            let b = crate::backend::select(owner.backend, state).ok()?;
            let bytes = b.usage(&vm).disk_bytes?;
            Some((vm, bytes, owner.root))
        })
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.truncate(n);
    out
}

/// What to tell the user when a running VM's size differs from the config: a running VM keeps
/// its size (Colima saves new values but applies them only at the next start).
fn size_change_note(
    cpus: Option<u64>,
    memory_bytes: Option<u64>,
    spec: &StartSpec<'_>,
) -> Option<String> {
    let cpus_differ = cpus.is_some_and(|c| c != spec.cpus);
    let memory_differs = memory_bytes.is_some_and(|m| m != spec.memory_gib << 30);
    if !cpus_differ && !memory_differs {
        return None;
    }
    let now = format!(
        "{} CPU, {} GiB RAM",
        cpus.map_or("?".into(), |c| c.to_string()),
        memory_bytes.map_or("?".into(), |m| format!(
            "{:.3}",
            m as f64 / (1u64 << 30) as f64
        )
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string())
    );
    Some(format!(
        "the VM runs with {now}, but the config asks for {} CPU, {} GiB RAM; a running VM keeps its size: run `git vmoat down && git vmoat up` to apply it",
        spec.cpus, spec.memory_gib
    ))
}

/// A digest of the provisioning inputs: a change re-runs packages and script on the next `up`.
fn provision_stamp(ctx: &Ctx) -> String {
    let mut h = Sha256::new();
    h.update(ctx.cfg.apt.join("\n"));
    h.update("\0");
    h.update(ctx.cfg.script.as_deref().unwrap_or(""));
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn check_mount(ctx: &Ctx) -> Result<()> {
    let mount = &ctx.cfg.mount;
    let real = std::fs::canonicalize(mount).map_err(|e| {
        hint(
            format!(
                "vm.mount (VM_MOUNT) {} cannot be used: {e}",
                mount.display()
            ),
            "set vm.mount to an existing dir that holds the worktree",
        )
    })?;
    if !ctx.wt.root.starts_with(&real) {
        return Err(hint(
            format!(
                "the worktree {} is outside vm.mount (VM_MOUNT) {}, so the VM could not see it",
                ctx.wt.root.display(),
                real.display()
            ),
            "set vm.mount in vmoat.local.toml to a dir that contains the worktree",
        ));
    }
    Ok(())
}

/// The host's RAM in GiB.
pub(crate) fn host_ram_gib() -> Option<u64> {
    host_ram_bytes().map(|b| b >> 30)
}

/// The host's RAM in bytes (Linux /proc/meminfo, macOS sysctl).
pub(crate) fn host_ram_bytes() -> Option<u64> {
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
        let kb: u64 = text
            .lines()
            .find(|l| l.starts_with("MemTotal:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        return Some(kb * 1024);
    }
    let out = crate::exec::Cmd::new("sysctl")
        .args(["-n", "hw.memsize"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<u64>()
        .ok()
}

fn ram_warning(memory_gib: u64) {
    if let Some(host) = host_ram_gib()
        && memory_gib >= host
    {
        output::warn(format!(
            "vm.memory is {memory_gib} GiB but this machine has {host} GiB: the VM may swap or fail to start (lower vm.memory in vmoat.local.toml)"
        ));
    }
}

fn install_packages(ctx: &Ctx, vm: &str) -> Result<()> {
    if ctx.cfg.apt.is_empty() {
        return Ok(());
    }
    let pkgs = shell::join(&ctx.cfg.apt);
    // Only what dpkg does not already have; one update + install, as root.
    let script = format!(
        "missing=''; for p in {pkgs}; do dpkg -s \"$p\" >/dev/null 2>&1 || missing=\"$missing $p\"; done; \
         if [ -z \"$missing\" ]; then exit 0; fi; echo \"installing:$missing\"; \
         if [ \"$(id -u)\" -eq 0 ]; then s=''; else s=sudo; fi; \
         $s env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
         $s env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing"
    );
    output::info(format!("checking apt packages: {}", ctx.cfg.apt.join(" ")));
    let out = ctx.backend.exec(vm, &ctx.wt.root, Some(&script), Io::Log)?;
    if out.code != 0 {
        return Err(hint(
            format!(
                "installing apt packages in VM {vm} failed (exit {})",
                out.code
            ),
            "check provision.apt (PROVISION_APT) names; apt's output is above",
        ));
    }
    Ok(())
}

fn run_script(ctx: &Ctx, vm: &str) -> Result<()> {
    let Some(script) = &ctx.cfg.script else {
        return Ok(());
    };
    output::info("running the provision script in the VM…");
    let out = ctx.backend.exec(vm, &ctx.wt.root, Some(script), Io::Log)?;
    if out.code != 0 {
        return Err(hint(
            format!("the provision script failed in VM {vm} (exit {})", out.code),
            "its output is above; fix provision.script (PROVISION_SCRIPT) and run `git vmoat provision`",
        ));
    }
    Ok(())
}

fn seed_files(ctx: &Ctx) -> Result<()> {
    if ctx.wt.is_main() {
        return Ok(());
    }
    super::seed::seed_worktree(ctx, false).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_vm_of_another_size_gets_a_note() {
        let spec = StartSpec {
            cpus: 4,
            memory_gib: 8,
            disk_gib: 20,
            vm_type: None,
            mount_type: None,
            mount: std::path::Path::new("/"),
        };
        assert_eq!(size_change_note(Some(4), Some(8 << 30), &spec), None);
        assert_eq!(size_change_note(None, None, &spec), None);
        let n = size_change_note(Some(2), Some(8 << 30), &spec).unwrap();
        assert!(
            n.contains("2 CPU, 8 GiB") && n.contains("asks for 4 CPU, 8 GiB"),
            "{n}"
        );
        assert!(n.contains("git vmoat down && git vmoat up"), "{n}");
        let n = size_change_note(Some(4), Some(3 << 29), &spec).unwrap();
        assert!(n.contains("4 CPU, 1.5 GiB"), "{n}");
    }
}
