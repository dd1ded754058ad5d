//! `doctor`: checks what a first run needs and says how to fix each gap. Exit 0 only when
//! nothing blocks `up`.

use crate::backend::BackendKind;
use anyhow::Result;
use serde_json::json;

use crate::backend::netns::Netns;
use crate::exec::{self, Cmd};
use crate::output::{self, JSON_VERSION};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Check {
    name: &'static str,
    level: Level,
    detail: String,
    fix: String,
}

fn check(
    name: &'static str,
    level: Level,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    Check {
        name,
        level,
        detail: detail.into(),
        fix: fix.into(),
    }
}

fn version_of(program: &str, args: &[&str]) -> Option<String> {
    if !exec::on_path(program) {
        return None;
    }
    let out = Cmd::new(program).args(args).output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines().next().map(|l| l.trim().to_string())
}

/// The first `x.y[.z]` in a version line.
fn parse_version(line: &str) -> Option<(u64, u64, u64)> {
    line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.contains('.'))
        .and_then(|w| {
            let mut it = w.split('.').map(|p| p.parse::<u64>().ok());
            Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
        })
}

fn free_gib(path: &std::path::Path) -> Option<u64> {
    let p = path.ancestors().find(|a| a.exists())?;
    let st = rustix::fs::statvfs(p).ok()?;
    Some((st.f_bavail * st.f_frsize) >> 30)
}

