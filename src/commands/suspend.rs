//! `suspend` and `resume`: freeze (netns) or stop (Colima) an idle VM, keeping everything, and
//! bring it back; tunnels stay open, and a connection to one resumes the VM by itself.

use anyhow::Result;

use crate::backend::{VmState, suspend};
use crate::context::Base;
use crate::error::hint;
use crate::output;

/// `suspend`: found by identity like `down`; needs no config or trust. A VM running a
/// git-vmoat command (an agent's tests, a shell) is suspended only with `force`.
pub fn run(base: Base, force: bool) -> Result<()> {
    let Some((vm, backend, base)) = base.existing_vm()? else {
        output::info("this worktree has no VM: nothing to suspend");
        return Ok(());
    };
    backend.ensure_installed()?;
    match backend.info(&vm)?.state {
        VmState::Suspended => {
            output::info(format!("VM {vm} is already suspended"));
            Ok(())
        }
        VmState::Running => {
            if suspend::leased_by_others(&base.state, &vm) {
                if !force {
                    return Err(hint(
                        format!(
                            "a git-vmoat command runs in VM {vm} (`ssh`, `test`, `up`…): suspending would stop it midway; nothing was changed"
                        ),
                        "wait until it ends, or pass --force (it then waits until the VM is resumed)",
                    ));
                }
                output::warn(format!(
                    "a git-vmoat command runs in VM {vm}: it waits until the VM is resumed"
                ));
            }
            suspend::suspend(&base.state, backend.as_ref(), &vm, "suspend")?;
            let how = if backend.freezes_processes() {
                "frozen: every process kept, no CPU used"
            } else {
                "stopped with its disk and containers kept"
            };
            output::info(format!(
                "suspended VM {vm} ({how}); any command that needs it, or a connection to one of its tunnels, resumes it"
            ));
            Ok(())
        }
        other => Err(hint(
            format!("VM {vm} is {other}, not running: there is nothing to suspend"),
            "start it with `git vmoat up`",
        )),
    }
}

/// `resume`: wakes a suspended VM now (instead of at its next use); `force` wakes it over the
/// memory budget.
pub fn resume(base: Base, force: bool) -> Result<()> {
    let Some((vm, backend, base)) = base.existing_vm()? else {
        return Err(hint(
            "this worktree has no VM",
            "create it with `git vmoat up`",
        ));
    };
    backend.ensure_installed()?;
    // Waits for a `down` (or its guard) still stopping the VM; one that died midway is not
    // finished now: the VM is asked to run.
    let _vm_lock = base.state.lock_vm(&vm)?;
    crate::backend::stopping::forget(&base.state, &vm);
    if !suspend::wake_for_command(&base.state, backend.as_ref(), &vm, force)? {
        output::info(format!(
            "VM {vm} is not suspended ({})",
            backend.info(&vm)?.state
        ));
    }
    Ok(())
}
