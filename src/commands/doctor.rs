//! `doctor`: checks what a first run needs and says how to fix each gap. Exit 0 only when
//! nothing blocks `up`. The checks are gathered into a report (each backend answers its own),
//! then printed as JSON or rendered as text.

use crate::backend::BackendKind;
use anyhow::Result;
use serde::Serialize;

use crate::check::{Check, Level, Scope, parse_version, version_of};
use crate::cli::DoctorArgs;
use crate::exec::Cmd;
use crate::output::{self, JSON_VERSION};
use crate::repo::Worktree;
use crate::state::State;

#[derive(Serialize, Debug)]
struct DoctorReport {
    version: u32,
    /// Nothing blocks `up`.
    ok: bool,
    checks: Vec<Check>,
}

pub fn run(backend_flag: Option<BackendKind>, args: &DoctorArgs) -> Result<()> {
    let report = gather(backend_flag.map(BackendKind::as_str))?;
    if args.json {
        output::json(&report)?;
    } else {
        output::data(report.render())?;
    }
    if report.ok {
        Ok(())
    } else {
        Err(crate::error::PassThrough(1).into())
    }
}

fn gather(backend_flag: Option<&str>) -> Result<DoctorReport> {
    let state = State::open()?;
    let mut checks = vec![git_check()];
    // What the current worktree adds: its config, hooks, and the size of what it asks for.
    let (here, chosen) = match crate::repo::discover(&std::env::current_dir()?) {
        Ok(wt) => worktree_checks(&wt, &state, backend_flag),
        Err(_) => (vec![], None),
    };
    // Outside a worktree (or with no usable backend): what --backend names, if anything.
    let chosen = chosen.or(backend_flag.filter(|f| *f != "auto"));
    let scope = Scope { chosen };
    for kind in [
        BackendKind::Colima,
        BackendKind::Netns,
        BackendKind::Rootless,
    ] {
        if let Ok(b) = crate::backend::select(kind, &state) {
            checks.extend(b.checks(&scope));
        }
    }
    checks.extend(here);
    checks.push(if watcher_running() {
        Check::ok("watcher", "running")
    } else {
        Check::new(
            "watcher",
            Level::Warn,
            "not running: removed worktrees keep their VMs until `git vmoat gc`",
            "git vmoat watch --install-service",
        )
    });
    Ok(DoctorReport {
        version: JSON_VERSION,
        ok: !checks.iter().any(|c| c.level == Level::Fail),
        checks,
    })
}

impl DoctorReport {
    fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
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
        out
    }
}

fn git_check() -> Check {
    match version_of("git", &["--version"]) {
        Some(v) if parse_version(&v).is_some_and(|v| v >= (2, 17, 0)) => Check::ok("git", v),
        Some(v) => Check::new(
            "git",
            Level::Fail,
            format!("{v} is too old"),
            "install git 2.17 or newer (worktree remove)",
        ),
        None => Check::new("git", Level::Fail, "not found", "install git"),
    }
}

/// The worktree's config, the backend `up` would use (and its kind, once known), the size of
/// what it asks for, and its hooks.
fn worktree_checks(
    wt: &Worktree,
    state: &State,
    backend_flag: Option<&str>,
) -> (Vec<Check>, Option<&'static str>) {
    let mut checks = vec![];
    let mut chosen = None;
    match crate::config::Config::load(&wt.root, state) {
        Ok(cfg) => {
            let n = cfg.files.len();
            checks.push(Check::ok("config", format!("valid ({n} file(s))")));
            // What `up` checks first: the backend it would use must be installed and usable.
            let backend = BackendKind::parse(backend_flag.unwrap_or(&cfg.backend))
                .and_then(|k| crate::backend::select(k, state));
            let reserves = backend
                .as_ref()
                .ok()
                .map(|b| (b.kind().as_str(), b.reserves_memory()));
            chosen = reserves.map(|(k, _)| k);
            checks.push(
                match backend.and_then(|b| b.ensure_installed().map(|()| b.kind().as_str())) {
                    Ok(kind) => Check::ok("backend", kind),
                    Err(e) => Check::new(
                        "backend",
                        Level::Fail,
                        format!("{e:#}"),
                        crate::error::find_hint(&e)
                            .unwrap_or("see `git vmoat doctor`'s other lines"),
                    ),
                },
            );
            checks.push(cpu_check(cfg.cpus));
            checks.push(ram_check(state, wt, cfg.memory, reserves));
            if let Some(free) = free_gib(state.root()) {
                let level = if free < 10 { Level::Warn } else { Level::Ok };
                checks.push(Check::new(
                    "disk",
                    level,
                    format!("{free} GiB free where VM data goes"),
                    "free some disk space (`docker system prune` in idle worktrees, `git vmoat gc`)",
                ));
            }
        }
        Err(e) => checks.push(Check::new(
            "config",
            Level::Fail,
            format!("{e:#}"),
            crate::error::find_hint(&e).unwrap_or("fix the config file"),
        )),
    }
    checks.push(hooks_check(wt));
    (checks, chosen)
}

