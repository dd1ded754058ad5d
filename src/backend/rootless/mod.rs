//! The rootless backend (Linux, a normal user): per worktree a user namespace and a network
//! namespace made by rootlesskit, holding its own dockerd in rootless mode, with slirp4netns
//! for egress. Nothing on the host's network changes (no firewall rule, no sysctl), and what
//! the worktree runs runs as the user: root only inside its user namespace.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{
    Backend, BackendKind, DiskNeed, ExecOut, Io, StartSpec, Usage, VmInfo, VmState, usage,
};
use crate::error::hint;
use crate::exec::Cmd;
use crate::shell;
use crate::state::{State, files};

mod daemon;
pub(crate) mod gaps;
mod limits;
mod procs;
mod strays;

pub use gaps::unusable;
pub(crate) use limits::{FIX as LIMITS_FIX, unenforced as limits_unenforced};
pub use strays::gc_strays;

/// The backend's VM data dirs, in the state dir.
pub const DIR: &str = "rootless";
/// Free space a new VM needs where its data root goes (as netns).
const NEW_VM_DISK: u64 = 1 << 30;

/// Names the (new UTS namespace's) host `$0`, then execs the rest. sethostname(2) is allowed
/// in a namespace of our own, where /proc/sys/kernel/hostname (the host's root's file) is not.
const SET_HOSTNAME: &str = r#"hostname "$0" 2>/dev/null; exec "$@""#;

pub struct Rootless {
    state: State,
}

/// What `start` recorded about a worktree's rootless VM.
#[derive(Serialize, Deserialize, Default)]
struct Meta {
    cpus: u64,
    memory_gib: u64,
    /// Started in a systemd user scope holding its limits (else none are enforced).
    #[serde(default)]
    scoped: bool,
    /// Its runtime dir, as chosen when it started: a later command may run without the
    /// `XDG_RUNTIME_DIR` that chose it.
    #[serde(default)]
    run: Option<PathBuf>,
}

impl Rootless {
    pub fn new(state: State) -> Self {
        Self { state }
    }

    /// The machine-wide id of a VM (its run dir and scope): VM names are unique only within
    /// one state dir. Short, so the sockets under its run dir stay within 108 bytes.
    fn id(&self, vm: &str) -> String {
        let root = self.state.root().to_string_lossy();
        crate::naming::short_hash(&format!("{root}\n{vm}"), 12)
    }

    fn data_dir(&self, vm: &str) -> PathBuf {
        self.state.root().join(DIR).join(vm)
    }

    fn meta(&self, vm: &str) -> Option<Meta> {
        let path = self.data_dir(vm).join(files::NETNS_META);
        path.exists()
            .then(|| crate::state::read_json(&path).ok())
            .flatten()
    }

    /// The VM's runtime dir: the one it started with, else where a start would put it.
    fn run_dir(&self, vm: &str) -> PathBuf {
        self.meta(vm)
            .and_then(|m| m.run)
            .unwrap_or_else(|| self.new_run_dir(vm))
    }

