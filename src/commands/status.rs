//! `status`: the VM, its containers, health and tunnels (dead ones marked).

use anyhow::Result;
use serde_json::json;

use crate::backend::{BackendKind, Io, VmState};
use crate::context::Base;
use crate::output::{self, JSON_VERSION};
use crate::tunnel;

/// What `status` looks at: the VM (recorded, or the one `up` would make), its backend, and the
/// config when it can be read (a changed, untrusted config must not hide the VM's state).
struct View {
    wt: crate::repo::Worktree,
    state: crate::state::State,
    vm: String,
    backend: Box<dyn crate::backend::Backend>,
    cfg: Option<crate::config::Config>,
    cfg_error: Option<String>,
    recorded: bool,
}

pub fn run(base: Base, as_json: bool) -> Result<()> {
    let view = match base.recorded()? {
        Some((vm, owner)) => {
            let (cfg, cfg_error) = match crate::config::Config::load(&base.wt.root, &base.state) {
                Ok(c) => (Some(c), None),
                Err(e) => (None, Some(format!("{e:#}"))),
            };
            View {
                backend: crate::backend::select(owner.backend, &base.state)?,
                wt: base.wt,
                state: base.state,
                vm,
                cfg,
                cfg_error,
                recorded: true,
            }
        }
        None => {
            let ctx = base.full_without_vm()?;
            let vm = ctx.vm_name()?;
            View {
                wt: ctx.wt,
                state: ctx.state,
                vm,
                backend: ctx.backend,
                cfg: Some(ctx.cfg),
                cfg_error: None,
                recorded: false,
            }
        }
    };
    render(&view, as_json)
}

fn render(ctx: &View, as_json: bool) -> Result<()> {
    // No backend here (Colima not installed yet, netns not usable) is something to report,
    // not a failure: the worktree and its VM's name are known without one.
    let unavailable = ctx.backend.ensure_installed().err().map(|e| {
        (
            format!("{e:#}"),
            crate::error::find_hint(&e).unwrap_or("").to_string(),
        )
    });
    let vm = ctx.vm.clone();
    let health_url = ctx.cfg.as_ref().and_then(|c| c.health_url.clone());
    let info = match &unavailable {
        None => ctx.backend.info(&vm)?,
        // Without a backend no VM can have been made, but a recorded one's state is unknown.
        Some(_) if ctx.recorded => crate::backend::VmInfo {
            state: VmState::Unknown,
            ..crate::backend::VmInfo::missing()
        },
        Some(_) => crate::backend::VmInfo::missing(),
    };
    let running = info.state == VmState::Running;
    let mut containers = vec![];
    let mut docker_error: Option<String> = None;
    let mut health: Option<bool> = None;
    if running {
        let out = ctx.backend.exec(
            &vm,
            &ctx.wt.root,
            Some("docker ps --format '{{.Names}}\t{{.Status}}'"),
            Io::Capture,
        )?;
        if out.code != 0 {
            docker_error = Some(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        for line in out.stdout_text().lines().filter(|l| !l.is_empty()) {
            let (name, st) = line.split_once('\t').unwrap_or((line, ""));
            containers.push((name.to_string(), st.to_string()));
        }
        if let Some(url) = &health_url {
            let probe = super::provision::health_probe(url);
            health = Some(
                ctx.backend
                    .exec(&vm, &ctx.wt.root, Some(&probe), Io::Capture)?
                    .code
                    == 0,
            );
        }
    }
    let tunnels = tunnel::list(&ctx.state, &vm)?;
    // Which live tunnels reach a listener in the VM (None: not known).
    let listeners: Option<Vec<u16>> = if running {
        let ports: Vec<u16> = tunnels
            .iter()
            .filter(|(_, a)| *a)
            .map(|(t, _)| t.guest)
            .collect();
        tunnel::listening(ctx.backend.as_ref(), &vm, &ctx.wt.root, &ports)
    } else {
        None
    };
    let listening = |t: &tunnel::Tunnel| listeners.as_ref().map(|l| l.contains(&t.guest));
    let job = super::git_side::job_line(&ctx.state, &ctx.wt);
    if as_json {
        return output::json(&json!({
            "version": JSON_VERSION,
            "vm": vm,
            "backend": ctx.backend.name(),
            "backend_available": unavailable.is_none(),
            "backend_error": unavailable.as_ref().map(|(m, _)| m),
            "worktree": ctx.wt.root,
            "job": job.as_ref().map(|(_, j)| j.clone()),
            "state": info.state.to_string(),
            // null: a recorded VM whose backend cannot be asked.
            "exists": (unavailable.is_none() || !ctx.recorded).then_some(info.state != VmState::Missing),
            "cpus": info.cpus,
            "memory_bytes": info.memory_bytes,
            "disk_bytes": info.disk_bytes,
            "docker_error": docker_error,
            "containers": containers.iter().map(|(n, s)| json!({"name": n, "status": s})).collect::<Vec<_>>(),
            "config_error": ctx.cfg_error,
            "health": health_url.as_ref().map(|u| json!({"url": u, "ok": health})),
            "tunnels": tunnels.iter().map(|(t, alive)| json!({"guest": t.guest, "host": t.host, "url": t.url(), "pid": t.pid, "alive": alive, "listening": if *alive { listening(t) } else { None }})).collect::<Vec<_>>(),
        }));
    }
    let shape = match ctx.backend.kind() {
        BackendKind::Auto => "no backend available".to_string(),
        kind => format!("{kind}, {}", info.state),
    };
    let mut out = format!(
        "vm:        {vm} ({shape})\nworktree:  {}\n",
        ctx.wt.root.display()
    );
    if let Some((line, _)) = &job {
        out.push_str(&format!("job:       {line}\n"));
    }
    if let Some(e) = &ctx.cfg_error {
        let first = e.lines().next().unwrap_or("");
        out.push_str(&format!("config:    cannot be read: {first}\n"));
    }
    if let Some((message, hint)) = &unavailable {
        out.push_str(&format!("backend:   {message}\n"));
        if !hint.is_empty() {
            out.push_str(&format!("           {hint}\n"));
        }
    } else if info.state == VmState::Missing && job.is_none() {
        out.push_str("           no VM yet: `git vmoat up` creates it\n");
    }
    if let (Some(c), Some(m)) = (info.cpus, info.memory_bytes) {
        out.push_str(&format!("size:      {c} CPU, {} GiB RAM\n", m >> 30));
    }
    if running {
        out.push_str("containers:");
        if let Some(e) = &docker_error {
            out.push_str(&format!(" unknown: `docker ps` failed in the VM: {e}\n"));
        } else if containers.is_empty() {
            out.push_str(" none running\n");
        } else {
            out.push('\n');
            for (n, s) in &containers {
                out.push_str(&format!("  {n:<24} {s}\n"));
            }
        }
    }
    if let Some(url) = &health_url {
        let h = match health {
            Some(true) => "ok",
            Some(false) => "not ready",
            None => "unknown (VM not running)",
        };
        out.push_str(&format!("health:    {h} ({url})\n"));
    }
    if !tunnels.is_empty() {
        out.push_str("tunnels:\n");
        for (t, alive) in &tunnels {
            let mark = if !*alive {
                "  DEAD: run `git vmoat tunnel` to reopen"
            } else if listening(t) == Some(false) {
                "  nothing listening yet"
            } else {
                ""
            };
            out.push_str(&format!("  {} -> {}{mark}\n", t.url(), t.guest));
        }
    }
    output::data(out)
}
