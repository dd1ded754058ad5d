//! One module per subcommand, each with `run`; this module only dispatches. No command module
//! imports another (what several share lives below them in `crate::steps`), except `mcp`: it
//! serves the other commands' reports to agents, so it is a front end like this dispatcher.
//!
//! What a command may touch is decided here, by what it is handed: nothing (it finds its own
//! way, like `hooks` or `gc --all`), a [`Base`] (worktree and state: no config, no backend), or
//! a [`Ctx`] (config and backend too). Commands that need no VM get a `Ctx` whose backend is a
//! stand-in where none can run, so they work before Colima is installed.

mod config;
mod data;
mod destroy;
mod doctor;
mod down;
mod gc;
pub mod generate;
mod hook;
mod hooks;
mod init;
mod job;
mod logs;
mod mcp;
mod name;
mod provision;
mod repair;
mod seed;
mod setup;
mod ssh;
mod status;
mod suspend;
mod test;
mod top;
mod trust;
mod tunnel;
mod untunnel;
mod up;
mod version;
mod warm;
mod watch;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::context::{Base, Ctx};

/// How `mcp` runs: handed over to `git-vmoat-mcp`, or served in this process (in that binary).
pub type Mcp = fn(Option<crate::backend::BackendKind>) -> Result<()>;

pub use mcp::{exec as mcp_exec, serve as mcp_serve};

pub fn run(cli: Cli, mcp: Mcp) -> Result<()> {
    // Every wake of a suspended VM, in any command or tunnel, is checked against the budget.
    crate::backend::suspend::set_wake_check(crate::steps::admission::admit_wake);
    let flag = cli.backend;
    // Commands that make or use a VM: config (trusted) and the backend.
    let vm = || Ctx::load(flag);
    // Commands that only find, stop or delete a VM need neither a valid config nor trust.
    let base = || Base::load(flag);
    // Commands that need no VM work where no backend can run (before Colima is installed).
    let without_vm = || Base::load(flag)?.full_without_vm();
    match cli.command {
        Command::Forward {
            state,
            vm,
            kind,
            marker,
            spec,
        } => crate::forward::run(&crate::forward::Args {
            state: &state,
            vm: &vm,
            kind,
            marker: &marker,
            spec: &spec,
        }),
        Command::StopGuard { state, vm, kind } => {
            crate::backend::stopping::guard(&crate::state::State::from_root(state), kind, &vm)
        }
        Command::Init(a) => init::run(&a),
        Command::Trust => trust::run(),
        Command::Version => version::run(),
        Command::Mcp => mcp(flag),
        Command::Name(a) => name::run(base()?, &a),
        Command::Config(a) => config::run(&base()?, &a),
        Command::Provision(a) => provision::run(&vm()?, &a),
        Command::Up(a) => up::run(&vm()?, &a),
        Command::Warm(a) => warm::run(&vm()?, &a),
        Command::Test(a) => test::run(&vm()?, &a),
        Command::Ssh(a) => ssh::run(&vm()?, &a),
        Command::Tunnel(a) => tunnel::run(&vm()?, &a),
        Command::Untunnel => untunnel::run(base()?),
        Command::Status(a) if a.all => status::run_all(&a),
        Command::Status(a) => status::run(base()?, &a),
        Command::Top(a) => top::run(&a),
        Command::Hooks(c) => hooks::run(&c),
        Command::Completions { shell } => generate::print_completion(shell),
        Command::Setup(a) => setup::run(a.shell, a.dry_run),
        Command::Generate { kind, out } => generate::run(kind, &out),
        Command::Doctor(a) if a.repair => repair::run(&a),
        Command::Doctor(a) => doctor::run(flag, &a),
        Command::Hook { args } => hook::run(&args),
        Command::Job => job::run(flag),
        Command::Seed(a) => seed::run(&without_vm()?, &a),
        Command::Logs(a) => logs::run(&a),
        Command::Watch(a) => watch::run(&a),
        Command::Gc(a) => gc::run(&a),
        Command::Down => down::run(base()?),
        Command::Suspend(a) => suspend::run(base()?, a.force),
        Command::Resume(a) => suspend::resume(base()?, a.force),
        Command::Destroy(a) => destroy::run(base()?, &a),
        Command::Data(c) => data::run(&vm()?, &c),
    }
}