    /// Where a start puts the VM's runtime dir (sockets, exec root, pid files, rootlesskit's
    /// state): under `$XDG_RUNTIME_DIR` where set, else under the state dir, else in a private
    /// dir of this user in /tmp when the state dir's path is too long for a unix socket below.
    fn new_run_dir(&self, vm: &str) -> PathBuf {
        let id = self.id(vm);
        let fits = |base: &Path| {
            // The longest socket path dockerd makes below its exec root.
            base.join(&id)
                .join("exec/containerd/containerd.sock.ttrpc")
                .as_os_str()
                .len()
                < 108
        };
        let xdg = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_absolute() && d.is_dir())
            .map(|d| d.join("git-vmoat"));
        let state = self.state.root().join("run");
        let tmp = PathBuf::from(format!(
            "/tmp/git-vmoat-{}",
            rustix::process::geteuid().as_raw()
        ));
        [xdg, Some(state)]
            .into_iter()
            .flatten()
            .find(|b| fits(b))
            .unwrap_or(tmp)
            .join(id)
    }

    fn socket(&self, vm: &str) -> PathBuf {
        self.run_dir(vm).join("docker.sock")
    }

    /// The docker socket of the VM whose forwarder marker (`net` in its run dir) is `marker`.
    pub fn docker_socket_of(marker: &Path) -> PathBuf {
        marker.with_file_name("docker.sock")
    }

    /// A file in the run dir holding a pid, when that process lives and is `comm`.
    /// Its command line must name the run dir too: after a reboot a stale pid file may name
    /// a pid that another VM's rootlesskit or dockerd now has.
    fn pid_in(&self, vm: &str, file: &str, comm: &[&str]) -> Option<u32> {
        let run = self.run_dir(vm);
        let pid: u32 = std::fs::read_to_string(run.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        let argv = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let run = run.as_os_str().as_encoded_bytes();
        let ours = argv.windows(run.len()).any(|w| w == run);
        (ours && comm.contains(&name.trim()) && crate::exec::process_alive(pid)).then_some(pid)
    }

    /// rootlesskit's parent process (in the host's namespaces).
    fn parent_pid(&self, vm: &str) -> Option<u32> {
        self.pid_in(vm, "rootlesskit.pid", &["rootlesskit"])
    }

    /// rootlesskit's child: the first process inside the VM's namespaces.
    fn child_pid(&self, vm: &str) -> Option<u32> {
        self.pid_in(vm, "rk/child_pid", &["exe", "rootlesskit", "sh", "dockerd"])
    }

    fn dockerd_pid(&self, vm: &str) -> Option<u32> {
        self.pid_in(vm, "docker.pid", &["dockerd"])
    }

    /// Every process of the VM (rootlesskit, slirp4netns, dockerd, containers, commands).
    fn members(&self, vm: &str) -> Vec<u32> {
        procs::members(self.parent_pid(vm), self.child_pid(vm), &self.run_dir(vm))
    }

    /// The command prefix that enters the VM's user, network and mount namespaces.
    fn enter(&self, vm: &str) -> Result<Cmd> {
        let child = self
            .child_pid(vm)
            .with_context(|| format!("VM {vm} is not running"))?;
        Ok(Cmd::new("nsenter")
            .args(["--user", "--preserve-credentials", "--net", "--mount"])
            .arg(format!("--target={child}"))
            .arg("--"))
    }

    /// The VM's delegated cgroup, when it was started in a scope.
    fn cgroup(&self, vm: &str) -> Option<PathBuf> {
        if !self.meta(vm)?.scoped {
            return None;
        }
        limits::cgroup_of(self.parent_pid(vm)?)
    }
}

impl Backend for Rootless {
    fn unwrapped(&self) -> &dyn Backend {
        self
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Rootless
    }

    fn checks(&self, scope: &crate::check::Scope<'_>) -> Vec<crate::check::Check> {
        super::rootless_checks::checks(scope)
    }

    fn ensure_installed(&self) -> Result<()> {
        match unusable() {
            None => Ok(()),
            Some(why) => Err(hint(
                why,
                "`git vmoat doctor` lists what the rootless backend needs and how to get each",
            )),
        }
    }

    fn max_name_len(&self) -> Result<usize> {
        Ok(super::netns::MAX_NAME)
    }

    fn shares_host_fs(&self) -> bool {
        true
    }

    fn describe_new(&self, vm: &str, spec: &StartSpec<'_>) -> String {
        format!(
            "rootless VM {vm} (cap {} CPU, {} GiB RAM)",
            spec.cpus, spec.memory_gib
        )
    }

    fn reserves_memory(&self) -> bool {
        false
    }

    fn info(&self, vm: &str) -> Result<VmInfo> {
        let Some(meta) = self.meta(vm) else {
            return Ok(VmInfo::missing());
        };
        let running = self.parent_pid(vm).is_some() && self.child_pid(vm).is_some();
        Ok(VmInfo {
            state: if running {
                VmState::Running
            } else {
                VmState::Stopped
            },
            cpus: Some(meta.cpus),
            memory_bytes: Some(meta.memory_gib << 30),
            disk_bytes: None,
        })
    }

    fn start(&self, vm: &str, spec: &StartSpec<'_>, _current: &VmState) -> Result<()> {
        self.start_vm(vm, spec)
    }

    fn resume(&self, vm: &str) -> Result<()> {
        let meta = self.meta(vm).unwrap_or_default();
        let spec = StartSpec {
            cpus: meta.cpus.max(1),
            memory_gib: meta.memory_gib.max(1),
            disk_gib: 0,
            vm_type: None,
            mount_type: None,
            mount: Path::new("/"),
        };
        self.start_vm(vm, &spec)
    }

