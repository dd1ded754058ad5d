//! The netns backend (Linux, root): per worktree a network namespace with its own dockerd (own
//! data root and socket) inside a cgroup with the configured CPU and memory limits. Same ports
//! in every worktree, a prune in one cannot touch another. It shares the host's kernel and
//! filesystem: fast isolation of stacks, not a security boundary.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{
    Backend, BackendKind, DiskNeed, ExecOut, Io, StartSpec, Usage, VmInfo, VmState, cgroup, usage,
};
use crate::error::hint;
use crate::exec::{self, Cmd};
use crate::output;
use crate::shell;
use crate::state::{State, files};

pub(crate) mod daemon;
mod net;
mod strays;

pub use strays::{Stray, gc_strays};

/// Runtime files (sockets, exec root, pid file): short paths, gone at reboot like a VM's.
const RUN_ROOT: &str = "/run/git-vmoat";
/// In a VM's runtime dir: the path of its data dir, so `gc` can tell when its state dir is gone.
const OWNER: &str = "owner";
/// Keeps `/run/git-vmoat/<vm>-<hash>/exec/containerd/containerd.sock.ttrpc` under 108 bytes.
pub(crate) const MAX_NAME: usize = 40;
/// Free space a new VM needs where its data root goes: an empty dockerd root is small, but the
/// images `warm` copies from a sibling and the stack's first pulls land there at once.
const NEW_VM_DISK: u64 = 1 << 30;

/// Joins the cgroups named by the first `$1` arguments, then execs the rest: everything the
/// worktree runs starts inside its limits.
const JOIN_CGROUP: &str =
    r#"n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1"; shift; n=$((n-1)); done; exec "$@""#;

/// Sets the (new UTS namespace's) hostname to `$0`, then execs the rest; a failure to name
/// it must not stop the command.
const SET_HOSTNAME: &str = r#"echo "$0" 2>/dev/null >/proc/sys/kernel/hostname; exec "$@""#;

pub struct Netns {
    state: State,
}

/// What `start` recorded about a worktree's namespace VM.
#[derive(Serialize, Deserialize, Default)]
struct Meta {
    cpus: u64,
    memory_gib: u64,
}

impl Netns {
    pub fn new(state: State) -> Self {
        Self { state }
    }

    /// Why this backend cannot run here (None: it can).
    pub fn unusable() -> Option<String> {
        if !cfg!(target_os = "linux") {
            return Some("the netns backend needs Linux".into());
        }
        if !rustix::process::geteuid().is_root() {
            return Some("the netns backend needs root (network namespaces and cgroups)".into());
        }
        for tool in ["ip", "nsenter", "dockerd", "docker"] {
            if !exec::on_path(tool) {
                return Some(format!(
                    "the netns backend needs `{tool}` (apt install iproute2 util-linux docker.io)"
                ));
            }
        }
        if let Err(e) = cgroup::usable() {
            return Some(format!("the netns backend needs cgroups: {e}"));
        }
        None
    }

    /// The machine-wide name of a VM's namespace, cgroup and runtime dir: VM names are unique
    /// only within one state dir, so two state dirs (users, HOMEs) must not meet here.
    fn id(&self, vm: &str) -> String {
        format!(
            "{vm}-{}",
            crate::naming::short_hash(&self.state.root().to_string_lossy(), 4)
        )
    }

    fn data_dir(&self, vm: &str) -> PathBuf {
        self.state.root().join(files::NETNS_DIR).join(vm)
    }

    fn run_dir(vm: &str) -> PathBuf {
        Path::new(RUN_ROOT).join(vm)
    }

    fn netns_path(vm: &str) -> PathBuf {
        Path::new("/run/netns").join(vm)
    }

    fn socket(vm: &str) -> PathBuf {
        Self::run_dir(vm).join("docker.sock")
    }

    /// The docker socket of the VM whose forwarder marker (its namespace's path) is `marker`.
    pub fn docker_socket_of(marker: &Path) -> Option<PathBuf> {
        Some(Self::socket(marker.file_name()?.to_str()?))
    }

