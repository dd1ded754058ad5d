//! A copy's crash safety: the containers it pauses in the source VM and the volumes it makes in
//! the target VM are recorded (in each VM's dir) before anything is done, under a lock held for
//! the copy. The copy undoes them itself when it fails; if it died, the next git-vmoat command
//! that touches the VM (or the watcher) finds the record with the lock free and undoes them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::Backend;
use crate::output;
use crate::state::{Lock, State, files};

/// The label every container a copy makes carries (its value: the copying process's pid), so
/// leftovers of a copy that died can be found.
pub const COPY_LABEL: &str = "git-vmoat.copy";

#[derive(Serialize, Deserialize, Default)]
struct PauseRecord {
    /// The copying process (its copy containers carry this in their label).
    pid: u32,
    containers: Vec<String>,
}

#[derive(Serialize, Deserialize, Default)]
struct PartialRecord {
    pid: u32,
    volumes: Vec<String>,
}

fn stopped_path(state: &State, vm: &str) -> PathBuf {
    state.vm_dir_path(vm).join(files::DATA_STOPPED)
}

/// Records the VM's containers a copy is about to stop (before it does: if it dies while
/// stopping them, starting a running container again is harmless).
pub fn record_stopped(state: &State, vm: &str, containers: &[String]) -> Result<()> {
    let rec = PauseRecord {
        pid: std::process::id(),
        containers: containers.to_vec(),
    };
    crate::state::write_json(&state.vm_dir(vm)?.join(files::DATA_STOPPED), &rec)
}

/// The stopped containers were started again (or are no longer this process's to start).
pub fn clear_stopped(state: &State, vm: &str) {
    let _ = std::fs::remove_file(stopped_path(state, vm));
}

/// Starts the containers a copy that died had stopped, then drops the record.
fn undo_stopped(state: &State, b: &dyn Backend, vm: &str) {
    let path = stopped_path(state, vm);
    let Ok(bytes) = std::fs::read(&path) else {
        return;
    };
    let rec: PauseRecord = serde_json::from_slice(&bytes).unwrap_or_default();
    if rec.pid != 0 && crate::exec::process_alive(rec.pid) {
        return;
    }
    if !rec.containers.is_empty() {
        let Ok(cmd) = b.docker(vm) else { return };
        match cmd.arg("start").args(&rec.containers).output() {
            Ok(o) if o.status.success() => output::info(format!(
                "started again the containers of {vm} an interrupted copy had stopped"
            )),
            _ => return,
        }
    }
    let _ = std::fs::remove_file(&path);
}

fn paused_path(state: &State, vm: &str) -> PathBuf {
    state.vm_dir_path(vm).join(files::DATA_PAUSED)
}

fn partial_path(state: &State, vm: &str) -> PathBuf {
    state.vm_dir_path(vm).join(files::DATA_PARTIAL)
}

