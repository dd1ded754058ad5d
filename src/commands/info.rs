//! `name`, `config`, `trust`, `version`: what git-vmoat knows, without touching a VM.

use anyhow::Result;
use serde_json::json;

use crate::config::KEYS;
use crate::context::{Base, Ctx};
use crate::output::{self, JSON_VERSION};

pub fn name(base: Base, as_json: bool) -> Result<()> {
    // A recorded VM keeps its name and backend whatever the config says now (or whether it
    // can be read at all).
    let (name, backend, wt) = match base.recorded()? {
        Some((name, owner)) => (name, owner.backend, base.wt),
        None => {
            let ctx = base.full()?;
            (ctx.vm_name()?, ctx.backend.kind().to_string(), ctx.wt)
        }
    };
    if as_json {
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

pub fn config(ctx: &Ctx, as_json: bool) -> Result<()> {
    if as_json {
        return output::json(&ctx.cfg.to_json());
    }
    let mut out = String::new();
    for d in KEYS {
        let line = match ctx.cfg.values.get(d.key) {
            Some((v, src)) => format!("{:<17} = {:<32} # {src}", d.key, v.to_string()),
            None => format!("{:<17}   {:<32} # unset", d.key, "(unset)"),
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    output::data(out)
}

/// Trusts the legacy shell config as it is now, then approves the worktree's automatic
/// content for every worktree of the repository, listing it.
pub fn trust() -> Result<()> {
    let wt = crate::repo::discover(&std::env::current_dir()?)?;
    let state = crate::state::State::open()?;
    for (path, hash) in crate::config::trust(&wt, &state)? {
        output::info(format!(
            "trusted {} (sha256 {})",
            path.display(),
            &hash[..16]
        ));
    }
    let content = crate::consent::approve(&wt, &state)?;
    crate::consent::show_approved(&content);
    Ok(())
}

pub fn version() -> Result<()> {
    output::data(format!("git-vmoat {}", env!("CARGO_PKG_VERSION")))
}
