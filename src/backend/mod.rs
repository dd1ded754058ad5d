//! The VM backends behind one small trait: commands never know which one runs.

pub mod cgroup;
pub mod colima;
mod colima_checks;
pub mod copy_guard;
#[cfg(test)]
pub mod fake;
pub mod netns;
mod netns_checks;
pub mod rootless;
mod rootless_checks;
pub mod stopping;
pub mod suspend;
pub mod usage;
pub mod waking;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::exec::Cmd;
pub use usage::{DiskNeed, Usage};

/// Which backend runs a worktree's VM: the `backend` key, `--backend`, and the backend each VM
/// was made with in the registry (where it is never `auto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
#[value(rename_all = "lowercase")]
pub enum BackendKind {
    /// Colima where installed, else netns where usable (root), else rootless (a normal user).
    Auto,
    Colima,
    Netns,
    Rootless,
}

impl BackendKind {
    pub const ALL: [BackendKind; 4] = [
        BackendKind::Auto,
        BackendKind::Colima,
        BackendKind::Netns,
        BackendKind::Rootless,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Auto => "auto",
            BackendKind::Colima => "colima",
            BackendKind::Netns => "netns",
            BackendKind::Rootless => "rootless",
        }
    }

    /// The kind named `s` (the config's text), or an error saying which names exist.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                crate::error::hint(
                    format!("unknown backend `{s}`"),
                    "use auto, colima, netns or rootless",
                )
            })
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Backend names accepted by `backend` / `--backend` (for config validation).
pub const KINDS: [&str; 4] = ["auto", "colima", "netns", "rootless"];

/// A VM's lifecycle state. The text forms (Display and serde) are those of status `--json`:
/// Lima's own words for what it reports, `absent` for no VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmState {
    #[serde(rename = "absent")]
    Missing,
    Running,
    Stopped,
    /// Suspended by git-vmoat (idle, or `suspend`): frozen (netns) or stopped with its disk
    /// (Colima); anything that needs it resumes it first.
    Suspended,
    /// Lima could not load the instance (a stale pid, a damaged disk): start forces a stop first.
    Broken,
    Installing,
    Uninitialized,
    /// The backend gave no state, one this version does not know, or cannot be asked.
    #[serde(rename = "unknown")]
    Unknown,
}

