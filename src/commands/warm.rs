//! `warm [--from X]`: copy the stack's images from a sibling VM now.

use anyhow::Result;

use crate::cli::WarmArgs;
use crate::context::Ctx;
use crate::output;

pub fn run(ctx: &Ctx, args: &WarmArgs) -> Result<()> {
    let vm = crate::steps::running_vm(ctx)?;
    match crate::warm::warm(ctx, &vm, args.from.as_deref())? {
        Some(r) => output::info(r.line()),
        None => output::info(format!(
            "{vm} already has every image its stack needs, or none is known (set warm.images)"
        )),
    }
    Ok(())
}
