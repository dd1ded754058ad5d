//! Which VMs should still exist: a VM whose worktree is gone (removed, pruned, deleted) is an
//! orphan. A locked worktree, or one on a disk that is not mounted, is not gone. Pure logic
//! plus the registry view that the watcher, `gc` and `status --all` share.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::context::{Names, Owner};
use crate::repo::LinkedWorktree;

/// What became of a VM's worktree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Alive,
    /// Kept, but say why (locked, disk not mounted).
    Kept(String),
    /// The worktree is gone: the VM is an orphan.
    Gone(String),
}

/// A VM of one repository, from the ownership registry.
#[derive(Clone, Debug)]
pub struct Known {
    pub name: String,
    /// Linked worktree id; None for the main worktree.
    pub id: Option<String>,
    pub owner: Owner,
}

/// The VMs the registry knows for the repository whose real common dir is `common`.
pub fn known(names: &Names, common: &Path) -> Vec<Known> {
    let prefix = format!("{}\0", common.display());
    names
        .iter()
        .filter_map(|(name, owner)| {
            let id = owner.identity.strip_prefix(&prefix)?;
            Some(Known {
                name: name.clone(),
                id: (id != "main").then(|| id.to_string()),
                owner: owner.clone(),
            })
        })
        .collect()
}

/// How the filesystem looks at a path, for the "deleted or just not mounted?" question.
pub trait Probe {
    fn exists(&self, p: &Path) -> bool;
    /// Device id of the nearest existing ancestor of `p` (or `p` itself).
    fn device_of_nearest(&self, p: &Path) -> Option<u64>;
}

/// The real filesystem.
pub struct Fs;

impl Probe for Fs {
    fn exists(&self, p: &Path) -> bool {
        std::fs::symlink_metadata(p).is_ok()
    }
    fn device_of_nearest(&self, p: &Path) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        p.ancestors()
            .find_map(|a| std::fs::metadata(a).ok())
            .map(|m| m.dev())
    }
}

fn missing_dir_verdict(k: &Known, probe: &dyn Probe, root: &Path, why: &str) -> Verdict {
    match (k.owner.dev, probe.device_of_nearest(root)) {
        // What is left of the path is on another filesystem: the one that held the worktree is
        // not mounted now. Not gone.
        (Some(recorded), Some(now)) if recorded != now => Verdict::Kept(format!(
            "{} is not reachable (its disk seems unmounted)",
            root.display()
        )),
        _ => Verdict::Gone(why.to_string()),
    }
}

/// Decides one VM's fate from the repository's current worktrees.
pub fn decide(
    k: &Known,
    repo_exists: bool,
    linked: &[LinkedWorktree],
    probe: &dyn Probe,
) -> Verdict {
    let root = &k.owner.root;
    match &k.id {
        None => {
            if repo_exists || probe.exists(root) {
                Verdict::Alive
            } else {
                missing_dir_verdict(k, probe, root, "the repository was deleted")
            }
        }
        Some(id) => match linked.iter().find(|w| &w.id == id) {
            None if !repo_exists && probe.exists(root) => {
                Verdict::Kept("its repository cannot be read".into())
            }
            None => Verdict::Gone("the worktree was removed from git".into()),
            Some(w) if w.locked => Verdict::Kept("the worktree is locked".into()),
            Some(w) if w.prunable => {
                missing_dir_verdict(k, probe, &w.base, "the worktree's directory was deleted")
            }
            Some(_) => Verdict::Alive,
        },
    }
}

/// Every VM of the repository at `common` with its verdict.
pub fn scan(state: &crate::state::State, common: &Path) -> Result<Vec<(Known, Verdict)>> {
    let names: Names = state.read_json("names.json")?;
    let repo_exists = common.is_dir();
    let linked = if repo_exists {
        crate::repo::linked_worktrees(common)?
    } else {
        vec![]
    };
    Ok(known(&names, common)
        .into_iter()
        .map(|k| {
            let v = decide(&k, repo_exists, &linked, &Fs);
            (k, v)
        })
        .collect())
}

