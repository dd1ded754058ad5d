//! `name`: this worktree's VM name, without touching a VM or needing a backend.

use anyhow::Result;
use serde_json::json;

use crate::cli::JsonArgs;
use crate::context::Base;
use crate::output::{self, JSON_VERSION};

pub fn run(base: Base, args: &JsonArgs) -> Result<()> {
    // A recorded VM keeps its name and backend whatever the config says now (or whether it
    // can be read at all).
    let (name, backend, wt) = match base.recorded()? {
        Some((name, owner)) => (name, owner.backend.to_string(), base.wt),
        None => {
            let ctx = base.full_without_vm()?;
            (ctx.vm_name()?, ctx.backend.name().to_string(), ctx.wt)
        }
    };
    if args.json {
        output::json(&json!({
            "version": JSON_VERSION,
            "name": name,
            "backend": backend,
            "worktree": wt.root,
        }))
    } else {
        output::data(name)
    }
}
