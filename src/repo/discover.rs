//! Which worktree a command stands in: git's discovery from the current directory, with the
//! variables git itself reads to find the repository (`GIT_DIR`, `GIT_WORK_TREE`,
//! `GIT_COMMON_DIR`, `GIT_DISCOVERY_ACROSS_FILESYSTEM`, `GIT_CEILING_DIRECTORIES`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use gix::discover::upwards;

use super::{REPO_ID_KEY, Worktree, explicit, no_repository, quick, realpath, repo_id_of};
use crate::error::hint;

/// The variables git reads to find the repository, as one process sees them. Handed down
/// rather than read where used, so each test case can have its own.
#[derive(Clone, Debug, Default)]
pub struct GitEnv {
    pub git_dir: Option<OsString>,
    pub work_tree: Option<OsString>,
    pub common_dir: Option<OsString>,
    pub across_fs: Option<OsString>,
}

impl GitEnv {
    pub fn from_process() -> Self {
        let var = std::env::var_os;
        Self {
            git_dir: var("GIT_DIR"),
            work_tree: var("GIT_WORK_TREE"),
            common_dir: var("GIT_COMMON_DIR"),
            across_fs: var("GIT_DISCOVERY_ACROSS_FILESYSTEM"),
        }
    }

    /// Nothing set that changes where git looks (the ceiling only stops the walk early).
    pub fn is_plain(&self) -> bool {
        self.git_dir.is_none()
            && self.work_tree.is_none()
            && self.common_dir.is_none()
            && self.across_fs.is_none()
    }

    /// The options of git's walk up from the current directory.
    pub(super) fn upwards(&self) -> upwards::Options<'static> {
        let mut opts = upwards::Options::default().apply_environment();
        if let Some(cross) = self.across_fs.as_ref().and_then(|v| v.to_str())
            && let Ok(b) = gix::config::Boolean::try_from(gix::bstr::BString::from(cross))
        {
            opts.cross_fs = b.into();
        }
        opts
    }
}

/// Finds the worktree containing `cwd` as git would, with the process's environment.
pub fn discover(cwd: &Path) -> Result<Worktree> {
    discover_in(cwd, &GitEnv::from_process())
}

/// `discover` with the environment given.
pub fn discover_in(cwd: &Path, env: &GitEnv) -> Result<Worktree> {
    let wt = if env.git_dir.is_some() || env.work_tree.is_some() {
        explicit::discover(cwd, env)?
    } else {
        match quick::discover(cwd, env) {
            Some(wt) => wt,
            None => open_and_read(cwd, env)?,
        }
    };
    if let Some(common) = &env.common_dir {
        explicit::check_common_dir(cwd, common, &wt)?;
    }
    refuse_broken_inner(cwd, &wt)?;
    Ok(wt)
}

/// Git's discovery walks past a `.git` it cannot use (a linked worktree whose repository
/// moved): from inside one it finds the checkout around it, and acting there would act on
/// another worktree's VM. Refused instead, as git itself refuses there.
fn refuse_broken_inner(cwd: &Path, wt: &Worktree) -> Result<()> {
    // At the top of the worktree (most commands) there is nothing in between to look at.
    if cwd == wt.root {
        return Ok(());
    }
    let Ok(here) = std::fs::canonicalize(cwd) else {
        return Ok(());
    };
    let Ok(inside) = here.strip_prefix(&wt.root) else {
        return Ok(());
    };
    // Inside the git dir itself (`.git/…`) is not a worktree of its own.
    if inside
        .components()
        .next()
        .is_some_and(|c| c.as_os_str() == ".git")
    {
        return Ok(());
    }
    let mut dir = here.as_path();
    while dir != wt.root {
        if dir.join(".git").symlink_metadata().is_ok() {
            return Err(hint(
                format!(
                    "{} has a .git that git cannot use (a worktree whose repository moved?); git-vmoat will not act on the checkout around it ({}) instead",
                    dir.display(),
                    wt.root.display()
                ),
                "run `git worktree repair` in the main checkout (or `git worktree repair <path>` there), then try again",
            ));
        }
        let Some(up) = dir.parent() else { break };
        dir = up;
    }
    Ok(())
}

/// The error for a directory outside any repository.
pub(super) fn not_in_repository(cwd: &Path) -> anyhow::Error {
    hint(
        format!("{} is not in a git repository", cwd.display()),
        "run git-vmoat inside a worktree of your project (cd into it first)",
    )
}

/// The error for a repository without a work tree.
pub(super) fn bare(git_dir: &Path) -> anyhow::Error {
    hint(
        format!(
            "{} is a bare repository: it has no worktree to run",
            git_dir.display()
        ),
        "create a worktree with `git worktree add <path>` and run git-vmoat inside it",
    )
}

/// `discover` by opening the repository: every layout git finds by walking up.
pub(super) fn open_and_read(cwd: &Path, env: &GitEnv) -> Result<Worktree> {
    // Only the repository's own config matters here; skipping the user's and the system's
    // files keeps every command's start as cheap as `git rev-parse`.
    let isolated = gix::sec::trust::Mapping {
        full: gix::open::Options::isolated(),
        reduced: gix::open::Options::isolated(),
    };
    let repo = match gix::ThreadSafeRepository::discover_opts(cwd, env.upwards(), isolated) {
        Ok(r) => r.to_thread_local(),
        Err(err) => {
            if no_repository(&err) {
                return Err(not_in_repository(cwd));
            }
            return Err(anyhow::Error::new(err))
                .with_context(|| format!("opening the git repository at {}", cwd.display()));
        }
    };
    let Some(workdir) = repo.workdir() else {
        return Err(bare(repo.git_dir()));
    };
    let root = realpath(workdir)?;
    let common_dir = realpath(repo.common_dir())?;
    let id = repo
        .worktree()
        .and_then(|wt| wt.id().ok().flatten().map(|id| id.to_string()))
        .filter(|_| repo.kind() == gix::repository::Kind::LinkedWorkTree);
    assemble(&repo, root, common_dir, id)
}

/// The worktree at `root` of `repo`, linked (`id`) or main, with its repository's identity.
pub(super) fn assemble(
    repo: &gix::Repository,
    root: PathBuf,
    common_dir: PathBuf,
    id: Option<String>,
) -> Result<Worktree> {
    let main_root = match id {
        None => Some(root.clone()),
        Some(_) => linked_main_root(repo, &common_dir)?,
    };
    Ok(Worktree {
        root,
        main_root,
        common_dir,
        id,
        repo_id: repo_id(repo),
    })
}

/// The main checkout of a linked worktree's repository (None when the repository is bare).
pub(super) fn linked_main_root(
    repo: &gix::Repository,
    common_dir: &Path,
) -> Result<Option<PathBuf>> {
    if common_dir.file_name().is_some_and(|n| n == ".git")
        && let Some(parent) = common_dir.parent().filter(|p| p.join(".git").is_dir())
    {
        // The usual layout: the main checkout holds the common dir as its `.git`.
        return Ok(Some(parent.to_path_buf()));
    }
    match repo.main_repo() {
        Ok(main) => main.workdir().map(realpath).transpose(),
        Err(_) => Ok(None),
    }
}

/// The repository's own id, when its config has a well-formed one.
pub(super) fn repo_id(repo: &gix::Repository) -> Option<String> {
    repo.config_snapshot()
        .string(REPO_ID_KEY)
        .and_then(|v| repo_id_of(&v.to_string()))
}
