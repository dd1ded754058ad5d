//! Per-worktree cgroups for the netns backend: memory and CPU limits over everything a worktree
//! runs (its dockerd, containers and commands), on cgroup v1 and v2 hosts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The cgroup tree under which each worktree gets `<root>/<vm>`.
pub const ROOT: &str = "git-vmoat";

/// Where cgroups are on this host.
#[derive(Debug, PartialEq, Eq)]
enum Layout {
    /// One unified hierarchy (cgroup v2) mounted here.
    V2(PathBuf),
    /// Per-controller hierarchies (cgroup v1): (controller, mount point).
    V1(Vec<(&'static str, PathBuf)>),
}

fn layout() -> Result<Layout> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    parse_layout(&mounts, |dir| {
        std::fs::read_to_string(dir.join("cgroup.controllers")).ok()
    })
}

/// The layout `/proc/self/mounts` describes. `controllers` reads a v2 mount's
/// `cgroup.controllers` (None: not there); a v2 hierarchy counts only with the memory
/// controller, as on a hybrid host whose `unified` mount has none of them.
fn parse_layout(mounts: &str, controllers: impl Fn(&Path) -> Option<String>) -> Result<Layout> {
    let mut v1 = vec![];
    let mut v2 = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        match f[2] {
            "cgroup2" => {
                let has_memory = controllers(Path::new(f[1]))
                    .is_some_and(|c| c.split_whitespace().any(|c| c == "memory"));
                if has_memory {
                    v2 = Some(PathBuf::from(f[1]));
                }
            }
            "cgroup" => {
                // freezer: suspend; cpuacct: CPU time for the idle rule and `top`.
                for c in ["memory", "cpu", "cpuacct", "pids", "freezer"] {
                    if f[3].split(',').any(|o| o == c) && !v1.iter().any(|(k, _)| *k == c) {
                        v1.push((c, PathBuf::from(f[1])));
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(p) = v2 {
        return Ok(Layout::V2(p));
    }
    if v1.iter().any(|(c, _)| *c == "memory") {
        return Ok(Layout::V1(v1));
    }
    anyhow::bail!("no cgroup memory controller is mounted on this host")
}

/// The cgroup dirs of a worktree (one per v1 hierarchy, or one v2 dir).
fn dirs(vm: &str) -> Result<Vec<PathBuf>> {
    Ok(match layout()? {
        Layout::V2(root) => vec![root.join(ROOT).join(vm)],
        Layout::V1(h) => {
            let mut out: Vec<PathBuf> = h.into_iter().map(|(_, m)| m.join(ROOT).join(vm)).collect();
            // Co-mounted controllers (cpu,cpuacct) share one dir.
            out.dedup();
            out
        }
    })
}

/// The worktree's dir in the v1 hierarchy of `controller`, or its v2 dir.
fn dir_for(vm: &str, controller: &str) -> Option<PathBuf> {
    match layout().ok()? {
        Layout::V2(root) => Some(root.join(ROOT).join(vm)),
        Layout::V1(h) => h
            .into_iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, m)| m.join(ROOT).join(vm)),
    }
}

/// Freezes (or thaws) every process of the worktree, containers included, and waits until the
/// kernel says it is done: a frozen worktree uses no CPU, and its memory can be swapped out.
pub fn set_frozen(vm: &str, frozen: bool) -> Result<()> {
    let dir = dir_for(vm, "freezer").context("this host has no cgroup freezer")?;
    set_frozen_at(&dir, frozen)
}

/// `set_frozen` on one cgroup dir: v2 (`cgroup.freeze`) when the dir has it, else v1's freezer.
fn set_frozen_at(dir: &Path, frozen: bool) -> Result<()> {
    let v2 = dir.join("cgroup.freeze").exists();
    let (file, value, done) = if v2 {
        ("cgroup.freeze", if frozen { "1" } else { "0" }, None)
    } else {
        let v = if frozen { "FROZEN" } else { "THAWED" };
        ("freezer.state", v, Some(v))
    };
    write(&dir.join(file), value)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = match done {
            Some(want) => std::fs::read_to_string(dir.join(file)).is_ok_and(|s| s.trim() == want),
            // cgroup.events says `frozen 1` once every process is stopped.
            None => std::fs::read_to_string(dir.join("cgroup.events")).is_ok_and(|s| {
                s.lines()
                    .any(|l| l == if frozen { "frozen 1" } else { "frozen 0" })
            }),
        };
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "{} did not reach {value} within 20 s",
                dir.join(file).display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether this process runs inside the worktree's cgroup (a command run in the VM): it must
/// not freeze, stop or delete the VM it runs in, which would freeze or kill itself midway.
pub fn holds_self(vm: &str) -> bool {
    let own = format!("/{ROOT}/{vm}");
    std::fs::read_to_string("/proc/self/cgroup").is_ok_and(|t| {
        t.lines().any(|l| {
            let path = l.splitn(3, ':').nth(2).unwrap_or("");
            path == own || path.starts_with(&format!("{own}/"))
        })
    })
}

/// Whether the worktree's cgroup is frozen (or freezing).
pub fn is_frozen(vm: &str) -> bool {
    dir_for(vm, "freezer").is_some_and(|dir| is_frozen_at(&dir))
}

fn is_frozen_at(dir: &Path) -> bool {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.freeze")) {
        return s.trim() == "1";
    }
    std::fs::read_to_string(dir.join("freezer.state")).is_ok_and(|s| s.trim() != "THAWED")
}

/// CPU time used by everything in the worktree's cgroup since it was made, in nanoseconds.
pub fn cpu_ns(vm: &str) -> Option<u64> {
    let dir = dir_for(vm, "cpuacct")?;
    if let Ok(stat) = std::fs::read_to_string(dir.join("cpu.stat"))
        && let Some(us) = stat
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(us * 1000);
    }
    std::fs::read_to_string(dir.join("cpuacct.usage"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Memory the worktree's cgroup holds: (all of it, page cache included; its anonymous part,
/// which only swap can take away).
pub fn memory(vm: &str) -> Option<(u64, u64)> {
    let dir = dir_for(vm, "memory")?;
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let stat = read("memory.stat").unwrap_or_default();
    let field = |name: &str| {
        stat.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(cur) = read("memory.current") {
        let used = cur.trim().parse().ok()?;
        // Shared memory (tmpfs) stays like anonymous memory: only swap can take it.
        let anon = field("anon").map(|a| a + field("shmem").unwrap_or(0));
        return Some((used, anon.unwrap_or(used)));
    }
    let used = read("memory.usage_in_bytes")?.trim().parse().ok()?;
    Some((
        used,
        field("total_rss")
            .or_else(|| field("rss"))
            .map_or(used, |r| {
                r + field("total_shmem").or_else(|| field("shmem")).unwrap_or(0)
            }),
    ))
}

/// The memory limit of the worktree's cgroup, in bytes.
pub fn memory_limit(vm: &str) -> Option<u64> {
    let dir = dir_for(vm, "memory")?;
    ["memory.max", "memory.limit_in_bytes"]
        .iter()
        .find_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .and_then(|s| s.trim().parse().ok())
}

/// Creates the worktree's cgroup with its limits; returns the `cgroup.procs` files a process
/// writes its pid to so that it, and everything it starts, is inside.
pub fn create(vm: &str, cpus: u64, memory_gib: u64) -> Result<Vec<PathBuf>> {
    // The last VM's teardown removes the parent when empty, possibly between our making it and
    // our child in it (or after enabling its controllers): start over then.
    let mut tries = 0;
    loop {
        match try_create(vm, cpus, memory_gib) {
            Err(_) if tries < 5 => tries += 1,
            r => return r,
        }
    }
}

fn try_create(vm: &str, cpus: u64, memory_gib: u64) -> Result<Vec<PathBuf>> {
    let memory = (memory_gib << 30).to_string();
    let quota = (cpus * 100_000).to_string();
    let mut procs = vec![];
    match layout()? {
        Layout::V2(root) => {
            // Controllers must be enabled top-down for a child to have them.
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory +cpu +pids");
            let parent = root.join(ROOT);
            std::fs::create_dir_all(&parent)
                .with_context(|| format!("creating {}", parent.display()))?;
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory +cpu +pids");
            let dir = parent.join(vm);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            write(&dir.join("memory.max"), &memory)?;
            // No swap either: the limit is the limit, and an OOM stays inside the worktree.
            let _ = std::fs::write(dir.join("memory.swap.max"), "0");
            write(&dir.join("cpu.max"), &format!("{quota} 100000"))?;
            procs.push(dir.join("cgroup.procs"));
        }
        Layout::V1(h) => {
            for (c, mount) in h {
                let dir = mount.join(ROOT).join(vm);
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                match c {
                    "memory" => {
                        write(&dir.join("memory.limit_in_bytes"), &memory)?;
                        // memory+swap; absent when the kernel does not account swap.
                        let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), &memory);
                    }
                    "cpu" => {
                        write(&dir.join("cpu.cfs_period_us"), "100000")?;
                        write(&dir.join("cpu.cfs_quota_us"), &quota)?;
                    }
                    _ => {}
                }
                let file = dir.join("cgroup.procs");
                if !procs.contains(&file) {
                    procs.push(file);
                }
            }
        }
    }
    Ok(procs)
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).with_context(|| format!("setting {} to {value}", path.display()))
}

/// The `cgroup.procs` files of an existing worktree cgroup (empty when it has none).
pub fn procs_files(vm: &str) -> Vec<PathBuf> {
    dirs(vm)
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.is_dir())
        .map(|d| d.join("cgroup.procs"))
        .collect()
}

/// Every process in the worktree's cgroup, children cgroups (containers) included.
pub fn pids(vm: &str) -> Vec<u32> {
    let mut out = vec![];
    let Some(dir) = dirs(vm).ok().and_then(|d| d.into_iter().next()) else {
        return out;
    };
    collect(&dir, &mut out);
    out.sort_unstable();
    out.dedup();
    out
}

fn collect(dir: &Path, out: &mut Vec<u32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect(&e.path(), out);
            }
        }
    }
}

