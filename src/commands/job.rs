//! The hidden `__job` command: a new worktree's background job. Seeds, then provisions (or
//! brings up and tunnels) the VM, as `vmoat.auto` says, recording how it went for `status`.

use anyhow::Result;

use crate::context::Base;
use crate::jobs::{self, Job, JobState};
use crate::output;
use crate::repo;
use crate::state::State;
use crate::steps;

pub fn run(backend_flag: Option<crate::backend::BackendKind>) -> Result<()> {
    let state = State::open()?;
    let wt = match crate::context::here() {
        Ok(wt) => wt,
        Err(e) => {
            // Removed before the job could start: say so in its record, not "the job died".
            let why =
                format!("the worktree could not be read when its job started (removed?): {e:#}");
            if let Ok(key) = std::env::var(jobs::KEY_ENV) {
                let _ = jobs::fail_by_key(&state, &key, &why);
            }
            return Err(e);
        }
    };
    // The worktree may be removed while the job runs; every tool it starts (colima, ssh, git)
    // must still work then, so nothing may depend on the worktree as the current directory.
    std::env::set_current_dir("/")?;
    let requested = std::env::var_os(jobs::UP_ENV).is_some_and(|v| v == "1");
    let mut record = jobs::read(&state, &wt)?.unwrap_or(Job {
        pid: std::process::id(),
        worktree: wt.root.clone(),
        state: JobState::Running,
        started: jobs::now(),
        finished: None,
        error: None,
        up: requested,
    });
    record.pid = std::process::id();
    jobs::write(&state, &wt, &record)?;
    output::info(format!("job for {} started", wt.root.display()));
    if !crate::consent::check_auto(&wt, &state, requested)? {
        return Ok(()); // not approved: recorded as needs-approval, nothing of the project ran
    }
    let result = if requested {
        // An agent's `up` (the MCP server): what `git vmoat up` does, in the background.
        Base::at(wt.clone(), state.clone(), backend_flag)
            .full()
            .and_then(|ctx| steps::up::up(&ctx, false))
    } else {
        work(&wt, &state, backend_flag)
    };
    // The worktree may have been removed while its VM was being made (the watcher, if any,
    // may have looked before the VM was recorded): if git forgot it, leave no VM behind.
    // Whatever the steps said (an up in a vanished directory fails), a forgotten worktree's
    // VM goes.
    let result = match reclaim_if_forgotten(&wt, &state) {
        Ok(true) => Ok(()),
        Ok(false) => result,
        Err(e) => Err(e),
    };
    finish(&state, &wt, record, result)
}

/// The job's steps: seed, then provision or up (and tunnel), as `vmoat.auto` says.
fn work(
    wt: &repo::Worktree,
    state: &State,
    backend_flag: Option<crate::backend::BackendKind>,
) -> Result<()> {
    let Some(auto) = crate::hooks::AutoMode::of(&wt.root)? else {
        output::info(
            "vmoat.auto is not set for this repository: nothing to do (`git vmoat hooks install` sets it)",
        );
        return Ok(());
    };
    if !still_listed(wt) {
        output::info("git no longer lists this worktree: nothing to do");
        return Ok(());
    }
    let ctx = Base::at(wt.clone(), state.clone(), backend_flag).full()?;
    steps::seed::seed_worktree(&ctx, false)?;
    if auto == crate::hooks::AutoMode::Up {
        steps::up::up(&ctx, false)?;
        // The stack is meant to be reachable the moment it is up: tunnel it too.
        match steps::tunnel::open(&ctx, vec![]) {
            Ok((vm, opened)) => steps::tunnel::report(&vm, &opened),
            Err(e) => {
                output::info(format!("no tunnel opened: {e:#}"));
                Ok(())
            }
        }
    } else {
        steps::provision::provision(&ctx, steps::provision::Mode::IfNeeded, false).map(drop)
    }
}

/// Records how the job ended; a failure was reported in the log, so it exits 1 silently.
fn finish(state: &State, wt: &repo::Worktree, mut record: Job, result: Result<()>) -> Result<()> {
    record.finished = Some(jobs::now());
    match &result {
        Ok(()) => {
            record.state = JobState::Ok;
            output::info("job done");
        }
        Err(e) => {
            record.state = JobState::Failed;
            record.error = Some(format!("{e:#}"));
            output::error(format!("{e:#}"), crate::error::find_hint(e));
        }
    }
    jobs::write(state, wt, &record)?;
    result.map_err(|_| crate::error::PassThrough(1).into())
}

/// Whether git still lists the worktree (the main one always is).
fn still_listed(wt: &repo::Worktree) -> bool {
    let Some(id) = &wt.id else { return true };
    // An unreadable list is not proof of removal.
    repo::linked_worktrees(&wt.common_dir).map_or(true, |l| l.iter().any(|w| &w.id == id))
}

/// Tears down the worktree's VM when git has forgotten the worktree; true when it had.
fn reclaim_if_forgotten(wt: &repo::Worktree, state: &State) -> Result<bool> {
    if still_listed(wt) {
        return Ok(false);
    }
    // The job may have given the repository its id after `wt` was read.
    let mut wt = wt.clone();
    if wt.repo_id.is_none() {
        wt.repo_id = repo::read_repo_id(&wt.common_dir);
    }
    let names = crate::registry::load(state)?;
    if let Some((name, owner)) = crate::registry::find(&names, &wt) {
        output::info(format!(
            "the worktree was removed while its VM was being made: destroying {name}"
        ));
        let b = crate::backend::select(owner.backend, state)?;
        crate::context::teardown(state, b.as_ref(), &name)?;
    }
    Ok(true)
}
