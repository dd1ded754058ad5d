//! `untunnel`: close every tunnel of this worktree's VM; needs no config or trust.

use anyhow::Result;

use crate::context::Base;
use crate::output;

pub fn run(base: Base) -> Result<()> {
    let Some((vm, backend, base)) = base.existing_vm()? else {
        output::info("this worktree has no VM: no tunnels to close");
        return Ok(());
    };
    let n = crate::tunnel::close_all(&base.state, backend.as_ref(), &vm)?;
    output::info(format!(
        "closed {n} tunnel{} of {vm}",
        if n == 1 { "" } else { "s" }
    ));
    Ok(())
}
