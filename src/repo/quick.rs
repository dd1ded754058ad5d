//! Finding the worktree around a directory from gix's discovery alone, without opening the
//! repository: the common layouts (a main checkout with its `.git` dir, a linked worktree of
//! it) with no `GIT_DIR`-style override. Every command starts here, and `name` is run by shell
//! prompts, so this must cost about what `git rev-parse` does. Anything unusual returns None and
//! gets the full open.

use std::path::{Path, PathBuf};

use gix::discover::repository::Path as Found;
use gix::discover::upwards::{Options, TrustPolicy};

use super::discover::GitEnv;
use super::{REPO_ID_KEY, Worktree, repo_id_of};

/// The worktree around `cwd` (absolute), or None where only the full open can tell.
pub(super) fn discover(cwd: &Path, env: &GitEnv) -> Option<Worktree> {
    // With any variable that moves git's search set, the full open applies it as git does.
    if !env.is_plain() {
        return None;
    }
    // Trust only decides which config files gix would read; the full open reads the
    // repository's own config whoever owns it, so nothing is gained by asking the owner.
    let opts = Options {
        trust: TrustPolicy::Assume(gix::sec::Trust::Full),
        current_dir: Some(cwd),
        ..env.upwards()
    };
    let (found, _) = gix::discover::upwards_opts(cwd, opts).ok()?;
    let (git_dir, work_dir, id) = match found {
        Found::WorkTree(work_dir) => (work_dir.join(".git"), work_dir, None),
        Found::LinkedWorkTree { work_dir, git_dir } => {
            let id = git_dir.file_name()?.to_str()?.to_string();
            (git_dir, work_dir, Some(id))
        }
        Found::Repository(_) => return None,
    };
    let commondir =
        gix::discover::path::from_plain_file_relative_to_file(&git_dir.join("commondir"));
    let common_dir = match (&id, commondir) {
        (None, None) => git_dir.clone(),
        (Some(_), Some(Ok(dir))) => dir,
        // A `.git` that points elsewhere without `commondir` (a submodule, a separate git
        // dir), or one that cannot be read.
        _ => return None,
    };
    // Per-worktree config may move the worktree (core.worktree): the full open reads it.
    if git_dir.join("config.worktree").exists() {
        return None;
    }
    let config = plain_config(&common_dir)?;
    let root = std::fs::canonicalize(&work_dir).ok()?;
    let common_dir = std::fs::canonicalize(&common_dir).ok()?;
    let main_root = match id {
        None => root.clone(),
        // The usual layout: the main checkout holds the common dir as its `.git`.
        Some(_) => main_checkout(&common_dir)?,
    };
    let repo_id = config
        .string(REPO_ID_KEY)
        .and_then(|v| repo_id_of(&v.to_string()));
    Some(Worktree {
        root,
        main_root: Some(main_root),
        common_dir,
        id,
        repo_id,
    })
}

/// The common dir's config, when nothing in it changes what the discovery found: no
/// `core.worktree`, `core.bare` or includes (which could set either).
fn plain_config(common_dir: &Path) -> Option<gix::config::File> {
    let file = gix::config::File::from_path_no_includes(
        common_dir.join("config"),
        gix::config::Source::Local,
    )
    .ok()?;
    let moves = file.string("core.worktree").is_some()
        || file
            .boolean("core.bare")
            .map_or(true, |b| b.unwrap_or(false))
        || file.sections_by_name("include").is_some()
        || file.sections_by_name("includeIf").is_some();
    (!moves).then_some(file)
}

/// `<main>/.git` → `<main>`, when that is what it is.
fn main_checkout(common_dir: &Path) -> Option<PathBuf> {
    let parent = common_dir.parent()?;
    (common_dir.file_name()? == ".git" && parent.join(".git").is_dir()).then(|| parent.into())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn git(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }

    /// The quick answer must be exactly the full open's, or no answer at all.
    fn same(cwd: &Path) -> bool {
        let full = super::super::discover::open_and_read(cwd, &Default::default()).unwrap();
        match super::discover(cwd, &Default::default()) {
            Some(quick) => {
                assert_eq!(quick, full, "at {}", cwd.display());
                true
            }
            None => false,
        }
    }

    #[test]
    fn the_quick_answer_equals_the_full_open_or_defers_to_it() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let main = base.join("main");
        std::fs::create_dir_all(main.join("sub/deeper")).unwrap();
        git(&base, &["init", "-q", "main"]);
        git(&main, &["commit", "-q", "--allow-empty", "-m", "i"]);
        git(
            &main,
            &["config", "vmoat.id", "0123456789abcdef0123456789abcdef"],
        );
        git(&main, &["worktree", "add", "-q", "../linked"]);
        git(
            &main,
            &["worktree", "add", "-q", ".claude/worktrees/nested"],
        );
        std::fs::create_dir_all(base.join("linked/a/b")).unwrap();
        std::os::unix::fs::symlink(base.join("linked"), base.join("link")).unwrap();
        for dir in [
            "main",
            "main/sub/deeper",
            "linked",
            "linked/a/b",
            "main/.claude/worktrees/nested",
            "link/a",
        ] {
            assert!(same(&base.join(dir)), "answered quickly at {dir}");
        }

        // Layouts only the full open knows: a separate git dir, a bare main repository, a
        // repository whose config moves its worktree.
        git(
            &base,
            &["init", "-q", "--separate-git-dir", "sep.git", "sep"],
        );
        git(&base, &["init", "-q", "--bare", "bare.git"]);
        git(
            &base.join("bare.git"),
            &["worktree", "add", "-q", "../of-bare"],
        );
        git(&base, &["init", "-q", "moved"]);
        git(
            &base.join("moved"),
            &["config", "core.worktree", "/nonexistent"],
        );
        for dir in ["sep", "of-bare"] {
            assert!(!same(&base.join(dir)), "deferred at {dir}");
        }
        assert!(super::discover(&base.join("moved"), &Default::default()).is_none());
    }

    #[test]
    fn inside_a_worktree_git_cannot_use_nothing_is_found() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        git(&base, &["init", "-q", "n"]);
        let main = base.join("n");
        git(&main, &["commit", "-q", "--allow-empty", "-m", "i"]);
        git(&main, &["worktree", "add", "-q", ".claude/worktrees/x"]);
        std::fs::create_dir(main.join(".claude/worktrees/x/sub")).unwrap();
        assert!(super::super::discover(&main.join(".claude/worktrees/x/sub")).is_ok());
        // The repository moves: the nested worktree's `.git` points to where it was.
        std::fs::rename(&main, base.join("n2")).unwrap();
        for dir in [".claude/worktrees/x", ".claude/worktrees/x/sub"] {
            let err = super::super::discover(&base.join("n2").join(dir)).unwrap_err();
            assert!(format!("{err:#}").contains("git cannot use"), "{err:#}");
            assert!(
                crate::error::find_hint(&err)
                    .unwrap()
                    .contains("git worktree repair")
            );
        }
        let fine = super::super::discover(&base.join("n2/.claude")).unwrap();
        assert_eq!(fine.root, base.join("n2"));
        assert!(super::super::discover(&base.join("n2/.git/objects")).is_ok());
    }
}