impl VmState {
    /// The state named by Lima's `status` field (`colima list --json`, contract §3).
    pub fn from_lima(status: &str) -> Self {
        match status {
            "Running" => VmState::Running,
            "Stopped" => VmState::Stopped,
            "Broken" => VmState::Broken,
            "Installing" => VmState::Installing,
            "Uninitialized" => VmState::Uninitialized,
            _ => VmState::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Missing => "absent",
            VmState::Running => "Running",
            VmState::Stopped => "Stopped",
            VmState::Suspended => "Suspended",
            VmState::Broken => "Broken",
            VmState::Installing => "Installing",
            VmState::Uninitialized => "Uninitialized",
            VmState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a backend knows about a VM.
#[derive(Clone, Debug)]
pub struct VmInfo {
    pub state: VmState,
    pub cpus: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub disk_bytes: Option<u64>,
}

impl VmInfo {
    pub fn missing() -> Self {
        Self {
            state: VmState::Missing,
            cpus: None,
            memory_bytes: None,
            disk_bytes: None,
        }
    }
}

/// The size and shape of a VM to create or resume.
#[derive(Clone, Debug)]
pub struct StartSpec<'a> {
    pub cpus: u64,
    pub memory_gib: u64,
    pub disk_gib: u64,
    pub vm_type: Option<&'a str>,
    pub mount_type: Option<&'a str>,
    pub mount: &'a Path,
}

/// How a command runs in the VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// Output captured, no stdin (queries).
    Capture,
    /// The user's terminal: stdin, stdout and stderr passed through (a pty when on a TTY).
    Inherit,
    /// Output shown to the user as messages (on stderr), no stdin: provisioning, up.
    Log,
}

/// The result of a command run in the VM.
#[derive(Debug)]
pub struct ExecOut {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOut {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs a command that executes in a VM with the given stdio, returning its exact status.
pub fn run_io(cmd: Cmd, io: Io) -> Result<ExecOut> {
    let status = match io {
        Io::Capture => {
            let out = cmd.output()?;
            let code = crate::exec::status_code(out.status);
            return Ok(ExecOut {
                code,
                stdout: out.stdout,
                stderr: out.stderr,
            });
        }
        Io::Inherit => cmd.stdin_inherit().status()?,
        Io::Log => cmd.stdout_to_stderr().status()?,
    };
    Ok(ExecOut {
        code: crate::exec::status_code(status),
        stdout: vec![],
        stderr: vec![],
    })
}

/// Everything git-vmoat asks of a VM runtime.
pub trait Backend {
    /// The backend's kind as configured (`colima`); `Auto` only for `Unavailable`.
    fn kind(&self) -> BackendKind;
    /// The backend's name for people and `status --json` (`none` when no backend can run).
    fn name(&self) -> &'static str {
        self.kind().as_str()
    }
    /// Fails with an install hint when the runtime is missing.
    fn ensure_installed(&self) -> Result<()>;
    /// The longest VM name this backend accepts on this machine.
    fn max_name_len(&self) -> Result<usize>;
    /// Whether commands see the host's filesystem as is (no mount, so no vm.mount check).
    fn shares_host_fs(&self) -> bool {
        false
    }
    fn info(&self, vm: &str) -> Result<VmInfo>;
    /// How a new VM of this spec is described to the user ("VM wt-a (4 CPU, 8 GiB RAM, …)").
    fn describe_new(&self, vm: &str, spec: &StartSpec<'_>) -> String {
        format!(
            "VM {vm} ({} CPU, {} GiB RAM, {} GiB disk) with {}",
            spec.cpus,
            spec.memory_gib,
            spec.disk_gib,
            self.name()
        )
    }
    /// Whether vm.memory is taken from the host when the VM starts (a real VM), rather than
    /// being only a cap on what the worktree may use.
    fn reserves_memory(&self) -> bool {
        true
    }
    /// Stops the VM's running containers, each given `timeout` to exit before it is killed, so
    /// a stack that ignores SIGTERM holds `down` no longer than that. Best effort: stopping
    /// the VM follows either way, and it stops whatever is left.
    fn stop_containers(&self, vm: &str, timeout: Duration) {
        let Ok(ps) = self.docker(vm) else { return };
        let ids: Vec<String> = match ps.args(["ps", "-q"]).output() {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(String::from)
                .collect(),
            _ => return,
        };
        if ids.is_empty() {
            return;
        }
        let secs = timeout.as_secs();
        crate::output::info(format!(
            "stopping {} container{} (up to {secs}s)…",
            ids.len(),
            if ids.len() == 1 { "" } else { "s" }
        ));
        let Ok(stop) = self.docker(vm) else { return };
        match stop
            .args(["stop", "-t", &secs.to_string()])
            .args(&ids)
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => crate::output::warn(format!(
                "stopping the containers of {vm}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => crate::output::warn(format!("stopping the containers of {vm}: {e:#}")),
        }
    }
    /// Checks a VM spec and the runtime before anything is recorded or started.
    fn preflight(&self, _spec: &StartSpec<'_>) -> Result<()> {
        Ok(())
    }
    /// Creates the VM, or starts it when it exists but is not running.
    fn start(&self, vm: &str, spec: &StartSpec<'_>, current: &VmState) -> Result<()>;
    /// Starts a stopped VM with the settings it was created with (to borrow from it briefly).
    fn resume(&self, vm: &str) -> Result<()>;
    /// Stops the VM, keeping its disk. No error when it is not running.
    fn stop(&self, vm: &str) -> Result<()>;
    /// Whether a stopped VM may still hold host state that `stop` clears (a `down` interrupted
    /// once the daemon was told to stop leaves a netns VM's namespace, cgroup, runtime dir).
    fn stopped_holds_host_state(&self) -> bool {
        true
    }
    /// Suspends a running VM: by default it is stopped with its disk kept (its containers are
    /// started again by `crate::suspend`); a backend that can freeze keeps every process.
    fn freeze(&self, vm: &str) -> Result<()> {
        self.stop(vm)
    }
    /// Undoes `freeze`.
    fn thaw(&self, vm: &str) -> Result<()> {
        self.resume(vm)
    }
    /// Whether `freeze` keeps the VM's processes (so nothing needs starting again on thaw).
    fn freezes_processes(&self) -> bool {
        false
    }
    /// The backend itself, without the waking layer (which must not wake a VM while it is
    /// suspending or waking it).
    fn unwrapped(&self) -> &dyn Backend;
    /// Whether the VM is frozen right now (for a backend whose `freeze` keeps processes).
    fn is_frozen(&self, _vm: &str) -> bool {
        false
    }
    /// What the VM uses of the host now but its disk: cheap enough for every watcher pass.
    /// Asking never wakes or starts the VM.
    fn live_usage(&self, _vm: &str) -> Usage {
        Usage::default()
    }
    /// Disk space the VM's files take on the host: a walk of them, slower than `live_usage`.
    fn disk_bytes(&self, _vm: &str) -> Option<u64> {
        None
    }
    /// Everything the VM uses of the host now, its disk included.
    fn usage(&self, vm: &str) -> Usage {
        Usage {
            disk_bytes: self.disk_bytes(vm),
            ..self.live_usage(vm)
        }
    }
    /// The VM's CPU time alone (what a rate needs).
    fn cpu_ns(&self, vm: &str) -> Option<u64> {
        self.live_usage(vm).cpu_ns
    }
    /// Where a new VM's disk would go and the free space it needs there (None: not known).
    fn disk_need(&self) -> Option<DiskNeed> {
        None
    }
    /// Deletes the VM and its data. No error when it does not exist.
    fn delete(&self, vm: &str) -> Result<()>;
    /// Runs a shell script in the VM with `cwd` as working directory; the exit code is the
    /// script's own. `None` script = an interactive login shell.
    fn exec(&self, vm: &str, cwd: &Path, script: Option<&str>, io: Io) -> Result<ExecOut>;
    /// A `docker` CLI command on the host that talks to the VM's daemon (for copying images).
    fn docker(&self, vm: &str) -> Result<Cmd>;
    /// The process that forwards 127.0.0.1:host on this machine to 127.0.0.1:guest in the VM.
    fn forward(&self, vm: &str, host: u16, guest: u16) -> Result<Cmd>;
    /// The owner record kept with the VM itself (deleted with it, apart from the registry), so a
    /// lost or damaged state dir never lets another worktree take this VM. None: no record.
    fn owner_mark(&self, _vm: &str) -> Option<String> {
        None
    }
    /// Keeps `mark` with the VM (after it was made).
    fn set_owner_mark(&self, _vm: &str, _mark: &str) -> Result<()> {
        Ok(())
    }
    /// Every VM this backend has (for rebuilding the registry).
    fn list_vms(&self) -> Result<Vec<String>> {
        Ok(vec![])
    }
    /// What `doctor` checks for this backend (installed tools, what the host offers it).
    fn checks(&self, _scope: &crate::check::Scope<'_>) -> Vec<crate::check::Check> {
        vec![]
    }
    /// One argument every forwarder of this VM (and no other VM's) has on its command line, so
    /// teardown finds forwarders that were never recorded (a full disk, a damaged record).
    fn forwarder_marker(&self, vm: &str) -> String;
}

/// The command that runs a VM's tunnel forwarder (`git-vmoat __forward`, the `forward` module).
/// A `docker` CLI talking to the daemon listening on `socket` (whatever context the user set).
fn docker_at(socket: &Path) -> Cmd {
    Cmd::new("docker")
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env_remove("DOCKER_CONTEXT")
}

/// For the backends whose VM is a data dir in the state dir (netns, rootless): the owner mark
/// kept in it, written only while the dir exists (it goes with the VM).
fn read_mark(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join(crate::state::files::OWNER)).ok()
}

fn write_mark(data_dir: &Path, mark: &str) -> Result<()> {
    use anyhow::Context;
    if !data_dir.is_dir() {
        return Ok(());
    }
    let path = data_dir.join(crate::state::files::OWNER);
    std::fs::write(&path, mark).with_context(|| format!("writing {}", path.display()))
}

/// The VMs under `parent`: each dir holding a VM record.
fn vms_in(parent: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(parent) else {
        return vec![];
    };
    dir.flatten()
        .filter(|e| e.path().join(crate::state::files::NETNS_META).is_file())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect()
}

/// The marker and the `127.0.0.1:H:127.0.0.1:G` spec are plain arguments: teardown and
/// `Tunnel::alive` find forwarders by them.
fn forwarder(
    state: &crate::state::State,
    kind: BackendKind,
    vm: &str,
    marker: &str,
    (host, guest): (u16, u16),
) -> Result<Cmd> {
    use anyhow::Context;
    let me = std::env::current_exe().context("finding git-vmoat's own path")?;
    Ok(Cmd::new(me)
        .arg("__forward")
        .arg("--state")
        .arg(state.root())
        .args(["--vm", vm, "--kind", kind.as_str(), marker])
        .arg(format!("127.0.0.1:{host}:127.0.0.1:{guest}")))
}

/// The backend for `kind`; `auto` = colima where installed, else netns where usable, else
/// rootless where usable.
pub fn select(kind: BackendKind, state: &crate::state::State) -> Result<Box<dyn Backend>> {
    let real = select_real(kind, state)?;
    Ok(Box::new(waking::Waking::new(real, state.clone())))
}

/// What `auto` runs without Colima: netns for root, rootless for a normal user; Err: why
/// neither can run.
fn auto_linux() -> std::result::Result<BackendKind, String> {
    let Some(netns_why) = netns::Netns::unusable() else {
        return Ok(BackendKind::Netns);
    };
    if rustix::process::geteuid().is_root() {
        return Err(netns_why);
    }
    match rootless::unusable() {
        None => Ok(BackendKind::Rootless),
        Some(why) => Err(format!("{netns_why}; {why}")),
    }
}

fn select_real(kind: BackendKind, state: &crate::state::State) -> Result<Box<dyn Backend>> {
    match kind {
        BackendKind::Colima => Ok(Box::new(colima::Colima::new(state.clone()))),
        BackendKind::Netns => Ok(Box::new(netns::Netns::new(state.clone()))),
        BackendKind::Rootless => Ok(Box::new(rootless::Rootless::new(state.clone()))),
        BackendKind::Auto => {
            auto_real(state).map_err(|why| Unavailable::new(&why, state.clone()).error())
        }
    }
}

/// What `auto` resolves to here, or why nothing can run.
fn auto_real(state: &crate::state::State) -> std::result::Result<Box<dyn Backend>, String> {
    if crate::exec::on_path("colima") {
        return Ok(Box::new(colima::Colima::new(state.clone())));
    }
    match auto_linux()? {
        BackendKind::Rootless => Ok(Box::new(rootless::Rootless::new(state.clone()))),
        _ => Ok(Box::new(netns::Netns::new(state.clone()))),
    }
}

/// `select` for commands that need no VM: `auto` with no usable backend gives `Unavailable`.
pub fn select_without_vm(
    kind: BackendKind,
    state: &crate::state::State,
) -> Result<Box<dyn Backend>> {
    // `auto` is resolved once (PATH and the host asked once: `name` is on every prompt).
    if kind == BackendKind::Auto {
        return Ok(match auto_real(state) {
            Ok(b) => Box::new(waking::Waking::new(b, state.clone())),
            Err(why) => Box::new(Unavailable::new(&why, state.clone())),
        });
    }
    select(kind, state)
}

/// What `auto` gives where no backend can run (no Colima, netns unusable), for commands that
/// need no VM (`name`, `status`, `seed`): names come out as `up` would make them once a backend
/// is installed, and anything that would touch a VM fails with why.
pub struct Unavailable {
    message: String,
    hint: &'static str,
    state: crate::state::State,
}

impl Unavailable {
    pub fn new(netns_why: &str, state: crate::state::State) -> Self {
        Self {
            message: format!("no VM backend available: colima is not installed, and {netns_why}"),
            hint: if cfg!(target_os = "macos") {
                "install Colima: `brew install colima docker`"
            } else {
                "install Colima (https://colima.run/docs/installation/), or rootlesskit, slirp4netns, uidmap and docker.io for the rootless backend (`git vmoat doctor` lists what is missing), or run as root for the netns backend"
            },
            state,
        }
    }

    fn error(&self) -> anyhow::Error {
        crate::error::hint(self.message.clone(), self.hint)
    }
}

impl Backend for Unavailable {
    fn unwrapped(&self) -> &dyn Backend {
        self
    }

    /// Not resolved: `auto` found nothing to run.
    fn kind(&self) -> BackendKind {
        BackendKind::Auto
    }

    fn name(&self) -> &'static str {
        "none"
    }

    fn ensure_installed(&self) -> Result<()> {
        Err(self.error())
    }

    /// The tightest limit of the backends `auto` could pick later, so the name shown now is
    /// the one `up` makes then: with the default prefix, `wt-<dir>` fits both for any dir name
    /// up to 37 characters.
    fn max_name_len(&self) -> Result<usize> {
        let colima = colima::Colima::new(self.state.clone()).max_name_len()?;
        Ok(if cfg!(target_os = "linux") {
            colima.min(netns::MAX_NAME)
        } else {
            colima
        })
    }

    fn info(&self, _vm: &str) -> Result<VmInfo> {
        Err(self.error())
    }

    fn start(&self, _vm: &str, _spec: &StartSpec<'_>, _current: &VmState) -> Result<()> {
        Err(self.error())
    }

    fn resume(&self, _vm: &str) -> Result<()> {
        Err(self.error())
    }

    fn stop(&self, _vm: &str) -> Result<()> {
        Err(self.error())
    }

    fn delete(&self, _vm: &str) -> Result<()> {
        Err(self.error())
    }

    fn exec(&self, _vm: &str, _cwd: &Path, _script: Option<&str>, _io: Io) -> Result<ExecOut> {
        Err(self.error())
    }

    fn docker(&self, _vm: &str) -> Result<Cmd> {
        Err(self.error())
    }

    fn forward(&self, _vm: &str, _host: u16, _guest: u16) -> Result<Cmd> {
        Err(self.error())
    }

    fn forwarder_marker(&self, vm: &str) -> String {
        // Never matched: no forwarder can have been started without a backend.
        format!("--git-vmoat-no-backend={vm}")
    }
}
