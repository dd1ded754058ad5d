//! `status` of one worktree: the VM, its containers, health, tunnels (dead ones marked) and
//! background job, gathered into a report, then rendered.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::backend::{Backend, Io, VmInfo, VmState};
use crate::config::Config;
use crate::context::Base;
use crate::jobs::JobState;
use crate::output::JSON_VERSION;
use crate::repo::Worktree;
use crate::state::State;
use crate::tunnel;

#[derive(Serialize, Debug)]
pub(super) struct StatusReport {
    version: u32,
    vm: String,
    backend: String,
    backend_available: bool,
    backend_error: Option<String>,
    /// What to do about `backend_error` (text only).
    #[serde(skip)]
    backend_hint: Option<String>,
    worktree: PathBuf,
    job: Option<JobReport>,
    state: String,
    /// When it was suspended (Unix seconds); null when it is not.
    suspended_since: Option<u64>,
    /// null: a recorded VM whose backend cannot be asked.
    exists: Option<bool>,
    #[serde(skip)]
    running: bool,
    cpus: Option<u64>,
    memory_bytes: Option<u64>,
    disk_bytes: Option<u64>,
    docker_error: Option<String>,
    containers: Vec<Container>,
    config_error: Option<String>,
    health: Option<Health>,
    tunnels: Vec<TunnelRow>,
}

#[derive(Serialize, Debug)]
struct JobReport {
    state: JobState,
    started: u64,
    finished: Option<u64>,
    error: Option<String>,
}

#[derive(Serialize, Debug)]
struct Container {
    name: String,
    status: String,
}

#[derive(Serialize, Debug)]
struct Health {
    url: String,
    /// None: not known (the VM is not running).
    ok: Option<bool>,
}

#[derive(Serialize, Debug)]
struct TunnelRow {
    guest: u16,
    host: u16,
    url: String,
    pid: u32,
    alive: bool,
    /// Whether a server in the VM listens on the port (None: not known).
    listening: Option<bool>,
}

/// What `status` looks at: the VM (recorded, or the one `up` would make), its backend, and the
/// config when it can be read (a changed, untrusted config must not hide the VM's state).
struct View {
    wt: Worktree,
    state: State,
    vm: String,
    backend: Box<dyn Backend>,
    cfg: Option<Config>,
    cfg_error: Option<String>,
    recorded: bool,
}

