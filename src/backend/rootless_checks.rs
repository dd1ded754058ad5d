//! What `doctor` checks for the rootless backend: each thing it needs (packages, subordinate
//! ids, the kernel's user namespaces, the tun device) with its fix, and whether the VMs'
//! limits can be enforced.

use crate::check::{Check, Level, Scope};

use super::rootless::{LIMITS_FIX, gaps, limits_unenforced};

pub(crate) fn checks(scope: &Scope<'_>) -> Vec<Check> {
    let gaps = gaps::gaps();
    let root = rustix::process::geteuid().is_root();
    let colima = crate::check::version_of("colima", &["version"]).is_some();
    let chosen = scope.chosen == Some("rootless");
    // Only a gap where rootless is what this user would run: not for root (netns), nor where
    // Colima runs the VMs, unless it is chosen.
    let matters = chosen || (!root && !colima && cfg!(target_os = "linux"));
    if gaps.is_empty() {
        let mut out = vec![Check::ok(
            "rootless backend",
            "usable (rootlesskit, slirp4netns, subordinate ids, user namespaces)",
        )];
        out.push(match limits_unenforced() {
            None => Check::ok(
                "rootless limits",
                "vm.cpus and vm.memory enforced (systemd user scope)",
            ),
            Some(why) => Check::new(
                "rootless limits",
                Level::Warn,
                format!("vm.cpus and vm.memory are not enforced: {why}"),
                LIMITS_FIX,
            ),
        });
        return out;
    }
    if !matters {
        return vec![Check::ok(
            "rootless backend",
            format!("not used: {}", gaps[0].what),
        )];
    }
    gaps.into_iter()
        .map(|g| Check::new("rootless backend", Level::Warn, g.what, g.fix))
        .collect()
}
