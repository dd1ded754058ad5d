//! Starting a rootless VM (rootlesskit, slirp4netns and dockerd in the VM's namespaces),
//! stopping everything of it, and removing files that only its user namespace may delete.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::process::Signal;

use super::{Meta, Rootless, limits, procs};
use crate::backend::netns::daemon::{docker_ready_at, signal};
use crate::backend::{StartSpec, Usage};
use crate::exec::{self, Cmd};
use crate::output;
use crate::state::files;

/// Run in rootlesskit's child: drops the host's docker runtime links that `--copy-up=/run`
/// brought along (the VM's dockerd makes its own), then execs dockerd.
const CHILD: &str = r#"rm -f /run/docker /run/containerd /run/xtables.lock; exec "$@""#;

/// Where system tools live beside PATH: a normal user's PATH on Debian has no sbin dirs, where
/// dockerd, docker-proxy and the iptables dockerd runs in the VM's namespace are.
const SYSTEM_DIRS: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/libexec/docker"];

/// A system tool by name: on PATH or in the system dirs.
pub fn system_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SYSTEM_DIRS.map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The docker-proxy binary: the VM's dockerd publishes ports with it inside the VM's network
/// namespace only (rootlesskit's own proxy would publish them on the host).
pub fn docker_proxy() -> Option<PathBuf> {
    system_tool("docker-proxy")
}

/// PATH for the VM's dockerd: the user's, then the system dirs.
fn daemon_path() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(SYSTEM_DIRS.map(PathBuf::from))
        .collect();
    std::env::join_paths(dirs).unwrap_or(path)
}

impl Rootless {
    pub(super) fn start_vm(&self, vm: &str, spec: &StartSpec<'_>) -> Result<()> {
        if self.parent_pid(vm).is_some() && docker_ready_at(&self.socket(vm)) {
            return Ok(());
        }
        if !self.members(vm).is_empty() {
            output::warn(format!(
                "{vm}'s docker daemon had died; cleaning up what it left running"
            ));
        }
        // Whatever is left of an earlier run (a crash, a reboot's stale files) goes first.
        self.stop_all(vm, false)?;
        let data = self.data_dir(vm);
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let why_unlimited = limits::unenforced();
        if let Some(why) = &why_unlimited {
            output::warn(format!(
                "vm.cpus and vm.memory are not enforced for {vm}: {why}"
            ));
        }
        let run = self.new_run_dir(vm);
        crate::state::write_json(
            &data.join(files::NETNS_META),
            &Meta {
                cpus: spec.cpus,
                memory_gib: spec.memory_gib,
                scoped: why_unlimited.is_none(),
                run: Some(run.clone()),
            },
        )?;
        make_private_dir(&run)?;
        let child = self.spawn(vm, spec, why_unlimited.is_none())?;
        self.wait_ready(vm, child)
    }

