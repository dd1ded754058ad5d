//! The watcher: notify events on each repository's common dir, its `worktrees/` and the dirs
//! holding its checkouts are hints to reconcile; a timer reconciles anyway (events can be lost).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use anyhow::Result;
use notify::{EventKind, RecursiveMode, Watcher};

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
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // Access events (a file opened or read) are dropped: reconciling reads the very dirs we
    // watch, and would otherwise wake itself up forever.
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let relevant = match res {
            Ok(ev) => !matches!(ev.kind, EventKind::Access(_)),
            Err(_) => true, // overflow and friends: rescan
        };
        if relevant {
            let _ = tx.send(());
        }
    })?;
    let mut watched: HashSet<PathBuf> = HashSet::new();
    let mut pass: u64 = 0;
    loop {
        pass += 1;
        // Everything this pass sees happened after this line: `-v` shows it, tests wait on it.
        crate::output::detail(format!("watch pass {pass} started"));
        let current = repos();
        // A deleted dir loses its watch; forget it so it is armed again when it comes back.
        watched.retain(|p| p.exists());
        for p in extra {
            if !watched.contains(p)
                && p.is_dir()
                && watcher.watch(p, RecursiveMode::NonRecursive).is_ok()
            {
                watched.insert(p.clone());
            }
        }
        for repo in &current {
            for p in paths_for(repo) {
                if !watched.contains(&p)
                    && p.is_dir()
                    && watcher.watch(&p, RecursiveMode::NonRecursive).is_ok()
                {
                    watched.insert(p);
                }
            }
        }
        for repo in &current {
            reconcile(repo);
        }
        crate::output::detail(format!("watch pass {pass} done"));
        match rx.recv_timeout(interval) {
            Ok(()) => {
                // Debounce: git writes several files per operation; act once they settle.
                while rx.recv_timeout(debounce).is_ok() {}
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}
