//! The netns backend (Linux, root): per worktree a network namespace with its own dockerd (own
//! data root and socket) inside a cgroup with the configured CPU and memory limits. Same ports
//! in every worktree, a prune in one cannot touch another. It shares the host's kernel and
//! filesystem: fast isolation of stacks, not a security boundary.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::{Backend, ExecOut, Io, StartSpec, VmInfo, VmState, cgroup};
use crate::error::hint;
use crate::exec::{self, Cmd};
use crate::output;
use crate::shell;
use crate::state::State;

/// Runtime files (sockets, exec root, pid file): short paths, gone at reboot like a VM's.
const RUN_ROOT: &str = "/run/git-vmoat";
/// Keeps `/run/git-vmoat/<vm>-<hash>/exec/containerd/containerd.sock.ttrpc` under 108 bytes.
const MAX_NAME: usize = 40;

/// Joins the cgroups named by the first `$1` arguments, then execs the rest: everything the
/// worktree runs starts inside its limits.
const JOIN_CGROUP: &str =
    r#"n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1"; shift; n=$((n-1)); done; exec "$@""#;

pub struct Netns {
    state: State,
}

/// What `start` recorded about a worktree's namespace VM.
#[derive(Serialize, Deserialize, Default)]
struct Meta {
    cpus: u64,
    memory_gib: u64,
}

/// The namespace's way out: a veth pair with a /30 and NAT through the host's default route,
/// so `apt` and `docker pull` work inside. Named after the VM so teardown finds it.
struct Uplink {
    host_if: String,
    ns_if: String,
    /// First address of the /30 (the network); .1 is the host side, .2 the namespace.
    net: [u8; 4],
}

impl Uplink {
    fn for_vm(vm: &str) -> Self {
        let h = crate::naming::short_hash(vm, 8);
        Self {
            host_if: format!("vmo{h}"),
            ns_if: format!("vmi{h}"),
            net: [10, 240, 0, 0],
        }
    }

    fn cidr(&self, last: u8, bits: u8) -> String {
        format!(
            "{}.{}.{}.{}/{bits}",
            self.net[0],
            self.net[1],
            self.net[2],
            self.net[3] + last
        )
    }

    fn comment(vm: &str) -> String {
        format!("git-vmoat:{vm}")
    }

    fn nat_rule(&self, vm: &str) -> Vec<String> {
        let net = self.cidr(0, 30);
        let c = Self::comment(vm);
        words(&[
            "-t",
            "nat",
            "POSTROUTING",
            "-s",
            &net,
            "!",
            "-o",
            &self.host_if,
            "-j",
            "MASQUERADE",
            "-m",
            "comment",
            "--comment",
            &c,
        ])
    }

    fn forward_rules(&self, vm: &str) -> [Vec<String>; 2] {
        let c = Self::comment(vm);
        ["-i", "-o"].map(|dir| {
            words(&[
                "FORWARD",
                dir,
                &self.host_if,
                "-j",
                "ACCEPT",
                "-m",
                "comment",
                "--comment",
                &c,
            ])
        })
    }

    /// A free /30 in 10.240.0.0/12, starting from a slot derived from the name.
    fn pick_net(&mut self, vm: &str) -> Result<()> {
        let used = Cmd::new("ip").args(["-4", "-o", "addr"]).checked()?.stdout;
        let used = String::from_utf8_lossy(&used);
        let start =
            u32::from_str_radix(&crate::naming::short_hash(vm, 6), 16).unwrap_or(0) % (1 << 18);
        for i in 0..(1u32 << 18) {
            let slot = (start + i) % (1 << 18);
            let base = (10u32 << 24) | (240 << 16) | (slot << 2);
            let net = base.to_be_bytes();
            let probe = format!(" {}.{}.{}.", net[0], net[1], net[2]);
            let taken = used.lines().any(|l| {
                l.contains(&probe)
                    && l.split_whitespace()
                        .nth(3)
                        .and_then(|a| a.split('/').next())
                        .and_then(|a| a.rsplit('.').next())
                        .and_then(|o| o.parse::<u8>().ok())
                        .is_some_and(|o| o & !3 == net[3])
            });
            if !taken {
                self.net = net;
                return Ok(());
            }
        }
        bail!("no free /30 left in 10.240.0.0/12 for a namespace uplink")
    }

