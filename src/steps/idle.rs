//! The idle rule the watcher applies: a running VM is suspended once it has been idle for its
//! `vm.suspend-after`, idle meaning all of: no CPU use above a small share, no git-vmoat
//! command running in it, no tunnel traffic, no file change in its worktree.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::backend::{self, Backend, VmState, suspend};
use crate::output;
use crate::state::{State, files};

/// CPU share (of one core) below which a VM counts as idle: a daemon's housekeeping stays
/// below it, a test run or a build does not.
const CPU_IDLE_SHARE: f64 = 0.05;
/// CPU samples closer than this are not compared.
const MIN_SAMPLE_MS: u64 = 500;
/// At most this many entries are looked at for the newest file change in a worktree.
const WALK_LIMIT: usize = 50_000;

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Takes a CPU sample and records when the VM was last busy; returns that time. A VM whose CPU
/// use cannot be measured counts as busy now: it is never suspended on a guess.
fn sample(state: &State, b: &dyn Backend, vm: &str, now: SystemTime) -> u64 {
    let mut act = suspend::activity(state, vm);
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let elapsed_ms = now_ms.saturating_sub(act.sampled_ms);
    if elapsed_ms < MIN_SAMPLE_MS && act.cpu_ns.is_some() {
        // Too soon for a CPU share to mean anything: keep the last sample.
        if suspend::leased(state, vm) {
            act.busy_at = unix(now);
        }
        return act.busy_at;
    }
    let cpu = b.cpu_ns(vm);
    let busy = match (cpu, act.cpu_ns) {
        (Some(c), Some(prev)) => {
            let share = c.saturating_sub(prev) as f64 / (elapsed_ms as f64 * 1e6);
            output::detail(format!("cpu {vm}: {:.1}% of a core", share * 100.0));
            share > CPU_IDLE_SHARE
        }
        // The first sample, or a counter that cannot be read: the clock starts now.
        _ => true,
    };
    if busy || suspend::leased(state, vm) {
        act.busy_at = unix(now);
    }
    act.cpu_ns = cpu;
    act.sampled_ms = now_ms;
    if let Ok(dir) = state.vm_dir(vm) {
        let _ = crate::state::write_json(&dir.join(files::ACTIVITY), &act);
    }
    act.busy_at
}

/// The newest modification time of anything in the worktree (its `.git` aside), found by a
/// bounded walk that follows no symlink.
pub(crate) fn newest_change(root: &Path) -> Option<SystemTime> {
    let mut newest: Option<SystemTime> = None;
    // A time in the future (a skewed clock, `touch -d`) would keep the VM awake forever.
    let now = SystemTime::now();
    let seen_at = |t: Option<SystemTime>| t.filter(|t| *t <= now);
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        newest = newest.max(seen_at(
            std::fs::symlink_metadata(&dir)
                .and_then(|m| m.modified())
                .ok(),
        ));
        for e in entries.flatten() {
            seen += 1;
            if seen > WALK_LIMIT {
                return newest;
            }
            if e.file_name() == ".git" {
                continue;
            }
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            newest = newest.max(seen_at(meta.modified().ok()));
            if meta.is_dir() {
                stack.push(e.path());
            }
        }
    }
    newest
}

/// How long the VM has been idle by every sign (zero while one says it is busy), given its
/// `vm.suspend-after`.
pub(crate) fn idle_for(
    state: &State,
    b: &dyn Backend,
    vm: &str,
    root: &Path,
    after: Duration,
) -> Duration {
    let now = SystemTime::now();
    let busy = UNIX_EPOCH + Duration::from_secs(sample(state, b, vm, now));
    let others = busy.max(suspend::last_active(state, vm).unwrap_or(busy));
    let (idle, changed) = idle_with(now, others, after, || {
        output::detail(format!("idle {vm}: looking for file changes"));
        newest_change(root)
    });
    if let Some(t) = changed {
        remember_busy(state, vm, t);
    }
    idle
}

