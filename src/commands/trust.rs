//! `trust`: approve what this worktree runs by itself, legacy config included.

use anyhow::Result;

use crate::output;

/// Trusts the legacy shell config as it is now, then approves the worktree's automatic
/// content for every worktree of the repository, listing it.
pub fn run() -> Result<()> {
    let wt = crate::context::here()?;
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
