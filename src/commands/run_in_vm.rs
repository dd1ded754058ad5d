//! `test` and `ssh`: run something in the VM, in the worktree, exiting with its own status.

use std::ffi::OsString;

use anyhow::Result;

use crate::backend::Io;
use crate::context::Ctx;
use crate::error::{PassThrough, hint};
use crate::shell;

pub fn test(ctx: &Ctx, args: &[OsString]) -> Result<()> {
    let Some(test_cmd) = &ctx.cfg.test else {
        return Err(hint(
            "no test command configured",
            "set commands.test in vmoat.toml (CMD_TEST in vmoat.conf), e.g. test = \"npm test\"",
        ));
    };
    let vm = super::running_vm(ctx)?;
    let script = if args.is_empty() {
        test_cmd.clone()
    } else {
        format!("{test_cmd} {}", shell::join(args))
    };
    pass_through(
        ctx.backend
            .exec(&vm, &ctx.wt.root, Some(&script), Io::Inherit)?
            .code,
    )
}

pub fn ssh(ctx: &Ctx, args: &[OsString]) -> Result<()> {
    let vm = super::running_vm(ctx)?;
    let script = (!args.is_empty()).then(|| shell::join(args));
    pass_through(
        ctx.backend
            .exec(&vm, &ctx.wt.root, script.as_deref(), Io::Inherit)?
            .code,
    )
}

fn pass_through(code: i32) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(PassThrough(code).into())
    }
}
