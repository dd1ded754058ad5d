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
    #[arg(long, global = true, value_enum)]
    pub backend: Option<crate::backend::BackendKind>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented vmoat.toml for this project (with the detected up command).
    Init(InitArgs),
    /// Create or start this worktree's VM and provision it (apt packages, script, seeds).
    Provision(StartArgs),
    /// Provision, start the stack (commands.up) in the VM, and wait until it is healthy.
    Up(StartArgs),
    /// Run the tests (commands.test) in the VM; extra arguments are passed on.
    Test(PassArgs),
    /// Copy the stack's images from a sibling worktree's VM (done by `up` unless warm = false).
    Warm(WarmArgs),
    /// Forward the stack's ports to 127.0.0.1 and print their URLs (one per line).
    Tunnel(TunnelArgs),
    /// Close every tunnel of this worktree's VM.
    Untunnel,
    /// Show the VM, its containers, health, tunnels and background job (--all: every VM of the repo).
    Status(StatusArgs),
    /// Show what every VM uses (CPU, memory, disk), how long it has been idle, and its tunnels.
    ///
    /// Every VM of every repository that shares this state dir. On a terminal it redraws every
    /// 2 s until Ctrl-C; elsewhere, or with --json, it prints one snapshot.
    Top(JsonArgs),
    /// Open a shell in the VM, in the worktree, or run a command there (argv kept as is).
    Ssh(PassArgs),
    /// Stop the VM (closes tunnels; the disk is kept for the next `up`).
    Down,
    /// Suspend the VM: frozen (netns) or stopped (Colima), everything kept; tunnels stay.
    ///
    /// Any command that needs the VM, or a connection to one of its tunnels, resumes it. The
    /// watcher suspends VMs idle for `vm.suspend-after` by itself.
    Suspend(SuspendArgs),
    /// Resume a suspended VM now (instead of at its next use).
    Resume(StartArgs),
    /// Delete the VM and its data (closes tunnels). Worktree files are never touched.
    Destroy(DestroyArgs),
    /// The stack's volumes: list them, copy them again from a sibling, snapshot and restore.
    #[command(subcommand)]
    Data(DataCommand),
    /// Print this worktree's VM name.
    Name(JsonArgs),
    /// Show the effective configuration and where each value comes from.
    Config(JsonArgs),
    /// Install, remove or inspect the git hook that gives each new worktree its VM.
    #[command(subcommand)]
    Hooks(HooksCommand),
    /// Copy gitignored files (provision.seed, .worktreeinclude) from the main checkout; never overwrites.
    Seed(SeedArgs),
    /// Show the log of this worktree's background job (-f: follow it).
    Logs(LogsArgs),
    /// Destroy VMs whose worktree git has forgotten (worktree remove/prune), as it happens.
    Watch(WatchArgs),
    /// Destroy this repository's VMs whose worktree git forgot or whose directory is missing.
    Gc(GcArgs),
    /// Approve what this worktree runs by itself (commands, files, mount), legacy config included.
    Trust,
    /// Serve this repository's VMs to coding agents: a Model Context Protocol server on stdio.
    ///
    /// Tools: worktrees, status, up, logs, test, exec, tunnel, down, destroy. It runs nothing a
    /// person has not approved (`git vmoat trust`), and never approves anything itself.
    Mcp,
    /// Print git-vmoat's version.
    Version,
    /// Print the shell completion script (bash, zsh or fish), for `git-vmoat` and `git vmoat`.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Install completions for your shell and the man pages where it and `man` find them.
    ///
    /// Says what it did and prints, on stdout, the lines your shell's rc file still needs (none
    /// when it has them). Never replaces a file it did not write.
    Setup(SetupArgs),
    /// Check everything a first run needs, and say how to fix each gap.
    Doctor(DoctorArgs),
    /// Internal (packaging): write completions or man pages into a directory.
    #[command(hide = true)]
    Generate {
        #[arg(value_enum)]
        kind: GenerateKind,
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Internal: called by the post-checkout hook.
    #[command(hide = true)]
    Hook {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Internal: the background job of a new worktree.
    #[command(name = "__job", hide = true)]
    Job,
    /// Internal: finishes a `down` of a suspended VM that dies before the VM is stopped.
    #[command(name = "__stop-guard", hide = true)]
    StopGuard {
        #[arg(long)]
        state: std::path::PathBuf,
        #[arg(long)]
        vm: String,
        #[arg(long, value_enum)]
        kind: crate::backend::BackendKind,
    },
    /// Internal: the port forwarder behind a tunnel.
    #[command(name = "__forward", hide = true)]
    Forward {
        #[arg(long)]
        state: std::path::PathBuf,
        #[arg(long)]
        vm: String,
        #[arg(long, value_enum)]
        kind: crate::backend::BackendKind,
        /// The backend's forwarder marker (netns: the namespace to connect in).
        marker: String,
        /// 127.0.0.1:HOST:127.0.0.1:GUEST
        spec: String,
    },
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Start the VM even when the running VMs and it exceed the memory budget (vm.budget).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SuspendArgs {
    /// Suspend even while a git-vmoat command (`ssh`, `test`, `up`…) runs in the VM; it
    /// continues when the VM resumes.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Convert the (trusted) legacy vmoat.conf into vmoat.toml.
    #[arg(long)]
    pub from_conf: bool,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// The shell to set up (default: the one $SHELL names).
    #[arg(long, value_enum)]
    pub shell: Option<Shell>,
    /// Only say what would be done.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PassArgs {
    /// Arguments passed on unchanged (bytes as they are, UTF-8 or not).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_parser = clap::value_parser!(std::ffi::OsString))]
    pub args: Vec<std::ffi::OsString>,
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
pub struct DoctorArgs {
    /// Print JSON (a stable schema with a "version" field).
    #[arg(long)]
    pub json: bool,
    /// Set damaged state files aside and rebuild the registry from the VMs that exist.
    #[arg(long)]
    pub repair: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Every VM of this repository, with its worktree; orphans marked.
    #[arg(long)]
    pub all: bool,
    /// Print JSON (a stable schema with a "version" field).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// Install the post-checkout hook (chaining any hook already there), opt this repo in, and
    /// approve what new worktrees run by themselves (shown).
    Install {
        /// Also start the stack (`up`), not only provision the VM.
        #[arg(long)]
        up: bool,
    },
    /// Remove the hook, restore the one it chained, and opt this repo out.
    Uninstall,
    /// Show where the hook goes and whether it is installed.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Only say what would be copied.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing while the job runs.
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Watch every repository that has VMs, not only this one.
    #[arg(long)]
    pub all: bool,
    /// Write a systemd user unit (Linux) or launchd agent (macOS) that runs `watch --all`.
    #[arg(long)]
    pub install_service: bool,
    /// Seconds between full reconciles (the safety net for lost events).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub interval: u64,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only say what would be destroyed.
    #[arg(long)]
    pub dry_run: bool,
    /// Every repository git-vmoat has VMs for, not only this one (works outside a repository).
    #[arg(long)]
    pub all: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GenerateKind {
    Completions,
    Man,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// List the VM's volumes, their sizes and where each came from, and its snapshots.
    Ls(DataLsArgs),
    /// Copy volumes from a sibling worktree's VM again, over this VM's (default: warm.volumes).
    ///
    /// This worktree's containers that use them are stopped for the copy and started again;
    /// the sibling's are paused for it.
    Clone(DataCloneArgs),
    /// Keep a copy of every volume of this VM as snapshot NAME (e.g. before a migration).
    Snapshot { name: String },
    /// Put snapshot NAME back over the volumes (their containers are stopped and started again).
    Restore { name: String },
    /// Delete snapshot NAME.
    Rm { name: String },
}

#[derive(Debug, Args)]
pub struct DataLsArgs {
    /// Every VM of this repository (those not running are listed, not started to measure).
    #[arg(long)]
    pub all: bool,
    /// Print JSON (a stable schema with a "version" field).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DataCloneArgs {
    /// Volumes (names or compose keys; `all`: every one the sibling's containers mount).
    pub volumes: Vec<String>,
    /// The sibling to copy from: a worktree path or a VM name (default: the main worktree's).
    #[arg(long)]
    pub from: Option<String>,
    /// Do not ask before replacing this VM's volumes.
    #[arg(short, long)]
    pub yes: bool,
    /// How the files travel between the VMs.
    #[arg(long, value_enum, default_value = "auto")]
    pub via: Via,
}

/// How a volume's files travel between two VMs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// Direct where both VMs' files are on this machine (netns), else stream.
    Auto,
    /// `docker cp` out of one daemon into the other, through this process.
    Stream,
    /// A file copy from one data root to the other (netns only; reflinked where possible).
    Direct,
}

#[derive(Debug, Args)]
pub struct WarmArgs {
    /// The sibling to copy from: a worktree path or a VM name (default: the main worktree's
    /// VM, then any other running one).
    #[arg(long)]
    pub from: Option<String>,
}
