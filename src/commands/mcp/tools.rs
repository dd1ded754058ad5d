//! The MCP server's tools as plain blocking functions: each finds the worktree it is asked
//! about and returns what the CLI's `--json` prints, or, for a command that only prints, a
//! report in the same style (a `version` field, the worktree, then the data).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use serde_json::{Value, json};

use crate::backend::{BackendKind, Io};
use crate::context::{Base, Ctx};
use crate::error::hint;
use crate::jobs::{self, Job, JobState};
use crate::output::JSON_VERSION;
use crate::repo::{self, Worktree};
use crate::state::State;

/// How much of a command's output a result carries (its end: where errors are).
pub(super) const OUTPUT_LIMIT: usize = 64 * 1024;

pub(super) struct Tools {
    flag: Option<BackendKind>,
    /// Where relative `worktree` arguments start, and the default worktree.
    cwd: PathBuf,
}

impl Tools {
    pub(super) fn new(flag: Option<BackendKind>) -> Result<Self> {
        Ok(Self {
            flag,
            cwd: std::env::current_dir()?,
        })
    }

    pub(super) fn cwd(&self) -> &Path {
        &self.cwd
    }

    fn worktree(&self, path: Option<&str>) -> Result<Worktree> {
        let dir = path.map_or_else(|| self.cwd.clone(), |p| self.cwd.join(p));
        if !dir.is_dir() {
            return Err(hint(
                format!("worktree `{}` is not a directory", dir.display()),
                "pass the path of a git worktree, or leave `worktree` out for the server's own directory",
            ));
        }
        repo::discover(&dir)
    }

    fn base(&self, path: Option<&str>) -> Result<Base> {
        Ok(Base::at(self.worktree(path)?, State::open()?, self.flag))
    }

    /// Config and backend, for what runs the project's own commands: only once a person
    /// approved them (the server never approves anything itself).
    fn approved(&self, path: Option<&str>) -> Result<Ctx> {
        let ctx = self.base(path)?.full()?;
        crate::consent::require_approved(&ctx.wt, &ctx.state)?;
        Ok(ctx)
    }

    /// `status --json`.
    pub(super) fn status(&self, path: Option<&str>) -> Result<Value> {
        crate::steps::committed::warn_if_config_uncommitted(&self.worktree(path)?);
        super::super::status::json(self.base(path)?)
    }

    /// Every worktree of the repository with its `status --json`, and every VM of the
    /// repository as `status --all --json` lists them (orphans included).
    pub(super) fn worktrees(&self, path: Option<&str>) -> Result<Value> {
        let wt = self.worktree(path)?;
        let state = State::open()?;
        let mut roots: Vec<PathBuf> = wt.main_root.iter().cloned().collect();
        for linked in repo::linked_worktrees(&wt.common_dir)? {
            if !linked.prunable {
                roots.push(linked.base);
            }
        }
        let mut list = vec![];
        for root in roots {
            let report = repo::discover(&root)
                .and_then(|w| super::super::status::json(Base::at(w, state.clone(), self.flag)))
                .unwrap_or_else(|e| json!({"version": JSON_VERSION, "worktree": root, "error": format!("{e:#}")}));
            list.push(report);
        }
        let vms = super::super::status::all_json(wt)?["vms"].take();
        Ok(json!({"version": JSON_VERSION, "worktrees": list, "vms": vms}))
    }

