//! The ownership registry: which worktree (by move-proof identity) owns which VM, with the
//! backend and prefix recorded at creation; each VM also keeps its own owner record, from which
//! `doctor --repair` rebuilds the registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::repo::{self, Identity, Worktree};
use crate::state::State;
use crate::state::files::{NAMES, OWNER};

/// Records made before repositories had ids name the repository by its path: `path:<common>`.
const BY_PATH: &str = "path:";

/// Who a VM belongs to, and how it was made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Owner {
    /// The repository id (`vmoat.id`), or `path:<common dir>` for a record from before ids.
    #[serde(default)]
    pub repo: String,
    /// git's admin id of the worktree, or `main`.
    #[serde(default)]
    pub worktree: String,
    /// Pre-identity form (`<common dir>\0<worktree id>`): read, never written.
    #[serde(default, skip_serializing)]
    identity: Option<String>,
    /// Where the worktree was last seen (realpath); display only, never the identity.
    pub root: PathBuf,
    /// Where the repository's common dir was last seen.
    #[serde(default)]
    pub common: PathBuf,
    /// Device and inode of that common dir: a `mv` keeps them, a copy (`cp -r`, which also
    /// copies the repository id) does not, so a copy is never taken for the moved original.
    #[serde(default)]
    pub common_ino: Option<(u64, u64)>,
    /// The backend and prefix the VM was made with: teardown uses these, not today's config.
    pub backend: BackendKind,
    #[serde(default)]
    pub prefix: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// Device of the worktree's filesystem, to tell a deleted worktree from an unmounted disk.
    #[serde(default)]
    pub dev: Option<u64>,
}

impl Owner {
    pub fn identity(&self) -> Identity {
        Identity {
            repo: self.repo.clone(),
            worktree: self.worktree.clone(),
        }
    }

    pub fn is_main(&self) -> bool {
        self.worktree == "main"
    }

    /// Turns a pre-identity record into the current shape (repository named by its path).
    fn normalise(&mut self) {
        if let Some(old) = self.identity.take()
            && self.repo.is_empty()
        {
            let (common, wt) = old.split_once('\0').unwrap_or((old.as_str(), "main"));
            self.repo = format!("{BY_PATH}{common}");
            self.worktree = wt.to_string();
            self.common = PathBuf::from(common);
        }
    }
}

pub type Names = BTreeMap<String, Owner>;

/// Reads the registry; a damaged file is an error (see `state::read_json`), never "empty".
pub fn load(state: &State) -> Result<Names> {
    let mut names: Names = state.read_json(NAMES)?;
    names.values_mut().for_each(Owner::normalise);
    Ok(names)
}

/// Changes the registry under its lock.
pub fn update<R>(state: &State, f: impl FnOnce(&mut Names) -> Result<R>) -> Result<R> {
    state.update_json(NAMES, |names: &mut Names| {
        names.values_mut().for_each(Owner::normalise);
        f(names)
    })
}