    fn stop(&self, vm: &str) -> Result<()> {
        self.stop_all(vm, true)
    }

    fn freeze(&self, vm: &str) -> Result<()> {
        if self.meta(vm).is_some_and(|m| m.scoped) {
            return limits::set_frozen(&self.id(vm), true);
        }
        // No cgroup of ours: every process of the VM is stopped by signal instead.
        procs::signal_all(&self.members(vm), rustix::process::Signal::STOP);
        Ok(())
    }

    fn thaw(&self, vm: &str) -> Result<()> {
        if self.meta(vm).is_some_and(|m| m.scoped) {
            return limits::set_frozen(&self.id(vm), false);
        }
        procs::signal_all(&self.members(vm), rustix::process::Signal::CONT);
        Ok(())
    }

    fn freezes_processes(&self) -> bool {
        true
    }

    fn is_frozen(&self, vm: &str) -> bool {
        if let Some(cg) = self.cgroup(vm) {
            return std::fs::read_to_string(cg.join("cgroup.freeze"))
                .is_ok_and(|s| s.trim() == "1");
        }
        self.dockerd_pid(vm).is_some_and(procs::is_stopped)
    }

    fn live_usage(&self, vm: &str) -> Usage {
        if let Some(cg) = self.cgroup(vm) {
            return daemon::cgroup_usage(&cg);
        }
        let pids = self.members(vm);
        let memory = procs::memory(&pids);
        Usage {
            cpu_ns: procs::cpu_ns(&pids),
            memory_used: memory.map(|m| m.0),
            memory_anon: memory.map(|m| m.1),
            memory_limit: None,
            disk_bytes: None,
        }
    }

    fn disk_bytes(&self, vm: &str) -> Option<u64> {
        usage::allocated_bytes(&[self.data_dir(vm)])
    }

    fn disk_need(&self) -> Option<DiskNeed> {
        Some(DiskNeed {
            dir: self.state.root().join(DIR),
            bytes: NEW_VM_DISK,
        })
    }

    fn delete(&self, vm: &str) -> Result<()> {
        self.stop_all(vm, false)?;
        daemon::remove_as_user(&self.data_dir(vm))
    }

    fn exec(&self, vm: &str, cwd: &Path, script: Option<&str>, io: Io) -> Result<ExecOut> {
        let body = match script {
            Some(s) => shell::in_dir(cwd, s),
            None => shell::in_dir(cwd, "exec \"${SHELL:-bash}\" -l"),
        };
        let cmd = self
            .enter(vm)?
            // Its own UTS namespace named after the VM, so a shell's prompt shows where it is.
            .args(["unshare", "--uts", "--", "sh", "-c"])
            .arg(SET_HOSTNAME)
            .arg(vm)
            .arg("env")
            .arg(format!("DOCKER_HOST=unix://{}", self.socket(vm).display()))
            .arg(format!("VMOAT_VM={vm}"))
            .args(["bash", "-c", &body])
            .env_remove("DOCKER_CONTEXT")
            .current_dir(cwd);
        super::run_io(cmd, io)
    }

    fn docker(&self, vm: &str) -> Result<Cmd> {
        Ok(super::docker_at(&self.socket(vm)))
    }

    fn owner_mark(&self, vm: &str) -> Option<String> {
        super::read_mark(&self.data_dir(vm))
    }

    fn set_owner_mark(&self, vm: &str, mark: &str) -> Result<()> {
        // The VM's data dir is the VM: its daemon's data root lives there and goes with it.
        super::write_mark(&self.data_dir(vm), mark)
    }

    fn list_vms(&self) -> Result<Vec<String>> {
        Ok(super::vms_in(&self.state.root().join(DIR)))
    }

    fn forwarder_marker(&self, vm: &str) -> String {
        self.run_dir(vm).join("net").display().to_string()
    }

    /// The forwarder enters the VM's user namespace first (as the user, nothing more): there
    /// it may enter the network namespace that namespace owns, after binding 127.0.0.1:host
    /// in the host's network.
    fn forward(&self, vm: &str, host: u16, guest: u16) -> Result<Cmd> {
        let marker = self.forwarder_marker(vm);
        super::forwarder(
            &self.state,
            BackendKind::Rootless,
            vm,
            &marker,
            (host, guest),
        )
    }
}