/// The containers of `vm` that mount any of `volumes`; only running (unpaused) ones when
/// `running`.
pub fn containers_using(
    b: &dyn Backend,
    vm: &str,
    volumes: &[String],
    running: bool,
) -> Result<Vec<String>> {
    if volumes.is_empty() {
        return Ok(vec![]);
    }
    let mut cmd = b.docker(vm)?.args(["ps", "-q", "--no-trunc"]);
    if running {
        cmd = cmd.args(["--filter", "status=running"]);
    } else {
        cmd = cmd.arg("-a");
    }
    for v in volumes {
        cmd = cmd.arg("--filter").arg(format!("volume={v}"));
    }
    let out = cmd.checked()?;
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    // Our own copy containers mount the volume too; they never run, but never count them.
    let ours = b
        .docker(vm)?
        .args(["ps", "-aq", "--no-trunc", "--filter"])
        .arg(format!("label={COPY_LABEL}"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    ids.retain(|i| !ours.split_whitespace().any(|o| o == i));
    Ok(ids)
}

/// The containers a copy paused; unpaused when released or dropped, whatever happened.
pub struct Paused<'a> {
    state: &'a State,
    b: &'a dyn Backend,
    vm: String,
    pub containers: Vec<String>,
    since: Instant,
    done: bool,
    _lock: Lock,
}

/// Pauses the running containers of `vm` that mount any of `volumes`, so their files hold
/// still (a crash-consistent image) while they are copied. One copy out of a VM at a time.
pub fn pause<'a>(
    state: &'a State,
    b: &'a dyn Backend,
    vm: &str,
    volumes: &[String],
) -> Result<Paused<'a>> {
    let lock = state.lock_data_source(vm)?;
    // We hold the lock: a record left now is a dead copy's.
    undo_pause(state, b, vm);
    let containers = containers_using(b, vm, volumes, true)?;
    let rec = PauseRecord {
        pid: std::process::id(),
        containers: containers.clone(),
    };
    // The record first: if we die right after pausing, the next command unpauses.
    crate::state::write_json(&state.vm_dir(vm)?.join(files::DATA_PAUSED), &rec)?;
    let paused = Paused {
        state,
        b,
        vm: vm.to_string(),
        containers,
        since: Instant::now(),
        done: false,
        _lock: lock,
    };
    if !paused.containers.is_empty() {
        let out = b
            .docker(vm)?
            .arg("pause")
            .args(&paused.containers)
            .output()?;
        if !out.status.success() {
            bail!(
                "pausing the containers of {vm} that use the volumes: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(paused)
}

impl Paused<'_> {
    /// Unpauses; returns how long the containers were paused.
    pub fn release(mut self) -> Duration {
        self.unpause();
        self.since.elapsed()
    }

    fn unpause(&mut self) {
        if !self.done {
            self.done = true;
            undo_pause(self.state, self.b, &self.vm);
        }
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.unpause();
    }
}

/// Unpauses what the record lists, removes the recording process's copy containers, and drops
/// the record once the daemon answered (a VM that is not running keeps it for next time).
fn undo_pause(state: &State, b: &dyn Backend, vm: &str) {
    let path = paused_path(state, vm);
    let Ok(bytes) = std::fs::read(&path) else {
        return;
    };
    let rec: PauseRecord = serde_json::from_slice(&bytes).unwrap_or_default();
    remove_copy_containers(b, vm, rec.pid);
    if !rec.containers.is_empty() {
        let Ok(cmd) = b.docker(vm) else { return };
        match cmd.arg("unpause").args(&rec.containers).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                // Gone or not paused: nothing left to undo. Else the daemon did not answer.
                if !(err.contains("not paused") || err.contains("No such container")) {
                    output::warn(format!(
                        "could not unpause the containers of {vm}: {}",
                        err.trim()
                    ));
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let _ = std::fs::remove_file(&path);
}

fn remove_copy_containers(b: &dyn Backend, vm: &str, pid: u32) {
    let Ok(cmd) = b.docker(vm) else { return };
    let Ok(out) = cmd
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label={COPY_LABEL}={pid}"))
        .output()
    else {
        return;
    };
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    if !ids.is_empty()
        && let Ok(cmd) = b.docker(vm)
    {
        let _ = cmd.args(["rm", "-f"]).args(&ids).output();
    }
}

/// The volumes a copy is making in a VM: removed on drop unless each was finished.
pub struct Making<'a> {
    state: &'a State,
    b: &'a dyn Backend,
    vm: String,
    volumes: Vec<String>,
    _lock: Lock,
}

/// Starts making volumes in `vm` (one copy into a VM at a time).
pub fn making<'a>(state: &'a State, b: &'a dyn Backend, vm: &str) -> Result<Making<'a>> {
    let lock = state.lock_data_target(vm)?;
    undo_partial(state, b, vm);
    Ok(Making {
        state,
        b,
        vm: vm.to_string(),
        volumes: vec![],
        _lock: lock,
    })
}

impl Making<'_> {
    /// Records `volume` as being made (before it is created).
    pub fn start(&mut self, volume: &str) -> Result<()> {
        self.volumes.push(volume.to_string());
        self.write()
    }

    /// `volume` is whole: it stays.
    pub fn finish(&mut self, volume: &str) -> Result<()> {
        self.finish_all(&[volume.to_string()])
    }

    /// These volumes are whole, together (one write: a set is never half kept).
    pub fn finish_all(&mut self, volumes: &[String]) -> Result<()> {
        self.volumes.retain(|v| !volumes.contains(v));
        self.write()
    }

    fn write(&self) -> Result<()> {
        let path = self.state.vm_dir(&self.vm)?.join(files::DATA_PARTIAL);
        if self.volumes.is_empty() {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => return Ok(()),
            }
        }
        let rec = PartialRecord {
            pid: std::process::id(),
            volumes: self.volumes.clone(),
        };
        crate::state::write_json(&path, &rec)
    }
}

impl Drop for Making<'_> {
    fn drop(&mut self) {
        if !self.volumes.is_empty() {
            undo_partial(self.state, self.b, &self.vm);
        }
    }
}

/// Removes the volumes the record lists (half made) and the recording process's copy
/// containers; drops the record once they are gone.
fn undo_partial(state: &State, b: &dyn Backend, vm: &str) {
    let path = partial_path(state, vm);
    let Ok(bytes) = std::fs::read(&path) else {
        return;
    };
    let rec: PartialRecord = serde_json::from_slice(&bytes).unwrap_or_default();
    remove_copy_containers(b, vm, rec.pid);
    for v in &rec.volumes {
        let Ok(cmd) = b.docker(vm) else { return };
        match cmd.args(["volume", "rm", "-f", v]).output() {
            Ok(o) if o.status.success() => {
                output::info(format!("removed the half-copied volume {v} in {vm}"));
            }
            _ => return,
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// Undoes what a copy that died left in `vm` (paused or stopped containers, half-made
/// volumes); nothing while a live copy holds the VM. Costs three failed `stat`s when there is
/// nothing.
pub fn recover(state: &State, b: &dyn Backend, vm: &str) {
    if paused_path(state, vm).exists()
        && let Ok(Some(_lock)) = state.try_lock_data_source(vm)
    {
        undo_pause(state, b, vm);
    }
    if partial_path(state, vm).exists()
        && let Ok(Some(_lock)) = state.try_lock_data_target(vm)
    {
        undo_partial(state, b, vm);
    }
    // After the half volumes are gone: the containers start on the volumes they had.
    if stopped_path(state, vm).exists()
        && let Ok(Some(_lock)) = state.try_lock_data_target(vm)
    {
        undo_stopped(state, b, vm);
    }
}

/// `recover` for every VM with a record (the watcher's pass).
pub fn recover_all(state: &State, open: &dyn Fn(&str) -> Option<Box<dyn Backend>>) {
    let Ok(dir) = std::fs::read_dir(state.root().join(files::VMS_DIR)) else {
        return;
    };
    for e in dir.flatten() {
        let Some(vm) = e.file_name().to_str().map(String::from) else {
            continue;
        };
        let p = e.path();
        if [files::DATA_PAUSED, files::DATA_PARTIAL, files::DATA_STOPPED]
            .iter()
            .any(|f| p.join(f).exists())
            && let Some(b) = open(&vm)
        {
            recover(state, b.as_ref(), &vm);
        }
    }
}
