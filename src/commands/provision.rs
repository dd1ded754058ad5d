//! `provision`: create or start this worktree's VM and provision it, every step.

use anyhow::Result;

use crate::context::Ctx;
use crate::steps::provision::{Mode, provision};

pub fn run(ctx: &Ctx, a: &crate::cli::StartArgs) -> Result<()> {
    provision(ctx, Mode::Always, a.force).map(drop)
}
