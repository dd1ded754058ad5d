//! A rootless VM's processes, found without a cgroup: rootlesskit, its slirp4netns, and
//! everything inside the user namespace rootlesskit made (dockerd, containers, commands).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::backend::netns::daemon::signal;

/// What `/proc/<pid>/stat` says of a process that matters here.
struct Stat {
    ppid: u32,
    state: char,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last `)`.
    let rest: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    Some(Stat {
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
    })
}

/// The inode of the user namespace `pid` is in.
fn userns(pid: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/user")).ok()?;
    link.to_str()?
        .strip_prefix("user:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// A process as far as finding a VM's members cares.
struct Proc {
    pid: u32,
    ppid: u32,
    userns: Option<u64>,
    argv: Vec<u8>,
}

fn scan() -> Vec<Proc> {
    let me = std::process::id();
    all_pids()
        .into_iter()
        .filter(|&p| p != me)
        .filter_map(|pid| {
            Some(Proc {
                pid,
                ppid: stat(pid)?.ppid,
                userns: userns(pid),
                argv: std::fs::read(format!("/proc/{pid}/cmdline")).ok()?,
            })
        })
        .collect()
}

/// A tunnel's forwarder enters the VM's namespaces too, but lives apart from the VM: it must
/// keep listening while the VM is suspended (its first connection wakes it).
fn is_forwarder(argv: &[u8]) -> bool {
    argv.split(|b| *b == 0).any(|a| a == b"__forward")
}

/// Every process of the VM whose runtime dir is `run`: rootlesskit (`parent`) and its
/// children, everything in its child's user namespace, whatever names `run` on its command
/// line (dockerd, containerd, the shims, which outlive a killed rootlesskit), and all their
/// descendants (the containers). Forwarders are not members.
pub fn members(parent: Option<u32>, child: Option<u32>, run: &Path) -> Vec<u32> {
    let procs = scan();
    let ns = child.and_then(userns);
    let run = run.as_os_str().as_encoded_bytes();
    let mut set: BTreeSet<u32> = procs
        .iter()
        .filter(|p| !is_forwarder(&p.argv))
        .filter(|p| {
            Some(p.pid) == parent
                || (ns.is_some() && p.userns == ns)
                || (!run.is_empty() && p.argv.windows(run.len()).any(|w| w == run))
        })
        .map(|p| p.pid)
        .collect();
    // Descendants, until no process is added.
    loop {
        let before = set.len();
        for p in &procs {
            if set.contains(&p.ppid) && !is_forwarder(&p.argv) {
                set.insert(p.pid);
            }
        }
        if set.len() == before {
            break;
        }
    }
    set.into_iter().collect()
}

/// Every process (forwarders included) whose command line names `run`.
pub fn naming(run: &Path) -> Vec<u32> {
    let run = run.as_os_str().as_encoded_bytes();
    if run.is_empty() {
        return vec![];
    }
    scan()
        .into_iter()
        .filter(|p| p.argv.windows(run.len()).any(|w| w == run))
        .map(|p| p.pid)
        .collect()
}

/// A process's proportional share of memory (`Pss`, and its anonymous part `Pss_Anon`) in
/// kB from /proc/<pid>/smaps_rollup: pages the VM's processes share (dockerd's and
/// containerd's code) count once in the sum, as a cgroup would count them.
fn pss_kib(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    let pss = field("Pss")?;
    Some((pss, field("Pss_Anon").unwrap_or(pss)))
}

/// Whether a process is stopped by a signal (suspended).
pub fn is_stopped(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.state == 'T')
}

/// Sends `sig` to each of `pids`.
pub fn signal_all(pids: &[u32], sig: Signal) {
    for &p in pids {
        signal(p, sig);
    }
}

/// Kills every process `find` gives until none is left; false when some would not die.
pub fn kill_until_gone(find: impl Fn() -> Vec<u32>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = find();
        if pids.is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        // A stopped process dies of SIGKILL too; CONT lets a suspended one get there sooner.
        signal_all(&pids, Signal::KILL);
        signal_all(&pids, Signal::CONT);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// CPU time of `pids` in nanoseconds (a sum over live processes: a process that exited takes
/// its share with it, which the idle rule reads as a quiet interval at worst).
pub fn cpu_ns(pids: &[u32]) -> Option<u64> {
    let times: Vec<u64> = pids
        .iter()
        .filter_map(|&p| crate::backend::usage::process_cpu_ns(p))
        .collect();
    (!times.is_empty()).then(|| times.iter().sum())
}

/// Memory of `pids` in bytes: (all of it, its anonymous part).
pub fn memory(pids: &[u32]) -> Option<(u64, u64)> {
    let (all, anon) = pids
        .iter()
        .filter_map(|&p| pss_kib(p))
        .fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
    (!pids.is_empty()).then_some((all * 1024, anon * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_as_running_in_its_own_user_namespace() {
        let me = std::process::id();
        let s = stat(me).expect("own stat");
        assert_ne!(s.state, 'T');
        assert!(userns(me).is_some());
        assert!(!is_forwarder(b"git-vmoat\0up\0"));
        assert!(is_forwarder(b"git-vmoat\0__forward\0"));
        assert!(memory(&[me]).is_some_and(|(all, anon)| all >= anon && all > 0));
        assert_eq!(cpu_ns(&[]), None);
    }
}
