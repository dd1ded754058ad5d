//! The command line: clap definitions only; doc comments are the help text.

use clap::{Args, Parser, Subcommand};

/// Run every git worktree's full stack in its own VM, side by side, on its stock ports.
///
/// Each worktree gets its own VM (a Colima profile: own kernel, own Docker daemon) with the
/// worktree mounted at the same path. git-vmoat runs the project's own commands inside it,
/// waits for health and tunnels the stack's ports to 127.0.0.1.
#[derive(Debug, Parser)]
#[command(
    name = "git-vmoat",
    bin_name = "git-vmoat",
    version,
    disable_version_flag = false
)]
#[command(
    after_help = "Exit status: 0 ok, 1 error, 2 usage; `test` and `ssh CMD` exit with the command's own status."
)]
pub struct Cli {
    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also show every command git-vmoat runs.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// The VM backend, overriding the `backend` config key.
    #[arg(long, global = true, value_parser = ["auto", "colima", "netns"])]
    pub backend: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented vmoat.toml for this project (with the detected up command).
    Init(InitArgs),
    /// Create or start this worktree's VM and provision it (apt packages, script, seeds).
    Provision,
    /// Provision, start the stack (commands.up) in the VM, and wait until it is healthy.
    Up,
    /// Run the tests (commands.test) in the VM; extra arguments are passed on.
    Test(PassArgs),
    /// Forward the stack's ports to 127.0.0.1 and print their URLs (one per line).
    Tunnel(TunnelArgs),
    /// Close every tunnel of this worktree's VM.
    Untunnel,
    /// Show the VM, its containers, health and tunnels.
    Status(JsonArgs),
    /// Open a shell in the VM, in the worktree, or run a command there (argv kept as is).
    Ssh(PassArgs),
    /// Stop the VM (closes tunnels; the disk is kept for the next `up`).
    Down,
    /// Delete the VM and its data (closes tunnels). Worktree files are never touched.
    Destroy(DestroyArgs),
    /// Print this worktree's VM name.
    Name(JsonArgs),
    /// Show the effective configuration and where each value comes from.
    Config(JsonArgs),
    /// Trust this worktree's legacy vmoat.conf / vmoat.local.conf (shell code) as they are now.
    Trust,
    /// Print git-vmoat's version.
    Version,
    /// Internal: the port forwarder behind a netns tunnel.
    #[command(name = "__forward", hide = true)]
    Forward {
        netns: std::path::PathBuf,
        spec: String,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Convert the (trusted) legacy vmoat.conf into vmoat.toml.
    #[arg(long)]
    pub from_conf: bool,
}

#[derive(Debug, Args)]
pub struct PassArgs {
    /// Arguments passed on unchanged.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TunnelArgs {
    /// Guest ports to forward (default: tunnel.ports, else the containers' published ports).
    pub ports: Vec<String>,
    /// Print JSON instead of URLs.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON (a stable schema with a "version" field).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}
