//! What `doctor` checks for the Colima backend: Colima, Lima, ssh, the hypervisor and the
//! docker CLI on the host.

use crate::check::{Check, Level, Scope, parse_version, version_of};
use crate::exec::{self, Cmd};

use super::colima::{MIN_LIMA_VERSION, MIN_VERSION, show_version};
use super::netns::Netns;

pub(crate) fn checks(scope: &Scope<'_>) -> Vec<Check> {
    let colima = version_of("colima", &["version"]);
    let mut out = vec![colima_check(colima.as_deref())];
    if colima.is_some() {
        out.push(lima_check());
        out.push(if exec::on_path("ssh") {
            Check::ok("ssh", "found")
        } else {
            Check::new(
                "ssh",
                Level::Fail,
                "not found (commands and tunnels go over ssh)",
                "install OpenSSH's client",
            )
        });
        out.push(virtualisation());
    }
    // Outside a worktree (nothing chosen): what `auto` would pick.
    let in_use = scope.chosen.map_or(colima.is_some(), |k| k == "colima");
    out.push(docker_cli(in_use));
    out
}

fn colima_check(version: Option<&str>) -> Check {
    match version {
        Some(v) if parse_version(v).is_some_and(|x| x >= MIN_VERSION) => Check::ok("colima", v),
        Some(v) => Check::new(
            "colima",
            Level::Fail,
            format!(
                "{v}: {} or newer is needed (for --port-forwarder=none)",
                show_version(MIN_VERSION)
            ),
            "upgrade Colima (`brew upgrade colima`)",
        ),
        // Not a blocker where the netns or rootless backend can run the VMs instead.
        None => Check::new(
            "colima",
            if Netns::unusable().is_none() || super::rootless::unusable().is_none() {
                Level::Warn
            } else {
                Level::Fail
            },
            "not installed",
            if cfg!(target_os = "macos") {
                "brew install colima docker"
            } else {
                "install Colima (https://colima.run/docs/installation/), or use the rootless backend (a normal user) or the netns backend (root)"
            },
        ),
    }
}

fn lima_check() -> Check {
    match version_of("limactl", &["--version"]) {
        Some(v) if parse_version(&v).is_some_and(|x| x >= MIN_LIMA_VERSION) => Check::ok("lima", v),
        Some(v) => Check::new(
            "lima",
            Level::Fail,
            format!(
                "{v}: {} or newer is needed (Colima's --port-forwarder=none)",
                show_version(MIN_LIMA_VERSION)
            ),
            "upgrade Lima (`brew upgrade lima`)",
        ),
        None => Check::new(
            "lima",
            Level::Fail,
            "limactl not found (Colima needs it)",
            "install Lima (`brew install lima`)",
        ),
    }
}

/// Colima's docker runtime fails every start without the docker CLI on the host.
fn docker_cli(in_use: bool) -> Check {
    if exec::on_path("docker") {
        return Check::ok("docker CLI", "found");
    }
    Check::new(
        "docker CLI",
        if in_use { Level::Fail } else { Level::Warn },
        "not found (Colima's docker runtime needs it on the host)",
        if cfg!(target_os = "macos") {
            "install the docker CLI (`brew install docker`)"
        } else {
            "install the docker CLI (docker-ce-cli or docker.io)"
        },
    )
}

fn virtualisation() -> Check {
    const NAME: &str = "virtualisation";
    if cfg!(target_os = "macos") {
        let ok = Cmd::new("sysctl")
            .args(["-n", "kern.hv_support"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "1");
        return if ok {
            Check::ok(NAME, "Hypervisor.framework available")
        } else {
            Check::new(
                NAME,
                Level::Fail,
                "Hypervisor.framework unavailable",
                "run on a Mac with virtualisation enabled",
            )
        };
    }
    let wsl = std::fs::read_to_string("/proc/version")
        .is_ok_and(|v| v.to_lowercase().contains("microsoft"));
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => Check::ok(NAME, "KVM available"),
        Err(e) if wsl => Check::new(
            NAME,
            Level::Warn,
            format!("no usable /dev/kvm in WSL2 ({e})"),
            "enable nested virtualisation (.wslconfig: nestedVirtualization=true)",
        ),
        Err(e) => Check::new(
            NAME,
            Level::Warn,
            format!("no usable /dev/kvm ({e}): Colima falls back to slow emulation"),
            "enable KVM (BIOS virtualisation, kvm module, /dev/kvm access)",
        ),
    }
}
