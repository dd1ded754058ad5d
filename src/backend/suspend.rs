//! Suspended VMs: the record of a suspension, suspending, and the wake that every command
//! needing the VM (and a tunnel's first connection) goes through; leases that keep a VM awake.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::Backend;
use crate::output;
use crate::state::{State, files};

/// What `suspend` left for `wake`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// When it was suspended (seconds since the Unix epoch).
    pub since: u64,
    /// Why: `idle`, `suspend` (asked for), `evicted`.
    pub reason: String,
    /// The containers that were running, started again on wake when the backend stopped them.
    #[serde(default)]
    pub containers: Vec<String>,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn path(state: &State, vm: &str) -> PathBuf {
    state.vm_dir_path(vm).join(files::SUSPENDED)
}

/// The VM's suspension, when it is suspended. A damaged record counts as suspended (so the
/// next wake thaws whatever may be frozen) since the file was written, with nothing to start
/// again.
pub fn record(state: &State, vm: &str) -> Option<Record> {
    let p = path(state, vm);
    let bytes = std::fs::read(&p).ok()?;
    Some(serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        Record {
            since: std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or_else(now_secs, |d| d.as_secs()),
            reason: "unknown (damaged record)".into(),
            containers: vec![],
        }
    }))
}

/// Suspends a running VM: freezes it (netns) or stops it keeping its disk (Colima), noting
/// which containers ran so they run again on wake. No-op when it is suspended already.
pub fn suspend(state: &State, backend: &dyn Backend, vm: &str, reason: &str) -> Result<()> {
    let backend = backend.unwrapped();
    let _lock = state.lock_wake(vm)?;
    if record(state, vm).is_some() {
        return Ok(());
    }
    let containers = if backend.freezes_processes() {
        vec![]
    } else {
        running_containers(backend, vm)
    };
    // The record comes first: if we die while freezing, the next wake undoes what was done
    // (thawing a VM that is not frozen is harmless).
    let rec = Record {
        since: now_secs(),
        reason: reason.to_string(),
        containers,
    };
    crate::state::write_json(&state.vm_dir(vm)?.join(files::SUSPENDED), &rec)?;
    if let Err(e) = backend.freeze(vm) {
        let _ = backend.thaw(vm);
        let _ = std::fs::remove_file(path(state, vm));
        return Err(e.context(format!("suspending VM {vm}")));
    }
    Ok(())
}

/// Wakes a suspended VM for a tunnel connection (thaws it, or starts it and its containers
/// again): over the memory budget it wakes anyway, with a warning. False when it was not
/// suspended. Costs one failed `open` when it is not.
pub fn wake(state: &State, backend: &dyn Backend, vm: &str) -> Result<bool> {
    wake_as(state, backend, vm, Waker::Tunnel)
}

/// Wakes a suspended VM for a command that needs it: over the memory budget it is refused as
/// `up` is (idle VMs evicted when `vm.evict` is on), unless `force`.
pub fn wake_for_command(
    state: &State,
    backend: &dyn Backend,
    vm: &str,
    force: bool,
) -> Result<bool> {
    wake_as(state, backend, vm, Waker::Command { force })
}

/// What wakes a suspended VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waker {
    /// A command that needs the VM (`ssh`, `up`, `resume`…): over the memory budget it is
    /// refused as `up` is, unless `force`.
    Command { force: bool },
    /// A connection to one of its tunnels: never refused (the request would fail), but warned
    /// about in the tunnel's log.
    Tunnel,
}

/// The memory-budget check every wake goes through: Err refuses the wake.
pub type WakeCheck = fn(&State, &dyn Backend, &str, Waker) -> Result<()>;

static WAKE_CHECK: std::sync::OnceLock<WakeCheck> = std::sync::OnceLock::new();

/// Sets the wake check, once per process: the layer that knows configs and budgets sets it,
/// so that this one, below it, depends on neither.
pub fn set_wake_check(check: WakeCheck) {
    let _ = WAKE_CHECK.set(check);
}

fn wake_as(state: &State, backend: &dyn Backend, vm: &str, waker: Waker) -> Result<bool> {
    let backend = backend.unwrapped();
    if !path(state, vm).exists() && !backend.is_frozen(vm) {
        return Ok(false);
    }
    if let Some(check) = WAKE_CHECK.get() {
        check(state, backend, vm, waker)?;
    }
    let _lock = state.lock_wake(vm)?;
    let rec = record(state, vm);
    if rec.is_none() && !backend.is_frozen(vm) {
        // Someone else woke it while we waited for the lock.
        return Ok(false);
    }
    let rec = rec.unwrap_or_default();
    let started = std::time::Instant::now();
    output::info(format!("resuming VM {vm}…"));
    backend
        .thaw(vm)
        .with_context(|| format!("resuming VM {vm}"))?;
    start_again(backend, vm, &rec.containers);
    std::fs::remove_file(path(state, vm))
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        })
        .with_context(|| format!("removing {}", path(state, vm).display()))?;
    mark_active(state, vm);
    let asleep = now_secs().saturating_sub(rec.since);
    output::info(format!(
        "resumed VM {vm} in {} (suspended for {})",
        output::duration(started.elapsed()),
        output::duration(Duration::from_secs(asleep))
    ));
    Ok(true)
}

