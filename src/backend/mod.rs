//! The VM backends behind one small trait: commands never know which one runs.

pub mod colima;

use std::path::Path;

use anyhow::Result;

use crate::exec::Cmd;

/// A VM's lifecycle state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmState {
    Missing,
    Running,
    Stopped,
    /// Anything else the backend reports (Broken, Installing, ...).
    Other(String),
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmState::Missing => f.write_str("absent"),
            VmState::Running => f.write_str("Running"),
            VmState::Stopped => f.write_str("Stopped"),
            VmState::Other(s) => f.write_str(s),
        }
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

/// Everything git-vmoat asks of a VM runtime.
pub trait Backend {
    /// The backend's name as configured (`colima`).
    fn kind(&self) -> &'static str;
    /// Fails with an install hint when the runtime is missing.
    fn ensure_installed(&self) -> Result<()>;
    /// The longest VM name this backend accepts on this machine.
    fn max_name_len(&self) -> Result<usize>;
    fn info(&self, vm: &str) -> Result<VmInfo>;
    /// Creates the VM, or starts it when it exists but is not running.
    fn start(&self, vm: &str, spec: &StartSpec<'_>, current: &VmState) -> Result<()>;
    /// Stops the VM, keeping its disk. No error when it is not running.
    fn stop(&self, vm: &str) -> Result<()>;
    /// Deletes the VM and its data. No error when it does not exist.
    fn delete(&self, vm: &str) -> Result<()>;
    /// Runs a shell script in the VM with `cwd` as working directory; the exit code is the
    /// script's own. `None` script = an interactive login shell.
    fn exec(&self, vm: &str, cwd: &Path, script: Option<&str>, io: Io) -> Result<ExecOut>;
    /// The process that forwards 127.0.0.1:host on this machine to 127.0.0.1:guest in the VM.
    fn forward(&self, vm: &str, host: u16, guest: u16) -> Result<Cmd>;
}

/// The backend selected for this machine.
pub fn select(state: &crate::state::State) -> Result<Box<dyn Backend>> {
    Ok(Box::new(colima::Colima::new(state.clone())))
}