    fn spawn(&self, vm: &str, spec: &StartSpec<'_>, scoped: bool) -> Result<std::process::Child> {
        let run = self.run_dir(vm);
        let data = self.data_dir(vm);
        let proxy = docker_proxy().context("docker-proxy is not installed")?;
        let prefix = if scoped {
            limits::scoped(&self.id(vm), spec.cpus, spec.memory_gib)
        } else {
            Cmd::new("env")
        };
        let cmd = prefix
            .arg("rootlesskit")
            .args([
                "--net=slirp4netns",
                "--mtu=65520",
                "--slirp4netns-sandbox=auto",
                "--slirp4netns-seccomp=auto",
                // The host's loopback stays closed to the VM (other worktrees' tunnels are there),
                // and nothing it publishes reaches the host but through git-vmoat's tunnels.
                "--disable-host-loopback",
                "--port-driver=none",
                "--copy-up=/etc",
                "--copy-up=/run",
            ])
            .arg(format!("--state-dir={}", run.join("rk").display()))
            .args(["sh", "-c", CHILD, "sh"])
            .arg(system_tool("dockerd").context("dockerd is not installed")?)
            .arg(format!("--userland-proxy-path={}", proxy.display()))
            .arg("--data-root")
            .arg(data.join("docker"))
            .arg("--exec-root")
            .arg(run.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket(vm).display()))
            .arg("--pidfile")
            .arg(run.join("docker.pid"))
            // dockerd in rootless mode keeps its runtime files there.
            .env("XDG_RUNTIME_DIR", &run)
            .env("PATH", daemon_path())
            .env_remove("DOCKER_HOST");
        let child = cmd.spawn_detached(&data.join("dockerd.log"))?;
        std::fs::write(run.join("rootlesskit.pid"), child.id().to_string())?;
        Ok(child)
    }

    fn wait_ready(&self, vm: &str, mut child: std::process::Child) -> Result<()> {
        let log = self.data_dir(vm).join("dockerd.log");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if docker_ready_at(&self.socket(vm)) {
                return self.link_namespaces(vm);
            }
            if let Some(status) = child.try_wait()? {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                bail!(
                    "rootlesskit and dockerd of {vm} exited ({}) while starting:\n{}\n(full log: {})",
                    exec::status_code(status),
                    lines[lines.len().saturating_sub(8)..].join("\n"),
                    log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "dockerd of {vm} did not answer within 60 s (log: {})",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stable paths to the VM's namespaces for the tunnels' forwarders (their marker too).
    fn link_namespaces(&self, vm: &str) -> Result<()> {
        let run = self.run_dir(vm);
        let child = self.child_pid(vm).context("rootlesskit's child is gone")?;
        for ns in ["user", "net"] {
            let link = run.join(ns);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(format!("/proc/{child}/ns/{ns}"), &link)
                .with_context(|| format!("linking {}", link.display()))?;
        }
        Ok(())
    }

    /// Stops everything of the VM; `graceful` gives dockerd time to stop its containers (down).
    /// Its mounts live in its own mount namespace and go with its last process.
    pub(super) fn stop_all(&self, vm: &str, graceful: bool) -> Result<()> {
        let members = self.members(vm);
        if !members.is_empty() {
            // A suspended VM is stopped as it is: SIGTERM waits on SIGCONT.
            procs::signal_all(&members, Signal::CONT);
        }
        if graceful && let Some(pid) = self.dockerd_pid(vm) {
            signal(pid, Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.dockerd_pid(vm).is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let (parent, child, run) = (self.parent_pid(vm), self.child_pid(vm), self.run_dir(vm));
        if !procs::kill_until_gone(|| procs::members(parent, child, &run)) {
            output::warn(format!(
                "some processes of {vm} would not die: {:?}",
                procs::members(parent, child, &run)
            ));
        }
        if run.exists() {
            remove_as_user(&run)?;
        }
        // The base dir goes with its last VM (refused while another VM's dir is in it).
        if let Some(base) = run.parent() {
            let _ = std::fs::remove_dir(base);
        }
        Ok(())
    }
}

/// Makes the VM's run dir, its parents private to this user (a /tmp base must be ours).
fn make_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let base = dir.parent().context("run dir has no parent")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let meta = std::fs::symlink_metadata(base)?;
    if meta.uid() != rustix::process::geteuid().as_raw() || !meta.is_dir() {
        bail!(
            "{} is not a directory of this user; refusing to keep VM sockets there",
            base.display()
        );
    }
    Ok(())
}

/// Removes `dir` with everything in it. Files the VM's containers made belong to this user's
/// subordinate ids, which only a user namespace with the same mapping may delete: rootlesskit
/// makes one for the `rm` when a plain removal is refused.
pub fn remove_as_user(dir: &Path) -> Result<()> {
    if !dir.exists() || std::fs::remove_dir_all(dir).is_ok() {
        return Ok(());
    }
    Cmd::new("rootlesskit")
        .args(["--net=host", "rm", "-rf", "--"])
        .arg(dir)
        .checked()
        .with_context(|| format!("removing {}", dir.display()))?;
    Ok(())
}

/// What a delegated cgroup says the VM uses.
pub fn cgroup_usage(dir: &Path) -> Usage {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let num = |s: Option<String>| s.and_then(|v| v.trim().parse::<u64>().ok());
    let stat = read("memory.stat").unwrap_or_default();
    let anon = stat
        .lines()
        .find_map(|l| l.strip_prefix("anon "))
        .and_then(|v| v.trim().parse().ok());
    let cpu = read("cpu.stat").unwrap_or_default();
    Usage {
        cpu_ns: cpu
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|us| us * 1000),
        memory_used: num(read("memory.current")),
        memory_anon: anon,
        memory_limit: num(read("memory.max")),
        disk_bytes: None,
    }
}