    /// Starts `up` as the worktree's background job (or finds the one running): the handle.
    pub(super) fn start_up(&self, path: Option<&str>) -> Result<Handle> {
        let ctx = self.approved(path)?;
        if ctx.cfg.up.is_none() {
            return Err(crate::steps::up::no_up_command());
        }
        let running =
            jobs::read(&ctx.state, &ctx.wt)?.filter(|j| j.effective_state() == JobState::Running);
        let auto_up = crate::hooks::AutoMode::of(&ctx.wt.root)? == Some(crate::hooks::AutoMode::Up);
        let (job, reused) = match running {
            Some(j) if j.up || auto_up => (j, true),
            Some(_) => {
                return Err(hint(
                    "this worktree's background job (seeding and provisioning the new worktree) is still running",
                    "call `up` again once it is done (`status` or `logs` show it)",
                ));
            }
            None => {
                let flag = self.flag.map(|k| k.to_string());
                (jobs::spawn_up(&ctx.state, &ctx.wt, flag.as_deref())?, false)
            }
        };
        Ok(Handle {
            key: jobs::key(&ctx.wt),
            log: jobs::log_path(&ctx.state, &ctx.wt),
            wt: ctx.wt,
            state: ctx.state,
            job,
            reused,
        })
    }

    /// The tail of the worktree's background job's log, with the job's state.
    pub(super) fn logs(&self, path: Option<&str>, lines: usize) -> Result<Value> {
        let wt = self.worktree(path)?;
        let state = State::open()?;
        let log = jobs::log_path(&state, &wt);
        let job = jobs::read(&state, &wt)?;
        Ok(json!({
            "version": JSON_VERSION,
            "worktree": wt.root,
            "log": log.exists().then_some(&log),
            "job": job.as_ref().map(job_json),
            "tail": tail_lines(&log, lines),
        }))
    }

    /// The test command (with `args`) in the VM: its exit code, duration and output's end.
    pub(super) fn test(&self, path: Option<&str>, args: Vec<String>) -> Result<Value> {
        let ctx = self.approved(path)?;
        let args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
        let (vm, script) = super::super::test::prepare(&ctx, &args)?;
        // One stream, in the order it was written, as a person would read it.
        let merged = format!("( {script}\n) 2>&1");
        let started = Instant::now();
        let out = ctx
            .backend
            .exec(&vm, &ctx.wt.root, Some(&merged), Io::Capture)?;
        let (tail, truncated) = bounded(&out.stdout);
        Ok(json!({
            "version": JSON_VERSION,
            "vm": vm,
            "worktree": ctx.wt.root,
            "command": script,
            "exit_code": out.code,
            "duration_ms": millis(started),
            "output_tail": tail,
            "output_truncated": truncated,
        }))
    }

    /// `argv` run in the VM, in the worktree: exit code and bounded stdout/stderr.
    pub(super) fn exec(&self, path: Option<&str>, argv: Vec<String>) -> Result<Value> {
        if argv.is_empty() {
            return Err(hint(
                "`argv` is empty: there is no command to run",
                "pass the command and its arguments as a list, e.g. [\"docker\", \"ps\"]",
            ));
        }
        let ctx = self.approved(path)?;
        let vm = crate::steps::running_vm(&ctx)?;
        let script = crate::shell::join(&argv.iter().map(OsString::from).collect::<Vec<_>>());
        let started = Instant::now();
        let out = ctx
            .backend
            .exec(&vm, &ctx.wt.root, Some(&script), Io::Capture)?;
        let (stdout, stdout_truncated) = bounded(&out.stdout);
        let (stderr, stderr_truncated) = bounded(&out.stderr);
        Ok(json!({
            "version": JSON_VERSION,
            "vm": vm,
            "worktree": ctx.wt.root,
            "argv": argv,
            "exit_code": out.code,
            "duration_ms": millis(started),
            "stdout": stdout,
            "stdout_truncated": stdout_truncated,
            "stderr": stderr,
            "stderr_truncated": stderr_truncated,
        }))
    }

    /// `tunnel --json`.
    pub(super) fn tunnel(&self, path: Option<&str>, ports: Vec<String>) -> Result<Value> {
        let ports = super::super::tunnel::parse_ports(&ports)?;
        let ctx = self.base(path)?.full()?;
        let (vm, opened) = crate::steps::tunnel::open(&ctx, ports)?;
        Ok(super::super::tunnel::to_json(&vm, &opened))
    }

