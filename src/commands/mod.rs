//! One module per subcommand; `run` dispatches the parsed command line.

mod doctor;
pub mod generate;
mod git_side;
mod info;
mod init;
mod lifecycle;
mod provision;
mod repair;
mod run_in_vm;
mod status;
pub(crate) mod tunnel;

use anyhow::Result;

use crate::cli::Command;
use crate::context::{Base, Ctx};

pub fn run(cli: crate::cli::Cli) -> Result<()> {
    let flag = cli.backend;
    let load = || Ctx::load(flag);
    // Commands that only find, stop or delete a VM need neither a valid config nor trust.
    let base = || Base::load(flag);
    // Commands that need no VM work where no backend can run (before Colima is installed).
    let without_vm = || Base::load(flag)?.full_without_vm();
    match cli.command {
        Command::Forward { netns, spec } => crate::backend::netns::forward(&netns, &spec),
        Command::Init(a) => init::run(&a),
        Command::Trust => info::trust(),
        Command::Version => info::version(),
        Command::Name(a) => info::name(base()?, a.json),
        Command::Config(a) => info::config(&base()?, a.json),
        Command::Provision => provision::provision(&load()?, provision::Mode::Always).map(drop),
        Command::Up => provision::up_cmd(&load()?),
        Command::Warm(a) => provision::warm_cmd(&load()?, a.from.as_deref()),
        Command::Test(a) => run_in_vm::test(&load()?, &a.args),
        Command::Ssh(a) => run_in_vm::ssh(&load()?, &a.args),
        Command::Tunnel(a) => tunnel::tunnel(&load()?, &a.ports, a.json),
        Command::Untunnel => tunnel::untunnel(base()?),
        Command::Status(a) if a.all => git_side::status_all(a.json),
        Command::Status(a) => status::run(base()?, a.json),
        Command::Hooks(c) => git_side::hooks_cmd(&c),
        Command::Completions { shell } => generate::print_completion(shell),
        Command::Generate { kind, out } => generate::generate(kind, &out),
        Command::Doctor(a) if a.repair => repair::run(a.json),
        Command::Doctor(a) => doctor::run(flag, a.json),
        Command::Hook { args } => git_side::hook(&args),
        Command::Job => git_side::job(flag),
        Command::Seed(a) => git_side::seed_cmd(&without_vm()?, a.dry_run),
        Command::Logs(a) => git_side::logs(a.follow),
        Command::Watch(a) => git_side::watch(a.all, a.install_service, a.interval),
        Command::Gc(a) => git_side::gc(a.dry_run, a.all, a.json),
        Command::Down => lifecycle::down(base()?),
        Command::Destroy(a) => lifecycle::destroy(base()?, a.force),
    }
}

/// The VM name of a worktree whose VM must be running for the command to make sense.
fn running_vm(ctx: &Ctx) -> Result<String> {
    ctx.backend.ensure_installed()?;
    let vm = ctx.vm_name()?;
    let state = ctx.backend.info(&vm)?.state;
    if state != crate::backend::VmState::Running {
        return Err(crate::error::hint(
            format!("VM {vm} is {state}, not running"),
            "start it with `git vmoat up` (or `git vmoat provision`)",
        ));
    }
    Ok(vm)
}
