//! Background jobs started by the git hook: one per worktree, with a log and a status file
//! that `status` and `logs` read.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::repo::Worktree;
use crate::state::{State, files};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Ok,
    Failed,
    /// The worktree's automatic content is not approved: nothing of it ran (`error` says why).
    #[serde(rename = "needs-approval")]
    NeedsApproval,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub pid: u32,
    pub worktree: PathBuf,
    pub state: JobState,
    /// Unix seconds.
    pub started: u64,
    #[serde(default)]
    pub finished: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
    /// Asked for by an agent (the MCP server's `up`): runs `up` whatever `vmoat.auto` says.
    #[serde(default)]
    pub up: bool,
}

impl Job {
    /// Running, and its process is still there (a killed job is reported as failed).
    pub fn effective_state(&self) -> JobState {
        if self.state == JobState::Running && !crate::exec::process_alive(self.pid) {
            JobState::Failed
        } else {
            self.state.clone()
        }
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A worktree's job key: stable, and known before any config or VM name is.
pub fn key(wt: &Worktree) -> String {
    crate::naming::short_hash(&wt.location_key(), 12)
}

pub fn log_path(state: &State, wt: &Worktree) -> PathBuf {
    state
        .root()
        .join(files::LOGS_DIR)
        .join(format!("{}.log", key(wt)))
}

fn job_path(state: &State, wt: &Worktree) -> PathBuf {
    state
        .root()
        .join(files::JOBS_DIR)
        .join(format!("{}.json", key(wt)))
}

pub fn read(state: &State, wt: &Worktree) -> Result<Option<Job>> {
    let p = job_path(state, wt);
    if !p.exists() {
        return Ok(None);
    }
    Ok(Some(crate::state::read_json::<Option<Job>>(&p)?).flatten())
}

pub fn write(state: &State, wt: &Worktree, job: &Job) -> Result<()> {
    crate::state::write_json(&job_path(state, wt), &Some(job))
}

/// Starts the background job for a new worktree; returns at once.
pub fn spawn(state: &State, wt: &Worktree) -> Result<()> {
    spawn_as(state, wt, false, None).map(drop)
}

/// Starts a job that runs `up` whatever `vmoat.auto` says (an agent asked for it through the
/// MCP server); returns at once with its record.
pub fn spawn_up(state: &State, wt: &Worktree, backend: Option<&str>) -> Result<Job> {
    spawn_as(state, wt, true, backend)
}

fn spawn_as(state: &State, wt: &Worktree, up: bool, backend: Option<&str>) -> Result<Job> {
    let log = log_path(state, wt);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if up {
        // Each run gets a fresh log, so its tail is this run's.
        std::fs::write(&log, "")?;
    }
    let me = std::env::current_exe()?;
    let mut cmd = crate::exec::Cmd::new(me);
    if let Some(b) = backend {
        cmd = cmd.arg("--backend").arg(b);
    }
    cmd = cmd.arg("__job").env(KEY_ENV, key(wt));
    // Set either way: a job started from inside another's up command must not inherit it.
    cmd = cmd.env(UP_ENV, if up { "1" } else { "" });
    let mut child = cmd.current_dir(&wt.root).spawn_detached(&log)?;
    let pid = child.id();
    if up {
        // The server that asked lives on: reap the job when it ends (no zombie left behind).
        std::thread::spawn(move || child.wait());
    }
    let job = Job {
        pid,
        worktree: wt.root.clone(),
        state: JobState::Running,
        started: now(),
        finished: None,
        error: None,
        up,
    };
    write(state, wt, &job)?;
    Ok(job)
}

/// Set for a job that runs `up` whatever `vmoat.auto` says.
pub const UP_ENV: &str = "GIT_VMOAT_JOB_UP";

/// Tells the job its key, so it can record a failure even when its worktree is already gone.
pub const KEY_ENV: &str = "GIT_VMOAT_JOB_KEY";

/// Records the job with `key` as failed (for a job that could not even find its worktree).
pub fn fail_by_key(state: &State, key: &str, error: &str) -> Result<()> {
    // Keys are our own hex digests; anything else is not a path we write to.
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(());
    }
    let path = state
        .root()
        .join(files::JOBS_DIR)
        .join(format!("{key}.json"));
    let Some(mut job) = crate::state::read_json::<Option<Job>>(&path)? else {
        return Ok(());
    };
    job.state = JobState::Failed;
    job.finished = Some(now());
    job.error = Some(error.to_string());
    crate::state::write_json(&path, &Some(job))
}

/// Appends a line to the worktree's job log (for errors before the job could start).
pub fn log_line(path: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}
