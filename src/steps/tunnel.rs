//! Opening the stack's tunnels, shared by `tunnel` and the background job of `vmoat.auto = up`.

use anyhow::Result;

use crate::backend::Io;
use crate::context::Ctx;
use crate::error::hint;
use crate::output;
use crate::tunnel;

/// The ports the stack publishes in the VM (`docker ps`), for when none are configured.
fn discover_ports(ctx: &Ctx, vm: &str) -> Result<Vec<u16>> {
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

/// Opens tunnels for `ports`, else tunnel.ports, else the containers' published ports.
pub(crate) fn open(ctx: &Ctx, mut ports: Vec<u16>) -> Result<(String, Vec<tunnel::Opened>)> {
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
pub(crate) fn report(vm: &str, opened: &[tunnel::Opened]) -> Result<()> {
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