/// Every repository (real common dir) the registry has VMs for.
pub fn repos(state: &crate::state::State) -> Result<Vec<PathBuf>> {
    let names: Names = state.read_json("names.json")?;
    let mut out: Vec<PathBuf> = names
        .values()
        .filter_map(|o| o.identity.split('\0').next().map(PathBuf::from))
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
        existing: Vec<&'static str>,
        devs: BTreeMap<&'static str, u64>,
    }

    impl Probe for FakeFs {
        fn exists(&self, p: &Path) -> bool {
            self.existing.iter().any(|e| Path::new(e) == p)
        }
        fn device_of_nearest(&self, p: &Path) -> Option<u64> {
            p.ancestors()
                .find_map(|a| self.devs.get(a.to_str()?).copied())
        }
    }

    fn k(id: Option<&str>, root: &str, dev: u64) -> Known {
        Known {
            name: "wt-x".into(),
            id: id.map(String::from),
            owner: Owner {
                identity: String::new(),
                root: root.into(),
                backend: "colima".into(),
                dev: Some(dev),
            },
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
            existing: vec!["/src/repo", "/src/feat"],
            devs: [("/", 1), ("/mnt/usb", 2)].into_iter().collect(),
        }
    }

    #[test]
    fn present_worktrees_are_alive() {
        let v = decide(
            &k(Some("feat"), "/src/feat", 1),
            true,
            &[wt("feat", "/src/feat", false, false)],
            &fs(),
        );
        assert_eq!(v, Verdict::Alive);
        assert_eq!(
            decide(&k(None, "/src/repo", 1), true, &[], &fs()),
            Verdict::Alive
        );
    }

    #[test]
    fn removed_or_pruned_worktrees_are_gone() {
        assert!(matches!(
            decide(&k(Some("feat"), "/src/feat", 1), true, &[], &fs()),
            Verdict::Gone(_)
        ));
    }

    #[test]
    fn deleted_directories_are_gone_but_locked_ones_are_kept() {
        let linked = [wt("feat", "/src/gone", false, true)];
        assert!(matches!(
            decide(&k(Some("feat"), "/src/gone", 1), true, &linked, &fs()),
            Verdict::Gone(_)
        ));
        let locked = [wt("feat", "/src/gone", true, false)];
        assert!(matches!(
            decide(&k(Some("feat"), "/src/gone", 1), true, &locked, &fs()),
            Verdict::Kept(_)
        ));
    }

    #[test]
    fn a_worktree_on_an_unmounted_disk_is_kept() {
        // Recorded on device 2 (the USB disk); now the path resolves to device 1: unmounted.
        let linked = [wt("usb", "/mnt/usb/wt", false, true)];
        let mut f = fs();
        f.devs.remove("/mnt/usb");
        let v = decide(&k(Some("usb"), "/mnt/usb/wt", 2), true, &linked, &f);
        assert!(
            matches!(v, Verdict::Kept(ref why) if why.contains("unmounted")),
            "{v:?}"
        );
    }

    #[test]
    fn a_deleted_repository_orphans_its_main_vm() {
        assert!(matches!(
            decide(&k(None, "/src/old", 1), false, &[], &fs()),
            Verdict::Gone(_)
        ));
    }

    #[test]
    fn registry_entries_are_grouped_by_repository() {
        let mut names = Names::new();
        let o = |id: &str| Owner {
            identity: id.into(),
            root: "/x".into(),
            backend: "colima".into(),
            dev: None,
        };
        names.insert("wt-a".into(), o("/r1/.git\0feat"));
        names.insert("wt-b".into(), o("/r1/.git\0main"));
        names.insert("wt-c".into(), o("/r10/.git\0feat"));
        let got = known(&names, Path::new("/r1/.git"));
        assert_eq!(
            got.iter()
                .map(|k| (k.name.as_str(), k.id.as_deref()))
                .collect::<Vec<_>>(),
            vec![("wt-a", Some("feat")), ("wt-b", None)]
        );
    }
}
