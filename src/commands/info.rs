//! `name`, `config`, `trust`, `version`: what git-vmoat knows, without touching a VM.

use anyhow::Result;
use serde_json::json;

use crate::config::{Config, KEYS};
use crate::context::Base;
use crate::output::{self, JSON_VERSION};

pub fn name(base: Base, as_json: bool) -> Result<()> {
    // A recorded VM keeps its name and backend whatever the config says now (or whether it
    // can be read at all).
    let (name, backend, wt) = match base.recorded()? {
        Some((name, owner)) => (name, owner.backend.to_string(), base.wt),
        None => {
            let ctx = base.full_without_vm()?;
            (ctx.vm_name()?, ctx.backend.name().to_string(), ctx.wt)
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

/// Needs no backend. A config that cannot be read still gets every key listed (defaults and
/// whatever reads cleanly, so the error's "lists every key" holds), then the error and exit 1.
pub fn config(base: &Base, as_json: bool) -> Result<()> {
    let (values, files, error) = match Config::load(&base.wt.root, &base.state) {
        Ok(cfg) => (cfg.values, cfg.files, None),
        Err(e) => {
            let (values, files) = Config::readable(&base.wt.root, &base.state);
            (values, files, Some(e))
        }
    };
    if as_json {
        let mut doc = crate::config::values_json(&values, &files);
        doc["error"] = error.as_ref().map(|e| format!("{e:#}")).into();
        output::json(&doc)?;
    } else {
        let mut out = String::new();
        for d in KEYS {
            let line = match values.get(d.key) {
                Some((v, src)) => format!("{:<17} = {:<32} # {src}", d.key, v.to_string()),
                None => format!("{:<17}   {:<32} # unset", d.key, "(unset)"),
            };
            out.push_str(line.trim_end());
            out.push('\n');
        }
        output::data(out)?;
    }
    // The same error every other command gives, so the listing never hides it.
    error.map_or(Ok(()), Err)
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
