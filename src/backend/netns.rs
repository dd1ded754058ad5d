//! The netns backend (Linux, root): per worktree a network namespace with its own dockerd (own
//! data root and socket) inside a cgroup with the configured CPU and memory limits. Same ports
//! in every worktree, a prune in one cannot touch another. It shares the host's kernel and
//! filesystem: fast isolation of stacks, not a security boundary.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::{Backend, BackendKind, ExecOut, Io, StartSpec, VmInfo, VmState, cgroup};
use crate::error::hint;
use crate::exec::{self, Cmd};
use crate::output;
use crate::shell;
use crate::state::State;

/// Runtime files (sockets, exec root, pid file): short paths, gone at reboot like a VM's.
const RUN_ROOT: &str = "/run/git-vmoat";
/// In a VM's runtime dir: the path of its data dir, so `gc` can tell when its state dir is gone.
const OWNER: &str = "owner";
/// Keeps `/run/git-vmoat/<vm>-<hash>/exec/containerd/containerd.sock.ttrpc` under 108 bytes.
pub(crate) const MAX_NAME: usize = 40;

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

/// The namespace's interface to slirp4netns, and the address slirp gives it.
const TAP: &str = "tap0";
const TAP_ADDR: &str = "10.0.2.100/24";

/// The namespace's way out: slirp4netns, a user-mode TCP/IP stack in the host's namespace that
/// turns the namespace's outgoing connections into ordinary sockets of its own. `apt` and
/// `docker pull` work inside, while the host routes, forwards and filters nothing for it: no
/// `ip_forward`, no firewall rule, no route into the namespace, so what a stack publishes on
/// 0.0.0.0 there is reachable only through the tunnels on 127.0.0.1. The host's own loopback
/// stays closed to it too (other worktrees' tunnels live there). It runs in the worktree's
/// cgroup, so it is stopped, and limited, with everything else of the worktree.
fn ensure_uplink(id: &str) -> Result<()> {
    // slirp4netns's tap goes away with it, so a configured tap means it is running.
    let has_tap = || {
        Cmd::new("ip")
            .args(["-n", id, "-4", "-o", "addr", "show", "dev", TAP])
            .output()
            .is_ok_and(|o| {
                o.status.success() && String::from_utf8_lossy(&o.stdout).contains(TAP_ADDR)
            })
    };
    if has_tap() {
        return Ok(());
    }
    if !exec::on_path("slirp4netns") {
        return Err(hint(
            "slirp4netns is not installed",
            "apt install slirp4netns",
        ));
    }
    let log = Netns::run_dir(id).join("slirp4netns.log");
    let mut child = Netns::in_cgroup(id)
        .args([
            "slirp4netns",
            "--configure",
            "--mtu=65520",
            "--disable-host-loopback",
            "--netns-type=path",
        ])
        .arg(Netns::netns_path(id))
        .arg(TAP)
        .spawn_detached(&log)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !has_tap() {
        if let Some(status) = child.try_wait()? {
            bail!(
                "slirp4netns exited ({}): {}",
                exec::status_code(status),
                std::fs::read_to_string(&log).unwrap_or_default().trim()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "slirp4netns did not configure {TAP} within 10 s (log: {})",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Removes what earlier versions set up for a namespace's uplink: a veth pair and firewall
/// rules commented `git-vmoat:<id>` (destroy and `gc` clear them after an upgrade).
fn remove_legacy_uplink(id: &str) {
    let veth = format!("vmo{}", crate::naming::short_hash(id, 8));
    let exists = Cmd::new("ip")
        .args(["link", "show", &veth])
        .output()
        .is_ok_and(|o| o.status.success());
    if exists {
        let _ = Cmd::new("ip").args(["link", "delete", &veth]).output();
    }
    for (table, chain, rule) in legacy_rules() {
        if rule_comment_id(&rule) == Some(id) {
            let args: Vec<&str> = rule
                .split_whitespace()
                .skip(2)
                .map(|a| a.trim_matches('"'))
                .collect();
            let _ = Cmd::new("iptables")
                .args(["-t", table, "-D", chain])
                .args(args)
                .output();
        }
    }
}

/// Every firewall rule an earlier version added: (table, chain, `iptables -S` line).
fn legacy_rules() -> Vec<(&'static str, &'static str, String)> {
    if !exec::on_path("iptables") {
        return vec![];
    }
    let mut out = vec![];
    for (table, chain) in [("nat", "POSTROUTING"), ("filter", "FORWARD")] {
        let Ok(o) = Cmd::new("iptables")
            .args(["-t", table, "-S", chain])
            .output()
        else {
            continue;
        };
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| rule_comment_id(l).is_some())
                .map(|l| (table, chain, l.to_string())),
        );
    }
    out
}

/// The id in a rule's `--comment git-vmoat:<id>`.
fn rule_comment_id(rule: &str) -> Option<&str> {
    let (_, rest) = rule.split_once("--comment ")?;
    let c = rest.split_whitespace().next()?.trim_matches('"');
    c.strip_prefix("git-vmoat:")
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
        self.state.root().join("netns").join(vm)
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

    fn docker_ready(vm: &str) -> bool {
        Cmd::new("docker")
            .env(
                "DOCKER_HOST",
                format!("unix://{}", Self::socket(vm).display()),
            )
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn start_dockerd(&self, vm: &str, id: &str) -> Result<()> {
        let run = Self::run_dir(id);
        let data = self.data_dir(vm).join("docker");
        std::fs::create_dir_all(&data)?;
        let log = self.data_dir(vm).join("dockerd.log");
        let mut child = Self::enter(id)
            .arg("dockerd")
            .arg("--data-root")
            .arg(&data)
            .arg("--exec-root")
            .arg(run.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", Self::socket(id).display()))
            .arg("--pidfile")
            .arg(run.join("docker.pid"))
            .arg("--cgroup-parent")
            .arg(format!("/{}/{id}", cgroup::ROOT))
            .spawn_detached(&log)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if Self::docker_ready(id) {
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text
                    .lines()
                    .rev()
                    .take(8)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                bail!(
                    "dockerd of {vm} exited ({}) while starting:\n{}\n(full log: {})",
                    exec::status_code(status),
                    tail.join("\n"),
                    log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "dockerd of {vm} did not answer within 60 s (log: {})",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Unmounts anything left mounted under `dir` (after a killed dockerd), deepest first.
    fn unmount_under(dir: &Path) -> Result<()> {
        let dir_s = format!("{}/", dir.display());
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<String> = info
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
            .filter(|p| p.starts_with(&dir_s) || *p == dir.display().to_string())
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in &points {
            let _ = Cmd::new("umount").args(["-l", p]).output();
        }
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if let Some(p) = info
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .find(|p| p.starts_with(&dir_s))
        {
            bail!(
                "{p} is still mounted; refusing to delete {} through it",
                dir.display()
            );
        }
        Ok(())
    }

    /// Stops everything of the worktree; `graceful` gives dockerd time to stop its containers
    /// (down), otherwise all is killed at once (destroy: the data goes anyway).
    fn stop_all(&self, id: &str, graceful: bool) -> Result<()> {
        if graceful && let Some(pid) = Self::dockerd_pid(id) {
            // SIGTERM lets dockerd stop its containers and unmount their layers.
            signal(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Self::dockerd_pid(id).is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if !cgroup::kill_all(id) {
            output::warn(format!(
                "some processes of {id} would not die: {:?}",
                cgroup::pids(id)
            ));
        }
        Self::unmount_under(&Self::run_dir(id))?;
        remove_legacy_uplink(id);
        if Self::netns_path(id).exists() {
            Cmd::new("ip").args(["netns", "delete", id]).checked()?;
        }
        let run = Self::run_dir(id);
        if run.exists() {
            std::fs::remove_dir_all(&run).with_context(|| format!("removing {}", run.display()))?;
        }
        Ok(())
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(p, sig);
    }
}

impl Backend for Netns {
    fn kind(&self) -> BackendKind {
        BackendKind::Netns
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
        let meta_path = self.data_dir(vm).join("vm.json");
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
            &data.join("vm.json"),
            &Meta {
                cpus: spec.cpus,
                memory_gib: spec.memory_gib,
            },
        )?;
        let run = Self::run_dir(&id);
        std::fs::create_dir_all(&run)?;
        std::fs::write(run.join(OWNER), data.as_os_str().as_encoded_bytes())
            .with_context(|| format!("writing {}", run.join(OWNER).display()))?;
        if !Self::netns_path(&id).exists() {
            Cmd::new("ip").args(["netns", "add", &id]).checked()?;
        }
        Cmd::new("ip")
            .args(["-n", &id, "link", "set", "lo", "up"])
            .checked()?;
        cgroup::create(&id, spec.cpus, spec.memory_gib)?;
        if let Err(e) = ensure_uplink(&id) {
            output::warn(format!(
                "{vm} has no network uplink, so apt and docker pull inside it cannot reach the internet: {e:#}"
            ));
        }
        if Self::dockerd_pid(&id).is_none() {
            // A stale pid file from a killed daemon would make dockerd refuse to start.
            let _ = std::fs::remove_file(Self::run_dir(&id).join("docker.pid"));
            self.start_dockerd(vm, &id)?;
        }
        Ok(())
    }

    fn resume(&self, vm: &str) -> Result<()> {
        let meta: Meta = crate::state::read_json(&self.data_dir(vm).join("vm.json"))?;
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
        let id = self.id(vm);
        self.stop_all(&id, true)?;
        // A stopped VM holds nothing machine-wide; start makes its cgroup again.
        cgroup::remove(&id);
        Ok(())
    }

    fn delete(&self, vm: &str) -> Result<()> {
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
        Ok(Cmd::new("docker")
            .env(
                "DOCKER_HOST",
                format!("unix://{}", Self::socket(&id).display()),
            )
            .env_remove("DOCKER_CONTEXT"))
    }

    fn owner_mark(&self, vm: &str) -> Option<String> {
        std::fs::read_to_string(self.data_dir(vm).join("owner.json")).ok()
    }

    fn set_owner_mark(&self, vm: &str, mark: &str) -> Result<()> {
        // The VM's data dir is the VM: its daemon's data root lives there and goes with it.
        let dir = self.data_dir(vm);
        if !dir.is_dir() {
            return Ok(());
        }
        let path = dir.join("owner.json");
        std::fs::write(&path, mark).with_context(|| format!("writing {}", path.display()))
    }

    fn list_vms(&self) -> Result<Vec<String>> {
        let Ok(dir) = std::fs::read_dir(self.state.root().join("netns")) else {
            return Ok(vec![]);
        };
        Ok(dir
            .flatten()
            .filter(|e| e.path().join("vm.json").is_file())
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .collect())
    }

    fn forwarder_marker(&self, vm: &str) -> String {
        Self::netns_path(&self.id(vm)).display().to_string()
    }

    fn forward(&self, vm: &str, host: u16, guest: u16) -> Result<Cmd> {
        let id = self.id(vm);
        let me = std::env::current_exe().context("finding git-vmoat's own path")?;
        Ok(Cmd::new(me)
            .arg("__forward")
            .arg(Self::netns_path(&id))
            .arg(format!("127.0.0.1:{host}:127.0.0.1:{guest}")))
    }
}

/// The forwarder behind a netns tunnel (`git-vmoat __forward <netns> 127.0.0.1:H:127.0.0.1:G`):
/// listens on the host's 127.0.0.1:H, then moves into the namespace, where every connection it
/// makes reaches the namespace's own loopback. One small process, no sshd or keys needed.
pub fn forward(netns: &Path, spec: &str) -> Result<()> {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;
    let parts: Vec<&str> = spec.split(':').collect();
    let (Some(host), Some(guest)) = (
        parts.get(1).and_then(|p| p.parse::<u16>().ok()),
        parts.get(3).and_then(|p| p.parse::<u16>().ok()),
    ) else {
        bail!("bad forward spec {spec:?}; expected 127.0.0.1:HOST:127.0.0.1:GUEST");
    };
    // Bound before the move: the listening socket stays in the host's namespace.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, host))
        .with_context(|| format!("cannot listen on 127.0.0.1:{host}"))?;
    let ns = std::fs::File::open(netns).with_context(|| format!("opening {}", netns.display()))?;
    rustix::thread::move_into_link_name_space(
        ns.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .with_context(|| format!("entering {}", netns.display()))?;
    for conn in listener.incoming() {
        let Ok(client) = conn else { continue };
        // Threads made after the move start in the namespace too.
        std::thread::spawn(move || {
            let Ok(upstream) = TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, guest)))
            else {
                return;
            };
            pipe(client, upstream);
        });
    }
    Ok(())
}

fn pipe(a: std::net::TcpStream, b: std::net::TcpStream) {
    let (Ok(mut a2), Ok(mut b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let t = std::thread::spawn(move || {
        let mut a = a;
        let mut b = b;
        let _ = std::io::copy(&mut a, &mut b);
        let _ = b.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut b2, &mut a2);
    let _ = a2.shutdown(std::net::Shutdown::Write);
    let _ = t.join();
}

/// A netns VM left on this machine after its record went (a deleted HOME, state dir or temp
/// dir): whatever of it remains, found by its machine-wide id.
#[derive(Serialize, Debug)]
pub struct Stray {
    pub id: String,
    /// The VM's data dir in the state dir that is gone, when anything recorded it.
    pub data_dir: Option<PathBuf>,
    /// What is left of it: namespace, processes, cgroups, runtime dir, mounts, veth, rules.
    pub objects: Vec<String>,
    pub reclaimed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A process as far as stray hunting cares: its argv and its network namespace.
struct Proc {
    pid: u32,
    args: Vec<String>,
    net_ns: Option<u64>,
}

fn processes() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let raw = std::fs::read(e.path().join("cmdline")).ok()?;
            let args = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            // `net:[4026532000]`: the namespace's inode, as stat of its /run/netns file gives.
            let net_ns = std::fs::read_link(e.path().join("ns/net"))
                .ok()
                .and_then(|l| {
                    l.to_str()?
                        .strip_prefix("net:[")?
                        .strip_suffix(']')?
                        .parse()
                        .ok()
                });
            Some(Proc { pid, args, net_ns })
        })
        .collect()
}

/// The value of `--flag value` or `--flag=value`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(name)?.strip_prefix('=')
        }
    })
}

/// A netns VM's dockerd: its id (from the exec root) and the VM's data dir (from the data root).
fn dockerd_of(p: &Proc) -> Option<(String, PathBuf)> {
    if Path::new(p.args.first()?).file_name()? != "dockerd" {
        return None;
    }
    let id = Path::new(flag(&p.args, "--exec-root")?)
        .strip_prefix(RUN_ROOT)
        .ok()?
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .to_string();
    let data = Path::new(flag(&p.args, "--data-root")?).parent()?;
    Some((id, data.to_path_buf()))
}

/// Everything running for `id`: its cgroup, its dockerd, and whatever is in its namespace
/// (a tunnel's forwarder is there without being in the cgroup).
fn pids_of(id: &str, procs: &[Proc]) -> Vec<u32> {
    let ns = rustix::fs::stat(Netns::netns_path(id))
        .ok()
        .map(|s| s.st_ino);
    let mut pids = cgroup::pids(id);
    pids.extend(procs.iter().filter_map(|p| {
        let mine = dockerd_of(p).is_some_and(|(d, _)| d == id)
            || (ns.is_some() && p.net_ns == ns && p.pid != std::process::id());
        mine.then_some(p.pid)
    }));
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Whether `path` is absent or older than a start takes: an earlier version's start makes the
/// runtime dir and namespace before anything that names the owner.
fn settled(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .map_or(true, |t| {
            t.elapsed().unwrap_or_default() > Duration::from_secs(120)
        })
}

/// The mount points under `dir`.
fn mounts_under(dir: &Path) -> usize {
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|p| p.starts_with(&prefix))
        .count()
}

/// git-vmoat's netns objects on this machine whose VM record (`vm.json` in its state dir) no
/// longer exists. Ids come from runtime dirs, cgroups, dockerd command lines and the firewall
/// rules of earlier versions; the owner from the runtime dir's owner file or dockerd's data
/// root. With no owner known (left by an earlier version), only a namespace or runtime dir that
/// runs nothing and is older than a start, or firewall rules alone, count: a VM being made is
/// never taken, and one of a live state dir loses only what its next `up` makes again.
pub fn strays() -> Vec<Stray> {
    let procs = processes();
    let cgroups = cgroup::all();
    let dockerds: Vec<(String, PathBuf)> = procs.iter().filter_map(dockerd_of).collect();
    let rules = legacy_rules();
    let mut ids: std::collections::BTreeSet<String> = std::fs::read_dir(RUN_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.extend(cgroups.keys().cloned());
    ids.extend(dockerds.iter().map(|(id, _)| id.clone()));
    ids.extend(
        rules
            .iter()
            .filter_map(|(_, _, r)| rule_comment_id(r).map(String::from)),
    );
    let mut out = vec![];
    for id in ids {
        let run = Netns::run_dir(&id);
        let data = std::fs::read(run.join(OWNER))
            .ok()
            .map(|b| PathBuf::from(String::from_utf8_lossy(&b).trim()))
            .or_else(|| {
                dockerds
                    .iter()
                    .find(|(d, _)| *d == id)
                    .map(|(_, p)| p.clone())
            });
        let ns = Netns::netns_path(&id);
        let pids = pids_of(&id, &procs);
        let n_rules = rules
            .iter()
            .filter(|(_, _, r)| rule_comment_id(r) == Some(id.as_str()))
            .count();
        let stray = match &data {
            Some(d) => !d.join("vm.json").exists(),
            // A lone empty cgroup is an earlier version's stopped VM: not taken.
            None => {
                pids.is_empty()
                    && if ns.exists() || run.exists() {
                        settled(&ns) && settled(&run)
                    } else {
                        n_rules > 0
                    }
            }
        };
        if !stray {
            continue;
        }
        let mut objects = vec![];
        if ns.exists() {
            objects.push(format!("namespace {}", ns.display()));
        }
        if !pids.is_empty() {
            let names: Vec<String> = pids
                .iter()
                .map(|pid| {
                    let comm =
                        std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                    format!("{} {pid}", comm.trim())
                })
                .collect();
            objects.push(format!("processes: {}", names.join(", ")));
        }
        if let Some(dirs) = cgroups.get(&id) {
            objects.push(format!(
                "cgroup {}/{id} ({} hierarchies)",
                cgroup::ROOT,
                dirs.len()
            ));
        }
        if run.exists() {
            objects.push(format!("runtime dir {}", run.display()));
        }
        let mounts = mounts_under(&run) + data.as_deref().map_or(0, mounts_under);
        if mounts > 0 {
            objects.push(format!("{mounts} mounts"));
        }
        let veth = format!("vmo{}", crate::naming::short_hash(&id, 8));
        if Path::new("/sys/class/net").join(&veth).exists() {
            objects.push(format!("veth {veth}"));
        }
        if n_rules > 0 {
            objects.push(format!("{n_rules} firewall rules"));
        }
        out.push(Stray {
            id,
            data_dir: data,
            objects,
            reclaimed: false,
            error: None,
        });
    }
    out
}

/// Removes everything of a stray: its processes, mounts, namespace, runtime dir, cgroups,
/// legacy veth and rules, and what is left of its data dir.
pub fn reclaim(s: &Stray) -> Result<()> {
    let id = s.id.as_str();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = pids_of(id, &processes());
        if pids.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("processes {pids:?} of {id} would not die");
        }
        for pid in pids {
            signal(pid, rustix::process::Signal::KILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Netns::unmount_under(&Netns::run_dir(id))?;
    if let Some(d) = &s.data_dir {
        Netns::unmount_under(d)?;
    }
    remove_legacy_uplink(id);
    if Netns::netns_path(id).exists() {
        Cmd::new("ip").args(["netns", "delete", id]).checked()?;
    }
    let run = Netns::run_dir(id);
    if run.exists() {
        std::fs::remove_dir_all(&run).with_context(|| format!("removing {}", run.display()))?;
    }
    cgroup::remove(id);
    // Only a dir shaped like a VM's data dir (`…/netns/<vm>`, with `<vm>-<hash>` the id).
    if let Some(d) = &s.data_dir
        && d.parent().and_then(Path::file_name) == Some("netns".as_ref())
        && d.file_name()
            .and_then(|v| v.to_str())
            .is_some_and(|v| id.strip_prefix(v).is_some_and(|h| h.starts_with('-')))
        && d.exists()
    {
        std::fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
    }
    Ok(())
}

/// `gc`'s part for this backend: lists the strays (root with the netns backend usable only),
/// reclaims them unless `dry_run`, and returns them for `--json`.
pub fn gc_strays(dry_run: bool) -> Vec<Stray> {
    if Netns::unusable().is_some() {
        return vec![];
    }
    let mut list = strays();
    if !list.is_empty() {
        output::info("strays (netns objects whose state dir is gone):");
    }
    for s in &mut list {
        let what = format!(
            "{} ({}): {}",
            s.id,
            s.data_dir
                .as_deref()
                .map_or("owner unknown".into(), |d| d.display().to_string()),
            s.objects.join("; ")
        );
        if dry_run {
            output::info(format!("  would reclaim {what}"));
            continue;
        }
        match reclaim(s) {
            Ok(()) => {
                s.reclaimed = true;
                output::info(format!("  reclaimed {what}"));
            }
            Err(e) => {
                output::warn(format!("could not reclaim {what}: {e:#}"));
                s.error = Some(format!("{e:#}"));
            }
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dockerd_command_line_gives_its_id_and_data_dir() {
        let p = Proc {
            pid: 1,
            args: [
                "/usr/sbin/dockerd",
                "--data-root",
                "/home/u/.local/state/git-vmoat/netns/wt-a/docker",
                "--exec-root=/run/git-vmoat/wt-a-1f2e/exec",
            ]
            .map(String::from)
            .to_vec(),
            net_ns: None,
        };
        assert_eq!(
            dockerd_of(&p),
            Some((
                "wt-a-1f2e".into(),
                PathBuf::from("/home/u/.local/state/git-vmoat/netns/wt-a")
            ))
        );
        let other = Proc {
            args: ["dockerd", "--exec-root", "/run/fake-colima/x/exec"]
                .map(String::from)
                .to_vec(),
            ..p
        };
        assert_eq!(dockerd_of(&other), None, "not ours");
    }

    #[test]
    fn a_legacy_rule_gives_its_id() {
        assert_eq!(
            rule_comment_id(
                "-A FORWARD -o vmo12345678 -m comment --comment \"git-vmoat:wt-a-1f2e\" -j ACCEPT"
            ),
            Some("wt-a-1f2e")
        );
        assert_eq!(
            rule_comment_id("-A FORWARD -m comment --comment other -j ACCEPT"),
            None
        );
    }
}
