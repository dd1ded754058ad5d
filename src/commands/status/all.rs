//! `status --all`: every VM of this repository, gathered into a report.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::backend::suspend;
use crate::backend::usage::human_bytes;
use crate::output::JSON_VERSION;
use crate::reconcile::{self, Verdict};
use crate::state::State;

#[derive(Serialize, Debug)]
pub(super) struct AllReport {
    version: u32,
    vms: Vec<Row>,
    /// The sum of the VMs' `disk_bytes` (those that could be measured).
    total_disk_bytes: u64,
}

#[derive(Serialize, Debug)]
struct Row {
    vm: String,
    worktree: PathBuf,
    backend: String,
    state: String,
    /// Disk space the VM's files take on the host; null when it cannot be measured.
    disk_bytes: Option<u64>,
    /// When it was suspended (Unix seconds); null when it is not.
    suspended_since: Option<u64>,
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
        let backend = crate::backend::select(k.owner.backend, &state);
        let vm_state = backend
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .and_then(|b| b.info(&k.name))
            .map(|i| i.state.to_string())
            .unwrap_or_else(|e| format!("unknown ({e})"));
        let disk_bytes = backend.ok().and_then(|b| b.usage(&k.name).disk_bytes);
        let suspended_since = suspend::record(&state, &k.name).map(|r| r.since);
        vms.push(Row {
            disk_bytes,
            suspended_since,
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
        total_disk_bytes: vms.iter().filter_map(|r| r.disk_bytes).sum(),
        vms,
    })
}

impl AllReport {
    /// One line per VM, then the disk they take together; None when the repository has none.
    pub(super) fn render(&self) -> Option<String> {
        self.render_at(suspend::now_secs())
    }

    fn render_at(&self, now: u64) -> Option<String> {
        if self.vms.is_empty() {
            return None;
        }
        let mut out = String::new();
        for r in &self.vms {
            let mark = if let Some(since) = r.suspended_since {
                let ago = std::time::Duration::from_secs(now.saturating_sub(since));
                format!("  (suspended {} ago)", crate::output::duration(ago))
            } else {
                String::new()
            };
            let mark = mark
                + &if r.orphan {
                    "  ORPHAN: `git vmoat gc` removes it".to_string()
                } else if r.missing {
                    format!("  MISSING: {}; `git vmoat gc` would remove it", r.note)
                } else if r.note.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", r.note)
                };
            out.push_str(&format!(
                "{:<24} {:<8} {:<10} {:>10}  {}{mark}\n",
                r.vm,
                r.backend,
                r.state,
                r.disk_bytes.map_or("-".into(), human_bytes),
                r.worktree.display()
            ));
        }
        out.push_str(&format!(
            "{:<44} {:>10}\n",
            "total disk",
            human_bytes(self.total_disk_bytes)
        ));
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
            disk_bytes: (state != "absent").then_some(3 << 29),
            suspended_since: None,
            orphan,
            missing,
            note: note.into(),
        }
    }

    #[test]
    fn status_all_marks_orphans_and_missing_worktrees() {
        let mut sleepy = row("wt-sleepy", "Suspended", false, false, "");
        sleepy.suspended_since = Some(1_700_000_000);
        sleepy.disk_bytes = Some(2 << 30);
        let r = AllReport {
            version: JSON_VERSION,
            total_disk_bytes: 13 << 29,
            vms: vec![
                row("wt-app", "Running", false, false, ""),
                sleepy,
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
        let sum: u64 = r.vms.iter().filter_map(|v| v.disk_bytes).sum();
        assert_eq!(r.total_disk_bytes, sum);
        insta::assert_snapshot!("status_all_human", r.render_at(1_700_000_750).unwrap());
        insta::assert_json_snapshot!("status_all_json", r);
        let empty = AllReport {
            version: JSON_VERSION,
            total_disk_bytes: 0,
            vms: vec![],
        };
        assert_eq!(empty.render(), None);
    }
}
