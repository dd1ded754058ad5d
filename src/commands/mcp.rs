//! `mcp`: a Model Context Protocol server on stdio, so coding agents drive git-vmoat with
//! tools instead of parsing its output. The async runtime exists only here: every other
//! command starts without one.

mod server;
mod tools;

use std::os::fd::AsFd;
use std::time::Duration;

use anyhow::Result;
use rmcp::ServiceExt;

use crate::backend::BackendKind;

pub fn run(flag: Option<BackendKind>) -> Result<()> {
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
        let service = server::Server::new(tools).serve((input, output)).await?;
        service.waiting().await?;
        anyhow::Ok(())
    });
    // A tool still running when the client went away is not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}