/// Device and inode of a directory.
pub fn dir_ino(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether `owner` was recorded for the repository whose common dir is `common` and whose id is
/// `repo_id`: the same id, and the same place or the same directory moved (same inode). A copy
/// carries the id but not the inode; a move to another filesystem looks like a copy, which is the
/// safe side: its old VMs show as missing, never as someone else's.
pub fn same_repo(owner: &Owner, common: &Path, repo_id: Option<&str>) -> bool {
    if owner.repo == format!("{BY_PATH}{}", common.display()) {
        return true;
    }
    if repo_id != Some(owner.repo.as_str()) {
        return false;
    }
    match owner.common_ino {
        // The same directory, wherever it is now (a copy put back at the old path is not).
        Some(recorded) => dir_ino(common) == Some(recorded),
        // Recorded before inodes were kept: here, or moved with nothing left at the old place.
        None => owner.common == common || !owner.common.is_dir(),
    }
}

/// Whether `owner` is the record of this worktree.
pub fn owns(owner: &Owner, wt: &Worktree) -> bool {
    owner.worktree == wt.worktree_id() && same_repo(owner, &wt.common_dir, wt.repo_id.as_deref())
}

/// This worktree's VM, if one is recorded.
pub fn find(names: &Names, wt: &Worktree) -> Option<(String, Owner)> {
    names
        .iter()
        .find(|(_, o)| owns(o, wt))
        .map(|(n, o)| (n.clone(), o.clone()))
}

/// Every VM recorded for the repository `wt` belongs to (any worktree of it).
pub fn of_repo(names: &Names, wt: &Worktree) -> Vec<(String, Owner)> {
    names
        .iter()
        .filter(|(_, o)| same_repo(o, &wt.common_dir, wt.repo_id.as_deref()))
        .map(|(n, o)| (n.clone(), o.clone()))
        .collect()
}

/// Makes sure the repository has an id (kept in its own config, so it moves with it) and that
/// the id is its own: a copied repository carries its original's id, and gets a fresh one.
/// Returns the id and whether this call made it.
pub fn ensure_repo_id(state: &State, wt: &mut Worktree) -> Result<(String, bool)> {
    let names = load(state)?;
    // Records of this id that are not of this directory (nor of it moved) belong to the
    // repository this one was copied from.
    let copied = |id: &str| {
        names
            .values()
            .any(|o| o.repo == id && !same_repo(o, &wt.common_dir, Some(id)))
    };
    if let Some(id) = &wt.repo_id
        && !copied(id)
    {
        return Ok((id.clone(), false));
    }
    let _lock = state.lock_repo_id()?;
    let file = wt.common_config();
    // Another git-vmoat may have made it since we looked.
    if let Some(id) = repo::read_repo_id(&wt.common_dir)
        && !copied(&id)
    {
        wt.repo_id = Some(id.clone());
        return Ok((id, false));
    }
    if let Some(raw) = repo::raw_repo_id(&wt.common_dir)
        && repo::repo_id_of(&raw).is_none()
    {
        // Never written over: VMs of this repository may be recorded under what it was.
        return Err(crate::error::hint(
            format!(
                "{} holds vmoat.id = {raw:?}, which is not an id git-vmoat made; nothing was changed",
                file.display()
            ),
            "put back the id it had (`git vmoat gc --all --dry-run` lists VMs by repository), or remove the line (`git config --unset vmoat.id`) to start afresh",
        ));
    }
    let id = repo::new_repo_id()?;
    crate::git::file_config_set(&file, repo::REPO_ID_KEY, &id)?;
    wt.repo_id = Some(id.clone());
    Ok((id, true))
}

/// Takes back a repository id this process just made, when nothing came of it (the first VM
/// failed to start): a failed command leaves the repository as it was.
pub fn forget_new_repo_id(state: &State, wt: &Worktree, id: &str) -> Result<()> {
    let _lock = state.lock_repo_id()?;
    if load(state)?.values().any(|o| o.repo == id) {
        return Ok(());
    }
    crate::git::file_config_unset(&wt.common_config(), repo::REPO_ID_KEY)
}

/// The key approvals and legacy trust are recorded under: the repository, never the worktree
/// path, so every worktree of a repository shares them.
pub fn repo_key(wt: &Worktree) -> String {
    // The repository id moves with the repository; before one exists nothing was approved
    // under it, and the path only stands in until `trust`/`hooks install` make the id.
    wt.repo_id
        .clone()
        .or_else(|| crate::repo::read_repo_id(&wt.common_dir))
        .unwrap_or_else(|| format!("path:{}", wt.common_dir.display()))
}

/// The repository key for recording an approval: the repository gets its id first, so the
/// approval survives moving the repository.
pub fn repo_key_for_record(state: &State, wt: &Worktree) -> Result<String> {
    let mut wt = wt.clone();
    ensure_repo_id(state, &mut wt)?;
    Ok(repo_key(&wt))
}

/// Device of the filesystem holding `p`.
fn dev_of(p: &Path) -> Option<u64> {
    std::fs::metadata(p)
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
}

/// Records `name` as this worktree's VM (or refreshes the record: the worktree or repository
/// may have moved), in the registry and in the VM's own owner record. `derive` picks the name
/// of a new VM, given a test for names already owned by someone else.
pub fn claim(
    state: &State,
    wt: &Worktree,
    backend: BackendKind,
    prefix: &str,
    derive: impl FnOnce(&dyn Fn(&str) -> bool) -> Result<String>,
) -> Result<(String, Owner)> {
    let id = wt
        .identity()
        .ok_or_else(|| anyhow::anyhow!("the repository has no id yet"))?;
    let (name, owner) = update(state, |names| {
        // Adopt this repository's records from before ids (or from before a move).
        for o in names.values_mut() {
            if o.repo == format!("{BY_PATH}{}", wt.common_dir.display()) {
                o.repo = id.repo.clone();
            }
            if o.repo == id.repo && same_repo(o, &wt.common_dir, Some(&id.repo)) {
                o.common = wt.common_dir.clone();
                o.common_ino = dir_ino(&wt.common_dir);
            }
        }
        let found = names
            .iter()
            .find(|(_, o)| owns(o, wt))
            .map(|(n, o)| (n.clone(), o.clone()));
        let (name, mut owner) = match found {
            Some(f) => f,
            None => {
                let taken = |n: &str| {
                    names.get(n).is_some_and(|o| !owns(o, wt))
                        || read_owner(state, n).is_some_and(|o| o.identity() != id)
                };
                let name = derive(&taken)?;
                let owner = Owner {
                    repo: id.repo.clone(),
                    worktree: id.worktree.clone(),
                    identity: None,
                    root: wt.root.clone(),
                    common: wt.common_dir.clone(),
                    common_ino: None,
                    backend,
                    prefix: prefix.to_string(),
                    created: crate::jobs::now(),
                    dev: None,
                };
                (name, owner)
            }
        };
        owner.root = wt.root.clone();
        owner.common = wt.common_dir.clone();
        owner.common_ino = dir_ino(&wt.common_dir);
        owner.dev = dev_of(&wt.root);
        names.insert(name.clone(), owner.clone());
        Ok((name, owner))
    })?;
    write_owner(state, &name, &owner)?;
    Ok((name, owner))
}

/// A VM's own owner record, if it has one.
pub fn read_owner(state: &State, name: &str) -> Option<Owner> {
    let path = state.vm_dir_path(name).join(OWNER);
    let mut o: Owner = crate::state::read_json::<Option<Owner>>(&path).ok()??;
    o.normalise();
    Some(o)
}

pub fn write_owner(state: &State, name: &str, owner: &Owner) -> Result<()> {
    let dir = state.vm_dir(name)?;
    crate::state::write_json(&dir.join(OWNER), &Some(owner))
}

/// Updates where a VM's worktree is (after a move), in both records.
pub fn set_root(state: &State, name: &str, root: &Path, common: &Path) -> Result<()> {
    let owner = update(state, |names| {
        Ok(names.get_mut(name).map(|o| {
            o.root = root.to_path_buf();
            o.common = common.to_path_buf();
            o.common_ino = dir_ino(common);
            o.clone()
        }))
    })?;
    if let Some(o) = owner {
        write_owner(state, name, &o)?;
    }
    Ok(())
}

/// Forgets a name (and its runtime files) whose VM is gone or was never made.
pub fn unclaim(state: &State, name: &str) -> Result<()> {
    update(state, |names| {
        names.remove(name);
        Ok(())
    })?;
    let dir = state.vm_dir_path(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// Every VM that has an owner record in the state dir: `(name, owner)`.
pub fn owner_records(state: &State) -> Vec<(String, Owner)> {
    let Ok(dir) = std::fs::read_dir(state.root().join(crate::state::files::VMS_DIR)) else {
        return vec![];
    };
    let mut out: Vec<(String, Owner)> = dir
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_str()?.to_string();
            let owner = read_owner(state, &name)?;
            Some((name, owner))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wt(common: &Path, id: Option<&str>, repo_id: Option<&str>) -> Worktree {
        Worktree {
            root: common.parent().unwrap().join(id.unwrap_or("main")),
            main_root: None,
            common_dir: common.to_path_buf(),
            id: id.map(String::from),
            repo_id: repo_id.map(String::from),
        }
    }

    #[test]
    fn records_from_before_ids_are_read_and_adopted() {
        let tmp = tempfile::tempdir().unwrap();
        let st = State::at(tmp.path().join("s"));
        std::fs::create_dir_all(st.root()).unwrap();
        let common = tmp.path().join("r/.git");
        std::fs::write(
            st.root().join(NAMES),
            format!(
                r#"{{"wt-feat": {{"identity": "{}\u0000feat", "root": "/x/feat", "backend": "colima", "dev": null}}}}"#,
                common.display()
            ),
        )
        .unwrap();
        let names = load(&st).unwrap();
        let w = wt(&common, Some("feat"), None);
        assert_eq!(find(&names, &w).unwrap().0, "wt-feat");
        // Another worktree id of the same repository is not it.
        assert!(find(&names, &wt(&common, Some("other"), None)).is_none());
        let mut w = wt(
            &common,
            Some("feat"),
            Some("0123456789abcdef0123456789abcdef"),
        );
        let (name, owner) = claim(&st, &w, BackendKind::Netns, "wt-", |_| unreachable!()).unwrap();
        assert_eq!(name, "wt-feat");
        assert_eq!(owner.repo, "0123456789abcdef0123456789abcdef");
        assert_eq!(
            owner.backend,
            BackendKind::Colima,
            "the backend it was made with stays"
        );
        // After the claim the record is keyed by the id: found again after a move.
        w.common_dir = tmp.path().join("moved/.git");
        assert_eq!(find(&load(&st).unwrap(), &w).unwrap().0, "wt-feat");
    }

    #[test]
    fn a_name_owned_elsewhere_is_taken() {
        let tmp = tempfile::tempdir().unwrap();
        let st = State::at(tmp.path().join("s"));
        let a = wt(&tmp.path().join("a/.git"), None, Some(&"a".repeat(32)));
        let b = wt(&tmp.path().join("b/.git"), None, Some(&"b".repeat(32)));
        let (n1, _) = claim(&st, &a, BackendKind::Netns, "wt-", |_| Ok("wt-main".into())).unwrap();
        let (n2, _) = claim(&st, &b, BackendKind::Netns, "wt-", |taken| {
            assert!(taken("wt-main"));
            assert!(!taken("wt-other"));
            Ok("wt-main-1".into())
        })
        .unwrap();
        assert_eq!((n1.as_str(), n2.as_str()), ("wt-main", "wt-main-1"));
        // Each VM has its own owner record, equal to the registry's.
        let names = load(&st).unwrap();
        assert_eq!(read_owner(&st, "wt-main").as_ref(), names.get("wt-main"));
        assert_eq!(owner_records(&st).len(), 2);
    }
}
