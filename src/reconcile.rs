//! Which VMs should still exist: a VM whose worktree is gone (removed, pruned, deleted) is an
//! orphan. A locked worktree, or one on a disk that is not mounted, is not gone. Pure logic
//! plus the registry view that the watcher, `gc` and `status --all` share.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::registry::{self, Owner};
use crate::repo::LinkedWorktree;
use crate::state::State;

/// What became of a VM's worktree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Alive,
    /// Kept, and say why (locked, disk not mounted).
    Kept(String),
    /// The directory is not where it was, but git has not forgotten the worktree (it may have
    /// been moved, renamed with its parent, or be on a disk that is not mounted): shown, never
    /// destroyed by the watcher; an explicit `gc` may reclaim it.
    Missing(String),
    /// git has forgotten the worktree (`worktree remove`, `prune`, git's gc): an orphan.
    Gone(String),
}

impl Verdict {
    /// Whether the VM is reclaimed: always when git forgot its worktree; when its directory is
    /// only missing, on an explicit `gc` alone (the watcher never guesses).
    pub fn reclaims(&self, explicit_gc: bool) -> bool {
        match self {
            Verdict::Gone(_) => true,
            Verdict::Missing(_) => explicit_gc,
            Verdict::Alive | Verdict::Kept(_) => false,
        }
    }

    /// The reason, empty when alive.
    pub fn note(&self) -> &str {
        match self {
            Verdict::Alive => "",
            Verdict::Kept(w) | Verdict::Missing(w) | Verdict::Gone(w) => w,
        }
    }
}

/// A VM the registry knows, with where its worktree is now (when git says).
#[derive(Clone, Debug)]
pub struct Known {
    pub name: String,
    pub owner: Owner,
}

impl Known {
    /// Linked worktree id; None for the main worktree.
    pub fn id(&self) -> Option<&str> {
        (!self.owner.is_main()).then_some(self.owner.worktree.as_str())
    }
}

/// How the filesystem looks at a path, for the "deleted or just not mounted?" question.
pub trait Probe {
    /// Device id of the nearest existing ancestor of `p` (or `p` itself).
    fn device_of_nearest(&self, p: &Path) -> Option<u64>;
}

/// The real filesystem.
pub struct Fs;

impl Probe for Fs {
    fn device_of_nearest(&self, p: &Path) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        p.ancestors()
            .find_map(|a| std::fs::metadata(a).ok())
            .map(|m| m.dev())
    }
}

fn missing_verdict(k: &Known, probe: &dyn Probe, root: &Path, why: String) -> Verdict {
    match (k.owner.dev, probe.device_of_nearest(root)) {
        // What is left of the path is on another filesystem: the one that held the worktree is
        // not mounted now.
        (Some(recorded), Some(now)) if recorded != now => Verdict::Kept(format!(
            "{} is not reachable (its disk seems unmounted)",
            root.display()
        )),
        _ => Verdict::Missing(why),
    }
}

/// Decides one VM's fate. `linked` is None when the repository the VM was made for cannot be
/// read where it was recorded (moved, deleted, replaced by another repository).
pub fn decide(k: &Known, linked: Option<&[LinkedWorktree]>, probe: &dyn Probe) -> Verdict {
    let Some(linked) = linked else {
        return missing_verdict(
            k,
            probe,
            &k.owner.root,
            format!(
                "its repository is not at {} any more (moved or deleted)",
                k.owner.common.display()
            ),
        );
    };
    let Some(id) = k.id() else {
        return Verdict::Alive;
    };
    match linked.iter().find(|w| w.id == id) {
        None => Verdict::Gone("git no longer lists the worktree".into()),
        Some(w) if w.locked => Verdict::Kept("the worktree is locked".into()),
        Some(w) if w.prunable => missing_verdict(
            k,
            probe,
            &w.base,
            format!(
                "{} is missing, but git still lists the worktree (moved? `git worktree repair` fixes git's record)",
                w.base.display()
            ),
        ),
        Some(_) => Verdict::Alive,
    }
}

