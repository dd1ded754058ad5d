//! vm.cpus and vm.memory for a rootless VM: a user may set cgroup limits only where systemd
//! delegates a cgroup v2 subtree to them (their `user@UID.service`); elsewhere the limits
//! cannot be enforced, and `up` and `doctor` say so and why.

use std::path::{Path, PathBuf};

use crate::exec::{self, Cmd};

/// Why vm.cpus and vm.memory cannot be enforced for this user here (None: they can, through a
/// transient systemd user scope).
pub fn unenforced() -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    why_not(
        &mounts,
        rustix::process::geteuid().as_raw(),
        exec::on_path("systemd-run"),
        |p| std::fs::read_to_string(p).ok(),
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
    )
}

fn why_not(
    mounts: &str,
    uid: u32,
    has_systemd_run: bool,
    read: impl Fn(&Path) -> Option<String>,
    runtime_dir: Option<PathBuf>,
) -> Option<String> {
    let unified = mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 2 && f[1] == "/sys/fs/cgroup" && f[2] == "cgroup2"
    });
    if !unified {
        return Some(
            "this host mounts cgroup v1 (or a v1/v2 hybrid), and only cgroup v2 lets a normal user hold limits".into(),
        );
    }
    let service = format!("/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service");
    let Some(controllers) = read(&Path::new(&service).join("cgroup.controllers")) else {
        return Some(format!(
            "systemd gives this user no delegated cgroup ({service} is missing: no systemd user session)"
        ));
    };
    let missing: Vec<&str> = ["memory", "cpu"]
        .into_iter()
        .filter(|c| !controllers.split_whitespace().any(|x| x == *c))
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "systemd does not delegate the {} controller to this user",
            missing.join(" and ")
        ));
    }
    if !has_systemd_run {
        return Some("systemd-run is not installed".into());
    }
    let bus = runtime_dir.map(|d| d.join("systemd/private"));
    if !bus.as_deref().is_some_and(Path::exists) {
        return Some(
            "the systemd user manager cannot be reached (XDG_RUNTIME_DIR unset, or no user session)"
                .into(),
        );
    }
    None
}

/// The fix for `unenforced`'s reason, for doctor.
pub const FIX: &str = "boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1) and run from a systemd user session (loginctl enable-linger $USER); until then vm.cpus and vm.memory are not enforced";

/// The unit name of a VM's scope.
pub fn unit(id: &str) -> String {
    format!("git-vmoat-{id}.scope")
}

/// The prefix that starts rootlesskit in a transient scope holding the VM's limits.
pub fn scoped(id: &str, cpus: u64, memory_gib: u64) -> Cmd {
    Cmd::new("systemd-run")
        .args(["--user", "--scope", "--quiet", "--collect"])
        .arg(format!("--unit={}", unit(id)))
        .arg(format!("--property=MemoryMax={memory_gib}G"))
        .arg("--property=MemorySwapMax=0")
        .arg(format!("--property=CPUQuota={}%", cpus * 100))
        .arg("--")
}

/// Freezes or thaws the VM's scope (systemd freezes its cgroup).
pub fn set_frozen(id: &str, frozen: bool) -> anyhow::Result<()> {
    Cmd::new("systemctl")
        .args(["--user", if frozen { "freeze" } else { "thaw" }])
        .arg(unit(id))
        .checked()
        .map(|_| ())
}

/// The v2 cgroup dir a process is in.
pub fn cgroup_of(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n\
        cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
    const UNIFIED: &str = "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n";

    #[test]
    fn a_hybrid_host_cannot_hold_a_users_limits() {
        let why = why_not(HYBRID, 1000, true, |_| None, None).unwrap();
        assert!(why.contains("cgroup v1"), "{why}");
    }

    #[test]
    fn a_unified_host_needs_memory_and_cpu_delegated_and_a_user_manager() {
        let run = std::env::temp_dir();
        let read = |c: &'static str| move |_: &Path| Some(c.to_string());
        let why = why_not(UNIFIED, 1000, true, read("pids memory"), Some(run.clone())).unwrap();
        assert!(why.contains("the cpu controller"), "{why}");
        let why = why_not(UNIFIED, 1000, true, |_| None, None).unwrap();
        assert!(why.contains("user@1000.service is missing"), "{why}");
        let why = why_not(UNIFIED, 1000, false, read("cpu memory"), None).unwrap();
        assert!(why.contains("systemd-run"), "{why}");
        let why = why_not(UNIFIED, 1000, true, read("cpu memory"), None).unwrap();
        assert!(why.contains("user manager"), "{why}");
    }
}