    /// The worktree's dockerd, when it is running.
    fn dockerd_pid(vm: &str) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(Self::run_dir(vm).join("docker.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "dockerd" && exec::process_alive(pid)).then_some(pid)
    }

    /// Refuses to `what` the VM from a command running inside it.
    fn refuse_from_inside(&self, vm: &str, what: &str) -> Result<()> {
        if cgroup::holds_self(&self.id(vm)) {
            return Err(hint(
                format!("cannot {what} VM {vm} from a command running inside it"),
                "run it on the host, outside `git vmoat ssh` and the project's commands",
            ));
        }
        Ok(())
    }

    /// The command prefix that runs something in the worktree's cgroup (in the host's network).
    fn in_cgroup(vm: &str) -> Cmd {
        let procs = cgroup::procs_files(vm);
        Cmd::new("sh")
            .arg("-c")
            .arg(JOIN_CGROUP)
            .arg("sh")
            .arg(procs.len().to_string())
            .args(&procs)
    }

    /// The command prefix that runs something in the worktree's cgroup and namespace.
    fn enter(vm: &str) -> Cmd {
        Self::in_cgroup(vm)
            .arg("nsenter")
            .arg(format!("--net={}", Self::netns_path(vm).display()))
            .arg("--")
    }
}

impl Backend for Netns {
    fn unwrapped(&self) -> &dyn Backend {
        self
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Netns
    }

    fn checks(&self, scope: &crate::check::Scope<'_>) -> Vec<crate::check::Check> {
        super::netns_checks::checks(scope)
    }

    fn ensure_installed(&self) -> Result<()> {
        match Self::unusable() {
            None => Ok(()),
            Some(why) => Err(hint(
                why,
                "run as root on Linux with iproute2 and docker.io installed, or use backend = \"colima\"",
            )),
        }
    }

    fn max_name_len(&self) -> Result<usize> {
        Ok(MAX_NAME)
    }

    fn shares_host_fs(&self) -> bool {
        true
    }

    fn describe_new(&self, vm: &str, spec: &StartSpec<'_>) -> String {
        // A namespace and a cgroup: the sizes are limits, and there is no disk of its own.
        format!(
            "netns VM {vm} (cap {} CPU, {} GiB RAM)",
            spec.cpus, spec.memory_gib
        )
    }

    fn reserves_memory(&self) -> bool {
        false
    }

    fn info(&self, vm: &str) -> Result<VmInfo> {
        let id = self.id(vm);
        let meta_path = self.data_dir(vm).join(files::NETNS_META);
        if !meta_path.exists() {
            return Ok(VmInfo::missing());
        }
        let meta: Meta = crate::state::read_json(&meta_path)?;
        let running = Self::dockerd_pid(&id).is_some() && Self::netns_path(&id).exists();
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
        let id = self.id(vm);
        if Self::dockerd_pid(&id).is_none() && !cgroup::pids(&id).is_empty() {
            // A crashed daemon left containerd, shims or containers behind: clear them (the
            // data root is kept) so the new daemon starts from a clean slate.
            output::warn(format!(
                "{vm}'s docker daemon had died; cleaning up what it left running"
            ));
            self.stop_all(&id, false)?;
        }
        let data = self.data_dir(vm);
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        // The record comes first and the owner file next: `gc` takes machine-wide objects
        // whose record is gone for strays, so none may exist before both are written.
        crate::state::write_json(
            &data.join(files::NETNS_META),
            &Meta {
                cpus: spec.cpus,
                memory_gib: spec.memory_gib,
            },
        )?;
        let run = Self::run_dir(&id);
        std::fs::create_dir_all(&run)?;
        std::fs::write(run.join(OWNER), data.as_os_str().as_encoded_bytes())
            .with_context(|| format!("writing {}", run.join(OWNER).display()))?;
        let fresh = !Self::netns_path(&id).exists();
        if fresh {
            Cmd::new("ip").args(["netns", "add", &id]).checked()?;
        }
        Cmd::new("ip")
            .args(["-n", &id, "link", "set", "lo", "up"])
            .checked()?;
        cgroup::create(&id, spec.cpus, spec.memory_gib)?;
        // The uplink and the daemon start side by side: neither needs the other to start, and
        // the daemon takes longer, so the uplink is ready by the time it answers.
        let uplink = net::start_uplink(&id, fresh);
        let daemon = if Self::dockerd_pid(&id).is_none() {
            // A stale pid file from a killed daemon would make dockerd refuse to start.
            let _ = std::fs::remove_file(Self::run_dir(&id).join("docker.pid"));
            Some(self.spawn_dockerd(vm, &id)?)
        } else {
            None
        };
        let waited = daemon.map(|child| self.await_dockerd(vm, &id, child));
        if let Err(e) = uplink.and_then(net::Uplink::wait) {
            output::warn(format!(
                "{vm} has no network uplink, so apt and docker pull inside it cannot reach the internet: {e:#}"
            ));
        }
        waited.unwrap_or(Ok(()))
    }

