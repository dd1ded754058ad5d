//! Seeding a worktree from the main checkout, shared by `seed`, `provision`/`up` and the job.

use anyhow::Result;

use crate::context::Ctx;
use crate::output;
use crate::seed::{self, Outcome};

/// Seeds the worktree from the main checkout (config seeds + `.worktreeinclude`).
pub(crate) fn seed_worktree(ctx: &Ctx, dry_run: bool) -> Result<Vec<(String, Outcome)>> {
    if ctx.wt.is_main() {
        output::info("this is the main checkout: it is the source of seeds, nothing to copy");
        return Ok(vec![]);
    }
    let Some(main) = &ctx.wt.main_root else {
        output::warn("the main repository is bare: there is no main checkout to seed from");
        return Ok(vec![]);
    };
    let entries = seed::entries(main, &ctx.wt.root, &ctx.cfg.seed)?;
    let outcomes = seed::seed(main, &ctx.wt.root, &entries, dry_run)?;
    for (entry, outcome) in &outcomes {
        let verb = if dry_run { "would seed" } else { "seeded" };
        match outcome {
            Outcome::Copied(_) if dry_run => output::info(format!("{verb} {entry}")),
            Outcome::Copied(n) => output::info(format!(
                "{verb} {entry} ({n} file{})",
                if *n == 1 { "" } else { "s" }
            )),
            Outcome::Partial { copied, kept } => {
                output::info(format!(
                    "{verb} {entry}: {copied} copied, {kept} already present and kept"
                ));
            }
            Outcome::Exists => output::info(format!("{entry}: already in this worktree, kept")),
            Outcome::Missing => output::warn(format!(
                "seed {entry} is in neither the main checkout nor this worktree"
            )),
            Outcome::Tracked => output::warn(format!(
                "seed {entry} is tracked by git, so every checkout has it: not copied"
            )),
            Outcome::NotIgnored => output::warn(format!(
                "seed {entry} is not gitignored in the main checkout: not copied"
            )),
            Outcome::Skipped(why) => output::warn(format!("seed {entry} skipped: {why}")),
        }
    }
    Ok(outcomes)
}
