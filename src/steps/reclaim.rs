//! Reclaiming the VMs of forgotten worktrees, shared by `gc` and `watch`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::backend;
use crate::output::Note;
use crate::reconcile::{self, Verdict};
use crate::state::State;

/// Who may reclaim what: the watcher only what git forgot; an explicit `gc` also what is missing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reclaim {
    Watcher,
    Gc { dry_run: bool },
}

/// One VM of a repository as `gc` saw it (and `--json` shows it).
#[derive(Serialize, Debug, Clone)]
pub(crate) struct Reclaimed {
    pub vm: String,
    pub worktree: PathBuf,
    pub backend: String,
    /// Git forgot its worktree.
    pub orphan: bool,
    /// Its worktree's directory is missing (git still lists it).
    pub missing: bool,
    pub reason: String,
    pub destroyed: bool,
    /// Why destroying it failed (told on stderr, not part of the JSON schema).
    #[serde(skip)]
    pub error: Option<String>,
    /// Whether this run was asked to destroy it (a dry run only says it would).
    #[serde(skip)]
    pub reclaim: bool,
}

impl Reclaimed {
    /// What happened to it, as a message (nothing for a VM that keeps its worktree).
    pub(crate) fn note(&self) -> Option<Note> {
        let what = format!("{} ({}: {})", self.vm, self.reason, self.worktree.display());
        match (&self.error, self.destroyed, self.reclaim) {
            (Some(e), _, _) => Some(Note::Warn(format!("could not destroy {}: {e}", self.vm))),
            (None, true, _) => Some(Note::Info(format!("destroyed {what}"))),
            (None, false, true) => Some(Note::Info(format!("would destroy {what}"))),
            (None, false, false) => None,
        }
    }
}

/// Destroys the orphans of one repository (unless a dry run); returns every VM it looked at.
pub(crate) fn collect(
    state: &State,
    common: &Path,
    recorded_here: bool,
    how: Reclaim,
) -> Result<Vec<Reclaimed>> {
    let mut out = vec![];
    for (k, verdict) in reconcile::scan(state, common, recorded_here)? {
        let reclaim = verdict.reclaims(matches!(how, Reclaim::Gc { .. }));
        // With -v, every decision is visible (tests wait on these lines, not on time).
        crate::output::detail(format!(
            "verdict {}: {}",
            k.name,
            match &verdict {
                Verdict::Alive => "alive",
                Verdict::Kept(_) => "kept",
                Verdict::Missing(_) => "missing",
                Verdict::Gone(_) => "gone",
            }
        ));
        let mut row = Reclaimed {
            vm: k.name.clone(),
            worktree: k.owner.root.clone(),
            backend: k.owner.backend.to_string(),
            orphan: matches!(verdict, Verdict::Gone(_)),
            missing: matches!(verdict, Verdict::Missing(_)),
            reason: verdict.note().to_string(),
            destroyed: false,
            error: None,
            reclaim,
        };
        if reclaim && how != (Reclaim::Gc { dry_run: true }) {
            match backend::select(k.owner.backend, state)
                .and_then(|b| crate::context::teardown(state, b.as_ref(), &k.name))
            {
                Ok(()) => row.destroyed = true,
                Err(e) => row.error = Some(format!("{e:#}")),
            }
        }
        // Said as it happens: a watcher's log reads in order.
        if let Some(n) = row.note() {
            n.emit();
        }
        out.push(row);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(destroyed: bool, reclaim: bool, error: Option<&str>) -> Reclaimed {
        Reclaimed {
            vm: "wt-feature".into(),
            worktree: "/src/app-feature".into(),
            backend: "colima".into(),
            orphan: true,
            missing: false,
            reason: "git forgot the worktree".into(),
            destroyed,
            error: error.map(String::from),
            reclaim,
        }
    }

    #[test]
    fn what_gc_did_to_each_vm_reads_as_one_line() {
        let lines: Vec<String> = [
            row(true, true, None),
            row(false, true, None),
            row(false, true, Some("colima delete failed")),
            row(false, false, None),
        ]
        .iter()
        .map(|r| r.note().map_or("(nothing)".into(), |n| n.to_string()))
        .collect();
        insta::assert_snapshot!(lines.join("\n"));
    }
}