/// Before a suspended VM is stopped or deleted: thaws a frozen one (a frozen process cannot
/// die) and drops the record; a VM the backend stopped stays stopped.
pub fn settle(state: &State, backend: &dyn Backend, vm: &str) -> Result<()> {
    let backend = backend.unwrapped();
    let Ok(_lock) = state.lock_wake(vm) else {
        return Ok(());
    };
    if backend.is_frozen(vm) {
        backend.thaw(vm)?;
    }
    match std::fs::remove_file(path(state, vm)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path(state, vm).display()))
        }
        _ => Ok(()),
    }
}

fn running_containers(backend: &dyn Backend, vm: &str) -> Vec<String> {
    let Ok(cmd) = backend.docker(vm) else {
        return vec![];
    };
    match cmd.args(["ps", "-q", "--no-trunc"]).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(String::from)
            .collect(),
        _ => vec![],
    }
}

fn start_again(backend: &dyn Backend, vm: &str, containers: &[String]) {
    if containers.is_empty() {
        return;
    }
    let Ok(cmd) = backend.docker(vm) else { return };
    match cmd.arg("start").args(containers).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => output::warn(format!(
            "starting the containers of {vm} again: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => output::warn(format!("starting the containers of {vm} again: {e:#}")),
    }
}

/// Notes that the VM was just used (it restarts the idle clock).
pub fn mark_active(state: &State, vm: &str) {
    let _ = touch(&state.vm_dir_path(vm).join(files::TRAFFIC));
}

/// Sets a file's mtime to now, creating it if needed.
pub fn touch(path: &std::path::Path) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    f.set_modified(SystemTime::now())
}

/// Keeps a VM from counting as idle while a git-vmoat command runs something in it.
pub struct Lease(Option<PathBuf>);

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Takes a lease on the VM for this process (best effort: a full disk gives none).
pub fn lease(state: &State, vm: &str) -> Lease {
    let dir = state.vm_dir_path(vm).join(files::BUSY_DIR);
    let file = dir.join(std::process::id().to_string());
    let ok = std::fs::create_dir_all(&dir).is_ok() && touch(&file).is_ok();
    Lease(ok.then_some(file))
}

/// Whether a live git-vmoat process holds a lease on the VM (stale ones are removed).
pub fn leased(state: &State, vm: &str) -> bool {
    !lease_holders(state, vm).is_empty()
}

/// Whether a live git-vmoat process other than this one's callers (a `git vmoat ssh` this
/// command runs under) holds a lease on the VM.
pub fn leased_by_others(state: &State, vm: &str) -> bool {
    let mine = ancestors();
    lease_holders(state, vm).iter().any(|p| !mine.contains(p))
}

/// The pids holding a lease on the VM; stale leases are removed.
fn lease_holders(state: &State, vm: &str) -> Vec<u32> {
    let dir = state.vm_dir_path(vm).join(files::BUSY_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return vec![];
    };
    let mut live = vec![];
    for e in entries.flatten() {
        let pid = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok());
        match pid {
            Some(pid) if crate::exec::process_alive(pid) => live.push(pid),
            _ => {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    live
}

/// This process's parent, its parent, and so on (Linux; elsewhere none are known).
fn ancestors() -> Vec<u32> {
    let mut out = vec![];
    let mut pid = std::process::id();
    while let Some(parent) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.get(s.rfind(')')? + 2..)?.split(' ').nth(1)?.parse().ok())
        .filter(|&p: &u32| p > 1 && out.len() < 64)
    {
        out.push(parent);
        pid = parent;
    }
    out
}

/// The idle rule's memory between watcher passes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Activity {
    /// The VM's CPU time at the last sample, and when that was taken (Unix milliseconds).
    pub cpu_ns: Option<u64>,
    pub sampled_ms: u64,
    /// The last time the VM was seen busy by any sign (Unix seconds).
    pub busy_at: u64,
}

pub fn activity(state: &State, vm: &str) -> Activity {
    crate::state::read_json(&state.vm_dir_path(vm).join(files::ACTIVITY)).unwrap_or_default()
}

/// When the VM was last seen in use: now while a git-vmoat command runs in it, else the newest
/// of its tunnels' traffic, its last wake and the idle rule's last busy sample. None: never.
pub fn last_active(state: &State, vm: &str) -> Option<SystemTime> {
    if leased(state, vm) {
        return Some(SystemTime::now());
    }
    let traffic = std::fs::metadata(state.vm_dir_path(vm).join(files::TRAFFIC))
        .and_then(|m| m.modified())
        .ok();
    let busy = activity(state, vm).busy_at;
    let busy = (busy > 0).then(|| UNIX_EPOCH + Duration::from_secs(busy));
    traffic.max(busy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_record_counts_from_when_it_was_written() {
        let tmp = tempfile::tempdir().unwrap();
        let state = State::at(tmp.path().to_path_buf());
        assert_eq!(record(&state, "wt-a"), None);
        let dir = state.vm_dir("wt-a").unwrap();
        std::fs::write(dir.join(files::SUSPENDED), "{not json").unwrap();
        let r = record(&state, "wt-a").expect("a damaged record still means suspended");
        assert!(now_secs().abs_diff(r.since) < 60, "{r:?}");
        assert!(r.containers.is_empty());
    }
}
