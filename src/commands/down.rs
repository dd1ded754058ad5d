//! `down`: stop the VM, closing its tunnels first; the disk is kept for the next `up`.

use std::time::Duration;

use anyhow::Result;

use crate::backend::{Backend, VmState, stopping, suspend};
use crate::context::Base;
use crate::output;
use crate::state::State;
use crate::tunnel;

/// `down`: found by identity, on the backend it was made with; needs no config or trust.
pub fn run(base: Base) -> Result<()> {
    let Some((vm, backend, base)) = base.existing_vm()? else {
        output::info("this worktree has no VM: nothing to stop");
        return Ok(());
    };
    backend.ensure_installed()?;
    let _vm_lock = base.state.lock_vm(&vm)?;
    tunnel::close_all(&base.state, backend.as_ref(), &vm)?;
    match backend.info(&vm)?.state {
        VmState::Missing => output::info(format!("VM {vm} does not exist: nothing to stop")),
        VmState::Stopped => {
            output::info(format!("VM {vm} is already stopped"));
            // A `down` interrupted (Ctrl-C) once the daemon was told to stop leaves what the VM
            // held on the host (netns: its namespace, cgroup, runtime dir): cleared here, a
            // few cheap checks when nothing is left.
            if backend.stopped_holds_host_state() {
                backend.stop(&vm)?;
            }
        }
        state => {
            let timeout = stop_timeout(&base);
            // Thawed to be stopped, a suspended VM must not be left running by a `down` that
            // dies midway (Ctrl-C, a kill): its guard finishes the stop then.
            let _stopping = (state == VmState::Suspended && backend.freezes_processes())
                .then(|| stopping::begin(&base.state, backend.kind(), &vm, timeout))
                .transpose()?;
            stop(&base.state, backend.as_ref(), &vm, timeout)?;
        }
    }
    // What a `down` that died midway left was this one's to finish: it is done.
    stopping::clear(&base.state, &vm);
    Ok(())
}

/// The config may be broken or untrusted: `down` still works, with the default.
fn stop_timeout(base: &Base) -> Duration {
    Duration::from_secs(
        crate::config::Config::load(&base.wt.root, &base.state)
            .map_or(crate::config::DEFAULT_STOP_TIMEOUT, |c| c.stop_timeout),
    )
}

fn stop(state: &State, backend: &dyn Backend, vm: &str, timeout: Duration) -> Result<()> {
    // The watcher must not suspend it again between its thaw and its stop.
    let _lease = suspend::lease(state, vm);
    backend.stop_containers(vm, timeout);
    output::info(format!("stopping VM {vm} (its disk is kept)…"));
    backend.stop(vm)?;
    output::info(format!("stopped {vm}"));
    Ok(())
}
