//! The worktree's dockerd and teardown: starting it in the namespace and cgroup, stopping
//! everything of a worktree, and unmounting what a killed daemon left.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Netns, cgroup};
use crate::exec::{self, Cmd};
use crate::output;

/// Go's garbage collector target for the daemon and what it starts (containerd, shims, runc,
/// and dockerd itself re-run for each image unpack and container start): the default (100)
/// collects several times while each of these large binaries initialises, a good part of a
/// fresh `up`'s CPU time; parallel `up`s on a small machine wait for exactly that CPU. The
/// price is a larger heap between collections (a few MiB for a small stack).
const GO_GC: &str = "400";

impl Netns {
    /// Whether the daemon answers its API's `/_ping`: asked in-process, since a `docker`
    /// CLI per poll costs tens of milliseconds of CPU, which parallel starts compete for.
    pub(super) fn docker_ready(vm: &str) -> bool {
        docker_ready_at(&Self::socket(vm))
    }

    /// Starts the worktree's dockerd; [`Netns::await_dockerd`] waits until it answers.
    pub(super) fn spawn_dockerd(&self, vm: &str, id: &str) -> Result<Child> {
        let run = Self::run_dir(id);
        let data = self.data_dir(vm).join("docker");
        std::fs::create_dir_all(&data)?;
        let mut cmd = Self::enter(id)
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
            .arg(format!("/{}/{id}", cgroup::ROOT));
        if std::env::var_os("GOGC").is_none() {
            cmd = cmd.env("GOGC", GO_GC);
        }
        cmd.spawn_detached(&self.log(vm))
    }

    fn log(&self, vm: &str) -> PathBuf {
        self.data_dir(vm).join("dockerd.log")
    }

    /// Waits until the dockerd [`Netns::spawn_dockerd`] started answers its API.
    pub(super) fn await_dockerd(&self, vm: &str, id: &str, mut child: Child) -> Result<()> {
        let log = self.log(vm);
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
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Unmounts anything left mounted under `dir` (after a killed dockerd), deepest first.
    pub(super) fn unmount_under(dir: &Path) -> Result<()> {
        let mut points = mounts_at_or_under(&mountinfo(), dir);
        points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for p in &points {
            let _ = Cmd::new("umount").arg("-l").arg(p).output();
        }
        if let Some(p) = mounts_at_or_under(&mountinfo(), dir)
            .into_iter()
            .find(|p| p != dir)
        {
            bail!(
                "{} is still mounted; refusing to delete {} through it",
                p.display(),
                dir.display()
            );
        }
        Ok(())
    }

    /// Stops everything of the worktree; `graceful` gives dockerd time to stop its containers
    /// (down), otherwise all is killed at once (destroy: the data goes anyway).
    pub(super) fn stop_all(&self, id: &str, graceful: bool) -> Result<()> {
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
        super::net::remove_legacy_uplink(id);
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

/// Whether the daemon behind `socket` answers its API's `/_ping` with `OK`.
pub(crate) fn docker_ready_at(socket: &Path) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = s.take(4096).read_to_string(&mut reply);
    ping_ok(&reply)
}

/// A `/_ping` reply of a daemon that is ready: status 200 and the body `OK`.
fn ping_ok(reply: &str) -> bool {
    let status = reply.lines().next().unwrap_or("");
    status.starts_with("HTTP/1.")
        && status.split(' ').nth(1) == Some("200")
        && reply.ends_with("OK")
}

pub(crate) fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// This process's mount table (empty when unreadable: nothing to unmount then).
pub(super) fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
}

/// The mount points in `/proc/self/mountinfo` text (field 5), with the kernel's octal escapes
/// (`\040` for a space, `\011`, `\012`, `\134`) undone so they compare with real paths.
pub(super) fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_octal(p)))
        .collect()
}

/// `dir` itself and every mount point below it.
pub(super) fn mounts_at_or_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    mount_points(mountinfo)
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) if b[i] == b'\\' => {
                let v = d.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_200_ok_ping_means_ready() {
        assert!(ping_ok("HTTP/1.0 200 OK\r\nApi-Version: 1.41\r\n\r\nOK"));
        assert!(!ping_ok("HTTP/1.0 500 Internal Server Error\r\n\r\nOK"));
        assert!(!ping_ok("HTTP/1.0 200 OK\r\n\r\n"));
        assert!(!ping_ok(""));
    }

    /// `/proc/self/mountinfo` lines of a host with a dockerd's mounts left under a runtime dir
    /// whose path holds a space (Linux 6.x).
    const MOUNTINFO: &str = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n\
        22 27 0:21 / /proc rw,relatime - proc proc rw\n\
        44 27 0:52 / /tmp/vmoatcap.TC51/run/wt\\040a-1f2e rw,relatime - tmpfs none rw\n\
        47 44 0:53 / /tmp/vmoatcap.TC51/run/wt\\040a-1f2e/exec/x rw,relatime - tmpfs shm rw\n\
        48 27 0:54 / /tmp/vmoatcap.TC51/run/wt\\040a-1f2e2 rw,relatime - tmpfs none rw\n";

    #[test]
    fn mount_points_are_unescaped_and_matched_by_path_component() {
        let points = mount_points(MOUNTINFO);
        assert_eq!(points[0], Path::new("/"));
        assert_eq!(points[2], Path::new("/tmp/vmoatcap.TC51/run/wt a-1f2e"));
        let dir = Path::new("/tmp/vmoatcap.TC51/run/wt a-1f2e");
        assert_eq!(
            mounts_at_or_under(MOUNTINFO, dir),
            [dir.to_path_buf(), dir.join("exec/x")],
            "the sibling `wt a-1f2e2` is not under it"
        );
        assert!(mounts_at_or_under(MOUNTINFO, Path::new("/run/git-vmoat/x")).is_empty());
    }

    #[test]
    fn octal_escapes_are_undone() {
        assert_eq!(unescape_octal(r"a\040b\011c\134d"), "a b\tc\\d");
        assert_eq!(unescape_octal(r"a\04"), r"a\04", "not an escape");
    }
}
