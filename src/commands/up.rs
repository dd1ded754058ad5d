//! `up`: provision, start the stack and wait until it is healthy, then say what comes next.

use anyhow::Result;

use crate::context::Ctx;
use crate::output;

pub fn run(ctx: &Ctx, a: &crate::cli::StartArgs) -> Result<()> {
    crate::steps::up::up(ctx, a.force)?;
    output::info(
        "next: `git vmoat tunnel` (ports to localhost), `git vmoat test`, `git vmoat ssh`, `git vmoat down` / `destroy`",
    );
    Ok(())
}