fn view(base: Base) -> Result<View> {
    if let Some((vm, owner)) = base.recorded()? {
        let (cfg, cfg_error) = match Config::load(&base.wt.root, &base.state) {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        return Ok(View {
            backend: crate::backend::select(owner.backend, &base.state)?,
            wt: base.wt,
            state: base.state,
            vm,
            cfg,
            cfg_error,
            recorded: true,
        });
    }
    let ctx = base.full_without_vm()?;
    let vm = ctx.vm_name()?;
    Ok(View {
        wt: ctx.wt,
        state: ctx.state,
        vm,
        backend: ctx.backend,
        cfg: Some(ctx.cfg),
        cfg_error: None,
        recorded: false,
    })
}

pub(super) fn gather(base: Base) -> Result<StatusReport> {
    let v = view(base)?;
    // No backend here (Colima not installed yet, netns not usable) is something to report,
    // not a failure: the worktree and its VM's name are known without one.
    let unavailable = v.backend.ensure_installed().err();
    let info = match &unavailable {
        None => v.backend.info(&v.vm)?,
        // Without a backend no VM can have been made, but a recorded one's state is unknown.
        Some(_) if v.recorded => VmInfo {
            state: VmState::Unknown,
            ..VmInfo::missing()
        },
        Some(_) => VmInfo::missing(),
    };
    let running = info.state == VmState::Running;
    let health_url = v.cfg.as_ref().and_then(|c| c.health_url.clone());
    let mut report = StatusReport {
        version: JSON_VERSION,
        vm: v.vm.clone(),
        backend: v.backend.name().to_string(),
        backend_available: unavailable.is_none(),
        backend_error: unavailable.as_ref().map(|e| format!("{e:#}")),
        backend_hint: unavailable
            .as_ref()
            .and_then(|e| crate::error::find_hint(e).map(String::from)),
        worktree: v.wt.root.clone(),
        job: job(&v.state, &v.wt),
        state: info.state.to_string(),
        suspended_since: crate::backend::suspend::record(&v.state, &v.vm).map(|r| r.since),
        exists: (unavailable.is_none() || !v.recorded).then_some(info.state != VmState::Missing),
        running,
        cpus: info.cpus,
        memory_bytes: info.memory_bytes,
        disk_bytes: info.disk_bytes,
        docker_error: None,
        containers: vec![],
        config_error: v.cfg_error.clone(),
        health: health_url.map(|url| Health { url, ok: None }),
        tunnels: vec![],
    };
    if running {
        inside(&v, &mut report)?;
    }
    report.tunnels = tunnels(&v, running)?;
    Ok(report)
}

/// What only a running VM can say: its containers and whether the stack answers.
fn inside(v: &View, report: &mut StatusReport) -> Result<()> {
    let out = v.backend.exec(
        &v.vm,
        &v.wt.root,
        Some("docker ps --format '{{.Names}}\t{{.Status}}'"),
        Io::Capture,
    )?;
    if out.code != 0 {
        report.docker_error = Some(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    for line in out.stdout_text().lines().filter(|l| !l.is_empty()) {
        let (name, status) = line.split_once('\t').unwrap_or((line, ""));
        report.containers.push(Container {
            name: name.to_string(),
            status: status.to_string(),
        });
    }
    if let Some(h) = &mut report.health {
        let probe = crate::steps::up::health_probe(&h.url);
        let code = v
            .backend
            .exec(&v.vm, &v.wt.root, Some(&probe), Io::Capture)?
            .code;
        h.ok = Some(code == 0);
    }
    Ok(())
}

fn tunnels(v: &View, running: bool) -> Result<Vec<TunnelRow>> {
    let tunnels = tunnel::list(&v.state, &v.vm)?;
    // Which live tunnels reach a listener in the VM (None: not known).
    let listeners: Option<Vec<u16>> = if running {
        let ports: Vec<u16> = tunnels
            .iter()
            .filter(|(_, a)| *a)
            .map(|(t, _)| t.guest)
            .collect();
        tunnel::listening(v.backend.as_ref(), &v.vm, &v.wt.root, &ports)
    } else {
        None
    };
    Ok(tunnels
        .into_iter()
        .map(|(t, alive)| TunnelRow {
            guest: t.guest,
            host: t.host,
            url: t.url(),
            pid: t.pid,
            alive,
            listening: listeners
                .as_ref()
                .filter(|_| alive)
                .map(|l| l.contains(&t.guest)),
        })
        .collect())
}

/// The worktree's background job, if it had one.
fn job(state: &State, wt: &Worktree) -> Option<JobReport> {
    let job = crate::jobs::read(state, wt).ok()??;
    Some(JobReport {
        state: job.effective_state(),
        started: job.started,
        finished: job.finished,
        error: job.error,
    })
}

impl JobReport {
    fn line(&self) -> String {
        match self.state {
            JobState::Running => "running (follow it with `git vmoat logs -f`)".to_string(),
            JobState::Ok => "done".to_string(),
            JobState::NeedsApproval => format!(
                "NEEDS APPROVAL, nothing ran: {} (see `git vmoat logs`)",
                self.error.clone().unwrap_or_default()
            ),
            JobState::Failed => format!(
                "FAILED: {} (see `git vmoat logs`)",
                self.error
                    .as_deref()
                    .unwrap_or("the job died")
                    .lines()
                    .next()
                    .unwrap_or("")
            ),
        }
    }
}

impl StatusReport {
    pub(super) fn render(&self) -> String {
        self.render_at(crate::backend::suspend::now_secs())
    }

    fn render_at(&self, now: u64) -> String {
        let shape = match self.backend.as_str() {
            "none" => "no backend available".to_string(),
            kind => format!("{kind}, {}", self.state),
        };
        let mut out = format!(
            "vm:        {} ({shape})\nworktree:  {}\n",
            self.vm,
            self.worktree.display()
        );
        if let Some(since) = self.suspended_since {
            let ago = std::time::Duration::from_secs(now.saturating_sub(since));
            out.push_str(&format!(
                "suspended: since {} ago (any command that needs it resumes it)\n",
                crate::output::duration(ago)
            ));
        }
        if let Some(job) = &self.job {
            out.push_str(&format!("job:       {}\n", job.line()));
        }
        if let Some(e) = &self.config_error {
            let first = e.lines().next().unwrap_or("");
            out.push_str(&format!("config:    cannot be read: {first}\n"));
        }
        if let Some(message) = &self.backend_error {
            out.push_str(&format!("backend:   {message}\n"));
            if let Some(hint) = self.backend_hint.as_deref().filter(|h| !h.is_empty()) {
                out.push_str(&format!("           {hint}\n"));
            }
        } else if self.exists == Some(false) && self.job.is_none() {
            out.push_str("           no VM yet: `git vmoat up` creates it\n");
        }
        if let (Some(c), Some(m)) = (self.cpus, self.memory_bytes) {
            out.push_str(&format!("size:      {c} CPU, {} GiB RAM\n", m >> 30));
        }
        if self.running {
            self.render_containers(&mut out);
        }
        if let Some(h) = &self.health {
            let state = match h.ok {
                Some(true) => "ok",
                Some(false) => "not ready",
                None => "unknown (VM not running)",
            };
            out.push_str(&format!("health:    {state} ({})\n", h.url));
        }
        if !self.tunnels.is_empty() {
            out.push_str("tunnels:\n");
            for t in &self.tunnels {
                let mark = if !t.alive {
                    "  DEAD: run `git vmoat tunnel` to reopen"
                } else if t.listening == Some(false) {
                    "  nothing listening yet"
                } else {
                    ""
                };
                out.push_str(&format!("  {} -> {}{mark}\n", t.url, t.guest));
            }
        }
        out
    }

    fn render_containers(&self, out: &mut String) {
        out.push_str("containers:");
        if let Some(e) = &self.docker_error {
            out.push_str(&format!(" unknown: `docker ps` failed in the VM: {e}\n"));
        } else if self.containers.is_empty() {
            out.push_str(" none running\n");
        } else {
            out.push('\n');
            for c in &self.containers {
                out.push_str(&format!("  {:<24} {}\n", c.name, c.status));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> StatusReport {
        StatusReport {
            version: JSON_VERSION,
            vm: "wt-app-feature".into(),
            backend: "colima".into(),
            backend_available: true,
            backend_error: None,
            backend_hint: None,
            worktree: "/src/app-feature".into(),
            job: Some(JobReport {
                state: JobState::Ok,
                started: 1_700_000_000,
                finished: Some(1_700_000_090),
                error: None,
            }),
            state: "Running".into(),
            suspended_since: None,
            exists: Some(true),
            running: true,
            cpus: Some(4),
            memory_bytes: Some(8 << 30),
            disk_bytes: Some(60 << 30),
            docker_error: None,
            containers: vec![
                Container {
                    name: "app-web-1".into(),
                    status: "Up 2 minutes".into(),
                },
                Container {
                    name: "app-db-1".into(),
                    status: "Up 2 minutes (healthy)".into(),
                },
            ],
            config_error: None,
            health: Some(Health {
                url: "http://localhost:8080/health".into(),
                ok: Some(true),
            }),
            tunnels: vec![
                TunnelRow {
                    guest: 8080,
                    host: 8080,
                    url: "http://localhost:8080".into(),
                    pid: 4242,
                    alive: true,
                    listening: Some(true),
                },
                TunnelRow {
                    guest: 5432,
                    host: 15432,
                    url: "http://localhost:15432".into(),
                    pid: 4243,
                    alive: false,
                    listening: None,
                },
            ],
        }
    }

    fn no_backend() -> StatusReport {
        StatusReport {
            vm: "wt-app".into(),
            backend: "none".into(),
            backend_available: false,
            backend_error: Some(
                "no VM backend available: colima is not installed, and the netns backend needs root (network namespaces and cgroups)".into(),
            ),
            backend_hint: Some("install Colima: `brew install colima docker`".into()),
            worktree: "/src/app".into(),
            job: None,
            state: "absent".into(),
            exists: Some(false),
            running: false,
            cpus: None,
            memory_bytes: None,
            disk_bytes: None,
            containers: vec![],
            health: None,
            tunnels: vec![],
            ..running()
        }
    }

    #[test]
    fn status_of_a_running_vm() {
        insta::assert_snapshot!("status_running_human", running().render());
        insta::assert_json_snapshot!("status_running_json", running());
    }

    #[test]
    fn status_without_a_backend_says_what_to_install() {
        insta::assert_snapshot!("status_no_backend_human", no_backend().render());
        insta::assert_json_snapshot!("status_no_backend_json", no_backend());
    }

    #[test]
    fn status_of_a_suspended_vm_says_since_when() {
        let r = StatusReport {
            state: "Suspended".into(),
            suspended_since: Some(1_700_000_000),
            running: false,
            containers: vec![],
            ..running()
        };
        let text = r.render_at(1_700_000_065);
        assert!(
            text.contains("(netns, Suspended)") || text.contains("(colima, Suspended)"),
            "{text}"
        );
        assert!(text.contains("suspended: since 1m05s ago"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["suspended_since"], 1_700_000_000);
        assert_eq!(
            serde_json::to_value(running()).unwrap()["suspended_since"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn status_of_a_stopped_vm_with_a_failed_job_and_a_broken_config() {
        let r = StatusReport {
            state: "Stopped".into(),
            running: false,
            job: Some(JobReport {
                state: JobState::Failed,
                started: 1_700_000_000,
                finished: Some(1_700_000_010),
                error: Some(
                    "the up command `make up` failed in VM wt-app-feature (exit 2)\nmore".into(),
                ),
            }),
            config_error: Some("vmoat.toml: unknown key `vm.cpu`\n(did you mean vm.cpus?)".into()),
            health: Some(Health {
                url: "http://localhost:8080/health".into(),
                ok: None,
            }),
            tunnels: vec![],
            ..running()
        };
        insta::assert_snapshot!(r.render());
    }
}
