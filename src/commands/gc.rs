//! `gc`: destroy this repository's (or, with --all, every repository's) VMs whose worktree git
//! forgot or whose directory is missing, and netns and rootless leftovers whose state dir is
//! gone.

use anyhow::Result;
use serde::Serialize;

use crate::backend::netns::Stray;
use crate::cli::GcArgs;
use crate::output::{self, JSON_VERSION, Note};
use crate::reconcile;
use crate::state::State;
use crate::steps::reclaim::{Reclaim, Reclaimed, collect};

/// What `gc` found and did.
#[derive(Serialize, Debug)]
struct GcReport {
    version: u32,
    dry_run: bool,
    vms: Vec<Reclaimed>,
    strays: Vec<Stray>,
}

impl GcReport {
    /// The closing line when nothing needed reclaiming (each VM's line is told as it happens).
    fn summary(&self) -> Option<Note> {
        (!self.vms.iter().any(|v| v.orphan || v.missing))
            .then(|| Note::Info("no orphaned VMs: every VM has its worktree".into()))
    }
}

pub fn run(args: &GcArgs) -> Result<()> {
    let state = State::open()?;
    let repos = if args.all {
        reconcile::repos(&state)?
    } else {
        vec![crate::context::here()?.common_dir]
    };
    let how = Reclaim::Gc {
        dry_run: args.dry_run,
    };
    let mut vms = vec![];
    for common in repos {
        vms.extend(collect(&state, &common, args.all, how)?);
    }
    let report = GcReport {
        version: JSON_VERSION,
        dry_run: args.dry_run,
        vms,
        strays: crate::backend::netns::gc_strays(args.dry_run)
            .into_iter()
            .chain(crate::backend::rootless::gc_strays(args.dry_run))
            .collect(),
    };
    if args.json {
        return output::json(&report);
    }
    if let Some(n) = report.summary() {
        n.emit();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(name: &str, orphan: bool, destroyed: bool) -> Reclaimed {
        Reclaimed {
            vm: name.into(),
            worktree: format!("/src/{name}").into(),
            backend: "colima".into(),
            orphan,
            missing: false,
            reason: if orphan {
                "git forgot the worktree"
            } else {
                ""
            }
            .into(),
            destroyed,
            error: None,
            reclaim: orphan,
        }
    }

    /// Everything `gc` says, in order: a line per VM it reclaimed, then the summary.
    fn human(r: &GcReport) -> String {
        r.vms
            .iter()
            .filter_map(Reclaimed::note)
            .chain(r.summary())
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn gc_reports_what_it_destroyed_or_that_nothing_was_orphaned() {
        let busy = GcReport {
            version: JSON_VERSION,
            dry_run: false,
            vms: vec![vm("wt-app", false, false), vm("wt-gone", true, true)],
            strays: vec![],
        };
        let clean = GcReport {
            vms: vec![vm("wt-app", false, false)],
            ..busy_clone(&busy)
        };
        insta::assert_snapshot!(
            "gc_human",
            format!("{}\n---\n{}", human(&busy), human(&clean))
        );
        insta::assert_json_snapshot!("gc_json", busy);
    }

    fn busy_clone(r: &GcReport) -> GcReport {
        GcReport {
            version: r.version,
            dry_run: r.dry_run,
            vms: r.vms.clone(),
            strays: vec![],
        }
    }
}
