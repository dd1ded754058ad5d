//! Port forwards from 127.0.0.1 on the host into a VM: one process per forward, a registry of
//! host ports so two worktrees never share one and a re-tunnel gets the same one again.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::state::State;

/// Host ports handed out when a guest port is taken on the host.
pub const FALLBACK_PORTS: std::ops::RangeInclusive<u16> = 9000..=9999;
use crate::state::files::{PORTS as REGISTRY, TUNNELS};

/// One open forward.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tunnel {
    pub guest: u16,
    pub host: u16,
    pub pid: u32,
}

impl Tunnel {
    pub fn url(&self) -> String {
        format!("http://localhost:{}", self.host)
    }

    /// The process is still there and still this forward (not a reused pid). An unreadable
    /// command line counts as not ours: a stale pid must never get a process killed.
    pub fn alive(&self) -> bool {
        crate::exec::process_alive(self.pid)
            && process_cmdline(self.pid).is_some_and(|c| {
                c.contains(&format!("127.0.0.1:{}:127.0.0.1:{}", self.host, self.guest))
            })
    }
}

/// VM name → guest port → host port.
pub type Registry = BTreeMap<String, BTreeMap<u16, u16>>;

/// Picks the host port for `guest` of `vm`: the one it had before if still free, else the guest
/// port itself when no other VM holds it and it is free, else a stable free fallback port.
pub fn choose_port(
    vm: &str,
    guest: u16,
    reg: &Registry,
    is_free: impl Fn(u16) -> bool,
) -> Option<u16> {
    let held_by_other = |p: u16| {
        reg.iter()
            .any(|(name, m)| name != vm && m.values().any(|h| *h == p))
    };
    if let Some(&h) = reg.get(vm).and_then(|m| m.get(&guest))
        && !held_by_other(h)
        && is_free(h)
    {
        return Some(h);
    }
    let own_other = |p: u16| {
        reg.get(vm)
            .is_some_and(|m| m.iter().any(|(g, h)| *g != guest && *h == p))
    };
    if !held_by_other(guest) && !own_other(guest) && is_free(guest) {
        return Some(guest);
    }
    let span = u32::from(FALLBACK_PORTS.end() - FALLBACK_PORTS.start()) + 1;
    let start = stable_hash(&format!("{vm}:{guest}")) % span;
    (0..span)
        .map(|i| FALLBACK_PORTS.start() + ((start + i) % span) as u16)
        .find(|&p| !held_by_other(p) && !own_other(p) && is_free(p))
}

