//! Trust in the legacy shell files: they run code on this machine, so they are evaluated only
//! after the user has reviewed them and recorded their content's hash with `git vmoat trust`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::LEGACY_FILES;
use crate::error::hint;
use crate::state::State;

use crate::state::files::TRUST as TRUST_FILE;

/// Trusted legacy file hashes per repository (`registry::repo_key`), so every worktree of a
/// repository shares them: a new worktree with the same file content is already trusted.
#[derive(Default, Serialize, Deserialize)]
struct TrustStore {
    /// Earlier records, keyed by the file's path; still honoured so an upgrade asks nothing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    files: BTreeMap<PathBuf, String>,
    /// Repository key -> sha256 of a trusted file -> the file's name when it was trusted.
    #[serde(default)]
    repos: BTreeMap<String, BTreeMap<String, String>>,
}

impl TrustStore {
    fn trusts(&self, repo: &str, file: &Path, hash: &str) -> bool {
        self.repos.get(repo).is_some_and(|h| h.contains_key(hash))
            || std::fs::canonicalize(file)
                .ok()
                .and_then(|real| self.files.get(&real))
                .is_some_and(|h| h == hash)
    }
}

/// The sha256 of a file's content, in hex.
pub fn file_hash(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The repository key of the worktree at `root`. Outside a repository (unit tests of this
/// module) the directory itself stands in.
pub(super) fn repo_key_at(root: &Path) -> String {
    match crate::repo::discover(root) {
        Ok(wt) => crate::registry::repo_key(&wt),
        Err(_) => {
            crate::repo::read_repo_id(root).unwrap_or_else(|| format!("path:{}", root.display()))
        }
    }
}

/// The legacy config files present in the worktree, with their hashes.
pub fn legacy_files(root: &Path) -> Result<Vec<(PathBuf, String)>> {
    LEGACY_FILES
        .iter()
        .map(|f| root.join(f))
        .filter(|p| p.is_file())
        .map(|p| file_hash(&p).map(|h| (p, h)))
        .collect()
}

/// The legacy files of the worktree whose current content this repository has not trusted.
pub fn untrusted_legacy(root: &Path, repo: &str, state: &State) -> Result<Vec<PathBuf>> {
    let store: TrustStore = state.read_json(TRUST_FILE)?;
    Ok(legacy_files(root)?
        .into_iter()
        .filter(|(p, h)| !store.trusts(repo, p, h))
        .map(|(p, _)| p)
        .collect())
}

/// Fails, saying how to trust them, unless every file's current content is trusted.
pub(super) fn check_trusted(files: &[PathBuf], repo: &str, state: &State) -> Result<()> {
    let store: TrustStore = state.read_json(TRUST_FILE)?;
    for f in files {
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        if store.trusts(repo, f, &file_hash(f)?) {
            continue;
        }
        let known = store
            .repos
            .get(repo)
            .is_some_and(|h| h.values().any(|n| *n == name));
        return Err(if known {
            hint(
                format!(
                    "{name} changed since you trusted it, and it is shell code that runs on this machine"
                ),
                format!(
                    "review {}, then run `git vmoat trust` (or convert it to TOML: `git vmoat init --from-conf`)",
                    f.display()
                ),
            )
        } else {
            hint(
                format!(
                    "{name} is shell code that would run on this machine, and you have not trusted it"
                ),
                format!(
                    "review {}, then run `git vmoat trust` (or move to vmoat.toml: `git vmoat init --from-conf` after trusting)",
                    f.display()
                ),
            )
        });
    }
    Ok(())
}

/// Records the current content of the worktree's legacy config files as trusted for its whole
/// repository; returns them.
pub fn trust(wt: &crate::repo::Worktree, state: &State) -> Result<Vec<(PathBuf, String)>> {
    let files = legacy_files(&wt.root)?;
    let repo = crate::registry::repo_key_for_record(state, wt)?;
    state.update_json(TRUST_FILE, |store: &mut TrustStore| {
        let hashes = store.repos.entry(repo).or_default();
        for (f, h) in &files {
            let name = f.file_name().unwrap_or_default().to_string_lossy();
            hashes.insert(h.clone(), name.into_owned());
        }
        Ok(())
    })?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::tests::{fake_wt, msg};
    use super::*;

    #[test]
    fn untrusted_or_changed_legacy_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::at(dir.path().join("state"));
        let marker = dir.path().join("ran");
        let conf = format!("touch {}\nVM_CPU=2\n", marker.display());
        std::fs::write(dir.path().join("vmoat.conf"), &conf).unwrap();
        let m = msg(Config::load(dir.path(), &st));
        assert!(
            m.contains("not trusted") && m.contains("git vmoat trust"),
            "{m}"
        );
        assert!(!marker.exists(), "untrusted config must not run");
        trust(&fake_wt(dir.path()), &st).unwrap();
        assert_eq!(Config::load(dir.path(), &st).unwrap().cpus, 2);
        std::fs::write(dir.path().join("vmoat.conf"), "VM_CPU=3\n").unwrap();
        let m = msg(Config::load(dir.path(), &st));
        assert!(m.contains("changed since you trusted it"), "{m}");
    }
}