/// Kills everything left in the worktree's cgroup; true when it is empty afterwards.
pub fn kill_all(vm: &str) -> bool {
    // A frozen process cannot die (on cgroup v1 not even of SIGKILL): thaw first.
    if is_frozen(vm) {
        let _ = set_frozen(vm, false);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = pids(vm);
        if pids.is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        for pid in pids {
            if let Some(p) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// git-vmoat's parent cgroup in every mounted hierarchy (whether it exists or not).
fn parents() -> Vec<PathBuf> {
    parents_in(&std::fs::read_to_string("/proc/self/mounts").unwrap_or_default())
}

fn parents_in(mounts: &str) -> Vec<PathBuf> {
    mounts
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 2 && (f[2] == "cgroup" || f[2] == "cgroup2"))
                .then(|| Path::new(f[1]).join(ROOT))
        })
        .collect()
}

/// Removes the worktree's (empty) cgroups, children first, from every hierarchy: dockerd makes
/// its containers' cgroups in all of them, not only in the ones we limit. The parent goes too
/// once no worktree (of any state dir) has a cgroup left in it; rmdir refuses while one has.
pub fn remove(vm: &str) {
    for parent in parents() {
        remove_tree(&parent.join(vm));
        let _ = std::fs::remove_dir(&parent);
    }
}

