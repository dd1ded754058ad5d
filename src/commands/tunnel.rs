//! `tunnel`: the stack's ports on 127.0.0.1, their URLs printed one per line.

use anyhow::Result;
use serde_json::json;

use crate::cli::TunnelArgs;
use crate::context::Ctx;
use crate::error::Usage;
use crate::output::{self, JSON_VERSION};
use crate::steps::tunnel::{open, report};

/// Parses port arguments strictly: each a number from 1 to 65535.
pub(super) fn parse_ports(args: &[String]) -> Result<Vec<u16>> {
    args.iter()
        .map(|a| {
            a.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| Usage(format!("port `{a}` is not a number from 1 to 65535")).into())
        })
        .collect()
}

pub fn run(ctx: &Ctx, args: &TunnelArgs) -> Result<()> {
    let ports = parse_ports(&args.ports)?;
    let (vm, opened) = open(ctx, ports)?;
    if args.json {
        return output::json(&to_json(&vm, &opened));
    }
    report(&vm, &opened)
}

/// What `tunnel --json` prints (also the MCP server's `tunnel` result).
pub(super) fn to_json(vm: &str, opened: &[crate::tunnel::Opened]) -> serde_json::Value {
    let list: Vec<_> = opened
        .iter()
        .map(|o| json!({"guest": o.tunnel.guest, "host": o.tunnel.host, "url": o.tunnel.url(), "pid": o.tunnel.pid, "reused": o.reused, "listening": o.listening}))
        .collect();
    json!({"version": JSON_VERSION, "vm": vm, "tunnels": list})
}
