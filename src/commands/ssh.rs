//! `ssh`: a shell in the VM, in the worktree, or a command run there (argv kept as is).

use anyhow::Result;

use crate::backend::Io;
use crate::cli::PassArgs;
use crate::context::Ctx;
use crate::error::pass_through;
use crate::shell;

pub fn run(ctx: &Ctx, args: &PassArgs) -> Result<()> {
    let vm = crate::steps::running_vm(ctx)?;
    let script = (!args.args.is_empty()).then(|| shell::join(&args.args));
    pass_through(
        ctx.backend
            .exec(&vm, &ctx.wt.root, script.as_deref(), Io::Inherit)?
            .code,
    )
}
