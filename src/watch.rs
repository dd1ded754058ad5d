//! The watcher: notify events on each repository's common dir, its `worktrees/` and the dirs
//! holding its checkouts are hints to reconcile; a timer reconciles anyway (events can be lost).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use anyhow::Result;
use notify_debouncer_mini::{new_debouncer, notify::RecursiveMode};

/// Paths whose changes can mean a worktree came or went.
pub fn paths_for(common: &Path) -> Vec<PathBuf> {
    let mut out = vec![common.to_path_buf(), common.join("worktrees")];
    if let Ok(linked) = crate::repo::linked_worktrees(common) {
        // `rm -rf <checkout>` touches nothing in the repository: watch the checkout's parent.
        out.extend(
            linked
                .into_iter()
                .filter_map(|w| w.base.parent().map(Path::to_path_buf)),
        );
    }
    out.sort();
    out.dedup();
    out
}

/// Runs until the process is stopped, also watching the `extra` dirs: `repos` is asked for the repositories to watch before each
/// reconcile, `reconcile` acts on one repository.
pub fn run(
    debounce: Duration,
    interval: Duration,
    extra: &[PathBuf],
    repos: impl Fn() -> Vec<PathBuf>,
    mut reconcile: impl FnMut(&Path),
) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut debouncer = new_debouncer(debounce, tx)?;
    let mut watched: HashSet<PathBuf> = HashSet::new();
    loop {
        let current = repos();
        // A deleted dir loses its watch; forget it so it is armed again when it comes back.
        watched.retain(|p| p.exists());
        for p in extra {
            if !watched.contains(p)
                && p.is_dir()
                && debouncer
                    .watcher()
                    .watch(p, RecursiveMode::NonRecursive)
                    .is_ok()
            {
                watched.insert(p.clone());
            }
        }
        for repo in &current {
            for p in paths_for(repo) {
                if !watched.contains(&p)
                    && p.is_dir()
                    && debouncer
                        .watcher()
                        .watch(&p, RecursiveMode::NonRecursive)
                        .is_ok()
                {
                    watched.insert(p);
                }
            }
        }
        for repo in &current {
            reconcile(repo);
        }
        match rx.recv_timeout(interval) {
            Ok(_) | Err(RecvTimeoutError::Timeout) => {
                // Coalesce whatever else arrived meanwhile.
                while rx.try_recv().is_ok() {}
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}
