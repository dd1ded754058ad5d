//! `mcp`: a Model Context Protocol server on stdio, so coding agents drive git-vmoat with
//! tools instead of parsing its output. It runs in `git-vmoat-mcp` only (`exec` hands over to
//! it): the async runtime and the SDK are not even in the binary every other command starts.

mod malformed;
mod server;
mod tools;
mod transport;

use std::os::fd::AsFd;
use std::time::Duration;

use anyhow::Result;
use rmcp::ServiceExt;

use crate::backend::BackendKind;
use crate::error::hint;

/// `git vmoat mcp` in `git-vmoat`: becomes `git-vmoat-mcp` (beside it, else on PATH) with the
/// same arguments.
pub fn exec(_: Option<BackendKind>) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let me = std::env::current_exe()?;
    let beside = me.with_file_name(SERVER);
    let program = if beside.exists() {
        beside
    } else {
        SERVER.into()
    };
    let err = std::process::Command::new(&program)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(hint(
        format!("cannot start the MCP server `{}`: {err}", program.display()),
        format!(
            "{SERVER} is installed with git-vmoat (`cargo install --locked --path .`): put it beside {} or on PATH",
            me.display()
        ),
    ))
}

/// The binary that serves MCP.
const SERVER: &str = "git-vmoat-mcp";

/// `git vmoat mcp` in `git-vmoat-mcp`: serves until the client closes stdin.
pub fn serve(flag: Option<BackendKind>) -> Result<()> {
    // The protocol owns stdin and stdout. Keep them on descriptors of their own, point fd 0 at
    // /dev/null and fd 1 at stderr, so no message, and no process started on the way, can
    // write into the protocol stream or read from it.
    let input = std::io::stdin().as_fd().try_clone_to_owned()?;
    let output = std::io::stdout().as_fd().try_clone_to_owned()?;
    rustix::stdio::dup2_stdin(std::fs::File::open("/dev/null")?)?;
    rustix::stdio::dup2_stdout(std::io::stderr())?;
    let tools = tools::Tools::new(flag)?;
    crate::output::info(format!("MCP server for {} on stdio", tools.cwd().display()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let input = tokio::fs::File::from_std(std::fs::File::from(input));
        let output = tokio::fs::File::from_std(std::fs::File::from(output));
        let transport = transport::Stdio::new(input, output);
        let service = server::Server::new(tools).serve(transport).await?;
        service.waiting().await?;
        anyhow::Ok(())
    });
    // A tool still running when the client went away is not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}
