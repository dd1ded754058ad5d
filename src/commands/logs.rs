//! `logs [-f]`: the log of this worktree's background job.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::Result;

use crate::cli::LogsArgs;
use crate::jobs::{self, JobState};
use crate::state::State;

pub fn run(args: &LogsArgs) -> Result<()> {
    let wt = crate::context::here()?;
    let state = State::open()?;
    let path = jobs::log_path(&state, &wt);
    let Ok(mut f) = std::fs::File::open(&path) else {
        crate::output::info("no background job has run for this worktree");
        return Ok(());
    };
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        f.read_to_end(&mut buf)?;
        out.write_all(&buf)?;
        out.flush()?;
        let running =
            jobs::read(&state, &wt)?.is_some_and(|j| j.effective_state() == JobState::Running);
        if !args.follow || (!running && buf.is_empty()) {
            return Ok(());
        }
        if buf.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
