//! `down`: stop the VM, closing its tunnels first; the disk is kept for the next `up`.

use anyhow::Result;

use crate::backend::{BackendKind, VmState, suspend};
use crate::context::Base;
use crate::output;
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
            // few cheap checks when nothing is left. A stopped Colima VM holds nothing.
            if backend.kind() != BackendKind::Colima {
                backend.stop(&vm)?;
            }
        }
        _ => {
            // The watcher must not suspend it again between its thaw and its stop.
            let _lease = suspend::lease(&base.state, &vm);
            // The config may be broken or untrusted: `down` still works, with the default.
            let timeout = crate::config::Config::load(&base.wt.root, &base.state)
                .map_or(crate::config::DEFAULT_STOP_TIMEOUT, |c| c.stop_timeout);
            backend.stop_containers(&vm, std::time::Duration::from_secs(timeout));
            output::info(format!("stopping VM {vm} (its disk is kept)…"));
            backend.stop(&vm)?;
            output::info(format!("stopped {vm}"));
        }
    }
    Ok(())
}
