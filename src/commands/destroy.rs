//! `destroy`: delete the VM and its data, closing its tunnels first; worktree files are never
//! touched.

use std::io::IsTerminal;

use anyhow::Result;

use crate::backend::VmState;
use crate::cli::DestroyArgs;
use crate::context::Base;
use crate::error::hint;
use crate::output;

/// `destroy`: found by identity, deleted on the backend it was made with, whatever the config
/// says today; needs no config or trust.
pub fn run(base: Base, args: &DestroyArgs) -> Result<()> {
    let Some((vm, backend, base)) = base.existing_vm()? else {
        output::info("this worktree has no VM: nothing to destroy");
        return Ok(());
    };
    backend.ensure_installed()?;
    let ctx = &base;
    let vm_state = backend.info(&vm)?.state;
    let exists = vm_state != VmState::Missing;
    let ask = exists && !args.force;
    // Refuse before saying anything that sounds like it is happening.
    if ask && !std::io::stdin().is_terminal() {
        return Err(hint(
            format!(
                "destroying VM {vm} deletes its containers, images and volumes, and there is no terminal to confirm"
            ),
            "run `git vmoat destroy -f` to destroy without asking",
        ));
    }
    if exists && crate::git::is_dirty(&ctx.wt.root).unwrap_or(false) {
        output::warn(
            "this worktree has uncommitted changes; they stay on disk, but data the VM holds (database volumes) goes with it",
        );
    }
    if vm_state == VmState::Running {
        say_data(backend.as_ref(), &vm);
    }
    if ask {
        confirm(&vm)?;
    }
    output::info(format!(
        "{} VM {vm} of worktree {}",
        if exists {
            "destroying"
        } else {
            "cleaning up after"
        },
        ctx.wt.root.display()
    ));
    crate::context::teardown(&ctx.state, backend.as_ref(), &vm)?;
    output::info(format!(
        "destroyed {vm}; the worktree's files are untouched"
    ));
    Ok(())
}

/// Says how much volume data goes with a running VM (a stopped or suspended one is not started
/// only to measure it).
fn say_data(backend: &dyn crate::backend::Backend, vm: &str) {
    if let Some((n, bytes)) = crate::data::holdings(backend, vm)
        && n > 0
    {
        output::warn(format!(
            "{n} volume{} ({} of data) go{} with VM {vm}",
            if n == 1 { "" } else { "s" },
            crate::data::size(bytes),
            if n == 1 { "es" } else { "" }
        ));
    }
}

/// Asks on the terminal (the caller checked there is one).
fn confirm(vm: &str) -> Result<()> {
    if output::ask_yes(&format!(
        "Delete VM {vm} with its containers, images and volumes?"
    ))? {
        Ok(())
    } else {
        Err(hint(
            "not confirmed: nothing was destroyed",
            "answer y to destroy, or pass -f",
        ))
    }
}
