//! The hidden `hook` command, called by the post-checkout hook: starts a new worktree's
//! background job. Must return at once and never fail the git command.

use anyhow::Result;

use crate::{hooks, jobs};

pub fn run(args: &[String]) -> Result<()> {
    let Some(old) = args
        .get(1)
        .filter(|_| args.first().is_some_and(|h| h == "post-checkout"))
    else {
        return Ok(());
    };
    if !hooks::is_null_oid(old) {
        return Ok(()); // a plain checkout or switch
    }
    let Ok(wt) = crate::context::here() else {
        return Ok(());
    };
    let Ok(state) = crate::state::State::open() else {
        return Ok(());
    };
    if let Err(e) = jobs::spawn(&state, &wt) {
        jobs::log_line(
            &jobs::log_path(&state, &wt),
            &format!("could not start the job: {e:#}"),
        );
    }
    Ok(())
}
