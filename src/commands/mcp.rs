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
    // The protocol owns stdout. Keep it on a descriptor of its own and point fd 1 at stderr,
    // so no message, and no process started on the way, can write into the protocol stream.
    let protocol = std::io::stdout().as_fd().try_clone_to_owned()?;
    rustix::stdio::dup2_stdout(std::io::stderr())?;
    let tools = tools::Tools::new(flag)?;
    crate::output::info(format!("MCP server for {} on stdio", tools.cwd().display()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let out = tokio::fs::File::from_std(std::fs::File::from(protocol));
        let service = server::Server::new(tools)
            .serve((tokio::io::stdin(), out))
            .await?;
        service.waiting().await?;
        anyhow::Ok(())
    });
    // A tool still running when the client went away is not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}