fn stable_hash(s: &str) -> u32 {
    // FNV-1a: stable across runs and platforms, unlike std's hasher.
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Whether nothing listens on 127.0.0.1:port (we could bind it).
pub fn port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// The tunnels recorded for a VM, each with whether it is alive.
pub fn list(state: &State, vm: &str) -> Result<Vec<(Tunnel, bool)>> {
    let tunnels: Vec<Tunnel> = crate::state::read_json(&state.vm_dir_path(vm).join(TUNNELS))?;
    Ok(tunnels
        .into_iter()
        .map(|t| {
            let alive = t.alive();
            (t, alive)
        })
        .collect())
}

/// A tunnel `open` made or found.
pub struct Opened {
    pub tunnel: Tunnel,
    pub reused: bool,
    /// Whether something listens on its guest port in the VM (None: could not be told).
    pub listening: Option<bool>,
}

/// Which of `ports` something listens on inside the VM, on 127.0.0.1 where the forwards
/// connect; None when the VM could not be asked. A tunnel to a port nobody listens on yet is
/// kept (a server may start later), but the user must not take its URL for a working one.
pub fn listening(backend: &dyn Backend, vm: &str, cwd: &Path, ports: &[u16]) -> Option<Vec<u16>> {
    if ports.is_empty() {
        return Some(vec![]);
    }
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    // bash's /dev/tcp: no nc or ss needed in the VM.
    let script = format!(
        "for p in {}; do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && echo $p; done; exit 0",
        list.join(" ")
    );
    let out = backend
        .exec(vm, cwd, Some(&script), crate::backend::Io::Capture)
        .ok()
        .filter(|o| o.code == 0)?;
    Some(
        out.stdout_text()
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect(),
    )
}

/// Opens (or reuses) a forward for each guest port.
pub fn open(state: &State, backend: &dyn Backend, vm: &str, ports: &[u16]) -> Result<Vec<Opened>> {
    // One lock for the registry and the spawns, so two worktrees never race for a port.
    let _lock = state.lock_ports()?;
    let vm_dir = state.vm_dir(vm)?;
    let tunnels_path = vm_dir.join(TUNNELS);
    let mut reg: Registry = state.read_json(REGISTRY)?;
    let mut live: Vec<Tunnel> = crate::state::read_json::<Vec<Tunnel>>(&tunnels_path)?
        .into_iter()
        .filter(|t| {
            let alive = t.alive();
            if !alive {
                crate::output::warn(format!(
                    "the tunnel {} -> {} had died; opening it again",
                    t.url(),
                    t.guest
                ));
            }
            alive
        })
        .collect();
    let mut result = vec![];
    for &guest in ports {
        if let Some(t) = live.iter().find(|t| t.guest == guest) {
            result.push(Opened {
                tunnel: t.clone(),
                reused: true,
                listening: None,
            });
            continue;
        }
        let tunnel = start_forward(
            backend,
            vm,
            guest,
            &reg,
            &vm_dir.join(format!("tunnel-{guest}.log")),
        )?;
        reg.entry(vm.to_string())
            .or_default()
            .insert(guest, tunnel.host);
        live.push(tunnel.clone());
        // Record as we go: a later failure must not orphan the forwards already running. A
        // forward that cannot be recorded (a full disk) is stopped at once: nothing unrecorded
        // may hold a port.
        let recorded = crate::state::write_json(&tunnels_path, &live)
            .and_then(|()| crate::state::write_json(&state.root().join(REGISTRY), &reg));
        if let Err(e) = recorded {
            terminate(tunnel.pid);
            return Err(e.context(format!(
                "the tunnel to port {guest} could not be recorded, so it was closed again"
            )));
        }
        result.push(Opened {
            tunnel,
            reused: false,
            listening: None,
        });
    }
    crate::state::write_json(&tunnels_path, &live)?;
    Ok(result)
}

fn start_forward(
    backend: &dyn Backend,
    vm: &str,
    guest: u16,
    reg: &Registry,
    log: &Path,
) -> Result<Tunnel> {
    let mut tried: Vec<u16> = vec![];
    // A port can be taken between our check and the forward's bind: try a few.
    for _ in 0..3 {
        let host = choose_port(vm, guest, reg, |p| !tried.contains(&p) && port_free(p))
            .context("no free host port left for a tunnel (9000-9999 are all taken)")?;
        tried.push(host);
        let mut child = backend.forward(vm, host, guest)?.spawn_detached(log)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let last: Vec<&str> = text.lines().rev().take(5).collect();
                let msg = last.into_iter().rev().collect::<Vec<_>>().join("\n");
                if msg.contains("cannot listen") || msg.contains("Address already in use") {
                    break;
                }
                bail!(
                    "the tunnel to port {guest} failed to start (exit {}):\n{msg}",
                    crate::exec::status_code(status)
                );
            }
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, host));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(Tunnel {
                    guest,
                    host,
                    pid: child.id(),
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the tunnel to port {guest} did not come up within 30 s (log: {})",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    bail!("could not bind a host port for guest port {guest}: every port tried was taken")
}

/// Closes every tunnel of a VM, the recorded ones and any forwarder of it found by its command
/// line (never recorded, or its record damaged); returns how many were open.
pub fn close_all(state: &State, backend: &dyn Backend, vm: &str) -> Result<usize> {
    let _lock = state.lock_ports()?;
    let path = state.vm_dir_path(vm).join(TUNNELS);
    let tunnels: Vec<Tunnel> = match crate::state::read_json(&path) {
        Ok(t) => t,
        Err(e) => {
            // Closing must work with a damaged record: the forwarders are found below.
            crate::output::warn(format!("{e:#}; looking for the tunnels by process instead"));
            crate::state::set_aside(&path);
            vec![]
        }
    };
    let mut closed = 0;
    let mut pids = vec![];
    for t in &tunnels {
        if t.alive() {
            pids.push(t.pid);
        }
    }
    let marker = backend.forwarder_marker(vm);
    let me = std::process::id();
    for (pid, argv) in crate::exec::processes() {
        if pid != me
            && !pids.contains(&pid)
            && is_forwarder(&argv)
            && crate::exec::has_arg(&argv, &marker)
        {
            pids.push(pid);
        }
    }
    for pid in pids {
        terminate(pid);
        closed += 1;
    }
    // Removing needs no free space: closing works on a full disk too.
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", path.display()));
        }
        _ => {}
    }
    Ok(closed)
}

/// A forward's command line: one `127.0.0.1:H:127.0.0.1:G` spec (ssh -L or our forwarder).
fn is_forwarder(argv: &[String]) -> bool {
    argv.iter().any(|a| {
        a.split(' ').any(|w| {
            let p: Vec<&str> = w.split(':').collect();
            p.len() == 4
                && p[0] == "127.0.0.1"
                && p[2] == "127.0.0.1"
                && p[1].parse::<u16>().is_ok()
                && p[3].parse::<u16>().is_ok()
        })
    })
}

/// Drops a VM's host ports from the registry (when the VM is destroyed).
pub fn forget(state: &State, vm: &str) -> Result<()> {
    let _lock = state.lock_ports()?;
    let mut reg: Registry = state.read_json(REGISTRY)?;
    if reg.remove(vm).is_some() {
        crate::state::write_json(&state.root().join(REGISTRY), &reg)?;
    }
    Ok(())
}

