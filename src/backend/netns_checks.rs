//! What `doctor` checks for the netns backend: whether it can run here, and its uplink.

use crate::check::{Check, Level, Scope};
use crate::exec;

use super::netns::Netns;

pub(crate) fn checks(_scope: &Scope<'_>) -> Vec<Check> {
    let why = Netns::unusable();
    let colima = crate::check::version_of("colima", &["version"]).is_some();
    let mut out = vec![match &why {
        None => Check::ok("netns backend", "usable (root, iproute2, dockerd, cgroups)"),
        // Not a gap where Colima or rootless runs the VMs: the line only says why netns is not offered.
        Some(why)
            if colima || !cfg!(target_os = "linux") || super::rootless::unusable().is_none() =>
        {
            Check::ok("netns backend", format!("not used: {why}"))
        }
        Some(why) => Check::new("netns backend", Level::Warn, why.clone(), fix()),
    }];
    if why.is_none() {
        // Without it netns VMs still run, with no network beyond their own loopback.
        out.push(if exec::on_path("slirp4netns") {
            Check::ok("netns uplink", "slirp4netns found")
        } else {
            Check::new(
                "netns uplink",
                Level::Warn,
                "slirp4netns not found: netns VMs get no internet (apt, docker pull)",
                "apt install slirp4netns",
            )
        });
    }
    out
}

/// What works where netns cannot (a normal user on Linux without Colima).
fn fix() -> &'static str {
    if rustix::process::geteuid().is_root() {
        "install what it names, or install Colima (https://colima.run/docs/installation/)"
    } else {
        "install Colima (https://colima.run/docs/installation/), or use the rootless backend as this user (see the rootless lines), or run git-vmoat as root (sudo) for the netns backend"
    }
}
