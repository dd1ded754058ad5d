//! `seed`: copy gitignored files (provision.seed, .worktreeinclude) from the main checkout;
//! never overwrites. Needs no VM.

use anyhow::Result;

use crate::cli::SeedArgs;
use crate::context::Ctx;
use crate::seed::Outcome;

/// Says what it copied on stderr as it goes, and lists the entries on stdout.
pub fn run(ctx: &Ctx, args: &SeedArgs) -> Result<()> {
    let outcomes = crate::steps::seed::seed_worktree(ctx, args.dry_run)?;
    let list: Vec<String> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Copied(_) | Outcome::Partial { .. }))
        .map(|(e, _)| e.clone())
        .collect();
    if !list.is_empty() {
        crate::output::data(list.join("\n"))?;
    }
    Ok(())
}