    fn host_has_default_route() -> bool {
        Cmd::new("ip")
            .args(["-4", "route", "show", "default"])
            .output()
            .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
    }

    /// Sets the uplink up; idempotent (an existing one is kept).
    fn ensure(vm: &str) -> Result<()> {
        let mut up = Self::for_vm(vm);
        let exists = Cmd::new("ip")
            .args(["link", "show", &up.host_if])
            .output()
            .is_ok_and(|o| o.status.success());
        if exists || !Self::host_has_default_route() {
            return Ok(());
        }
        up.pick_net(vm)?;
        Cmd::new("ip")
            .args([
                "link",
                "add",
                &up.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &up.ns_if,
                "netns",
                vm,
            ])
            .checked()?;
        Cmd::new("ip")
            .args(["addr", "add", &up.cidr(1, 30), "dev", &up.host_if])
            .checked()?;
        Cmd::new("ip")
            .args(["link", "set", &up.host_if, "up"])
            .checked()?;
        Cmd::new("ip")
            .args(["-n", vm, "addr", "add", &up.cidr(2, 30), "dev", &up.ns_if])
            .checked()?;
        Cmd::new("ip")
            .args(["-n", vm, "link", "set", &up.ns_if, "up"])
            .checked()?;
        let gw = up.cidr(1, 30);
        let gw = gw.split('/').next().unwrap_or_default();
        Cmd::new("ip")
            .args(["-n", vm, "route", "add", "default", "via", gw])
            .checked()?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").context("enabling IPv4 forwarding")?;
        if exec::on_path("iptables") {
            let nat = up.nat_rule(vm);
            Cmd::new("iptables")
                .args(&nat[..2])
                .arg("-A")
                .args(&nat[2..])
                .checked()?;
            for r in up.forward_rules(vm) {
                Cmd::new("iptables").arg("-I").args(&r).checked()?;
            }
        }
        Ok(())
    }

    /// Removes the veth pair and the firewall rules; nothing to do when there is none.
    fn remove(vm: &str) {
        let up = Self::for_vm(vm);
        let _ = Cmd::new("ip")
            .args(["link", "delete", &up.host_if])
            .output();
        if !exec::on_path("iptables") {
            return;
        }
        // Delete our rules by their comment, whatever subnet they were made with.
        for (table, chain) in [("nat", "POSTROUTING"), ("filter", "FORWARD")] {
            let Ok(out) = Cmd::new("iptables")
                .args(["-t", table, "-S", chain])
                .output()
            else {
                continue;
            };
            for rule in String::from_utf8_lossy(&out.stdout).lines().filter(|l| {
                l.contains(&format!("\"{}\"", Self::comment(vm))) || l.ends_with(&Self::comment(vm))
            }) {
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

    /// The command prefix that runs something in the worktree's cgroup and namespace.
    fn enter(vm: &str) -> Cmd {
        let procs = cgroup::procs_files(vm);
        Cmd::new("sh")
            .arg("-c")
            .arg(JOIN_CGROUP)
            .arg("sh")
            .arg(procs.len().to_string())
            .args(&procs)
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
        Uplink::remove(id);
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

fn words(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
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
    fn kind(&self) -> &'static str {
        "netns"
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
        std::fs::create_dir_all(Self::run_dir(&id))?;
        if !Self::netns_path(&id).exists() {
            Cmd::new("ip").args(["netns", "add", &id]).checked()?;
        }
        Cmd::new("ip")
            .args(["-n", &id, "link", "set", "lo", "up"])
            .checked()?;
        if let Err(e) = Uplink::ensure(&id) {
            output::warn(format!(
                "{vm} has no network uplink, so apt and docker pull inside it cannot reach the internet: {e:#}"
            ));
        }
        cgroup::create(&id, spec.cpus, spec.memory_gib)?;
        crate::state::write_json(
            &data.join("vm.json"),
            &Meta {
                cpus: spec.cpus,
                memory_gib: spec.memory_gib,
            },
        )?;
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
        self.stop_all(&id, true)
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
