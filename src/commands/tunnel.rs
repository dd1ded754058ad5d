//! `tunnel` and `untunnel`: the stack's ports on 127.0.0.1.

use anyhow::Result;
use serde_json::json;

use crate::backend::Io;
use crate::context::Ctx;
use crate::error::{Usage, hint};
use crate::output::{self, JSON_VERSION};
use crate::tunnel;

/// Parses port arguments strictly: each a number from 1 to 65535.
pub fn parse_ports(args: &[String]) -> Result<Vec<u16>> {
    args.iter()
        .map(|a| {
            a.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| Usage(format!("port `{a}` is not a number from 1 to 65535")).into())
        })
        .collect()
}

/// The ports the stack publishes in the VM (`docker ps`), for when none are configured.
pub fn discover_ports(ctx: &Ctx, vm: &str) -> Result<Vec<u16>> {
    let out = ctx.backend.exec(
        vm,
        &ctx.wt.root,
        Some("docker ps --format '{{.Ports}}'"),
        Io::Capture,
    )?;
    if out.code != 0 {
        return Err(hint(
            format!(
                "listing containers in VM {vm} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            "is the stack up? (`git vmoat up`)",
        ));
    }
    Ok(tunnel::published_ports(&out.stdout_text()))
}

pub fn tunnel(ctx: &Ctx, args: &[String], as_json: bool) -> Result<()> {
    let ports = parse_ports(args)?;
    let (vm, opened) = open(ctx, ports)?;
    if as_json {
        let list: Vec<_> = opened
            .iter()
            .map(|o| json!({"guest": o.tunnel.guest, "host": o.tunnel.host, "url": o.tunnel.url(), "pid": o.tunnel.pid, "reused": o.reused, "listening": o.listening}))
            .collect();
        return output::json(&json!({"version": JSON_VERSION, "vm": vm, "tunnels": list}));
    }
    report(&vm, &opened)
}

/// Opens tunnels for `ports`, else tunnel.ports, else the containers' published ports.
pub fn open(ctx: &Ctx, mut ports: Vec<u16>) -> Result<(String, Vec<tunnel::Opened>)> {
    let vm = super::running_vm(ctx)?;
    if ports.is_empty() {
        ports = ctx.cfg.ports.clone();
    }
    if ports.is_empty() {
        ports = discover_ports(ctx, &vm)?;
    }
    if ports.is_empty() {
        return Err(hint(
            format!(
                "no ports to tunnel: no arguments, no tunnel.ports, and no published container ports in VM {vm}"
            ),
            "pass ports (`git vmoat tunnel 8080`), set tunnel.ports (EXPOSE_PORTS), or publish ports in your compose file",
        ));
    }
    let mut opened = tunnel::open(&ctx.state, ctx.backend.as_ref(), &vm, &ports)?;
    if let Some(up) = tunnel::listening(ctx.backend.as_ref(), &vm, &ctx.wt.root, &ports) {
        for o in &mut opened {
            o.listening = Some(up.contains(&o.tunnel.guest));
        }
    }
    Ok((vm, opened))
}

/// Says where each tunnel goes (stderr) and prints the URLs (stdout, one per line).
pub fn report(vm: &str, opened: &[tunnel::Opened]) -> Result<()> {
    let mut urls = String::new();
    for o in opened {
        output::info(format!(
            "{} -> port {} in {vm}{}",
            o.tunnel.url(),
            o.tunnel.guest,
            if o.reused { " (already open)" } else { "" }
        ));
        if o.listening == Some(false) {
            output::warn(format!(
                "nothing listens on port {} in {vm} yet: {} answers once a server there does (the tunnel stays open)",
                o.tunnel.guest,
                o.tunnel.url()
            ));
        }
        urls.push_str(&o.tunnel.url());
        urls.push('\n');
    }
    output::data(urls)
}

pub fn untunnel(base: crate::context::Base) -> Result<()> {
    let Some((vm, backend, base)) = base.existing_vm()? else {
        output::info("this worktree has no VM: no tunnels to close");
        return Ok(());
    };
    let n = tunnel::close_all(&base.state, backend.as_ref(), &vm)?;
    output::info(format!(
        "closed {n} tunnel{} of {vm}",
        if n == 1 { "" } else { "s" }
    ));
    Ok(())
}
