//! Installing git-vmoat's `post-checkout` hook: in the hooks dir git really uses, chained to a
//! hook already there (its exit status kept), restorable, idempotent.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::hint;
use crate::repo::{self, Worktree};

/// The shim, from the repository's `hooks/` dir.
pub const SHIM: &str = include_str!("../hooks/post-checkout");
const MARKER: &str = ">>> git-vmoat (managed";
pub const HOOK: &str = "post-checkout";
pub const ORIG: &str = "post-checkout.vmoat-orig";

/// The repository config key saying what the hook's job does for a new worktree.
pub const AUTO_KEY: &str = "vmoat.auto";

/// What the hook's job does for a new worktree (`vmoat.auto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoMode {
    /// Seed and provision the VM.
    Provision,
    /// Seed, provision, start the stack and tunnel it.
    Up,
}

impl AutoMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoMode::Provision => "provision",
            AutoMode::Up => "up",
        }
    }

    /// The mode a `vmoat.auto` value names; None for anything else (nothing automatic).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "provision" => Some(AutoMode::Provision),
            "up" => Some(AutoMode::Up),
            _ => None,
        }
    }

    /// The repository's mode, as read in the worktree at `root`; None: unset or not a mode.
    pub fn of(root: &Path) -> Result<Option<Self>> {
        Ok(repo::config_string(root, AUTO_KEY)?
            .as_deref()
            .and_then(Self::parse))
    }
}

/// Where the hook goes and what is there now.
#[derive(Debug)]
pub struct HookState {
    pub dir: PathBuf,
    /// `core.hooksPath` as configured, if set.
    pub hooks_path: Option<String>,
    pub installed: bool,
    /// An earlier hook is chained.
    pub chained: bool,
    /// The shim there is older than this binary's.
    pub outdated: bool,
}

pub fn state(wt: &Worktree) -> Result<HookState> {
    let (dir, hooks_path) = repo::hooks_dir(wt)?;
    let text = std::fs::read_to_string(dir.join(HOOK)).unwrap_or_default();
    let installed = text.contains(MARKER);
    Ok(HookState {
        chained: dir.join(ORIG).exists(),
        outdated: installed && text != SHIM,
        installed,
        dir,
        hooks_path,
    })
}

/// Refuses a hooks dir that another tool manages in git (husky's `.husky`, a tracked `.githooks`).
fn check_not_tracked(wt: &Worktree, dir: &Path) -> Result<()> {
    let Some(main) = &wt.main_root else {
        return Ok(());
    };
    let Ok(rel) = dir.strip_prefix(main) else {
        return Ok(());
    };
    let rel = rel.to_string_lossy();
    if !rel.is_empty() && repo::holds_tracked_files(main, &rel)? {
        return Err(hint(
            format!(
                "core.hooksPath points at {rel}, a directory tracked in git (managed by a hook tool such as husky or lefthook)"
            ),
            format!(
                "installing there would edit tracked files; instead add this line to {rel}/post-checkout yourself:\n  case \"$1\" in *[!0]*|'') ;; *) git-vmoat hook post-checkout \"$@\" </dev/null >/dev/null 2>&1 || true ;; esac"
            ),
        ));
    }
    Ok(())
}

/// Installs (or refreshes) the shim; returns whether an earlier hook was chained.
pub fn install(wt: &Worktree) -> Result<HookState> {
    use std::os::unix::fs::PermissionsExt;
    let st = state(wt)?;
    check_not_tracked(wt, &st.dir)?;
    std::fs::create_dir_all(&st.dir).with_context(|| format!("creating {}", st.dir.display()))?;
    let hook = st.dir.join(HOOK);
    if hook.exists() && !st.installed {
        let orig = st.dir.join(ORIG);
        if orig.exists() {
            return Err(hint(
                format!("{} exists, and so does {}", hook.display(), orig.display()),
                "merge or remove one of them by hand, then run `git vmoat hooks install` again",
            ));
        }
        // Keep the user's hook, chained: the shim runs it first with the same arguments.
        std::fs::rename(&hook, &orig)
            .with_context(|| format!("moving {} aside", hook.display()))?;
    }
    let tmp = st.dir.join(".post-checkout.vmoat-tmp");
    std::fs::write(&tmp, SHIM)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &hook)?;
    state(wt)
}

/// Removes the shim and puts back the hook it chained; returns whether anything was removed.
pub fn uninstall(wt: &Worktree) -> Result<bool> {
    let st = state(wt)?;
    if !st.installed {
        return Ok(false);
    }
    std::fs::remove_file(st.dir.join(HOOK))?;
    if st.chained {
        std::fs::rename(st.dir.join(ORIG), st.dir.join(HOOK))?;
    }
    Ok(true)
}

/// Whether `old_head` is git's null object id (any length: SHA-1 or SHA-256).
pub fn is_null_oid(old_head: &str) -> bool {
    !old_head.is_empty() && old_head.bytes().all(|b| b == b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_oids_of_both_hash_kinds() {
        assert!(is_null_oid(&"0".repeat(40)));
        assert!(is_null_oid(&"0".repeat(64)));
        assert!(!is_null_oid(""));
        assert!(!is_null_oid("0000000000000000000000000000000000000001"));
    }

    #[test]
    fn the_shim_filters_null_oids_like_rust_does() {
        for (arg, want) in [
            ("0".repeat(40), true),
            ("0".repeat(64), true),
            ("abc0".into(), false),
            (String::new(), false),
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg("case \"$1\" in *[!0]* | '') echo no ;; *) echo yes ;; esac")
                .arg("sh")
                .arg(&arg)
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim() == "yes",
                want,
                "{arg:?}"
            );
            assert_eq!(is_null_oid(&arg), want);
        }
        assert!(
            SHIM.contains("*[!0]* | '')"),
            "the test above checks the shim's own pattern"
        );
    }
}