/// Every VM recorded for the repository whose common dir is `common`, with its verdict; with
/// `recorded_here`, also the VMs recorded at that path for a repository no longer there (moved,
/// deleted, replaced by another): those are missing. Paths of worktrees that moved are updated in
/// the registry as a side effect.
pub fn scan(state: &State, common: &Path, recorded_here: bool) -> Result<Vec<(Known, Verdict)>> {
    let names = registry::load(state)?;
    let here_id = common
        .is_dir()
        .then(|| crate::repo::read_repo_id(common))
        .flatten();
    let mine = |o: &Owner| registry::same_repo(o, common, here_id.as_deref());
    let mut out = vec![];
    let mut linked_cache: Option<Option<Vec<LinkedWorktree>>> = None;
    for (name, owner) in &names {
        let is_mine = mine(owner);
        // Recorded here, but the repository now at this path is another one (or none).
        // From inside a repository only its own VMs: never act on another repository's.
        if !is_mine && (!recorded_here || owner.common != common) {
            continue;
        }
        let k = Known {
            name: name.clone(),
            owner: owner.clone(),
        };
        let linked = if is_mine {
            linked_cache
                .get_or_insert_with(|| crate::repo::linked_worktrees(common).ok())
                .as_deref()
        } else {
            None
        };
        let verdict = if !is_mine
            && owner.common_ino.is_some()
            && owner.common_ino == registry::dir_ino(common)
        {
            // The same directory with another id: the id was edited, not the repository
            // replaced. Its VMs are kept for the id to be put back.
            Verdict::Kept(format!(
                "the repository at {} is the one it was made for, but its vmoat.id changed (was {})",
                common.display(),
                owner.repo
            ))
        } else {
            decide(&k, linked, &Fs)
        };
        let mut k = k;
        // Follow moves: where git says the worktree is now (locked ones too), and where the
        // repository is.
        if is_mine {
            let now = current_root(&k, common, linked.unwrap_or(&[]))
                .unwrap_or_else(|| k.owner.root.clone());
            if now != k.owner.root
                || k.owner.common != common
                || k.owner.common_ino != registry::dir_ino(common)
            {
                registry::set_root(state, name, &now, common)?;
                k.owner.root = now;
                k.owner.common = common.to_path_buf();
            }
        }
        out.push((k, verdict));
    }
    Ok(out)
}

/// Where a live worktree's checkout is now, as git records it.
fn current_root(k: &Known, common: &Path, linked: &[LinkedWorktree]) -> Option<PathBuf> {
    let raw = match k.id() {
        None => common
            .file_name()
            .is_some_and(|n| n == ".git")
            .then(|| common.parent().map(Path::to_path_buf))
            .flatten()?,
        Some(id) => linked.iter().find(|w| w.id == id)?.base.clone(),
    };
    std::fs::canonicalize(raw).ok()
}

