//! A `down` of a suspended VM finishes even when it is interrupted: its intent is recorded
//! before the VM is thawed, and a guard process (or the next command on the VM, or the watcher)
//! stops the VM when the `down` died before it could.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{Backend, BackendKind};
use crate::output;
use crate::state::{State, files};

/// What an unfinished `down` left: when it began, and the stop-timeout it gave containers
/// (None: not known, from a damaged record).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    since: u64,
    timeout: Option<u64>,
}

fn path(state: &State, vm: &str) -> PathBuf {
    state.vm_dir_path(vm).join(files::STOPPING)
}

/// A damaged record still means a stop to finish.
fn read(state: &State, vm: &str) -> Option<Record> {
    let bytes = std::fs::read(path(state, vm)).ok()?;
    Some(serde_json::from_slice(&bytes).unwrap_or(Record {
        since: super::suspend::now_secs(),
        timeout: None,
    }))
}

/// Held by `down` from before it thaws a suspended VM until the VM is stopped.
pub struct Stopping {
    path: PathBuf,
    guard: Option<Child>,
}

impl Drop for Stopping {
    fn drop(&mut self) {
        // Reached when `down` returns, stopped or failing (then it says why): only a `down`
        // killed midway leaves the record. It goes first, so the guard finds nothing to do.
        let _ = std::fs::remove_file(&self.path);
        if let Some(mut g) = self.guard.take() {
            drop(g.stdin.take());
            let _ = g.wait();
        }
    }
}

/// Records that `down` is about to thaw and stop the suspended `vm` (the caller holds the VM
/// lock), and starts its guard: a process in a group of its own, which Ctrl-C does not reach,
/// that waits for this one to end and stops the VM if it died first.
pub fn begin(state: &State, kind: BackendKind, vm: &str, timeout: Duration) -> Result<Stopping> {
    let rec = Record {
        since: super::suspend::now_secs(),
        timeout: Some(timeout.as_secs()),
    };
    let path = state.vm_dir(vm)?.join(files::STOPPING);
    crate::state::write_json(&path, &rec)?;
    let guard = std::env::current_exe()
        .map_err(anyhow::Error::from)
        .and_then(|me| {
            crate::exec::Cmd::new(me)
                .arg("__stop-guard")
                .arg("--state")
                .arg(state.root())
                .args(["--vm", vm, "--kind", kind.as_str()])
                .stdin_piped()
                .own_process_group()
                .spawn_with(Stdio::null(), Stdio::inherit())
        });
    let guard = match guard {
        Ok(g) => Some(g),
        // Without it, the record still lets the next command or the watcher finish the stop.
        Err(e) => {
            output::detail(format!("no guard for the stop of {vm}: {e:#}"));
            None
        }
    };
    Ok(Stopping { path, guard })
}

/// The guard (`__stop-guard`): waits until the `down` that started it ends, however it ends
/// (its end of our stdin closes), and finishes the stop if that `down` did not.
pub fn guard(state: &State, kind: BackendKind, vm: &str) -> Result<()> {
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    if !path(state, vm).exists() {
        return Ok(());
    }
    let backend = super::select(kind, state)?;
    let _lock = state.lock_vm(vm)?;
    finish_locked(state, backend.as_ref(), vm);
    Ok(())
}

/// A record left by a `down` that died midway (the VM lock is free, so no `down` runs now) is
/// finished here: every command on the VM asks first. True when the VM was stopped so.
pub fn finish_interrupted(state: &State, backend: &dyn Backend, vm: &str) -> bool {
    if !path(state, vm).exists() {
        return false;
    }
    let Ok(Some(_lock)) = state.try_lock_vm(vm) else {
        return false;
    };
    finish_locked(state, backend, vm)
}

/// `finish_interrupted` for every VM with a record (the watcher's pass).
pub fn finish_all(state: &State, open: &dyn Fn(&str) -> Option<Box<dyn Backend>>) {
    let Ok(dir) = std::fs::read_dir(state.root().join(files::VMS_DIR)) else {
        return;
    };
    for e in dir.flatten() {
        if let Some(vm) = e.file_name().to_str()
            && e.path().join(files::STOPPING).exists()
            && let Some(b) = open(vm)
        {
            finish_interrupted(state, b.as_ref(), vm);
        }
    }
}

/// Drops what a `down` that died midway left, once a `down` (holding the VM lock) stopped the VM.
pub fn clear(state: &State, vm: &str) {
    let _ = std::fs::remove_file(path(state, vm));
}

/// Drops what a `down` that died midway left, when the VM is now asked to run (`up`, `resume`):
/// that wish is the newer one.
pub fn forget(state: &State, vm: &str) {
    if std::fs::remove_file(path(state, vm)).is_ok() {
        output::info(format!(
            "VM {vm}: an interrupted `down` of it is not finished, as it is asked to run"
        ));
    }
}

/// Stops the VM as the interrupted `down` would have (the caller holds the VM lock): thawed,
/// its containers given that `down`'s stop-timeout, then the VM. The record goes either way.
fn finish_locked(state: &State, backend: &dyn Backend, vm: &str) -> bool {
    let Some(rec) = read(state, vm) else {
        // Finished by another process while this one waited for the lock.
        return false;
    };
    let b = backend.unwrapped();
    let ago = Duration::from_secs(super::suspend::now_secs().saturating_sub(rec.since));
    output::warn(format!(
        "a `down` of VM {vm} begun {} ago was interrupted: stopping the VM now",
        output::duration(ago)
    ));
    let done = super::suspend::settle(state, b, vm).and_then(|()| {
        // Not known: the daemon, stopping, gives them docker's own default.
        if let Some(t) = rec.timeout {
            b.stop_containers(vm, Duration::from_secs(t));
        }
        b.stop(vm)
    });
    let _ = std::fs::remove_file(path(state, vm));
    match done {
        Ok(()) => {
            output::info(format!("stopped {vm}"));
            true
        }
        Err(e) => {
            output::warn(format!(
                "stopping VM {vm}: {e:#}; `git vmoat down` tries again"
            ));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::VmState;
    use crate::backend::fake::Fake;

    #[test]
    fn a_dead_downs_record_is_finished_only_while_no_down_holds_the_vm() {
        let tmp = tempfile::tempdir().unwrap();
        let state = State::at(tmp.path().to_path_buf());
        let fake = Fake::new(BackendKind::Netns).with_vm("wt-a", VmState::Running);
        assert!(!finish_interrupted(&state, &fake, "wt-a"), "no record");
        std::fs::write(state.vm_dir("wt-a").unwrap().join(files::STOPPING), "{").unwrap();
        // A `down` holds the lock: it is that one's to finish.
        let held = state.lock_vm("wt-a").unwrap();
        assert!(!finish_interrupted(&state, &fake, "wt-a"));
        assert_eq!(fake.state_of("wt-a"), VmState::Running);
        drop(held);
        // No `down` runs: the damaged record still means the VM is to be stopped.
        assert!(finish_interrupted(&state, &fake, "wt-a"));
        assert_eq!(fake.state_of("wt-a"), VmState::Stopped);
        assert!(!path(&state, "wt-a").exists());
        assert!(!finish_interrupted(&state, &fake, "wt-a"), "finished once");
    }
}