    /// `down`, then `status --json`.
    pub(super) fn down(&self, path: Option<&str>) -> Result<Value> {
        super::super::down::run(self.base(path)?)?;
        self.status(path)
    }

    /// `destroy -f` once confirmed and (unless forced) only for a clean worktree, then
    /// `status --json`.
    pub(super) fn destroy(&self, path: Option<&str>, confirm: bool, force: bool) -> Result<Value> {
        let wt = self.worktree(path)?;
        if !confirm {
            return Err(hint(
                "destroying the VM deletes its containers, images and volumes: not confirmed",
                "call `destroy` again with `confirm: true` (the worktree's files are never touched)",
            ));
        }
        if !force && crate::git::is_dirty(&wt.root)? {
            return Err(hint(
                format!(
                    "{} has uncommitted changes: not destroying its VM",
                    wt.root.display()
                ),
                "commit or stash them first, or pass `force: true` (the files stay; data the VM holds, such as database volumes, goes)",
            ));
        }
        let args = crate::cli::DestroyArgs { force: true };
        super::super::destroy::run(self.base(path)?, &args)?;
        self.status(path)
    }
}

/// A started (or found) `up` job.
pub(super) struct Handle {
    pub key: String,
    pub log: PathBuf,
    pub wt: Worktree,
    pub state: State,
    pub job: Job,
    pub reused: bool,
}

impl Handle {
    /// The job's record now (the job rewrites it as it goes).
    pub(super) fn refresh(&mut self) {
        if let Ok(Some(job)) = jobs::read(&self.state, &self.wt) {
            self.job = job;
        }
    }

    pub(super) fn done(&self) -> bool {
        self.job.effective_state() != JobState::Running
    }

    /// The last line the job logged (progress while waiting).
    pub(super) fn last_line(&self) -> Option<String> {
        tail_lines(&self.log, 1).lines().last().map(String::from)
    }

    pub(super) fn report(&self, status: Option<Value>) -> Value {
        json!({
            "version": JSON_VERSION,
            "worktree": self.wt.root,
            "handle": self.key,
            "log": self.log,
            "already_running": self.reused,
            "done": self.done(),
            "job": job_json(&self.job),
            "log_tail": tail_lines(&self.log, 20),
            "status": status,
        })
    }
}

/// A job as `status --json` shows it, with its process id.
fn job_json(job: &Job) -> Value {
    json!({
        "state": job.effective_state(),
        "started": job.started,
        "finished": job.finished,
        "error": job.error,
        "pid": job.pid,
    })
}

/// The last `n` lines of a file (empty when it cannot be read), at most [`OUTPUT_LIMIT`] bytes.
fn tail_lines(path: &Path, n: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let (text, _) = bounded(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    lines[from..].join("\n")
}

/// The end of `bytes` as text, at most [`OUTPUT_LIMIT`] bytes; true when some was cut.
fn bounded(bytes: &[u8]) -> (String, bool) {
    let from = bytes.len().saturating_sub(OUTPUT_LIMIT);
    (
        String::from_utf8_lossy(&bytes[from..]).into_owned(),
        from > 0,
    )
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keeps_its_end_and_says_when_it_was_cut() {
        assert_eq!(bounded(b"ok\n"), ("ok\n".to_string(), false));
        let long = vec![b'x'; OUTPUT_LIMIT + 10];
        let (text, cut) = bounded(&long);
        assert!(cut);
        assert_eq!(text.len(), OUTPUT_LIMIT);
    }

    #[test]
    fn a_log_tail_is_its_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("job.log");
        std::fs::write(&log, "one\ntwo\nthree\n").unwrap();
        assert_eq!(tail_lines(&log, 2), "two\nthree");
        assert_eq!(tail_lines(&log, 10), "one\ntwo\nthree");
        assert_eq!(tail_lines(&dir.path().join("none"), 3), "");
    }
}