    fn resume(&self, vm: &str) -> Result<()> {
        let meta: Meta = crate::state::read_json(&self.data_dir(vm).join(files::NETNS_META))?;
        let spec = StartSpec {
            cpus: meta.cpus.max(1),
            memory_gib: meta.memory_gib.max(1),
            disk_gib: 0,
            vm_type: None,
            mount_type: None,
            mount: Path::new("/"),
        };
        self.start(vm, &spec, &VmState::Stopped)
    }

    fn stop(&self, vm: &str) -> Result<()> {
        self.refuse_from_inside(vm, "stop")?;
        let id = self.id(vm);
        self.stop_all(&id, true)?;
        // A stopped VM holds nothing machine-wide; start makes its cgroup again.
        cgroup::remove(&id);
        Ok(())
    }

    fn freeze(&self, vm: &str) -> Result<()> {
        self.refuse_from_inside(vm, "suspend")?;
        cgroup::set_frozen(&self.id(vm), true)
    }

    fn thaw(&self, vm: &str) -> Result<()> {
        cgroup::set_frozen(&self.id(vm), false)
    }

    fn freezes_processes(&self) -> bool {
        true
    }

    fn is_frozen(&self, vm: &str) -> bool {
        cgroup::is_frozen(&self.id(vm))
    }

    fn live_usage(&self, vm: &str) -> Usage {
        let id = self.id(vm);
        let memory = cgroup::memory(&id);
        Usage {
            cpu_ns: cgroup::cpu_ns(&id),
            memory_used: memory.map(|m| m.0),
            memory_anon: memory.map(|m| m.1),
            memory_limit: cgroup::memory_limit(&id),
            disk_bytes: None,
        }
    }

    fn disk_bytes(&self, vm: &str) -> Option<u64> {
        // The dockerd data root: images, containers, volumes.
        usage::allocated_bytes(&[self.data_dir(vm)])
    }

    fn cpu_ns(&self, vm: &str) -> Option<u64> {
        cgroup::cpu_ns(&self.id(vm))
    }

    fn disk_need(&self) -> Option<DiskNeed> {
        Some(DiskNeed {
            dir: self.state.root().join(files::NETNS_DIR),
            bytes: NEW_VM_DISK,
        })
    }

    fn delete(&self, vm: &str) -> Result<()> {
        self.refuse_from_inside(vm, "delete")?;
        let id = self.id(vm);
        self.stop_all(&id, false)?;
        cgroup::remove(&id);
        let data = self.data_dir(vm);
        if data.exists() {
            Self::unmount_under(&data)?;
            std::fs::remove_dir_all(&data)
                .with_context(|| format!("removing {}", data.display()))?;
        }
        Ok(())
    }

    fn exec(&self, vm: &str, cwd: &Path, script: Option<&str>, io: Io) -> Result<ExecOut> {
        let id = self.id(vm);
        let body = match script {
            Some(s) => shell::in_dir(cwd, s),
            None => shell::in_dir(cwd, "exec \"${SHELL:-bash}\" -l"),
        };
        let cmd = Self::enter(&id)
            // Its own UTS namespace named after the VM, so a shell's prompt shows where it is.
            .args(["unshare", "--uts", "--", "sh", "-c", SET_HOSTNAME, vm])
            .arg("env")
            .arg(format!(
                "DOCKER_HOST=unix://{}",
                Self::socket(&id).display()
            ))
            .arg(format!("VMOAT_VM={vm}"))
            .args(["bash", "-c", &body])
            .env_remove("DOCKER_CONTEXT")
            .current_dir(cwd);
        super::run_io(cmd, io)
    }

    fn docker(&self, vm: &str) -> Result<Cmd> {
        let id = self.id(vm);
        Ok(super::docker_at(&Self::socket(&id)))
    }

    fn owner_mark(&self, vm: &str) -> Option<String> {
        super::read_mark(&self.data_dir(vm))
    }

    fn set_owner_mark(&self, vm: &str, mark: &str) -> Result<()> {
        // The VM's data dir is the VM: its daemon's data root lives there and goes with it.
        super::write_mark(&self.data_dir(vm), mark)
    }

    fn list_vms(&self) -> Result<Vec<String>> {
        Ok(super::vms_in(&self.state.root().join(files::NETNS_DIR)))
    }

    fn forwarder_marker(&self, vm: &str) -> String {
        Self::netns_path(&self.id(vm)).display().to_string()
    }

    fn forward(&self, vm: &str, host: u16, guest: u16) -> Result<Cmd> {
        // From inside, the forwarder would listen in the VM's own network, not the host's.
        self.refuse_from_inside(vm, "open a tunnel of")?;
        let marker = self.forwarder_marker(vm);
        super::forwarder(&self.state, BackendKind::Netns, vm, &marker, (host, guest))
    }
}
