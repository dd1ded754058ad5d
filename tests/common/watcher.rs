//! A running `git vmoat watch -v` that tests wait on instead of sleeping.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Env, bin, free_port, wait_until};

/// A running `git vmoat watch -v`, whose passes a test can wait on instead of sleeping.
pub struct Watcher {
    child: std::process::Child,
    log: PathBuf,
}

impl Watcher {
    pub fn start(env: &Env, dir: &Path, args: &[&str]) -> Self {
        let log = env.tmp.path().join(format!("watch-{}.log", free_port()));
        let child = env
            .cmd(bin(), dir)
            .arg("-v")
            .arg("watch")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let w = Self { child, log };
        assert!(w.wait_pass(), "the watcher made no first pass");
        w
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn count(&self, what: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("watch pass ") && l.ends_with(what))
            .count()
    }

    /// Waits for the watcher's first pass.
    fn wait_pass(&self) -> bool {
        wait_until(Duration::from_secs(30), || self.count(" done") > 0)
    }

    /// How far the watcher's log has come: later waits look only at what follows.
    pub fn mark(&self) -> usize {
        self.log().len()
    }

    /// Waits until the watcher, after `mark`, decided `verdict` (alive, kept, missing, gone) for
    /// VM `vm`: it has seen what happened to the worktree and acted (or not) on it.
    pub fn wait_verdict(&self, mark: usize, vm: &str, verdict: &str) -> bool {
        let line = format!("verdict {vm}: {verdict}");
        wait_until(Duration::from_secs(30), || {
            self.log()
                .get(mark..)
                .is_some_and(|rest| rest.lines().any(|l| l.ends_with(&line)))
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