fn terminate(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        // Wait briefly so the port is free when we return.
        let deadline = Instant::now() + Duration::from_secs(3);
        while crate::exec::process_alive(pid.as_raw_nonzero().get() as u32)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The process's command line: Linux's /proc, else (macOS has no /proc) `ps`. None when the
/// process is gone or its command line cannot be read.
fn process_cmdline(pid: u32) -> Option<String> {
    if Path::new("/proc/self/cmdline").exists() {
        return std::fs::read(format!("/proc/{pid}/cmdline"))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "));
    }
    cmdline_from_ps(pid)
}

/// `ps -o command= -p PID`: POSIX, so it works on macOS and the BSDs.
fn cmdline_from_ps(pid: u32) -> Option<String> {
    let out = crate::exec::Cmd::new("ps")
        .args(["-o", "command=", "-p", &pid.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Parses the host-published ports out of `docker ps --format '{{.Ports}}'` lines
/// (`0.0.0.0:8080->80/tcp, :::8080->80/tcp`), de-duplicated, in order.
pub fn published_ports(docker_ps: &str) -> Vec<u16> {
    let mut out = vec![];
    for part in docker_ps.split([',', '\n']) {
        let Some((left, _)) = part.trim().split_once("->") else {
            continue;
        };
        let spec = left.rsplit(':').next().unwrap_or("");
        let (lo, hi) = spec.split_once('-').unwrap_or((spec, spec));
        let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) else {
            continue;
        };
        // A published range (3000-3001->...) stands for each of its ports; cap absurd ranges.
        for port in (lo..=hi).take(100) {
            if !out.contains(&port) {
                out.push(port);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_port_is_used_when_free() {
        let reg = Registry::new();
        assert_eq!(choose_port("wt-a", 8080, &reg, |_| true), Some(8080));
    }

    #[test]
    fn a_port_held_by_another_vm_is_never_reused() {
        let mut reg = Registry::new();
        reg.entry("wt-a".into()).or_default().insert(8080, 8080);
        let p = choose_port("wt-b", 8080, &reg, |_| true).unwrap();
        assert!(FALLBACK_PORTS.contains(&p), "{p}");
        // Stable: the same VM and guest port get the same fallback.
        assert_eq!(choose_port("wt-b", 8080, &reg, |_| true), Some(p));
        reg.entry("wt-b".into()).or_default().insert(8080, p);
        let q = choose_port("wt-c", 8080, &reg, |_| true).unwrap();
        assert!(q != p && q != 8080);
    }

    #[test]
    fn a_retunnel_gets_its_old_port_back() {
        let mut reg = Registry::new();
        reg.entry("wt-b".into()).or_default().insert(8080, 9123);
        assert_eq!(choose_port("wt-b", 8080, &reg, |_| true), Some(9123));
        // Unless something else took it meanwhile.
        assert_eq!(choose_port("wt-b", 8080, &reg, |p| p != 9123), Some(8080));
    }

    #[test]
    fn busy_ports_are_skipped() {
        let reg = Registry::new();
        let p = choose_port("wt-a", 8080, &reg, |p| p != 8080).unwrap();
        assert!(FALLBACK_PORTS.contains(&p));
        assert_eq!(choose_port("wt-a", 8080, &reg, |_| false), None);
    }

    #[test]
    fn two_guest_ports_of_one_vm_never_share_a_host_port() {
        let mut reg = Registry::new();
        reg.entry("wt-a".into()).or_default().insert(9229, 8080);
        let p = choose_port("wt-a", 8080, &reg, |_| true).unwrap();
        assert_ne!(p, 8080);
    }

    #[test]
    fn docker_ps_ports_are_parsed() {
        let ps = "0.0.0.0:8080->80/tcp, :::8080->80/tcp\n\n127.0.0.1:5432->5432/tcp\n5000/tcp\n0.0.0.0:3000-3001->3000-3001/tcp";
        assert_eq!(published_ports(ps), vec![8080, 5432, 3000, 3001]);
    }

    #[test]
    fn our_own_process_is_alive_and_a_bogus_pid_is_not() {
        assert!(crate::exec::process_alive(std::process::id()));
        assert!(!crate::exec::process_alive(u32::MAX));
        let t = Tunnel {
            guest: 1,
            host: 2,
            pid: std::process::id(),
        };
        assert!(
            !t.alive(),
            "a pid whose command line is not the forward is not our tunnel"
        );
    }

    #[test]
    fn command_lines_are_read_without_proc_too() {
        // Stands in for a forward: its command line holds the forward spec.
        let mut ours = std::process::Command::new("sh")
            .args(["-c", "sleep 30; :", "127.0.0.1:4001:127.0.0.1:80"])
            .spawn()
            .unwrap();
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // The `ps` reader is the one macOS uses; it must agree with /proc here.
        let ps = cmdline_from_ps(ours.id()).unwrap();
        assert!(ps.contains("127.0.0.1:4001:127.0.0.1:80"), "{ps}");
        assert!(cmdline_from_ps(other.id()).unwrap().contains("sleep 30"));
        assert_eq!(cmdline_from_ps(u32::MAX), None);
        let tunnel = |pid| Tunnel {
            guest: 80,
            host: 4001,
            pid,
        };
        assert!(tunnel(ours.id()).alive());
        assert!(
            !tunnel(other.id()).alive(),
            "a reused pid running something else is not our forward"
        );
        for c in [&mut ours, &mut other] {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(!tunnel(ours.id()).alive());
    }
}
