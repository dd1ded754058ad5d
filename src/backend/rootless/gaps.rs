//! What the rootless backend needs of a host and a user, each gap with its fix: `auto` asks
//! whether there is any, doctor lists them all.

use crate::exec;

/// One thing missing, and how to get it.
pub struct Gap {
    pub what: String,
    pub fix: String,
}

fn gap(what: impl Into<String>, fix: impl Into<String>) -> Gap {
    Gap {
        what: what.into(),
        fix: fix.into(),
    }
}

/// Why this backend cannot run here (None: it can): the first gap.
pub fn unusable() -> Option<String> {
    gaps().into_iter().next().map(|g| g.what)
}

/// Every gap, the host's first (Linux, not root), then the tools, then the user's.
pub fn gaps() -> Vec<Gap> {
    if !cfg!(target_os = "linux") {
        return vec![gap("the rootless backend needs Linux", "use Colima")];
    }
    if rustix::process::geteuid().is_root() {
        return vec![gap(
            "the rootless backend is for normal users (root has the netns backend)",
            "run git-vmoat as your own user, or use backend = \"netns\" as root",
        )];
    }
    let mut out = vec![];
    for (tool, package) in [
        ("rootlesskit", "rootlesskit"),
        ("slirp4netns", "slirp4netns"),
        ("newuidmap", "uidmap"),
        ("newgidmap", "uidmap"),
        ("nsenter", "util-linux"),
        ("dockerd", "docker.io"),
        ("docker", "docker.io"),
    ] {
        if !exec::on_path(tool) && super::daemon::system_tool(tool).is_none() {
            out.push(gap(
                format!("the rootless backend needs `{tool}`"),
                format!("sudo apt install {package}"),
            ));
        }
    }
    if super::daemon::docker_proxy().is_none() {
        out.push(gap(
            "the rootless backend needs docker-proxy (published ports stay inside the VM)",
            "sudo apt install docker.io",
        ));
    }
    out.extend(kernel_gaps());
    out.extend(user_gaps());
    out
}

fn kernel_gaps() -> Vec<Gap> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut out = vec![];
    // Debian's own switch (absent on kernels without the patch, where the default is on).
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        out.push(gap(
            "the kernel forbids unprivileged user namespaces (kernel.unprivileged_userns_clone = 0)",
            "sudo sysctl -w kernel.unprivileged_userns_clone=1 (and set it in /etc/sysctl.d)",
        ));
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        out.push(gap(
            "the kernel allows no user namespaces (user.max_user_namespaces = 0)",
            "sudo sysctl -w user.max_user_namespaces=15000 (and set it in /etc/sysctl.d)",
        ));
    }
    if !tun_usable() {
        out.push(gap(
            "/dev/net/tun cannot be opened by this user: slirp4netns needs it for the VM's network",
            "sudo chmod 0666 /dev/net/tun (udev's default; make it stick with a udev rule)",
        ));
    }
    out
}

/// Whether this user may open the tun device (what slirp4netns does inside the namespace,
/// where the device's owner, host root, is unmapped: so only the mode's `other` bits count).
fn tun_usable() -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata("/dev/net/tun").is_ok_and(|m| m.permissions().mode() & 0o006 == 0o006)
}

fn user_gaps() -> Vec<Gap> {
    let uid = rustix::process::geteuid().as_raw();
    let name = user_name(uid);
    let mut out = vec![];
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if !has_range(&text, &uid.to_string(), name.as_deref()) {
            let who = name.clone().unwrap_or_else(|| uid.to_string());
            out.push(gap(
                format!("{file} has no range for {who}: the VM needs subordinate ids to map"),
                format!(
                    "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who} (a range no other user has)"
                ),
            ));
        }
    }
    out
}

/// The login name of `uid`, from /etc/passwd.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
    })
}

/// Whether /etc/subuid (or subgid) text gives `uid` (or the user `name`) a range of ids.
fn has_range(text: &str, uid: &str, name: Option<&str>) -> bool {
    text.lines().any(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        f.len() == 3
            && (f[0] == uid || Some(f[0]) == name)
            && f[2].parse::<u64>().is_ok_and(|n| n >= 65536)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subuid_range_is_found_by_name_or_uid_and_must_be_big_enough() {
        let text = "alice:100000:65536\n1001:165536:65536\nbob:231072:1000\n";
        assert!(has_range(text, "1000", Some("alice")));
        assert!(has_range(text, "1001", Some("carol")));
        assert!(
            !has_range(text, "1002", Some("bob")),
            "too small for an image's ids"
        );
        assert!(!has_range(text, "1003", None));
        assert!(!has_range("", "1000", Some("alice")));
    }
}