/// The idle time from the newest of the cheap signs (`others`) and the worktree's newest file
/// change, and that change when it is the newest sign. The worktree walk, the one costly sign
/// (tens of thousands of files every pass), is made only once the cheap signs say the VM has
/// been idle for `after`: a change can only shorten the idle time, so the verdict is the same.
fn idle_with(
    now: SystemTime,
    others: SystemTime,
    after: Duration,
    walk: impl FnOnce() -> Option<SystemTime>,
) -> (Duration, Option<SystemTime>) {
    let since = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    if since(others) < after {
        return (since(others), None);
    }
    match walk().filter(|c| *c > others) {
        Some(c) => (since(c), Some(c)),
        None => (since(others), None),
    }
}

/// Keeps a file change the walk found as the VM's last busy time: the cheap signs then say it
/// is busy until `after` has passed from it, and no walk is made before.
fn remember_busy(state: &State, vm: &str, t: SystemTime) {
    let mut act = suspend::activity(state, vm);
    act.busy_at = act.busy_at.max(unix(t));
    if let Ok(dir) = state.vm_dir(vm) {
        let _ = crate::state::write_json(&dir.join(files::ACTIVITY), &act);
    }
}

/// Suspends this repository's running VMs that have been idle for their `vm.suspend-after`.
pub(crate) fn suspend_idle(state: &State, common: &Path) {
    let Ok(known) = crate::reconcile::scan(state, common, false) else {
        return;
    };
    for (k, verdict) in known {
        if !matches!(verdict, crate::reconcile::Verdict::Alive) || !k.owner.root.is_dir() {
            continue;
        }
        let cfg = match crate::config::Config::load(&k.owner.root, state) {
            Ok(cfg) => cfg,
            Err(e) => {
                output::detail(format!(
                    "idle {}: config not readable, never suspended: {e:#}",
                    k.name
                ));
                continue;
            }
        };
        let Some(after) = cfg.suspend_after else {
            continue;
        };
        let Ok(b) = backend::select(k.owner.backend, state) else {
            continue;
        };
        if !b.info(&k.name).is_ok_and(|i| i.state == VmState::Running) {
            continue;
        }
        let idle = idle_for(state, b.as_ref(), &k.name, &k.owner.root, after);
        output::detail(format!("idle {}: {}s", k.name, idle.as_secs()));
        if idle < after {
            continue;
        }
        match suspend::suspend(state, b.as_ref(), &k.name, "idle") {
            Ok(()) => output::info(format!(
                "suspended {} (idle for {}); a command or a tunnel connection resumes it",
                k.name,
                output::duration(idle)
            )),
            Err(e) => output::warn(format!("suspending idle {}: {e:#}", k.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worktree_is_walked_only_once_the_cheap_signs_say_idle_long_enough() {
        let now = SystemTime::now();
        let ago = |s: u64| now - Duration::from_secs(s);
        let after = Duration::from_secs(600);
        let walked = std::cell::Cell::new(0);
        let walk = |found: Option<SystemTime>| {
            walked.set(walked.get() + 1);
            found
        };
        // Busy 10 s ago by CPU, traffic or a command: no walk, whatever the files say.
        let (idle, changed) = idle_with(now, ago(10), after, || walk(Some(now)));
        assert_eq!((idle.as_secs(), changed, walked.get()), (10, None, 0));
        // Idle long enough by those signs: the walk decides, and a newer change is kept.
        let (idle, changed) = idle_with(now, ago(900), after, || walk(Some(ago(30))));
        assert_eq!(
            (idle.as_secs(), changed, walked.get()),
            (30, Some(ago(30)), 1)
        );
        // An older change (or none) changes nothing.
        let (idle, changed) = idle_with(now, ago(900), after, || walk(Some(ago(5000))));
        assert_eq!((idle.as_secs(), changed, walked.get()), (900, None, 2));
        let (idle, _) = idle_with(now, ago(900), after, || walk(None));
        assert_eq!(idle.as_secs(), 900);
    }

    #[test]
    fn the_newest_change_skips_git_and_sees_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        for p in ["a/b", "a", ""] {
            std::fs::File::open(dir.path().join(p))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let git_file = dir.path().join(".git/index");
        std::fs::write(&git_file, "x").unwrap();
        let newest = newest_change(dir.path()).unwrap();
        assert!(newest <= old + Duration::from_secs(1), "only .git changed");
        std::fs::write(dir.path().join("a/b/f"), "x").unwrap();
        let newest = newest_change(dir.path()).unwrap();
        assert!(newest > old + Duration::from_secs(1800));
    }
}
