//! `status --all`: every VM of this repository, gathered into a report.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::output::JSON_VERSION;
use crate::reconcile::{self, Verdict};
use crate::state::State;

#[derive(Serialize, Debug)]
pub(super) struct AllReport {
    version: u32,
    vms: Vec<Row>,
}

#[derive(Serialize, Debug)]
struct Row {
    vm: String,
    worktree: PathBuf,
    backend: String,
    state: String,
    orphan: bool,
    missing: bool,
    note: String,
}

pub(super) fn gather() -> Result<AllReport> {
    gather_at(crate::context::here()?)
}

/// Every VM of the repository `wt` belongs to.
pub(super) fn gather_at(wt: crate::repo::Worktree) -> Result<AllReport> {
    let state = State::open()?;
    let mut vms = vec![];
    for (k, verdict) in reconcile::scan(&state, &wt.common_dir, false)? {
        let vm_state = crate::backend::select(k.owner.backend, &state)
            .and_then(|b| b.info(&k.name))
            .map(|i| i.state.to_string())
            .unwrap_or_else(|e| format!("unknown ({e})"));
        vms.push(Row {
            vm: k.name,
            worktree: k.owner.root,
            backend: k.owner.backend.to_string(),
            state: vm_state,
            orphan: matches!(verdict, Verdict::Gone(_)),
            missing: matches!(verdict, Verdict::Missing(_)),
            note: verdict.note().to_string(),
        });
    }
    Ok(AllReport {
        version: JSON_VERSION,
        vms,
    })
}

impl AllReport {
    /// One line per VM; None when the repository has none.
    pub(super) fn render(&self) -> Option<String> {
        if self.vms.is_empty() {
            return None;
        }
        let mut out = String::new();
        for r in &self.vms {
            let mark = if r.orphan {
                "  ORPHAN: `git vmoat gc` removes it".to_string()
            } else if r.missing {
                format!("  MISSING: {}; `git vmoat gc` would remove it", r.note)
            } else if r.note.is_empty() {
                String::new()
            } else {
                format!("  ({})", r.note)
            };
            out.push_str(&format!(
                "{:<24} {:<8} {:<10} {}{mark}\n",
                r.vm,
                r.backend,
                r.state,
                r.worktree.display()
            ));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(vm: &str, state: &str, orphan: bool, missing: bool, note: &str) -> Row {
        Row {
            vm: vm.into(),
            worktree: format!("/src/{vm}").into(),
            backend: "colima".into(),
            state: state.into(),
            orphan,
            missing,
            note: note.into(),
        }
    }

    #[test]
    fn status_all_marks_orphans_and_missing_worktrees() {
        let r = AllReport {
            version: JSON_VERSION,
            vms: vec![
                row("wt-app", "Running", false, false, ""),
                row(
                    "wt-locked",
                    "Stopped",
                    false,
                    false,
                    "locked: on a USB disk",
                ),
                row("wt-gone", "Stopped", true, false, "git forgot the worktree"),
                row(
                    "wt-moved",
                    "absent",
                    false,
                    true,
                    "the worktree's directory is missing",
                ),
            ],
        };
        insta::assert_snapshot!("status_all_human", r.render().unwrap());
        insta::assert_json_snapshot!("status_all_json", r);
        let empty = AllReport {
            version: JSON_VERSION,
            vms: vec![],
        };
        assert_eq!(empty.render(), None);
    }
}