/// Every repository common dir the registry has VMs for (as last recorded).
pub fn repos(state: &State) -> Result<Vec<PathBuf>> {
    let names = registry::load(state)?;
    let mut out: Vec<PathBuf> = names
        .values()
        .map(|o| o.common.clone())
        .filter(|c| !c.as_os_str().is_empty())
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct FakeFs {
        devs: BTreeMap<&'static str, u64>,
    }

    impl Probe for FakeFs {
        fn device_of_nearest(&self, p: &Path) -> Option<u64> {
            p.ancestors()
                .find_map(|a| self.devs.get(a.to_str()?).copied())
        }
    }

    fn k(id: Option<&str>, root: &str, dev: u64) -> Known {
        let o: Owner = serde_json::from_value(serde_json::json!({
            "repo": "r", "worktree": id.unwrap_or("main"), "root": root,
            "common": "/src/repo/.git", "backend": "colima", "dev": dev,
        }))
        .unwrap();
        Known {
            name: "wt-x".into(),
            owner: o,
        }
    }

    fn wt(id: &str, base: &str, locked: bool, prunable: bool) -> LinkedWorktree {
        LinkedWorktree {
            id: id.into(),
            base: base.into(),
            locked,
            prunable,
        }
    }

    fn fs() -> FakeFs {
        FakeFs {
            devs: [("/", 1), ("/mnt/usb", 2)].into_iter().collect(),
        }
    }

    #[test]
    fn present_worktrees_are_alive() {
        let linked = [wt("feat", "/src/feat", false, false)];
        let v = decide(&k(Some("feat"), "/src/feat", 1), Some(&linked), &fs());
        assert_eq!(v, Verdict::Alive);
        assert_eq!(
            decide(&k(None, "/src/repo", 1), Some(&[]), &fs()),
            Verdict::Alive
        );
    }

    #[test]
    fn only_worktrees_git_forgot_are_gone() {
        assert!(matches!(
            decide(&k(Some("feat"), "/src/feat", 1), Some(&[]), &fs()),
            Verdict::Gone(_)
        ));
    }

    #[test]
    fn vanished_directories_are_missing_never_gone_and_locked_ones_are_kept() {
        let linked = [wt("feat", "/src/gone", false, true)];
        assert!(matches!(
            decide(&k(Some("feat"), "/src/gone", 1), Some(&linked), &fs()),
            Verdict::Missing(_)
        ));
        let locked = [wt("feat", "/src/gone", true, true)];
        assert!(matches!(
            decide(&k(Some("feat"), "/src/gone", 1), Some(&locked), &fs()),
            Verdict::Kept(_)
        ));
    }

    #[test]
    fn a_worktree_on_an_unmounted_disk_is_kept() {
        let linked = [wt("usb", "/mnt/usb/wt", false, true)];
        let mut f = fs();
        f.devs.remove("/mnt/usb");
        let v = decide(&k(Some("usb"), "/mnt/usb/wt", 2), Some(&linked), &f);
        assert!(
            matches!(v, Verdict::Kept(ref why) if why.contains("unmounted")),
            "{v:?}"
        );
    }

    #[test]
    fn an_unreadable_repository_leaves_its_vms_missing_not_gone() {
        // Moved or deleted: the watcher cannot tell, so it never destroys.
        assert!(matches!(
            decide(&k(None, "/src/old", 1), None, &fs()),
            Verdict::Missing(_)
        ));
        assert!(matches!(
            decide(&k(Some("feat"), "/src/feat", 1), None, &fs()),
            Verdict::Missing(_)
        ));
    }

    /// The watcher's and `gc`'s pass over one repository, on a fake backend: each verdict's
    /// action, carried out by the same teardown the commands use.
    #[test]
    fn only_what_git_forgot_is_destroyed_unless_gc_is_explicit() {
        use crate::backend::fake::Fake;
        use crate::backend::{BackendKind, VmState};
        let linked = [
            wt("alive", "/src/alive", false, false),
            wt("moved", "/src/moved", false, true),
            wt("locked", "/src/locked", true, true),
        ];
        let vms = [
            ("wt-alive", k(Some("alive"), "/src/alive", 1)),
            ("wt-moved", k(Some("moved"), "/src/moved", 1)),
            ("wt-locked", k(Some("locked"), "/src/locked", 1)),
            ("wt-removed", k(Some("removed"), "/src/removed", 1)),
        ];
        for explicit_gc in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let state = State::at(tmp.path().to_path_buf());
            let mut fake = Fake::new(BackendKind::Colima);
            for (name, _) in &vms {
                fake = fake.with_vm(name, VmState::Running);
            }
            for (name, known) in &vms {
                if decide(known, Some(&linked), &fs()).reclaims(explicit_gc) {
                    crate::context::teardown(&state, &fake, name).unwrap();
                }
            }
            let left: Vec<&str> = vms
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| fake.state_of(n) != VmState::Missing)
                .collect();
            let expected: &[&str] = if explicit_gc {
                &["wt-alive", "wt-locked"]
            } else {
                &["wt-alive", "wt-moved", "wt-locked"]
            };
            assert_eq!(left, expected, "explicit gc: {explicit_gc}");
        }
    }
}
