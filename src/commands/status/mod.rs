//! `status`: this worktree's VM (or, with --all, every VM of the repository). Each is a report
//! gathered first, then printed as JSON or rendered as text from the same value.

mod all;
mod worktree;

use anyhow::Result;

use crate::cli::StatusArgs;
use crate::context::Base;
use crate::output;
use crate::repo::Worktree;

/// `status`: needs no backend and no readable config (it reports both).
pub fn run(base: Base, args: &StatusArgs) -> Result<()> {
    crate::steps::committed::warn_if_config_uncommitted(&base.wt);
    let report = worktree::gather(base)?;
    if args.json {
        output::json(&report)
    } else {
        output::data(report.render())
    }
}

/// `status --all`: every VM of this repository, with its worktree; orphans marked.
pub fn run_all(args: &StatusArgs) -> Result<()> {
    let report = all::gather()?;
    if args.json {
        return output::json(&report);
    }
    match report.render() {
        Some(text) => output::data(text),
        None => {
            output::info("no VMs for this repository yet (`git vmoat up` makes one)");
            Ok(())
        }
    }
}

/// What `status --json` prints, as a value (the MCP server's `status` tool).
pub(super) fn json(base: Base) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(worktree::gather(base)?)?)
}

/// What `status --all --json` prints for the repository of `wt`, as a value.
pub(super) fn all_json(wt: Worktree) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(all::gather_at(wt)?)?)
}