pub fn run(backend_flag: Option<BackendKind>, as_json: bool) -> Result<()> {
    let mut checks = vec![];

    match version_of("git", &["--version"]) {
        Some(v) if parse_version(&v).is_some_and(|v| v >= (2, 17, 0)) => {
            checks.push(check("git", Level::Ok, v, ""));
        }
        Some(v) => checks.push(check(
            "git",
            Level::Fail,
            format!("{v} is too old"),
            "install git 2.17 or newer (worktree remove)",
        )),
        None => checks.push(check("git", Level::Fail, "not found", "install git")),
    }

    use crate::backend::colima::{MIN_LIMA_VERSION, MIN_VERSION, show_version};
    let colima = version_of("colima", &["version"]);
    let netns_why = Netns::unusable();
    match &colima {
        Some(v) if parse_version(v).is_some_and(|x| x >= MIN_VERSION) => {
            checks.push(check("colima", Level::Ok, v.clone(), ""));
        }
        Some(v) => checks.push(check(
            "colima",
            Level::Fail,
            format!(
                "{v}: {} or newer is needed (for --port-forwarder=none)",
                show_version(MIN_VERSION)
            ),
            "upgrade Colima (`brew upgrade colima`)",
        )),
        None => checks.push(check(
            "colima",
            if netns_why.is_none() {
                Level::Warn
            } else {
                Level::Fail
            },
            "not installed",
            if cfg!(target_os = "macos") {
                "brew install colima docker"
            } else {
                "install Colima (https://colima.run/docs/installation/), or use the netns backend"
            },
        )),
    }
    if colima.is_some() {
        match version_of("limactl", &["--version"]) {
            Some(v) if parse_version(&v).is_some_and(|x| x >= MIN_LIMA_VERSION) => {
                checks.push(check("lima", Level::Ok, v, ""));
            }
            Some(v) => checks.push(check(
                "lima",
                Level::Fail,
                format!(
                    "{v}: {} or newer is needed (Colima's --port-forwarder=none)",
                    show_version(MIN_LIMA_VERSION)
                ),
                "upgrade Lima (`brew upgrade lima`)",
            )),
            None => checks.push(check(
                "lima",
                Level::Fail,
                "limactl not found (Colima needs it)",
                "install Lima (`brew install lima`)",
            )),
        }
        match exec::on_path("ssh") {
            true => checks.push(check("ssh", Level::Ok, "found", "")),
            false => checks.push(check(
                "ssh",
                Level::Fail,
                "not found (commands and tunnels go over ssh)",
                "install OpenSSH's client",
            )),
        }
        checks.push(virtualisation());
    }
    checks.push(match &netns_why {
        None => check(
            "netns backend",
            Level::Ok,
            "usable (root, iproute2, dockerd, cgroups)",
            "",
        ),
        // Not a gap where Colima runs the VMs: the line only says why netns is not offered.
        Some(why) if colima.is_some() || !cfg!(target_os = "linux") => {
            check("netns backend", Level::Ok, format!("not used: {why}"), "")
        }
        Some(why) => check("netns backend", Level::Warn, why.clone(), netns_fix()),
    });
    if netns_why.is_none() {
        // Without it netns VMs still run, with no network beyond their own loopback.
        checks.push(match exec::on_path("slirp4netns") {
            true => check("netns uplink", Level::Ok, "slirp4netns found", ""),
            false => check(
                "netns uplink",
                Level::Warn,
                "slirp4netns not found: netns VMs get no internet (apt, docker pull)",
                "apt install slirp4netns",
            ),
        });
    }
    // The backend `up` would use, when the worktree's config names one.
    let mut backend_kind: Option<&'static str> = None;

    // What the current worktree adds: its config, hooks, and the size of what it asks for.
    let cwd = std::env::current_dir()?;
    let state = crate::state::State::open()?;
    if let Ok(wt) = crate::repo::discover(&cwd) {
        match crate::config::Config::load(&wt.root, &state) {
            Ok(cfg) => {
                checks.push(check(
                    "config",
                    Level::Ok,
                    format!("valid ({} file(s))", cfg.files.len()),
                    "",
                ));
                // What `up` checks first: the backend it would use must be installed and usable.
                let backend = backend_flag
                    .map_or_else(|| BackendKind::parse(&cfg.backend), Ok)
                    .and_then(|k| crate::backend::select(k, &state))
                    .and_then(|b| {
                        backend_kind = Some(b.name());
                        b.ensure_installed().map(|()| b.name())
                    });
                checks.push(match backend {
                    Ok(kind) => check("backend", Level::Ok, kind, ""),
                    Err(e) => check(
                        "backend",
                        Level::Fail,
                        format!("{e:#}"),
                        crate::error::find_hint(&e)
                            .unwrap_or("see `git vmoat doctor`'s other lines"),
                    ),
                });
                checks.push(cpu_check(cfg.cpus));
                checks.push(ram_check(&state, &wt, cfg.memory, backend_kind));
                if let Some(free) = free_gib(state.root()) {
                    let level = if free < 10 { Level::Warn } else { Level::Ok };
                    checks.push(check("disk", level, format!("{free} GiB free where VM data goes"), "free some disk space (`docker system prune` in idle worktrees, `git vmoat gc`)"));
                }
            }
            Err(e) => checks.push(check(
                "config",
                Level::Fail,
                format!("{e:#}"),
                crate::error::find_hint(&e).unwrap_or("fix the config file"),
            )),
        }
        match crate::hooks::state(&wt) {
            Ok(h) if h.installed && !h.outdated => checks.push(check(
                "hooks",
                Level::Ok,
                format!("installed in {}", h.dir.display()),
                "",
            )),
            Ok(h) if h.installed => checks.push(check(
                "hooks",
                Level::Warn,
                "installed, older version",
                "git vmoat hooks install",
            )),
            _ => checks.push(check(
                "hooks",
                Level::Warn,
                "not installed: new worktrees get no VM by themselves",
                "git vmoat hooks install",
            )),
        }
    }
    // Outside a worktree: what --backend, or `auto`, would pick.
    let colima_backend = backend_kind.map_or_else(
        || match backend_flag {
            Some(BackendKind::Colima) => true,
            Some(BackendKind::Netns) => false,
            _ => colima.is_some(),
        },
        |k| k == "colima",
    );
    checks.push(match exec::on_path("docker") {
        true => check("docker CLI", Level::Ok, "found", ""),
        // Colima's docker runtime fails every start without it.
        false => check(
            "docker CLI",
            if colima_backend {
                Level::Fail
            } else {
                Level::Warn
            },
            "not found (Colima's docker runtime needs it on the host)",
            if cfg!(target_os = "macos") {
                "install the docker CLI (`brew install docker`)"
            } else {
                "install the docker CLI (docker-ce-cli or docker.io)"
            },
        ),
    });
    checks.push(match watcher_running() {
        true => check("watcher", Level::Ok, "running", ""),
        false => check(
            "watcher",
            Level::Warn,
            "not running: removed worktrees keep their VMs until `git vmoat gc`",
            "git vmoat watch --install-service",
        ),
    });

    let ok = !checks.iter().any(|c| c.level == Level::Fail);
    if as_json {
        output::json(&json!({
            "version": JSON_VERSION,
            "ok": ok,
            "checks": checks.iter().map(|c| json!({
                "name": c.name,
                "status": match c.level { Level::Ok => "ok", Level::Warn => "warn", Level::Fail => "fail" },
                "detail": c.detail,
                "fix": c.fix,
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        let mut out = String::new();
        for c in &checks {
            let tag = match c.level {
                Level::Ok => "ok  ",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            out.push_str(&format!("{tag}  {:<14} {}\n", c.name, c.detail));
            if c.level != Level::Ok && !c.fix.is_empty() {
                out.push_str(&format!("      {:<14} fix: {}\n", "", c.fix));
            }
        }
        output::data(out)?;
    }
    if ok {
        Ok(())
    } else {
        Err(crate::error::PassThrough(1).into())
    }
}

fn virtualisation() -> Check {
    if cfg!(target_os = "macos") {
        let ok = Cmd::new("sysctl")
            .args(["-n", "kern.hv_support"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "1");
        return if ok {
            check(
                "virtualisation",
                Level::Ok,
                "Hypervisor.framework available",
                "",
            )
        } else {
            check(
                "virtualisation",
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
        Ok(_) => check("virtualisation", Level::Ok, "KVM available", ""),
        Err(e) if wsl => check(
            "virtualisation",
            Level::Warn,
            format!("no usable /dev/kvm in WSL2 ({e})"),
            "enable nested virtualisation (.wslconfig: nestedVirtualization=true)",
        ),
        Err(e) => check(
            "virtualisation",
            Level::Warn,
            format!("no usable /dev/kvm ({e}): Colima falls back to slow emulation"),
            "enable KVM (BIOS virtualisation, kvm module, /dev/kvm access)",
        ),
    }
}

/// What works where netns cannot (a normal user on Linux without Colima).
fn netns_fix() -> &'static str {
    if rustix::process::geteuid().is_root() {
        "install what it names, or install Colima (https://colima.run/docs/installation/)"
    } else {
        "install Colima (https://colima.run/docs/installation/) to run VMs as this user, or run git-vmoat as root (sudo) for the netns backend: there is no backend for a normal user without Colima"
    }
}

fn cpu_check(cpus: u64) -> Check {
    let Ok(host) = std::thread::available_parallelism().map(|n| n.get() as u64) else {
        return check("cpus", Level::Ok, format!("vm.cpus = {cpus}"), "");
    };
    let detail = format!("vm.cpus = {cpus}; this host has {host}");
    if cpus > host {
        check(
            "cpus",
            Level::Warn,
            format!("{detail}: a VM cannot use more CPUs than the host has"),
            format!("set vm.cpus = {host} (or less) in vmoat.local.toml"),
        )
    } else {
        check("cpus", Level::Ok, detail, "")
    }
}

/// Every known VM at this config's size, this worktree's own counted once. On netns the size
/// is a cgroup cap, so the sum is what they could use, not what is set aside.
fn ram_check(
    state: &crate::state::State,
    wt: &crate::repo::Worktree,
    memory_gib: u64,
    backend: Option<&str>,
) -> Check {
    let names = crate::registry::load(state).unwrap_or_default();
    let Some(host) = super::provision::host_ram_gib() else {
        return check("memory", Level::Warn, "host RAM unknown", "");
    };
    let others = if crate::registry::find(&names, wt).is_some() {
        names.len() - 1
    } else {
        names.len()
    };
    let want = memory_gib * (others as u64 + 1);
    let sum = format!(
        "{others} other VM(s) known + this worktree's at {memory_gib} GiB each = {want} GiB; host has {host} GiB"
    );
    let (detail, over) = if backend == Some("netns") {
        (
            format!("{sum} (netns: vm.memory is a cap each VM may use, nothing is reserved)"),
            memory_gib > host,
        )
    } else {
        (sum, want > host)
    };
    if over {
        check(
            "memory",
            Level::Warn,
            detail,
            "lower vm.memory in vmoat.local.toml, or `git vmoat down` idle worktrees",
        )
    } else {
        check("memory", Level::Ok, detail, "")
    }
}

fn watcher_running() -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Cmd::new("pgrep")
            .args(["-f", "git-vmoat watch"])
            .output()
            .is_ok_and(|o| o.status.success());
    };
    entries.flatten().any(|e| {
        std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
            let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
            args.len() > 1 && args[0].ends_with(b"git-vmoat") && args[1] == b"watch"
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_parse_from_tool_output() {
        assert_eq!(super::parse_version("git version 2.47.3"), Some((2, 47, 3)));
        assert_eq!(
            super::parse_version("colima version v0.10.3"),
            Some((0, 10, 3))
        );
        assert_eq!(
            super::parse_version("limactl version 2.2.0"),
            Some((2, 2, 0))
        );
        assert_eq!(super::parse_version("nothing"), None);
    }
}
