//! `test`: run the project's tests in the VM, in the worktree, exiting with their status.

use anyhow::Result;

use crate::backend::Io;
use crate::cli::PassArgs;
use crate::context::Ctx;
use crate::error::{hint, pass_through};
use crate::shell;

pub fn run(ctx: &Ctx, args: &PassArgs) -> Result<()> {
    let (vm, script) = prepare(ctx, &args.args)?;
    pass_through(
        ctx.backend
            .exec(&vm, &ctx.wt.root, Some(&script), Io::Inherit)?
            .code,
    )
}

/// The running VM and the test script with `args` appended, quoted (shared with the MCP
/// server's `test` tool).
pub(super) fn prepare(ctx: &Ctx, args: &[std::ffi::OsString]) -> Result<(String, String)> {
    let Some(test_cmd) = &ctx.cfg.test else {
        return Err(no_test_command());
    };
    let vm = crate::steps::running_vm(ctx)?;
    let script = if args.is_empty() {
        test_cmd.clone()
    } else {
        format!("{test_cmd} {}", shell::join(args))
    };
    Ok((vm, script))
}

fn no_test_command() -> anyhow::Error {
    hint(
        "no test command configured",
        "set commands.test in vmoat.toml (CMD_TEST in vmoat.conf), e.g. test = \"npm test\"",
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_test_command_says_where_to_set_one() {
        insta::assert_snapshot!(crate::output::error_text(&super::no_test_command()));
    }
}