fn hooks_check(wt: &Worktree) -> Check {
    match crate::hooks::state(wt) {
        Ok(h) if h.installed && !h.outdated => {
            Check::ok("hooks", format!("installed in {}", h.dir.display()))
        }
        Ok(h) if h.installed => Check::new(
            "hooks",
            Level::Warn,
            "installed, older version",
            "git vmoat hooks install",
        ),
        _ => Check::new(
            "hooks",
            Level::Warn,
            "not installed: new worktrees get no VM by themselves",
            "git vmoat hooks install",
        ),
    }
}

fn free_gib(path: &std::path::Path) -> Option<u64> {
    let p = path.ancestors().find(|a| a.exists())?;
    let st = rustix::fs::statvfs(p).ok()?;
    Some((st.f_bavail * st.f_frsize) >> 30)
}

fn cpu_check(cpus: u64) -> Check {
    let Ok(host) = std::thread::available_parallelism().map(|n| n.get() as u64) else {
        return Check::ok("cpus", format!("vm.cpus = {cpus}"));
    };
    let detail = format!("vm.cpus = {cpus}; this host has {host}");
    if cpus > host {
        Check::new(
            "cpus",
            Level::Warn,
            format!("{detail}: a VM cannot use more CPUs than the host has"),
            format!("set vm.cpus = {host} (or less) in vmoat.local.toml"),
        )
    } else {
        Check::ok("cpus", detail)
    }
}

/// Every known VM at this config's size, this worktree's own counted once. Where the backend
/// reserves nothing (a cgroup cap), the sum is what they could use, not what is set aside.
/// `backend`: the chosen backend's kind and whether it reserves memory, when known.
fn ram_check(
    state: &State,
    wt: &Worktree,
    memory_gib: u64,
    backend: Option<(&str, bool)>,
) -> Check {
    let names = crate::registry::load(state).unwrap_or_default();
    let Some(host) = crate::steps::provision::host_ram_gib() else {
        return Check::new("memory", Level::Warn, "host RAM unknown", "");
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
    let (detail, over) = match backend {
        Some((kind, false)) => (
            format!("{sum} ({kind}: vm.memory is a cap each VM may use, nothing is reserved)"),
            memory_gib > host,
        ),
        _ => (sum, want > host),
    };
    if over {
        Check::new(
            "memory",
            Level::Warn,
            detail,
            "lower vm.memory in vmoat.local.toml, or `git vmoat down` idle worktrees",
        )
    } else {
        Check::ok("memory", detail)
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
    use super::*;

    #[test]
    fn doctor_renders_each_level_with_its_fix() {
        let r = DoctorReport {
            version: JSON_VERSION,
            ok: false,
            checks: vec![
                Check::ok("git", "git version 2.47.3"),
                Check::new(
                    "colima",
                    Level::Fail,
                    "not installed",
                    "brew install colima docker",
                ),
                Check::new(
                    "hooks",
                    Level::Warn,
                    "not installed: new worktrees get no VM by themselves",
                    "git vmoat hooks install",
                ),
                Check::new("memory", Level::Warn, "host RAM unknown", ""),
            ],
        };
        insta::assert_snapshot!("doctor_human", r.render());
        insta::assert_json_snapshot!("doctor_json", r);
    }
}