/// The ids of every worktree cgroup on this machine, and the existing dirs of each.
pub fn all() -> std::collections::BTreeMap<String, Vec<PathBuf>> {
    let mut out = std::collections::BTreeMap::<String, Vec<PathBuf>>::new();
    for parent in parents() {
        for e in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let id = e.file_name().to_string_lossy().into_owned();
                out.entry(id).or_default().push(e.path());
            }
        }
    }
    out
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    // cgroupfs dirs are removed with rmdir, never by deleting their control files.
    let _ = std::fs::remove_dir(dir);
}

/// Whether this host lets us make cgroups (for `auto` backend selection and doctor).
pub fn usable() -> Result<()> {
    layout().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/self/mounts` of a hybrid host (v1 controllers plus an empty v2 `unified`).
    const HYBRID: &str = "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/devices cgroup rw,relatime,devices 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup /sys/fs/cgroup/freezer cgroup rw,relatime,freezer 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
";
    /// A unified (v2 only) host, as systemd mounts it.
    const UNIFIED: &str = "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0
";

    #[test]
    fn a_hybrid_host_uses_its_v1_controllers() {
        // The unified mount's cgroup.controllers on that host holds only `hugetlb`.
        let l = parse_layout(HYBRID, |_| Some("hugetlb\n".into())).unwrap();
        assert_eq!(
            l,
            Layout::V1(vec![
                ("cpu", PathBuf::from("/sys/fs/cgroup/cpu")),
                ("cpuacct", PathBuf::from("/sys/fs/cgroup/cpuacct")),
                ("memory", PathBuf::from("/sys/fs/cgroup/memory")),
                ("pids", PathBuf::from("/sys/fs/cgroup/pids")),
                ("freezer", PathBuf::from("/sys/fs/cgroup/freezer")),
            ])
        );
        assert_eq!(parents_in(HYBRID).len(), 9, "every hierarchy, v2 included");
        assert!(parents_in(HYBRID).contains(&PathBuf::from("/sys/fs/cgroup/unified/git-vmoat")));
    }

    #[test]
    fn a_unified_host_with_memory_uses_v2() {
        let l = parse_layout(UNIFIED, |d| {
            (d == Path::new("/sys/fs/cgroup")).then(|| "cpuset cpu io memory hugetlb pids\n".into())
        })
        .unwrap();
        assert_eq!(l, Layout::V2(PathBuf::from("/sys/fs/cgroup")));
    }

    /// A cgroup2 hierarchy to make a test cgroup in: a mounted one (a hybrid host's `unified`
    /// too: the v2 freezer is a core file, no controller needed), else one mounted for the
    /// test at `tmp`. None: not root, or the kernel has no cgroup2.
    fn cgroup2_root(tmp: &Path) -> Option<PathBuf> {
        if !rustix::process::geteuid().is_root() {
            return None;
        }
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        if let Some(m) = mounts.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && f[2] == "cgroup2").then(|| PathBuf::from(f[1]))
        }) {
            return Some(m);
        }
        let ok = std::process::Command::new("mount")
            .args(["-t", "cgroup2", "cgroup2"])
            .arg(tmp)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| tmp.to_path_buf())
    }

    fn counter(file: &Path) -> Option<u64> {
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// Polls until `f` holds (5 s at most).
    fn soon(mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn the_v2_freezer_stops_a_real_process_and_thaw_lets_it_run_again() {
        let tmp = tempfile::tempdir().unwrap();
        let mnt = tmp.path().join("cgroup2");
        std::fs::create_dir(&mnt).unwrap();
        let Some(root) = cgroup2_root(&mnt) else {
            // As in the integration harness: CI demands every test runs.
            assert!(
                std::env::var_os("VMOAT_REQUIRE_ALL").is_none_or(|v| v != "1"),
                "not run: needs root and a cgroup2 hierarchy (VMOAT_REQUIRE_ALL=1 demands every test)"
            );
            eprintln!("skipped: needs root and a cgroup2 hierarchy");
            return;
        };
        let dir = root.join(format!("git-vmoat-freeze-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        assert!(
            dir.join("cgroup.freeze").exists(),
            "no v2 freezer in {dir:?}"
        );
        // The shell moves itself into the cgroup before it counts, so every count is inside.
        let file = tmp.path().join("count");
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"echo $$ > "$0"; i=0; while :; do i=$((i+1)); echo $i > "$1"; sleep 0.01; done"#)
            .arg(dir.join("cgroup.procs"))
            .arg(&file)
            .spawn()
            .unwrap();
        let result = std::panic::catch_unwind(|| {
            assert!(soon(|| counter(&file).is_some_and(|n| n > 3)), "it counts");
            assert!(!is_frozen_at(&dir));
            set_frozen_at(&dir, true).unwrap();
            assert!(is_frozen_at(&dir));
            let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap();
            assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
            let at = counter(&file).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(counter(&file), Some(at), "a frozen process does not run");
            set_frozen_at(&dir, false).unwrap();
            assert!(!is_frozen_at(&dir));
            assert!(
                soon(|| counter(&file).is_some_and(|n| n > at + 3)),
                "thawed, it counts on"
            );
        });
        let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
        let _ = child.kill();
        let _ = child.wait();
        // The last `sleep` may outlive the shell briefly; rmdir waits for the cgroup to empty.
        soon(|| std::fs::remove_dir(&dir).is_ok());
        if root == mnt {
            let _ = std::process::Command::new("umount").arg(&mnt).status();
        }
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    }

    #[test]
    fn no_memory_controller_is_an_error() {
        assert!(parse_layout(UNIFIED, |_| Some("cpu io pids".into())).is_err());
        assert!(parse_layout(UNIFIED, |_| None).is_err());
        assert!(parse_layout("", |_| None).is_err());
    }
}
