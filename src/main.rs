//! The `git-vmoat` binary (see `entry`); `mcp` is handed over to `git-vmoat-mcp`.

fn main() -> std::process::ExitCode {
    git_vmoat::entry::main(git_vmoat::commands::mcp_exec)
}
