//! The `git-vmoat-mcp` binary: `git-vmoat` with the MCP server, which `git vmoat mcp` hands over
//! to (the server's own jobs and tunnels run through it too).

fn main() -> std::process::ExitCode {
    git_vmoat::entry::main(git_vmoat::commands::mcp_serve)
}
