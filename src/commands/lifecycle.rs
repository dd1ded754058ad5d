//! `down` and `destroy`: stop or delete the VM, closing its tunnels first.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;

use crate::backend::VmState;
use crate::context::Base;
use crate::error::hint;
use crate::output;
use crate::tunnel;

/// `down`: found by identity, on the backend it was made with; needs no config or trust.
pub fn down(base: Base) -> Result<()> {
    let Some((vm, backend, base)) = base.existing_vm()? else {
        output::info("this worktree has no VM: nothing to stop");
        return Ok(());
    };
    backend.ensure_installed()?;
    let _vm_lock = base.state.lock(&format!("vm-{vm}"))?;
    tunnel::close_all(&base.state, backend.as_ref(), &vm)?;
    match backend.info(&vm)?.state {
        VmState::Missing => output::info(format!("VM {vm} does not exist: nothing to stop")),
        VmState::Stopped => output::info(format!("VM {vm} is already stopped")),
        _ => {
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

/// `destroy`: found by identity, deleted on the backend it was made with, whatever the config
/// says today; needs no config or trust.
pub fn destroy(base: Base, force: bool) -> Result<()> {
    let Some((vm, backend, base)) = base.existing_vm()? else {
        output::info("this worktree has no VM: nothing to destroy");
        return Ok(());
    };
    backend.ensure_installed()?;
    let ctx = &base;
    let exists = backend.info(&vm)?.state != VmState::Missing;
    let ask = exists && !force;
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

/// Asks on the terminal (the caller checked there is one).
fn confirm(vm: &str) -> Result<()> {
    eprint!("Delete VM {vm} with its containers, images and volumes? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(hint(
            "not confirmed: nothing was destroyed",
            "answer y to destroy, or pass -f",
        ))
    }
}
