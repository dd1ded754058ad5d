//! Steps that several commands share (seeding, provisioning, `up`, opening tunnels, reclaiming
//! orphans). They sit below `commands/`: a command calls steps, a step never calls a command,
//! so no command module imports another.

pub(crate) mod admission;
pub(crate) mod committed;
pub(crate) mod idle;
pub(crate) mod provision;
pub(crate) mod reclaim;
pub(crate) mod seed;
pub(crate) mod tunnel;
pub(crate) mod up;

use anyhow::Result;

use crate::backend::VmState;
use crate::context::Ctx;

/// The VM name of a worktree whose VM must be running for the command to make sense.
pub(crate) fn running_vm(ctx: &Ctx) -> Result<String> {
    ctx.backend.ensure_installed()?;
    let vm = ctx.vm_name()?;
    let mut state = ctx.backend.info(&vm)?.state;
    if state == VmState::Suspended {
        crate::backend::suspend::wake_for_command(&ctx.state, ctx.backend.as_ref(), &vm, false)?;
        state = ctx.backend.info(&vm)?.state;
    }
    if state != VmState::Running {
        return Err(not_running(&vm, &state));
    }
    Ok(vm)
}

fn not_running(vm: &str, state: &VmState) -> anyhow::Error {
    crate::error::hint(
        format!("VM {vm} is {state}, not running"),
        "start it with `git vmoat up` (or `git vmoat provision`)",
    )
}

#[cfg(test)]
mod tests {
    use crate::output::error_text;

    #[test]
    fn a_stopped_vm_is_named_with_how_to_start_it() {
        let e = super::not_running("wt-app", &crate::backend::VmState::Stopped);
        insta::assert_snapshot!(error_text(&e));
    }
}
