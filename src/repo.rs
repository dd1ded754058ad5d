//! Everything git-vmoat asks of the repository, answered by gix (the only module that uses it):
//! which worktree we stand in, its main checkout, its common dir, and whether a path is ignored.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::hint;

/// The worktree a command acts on.
#[derive(Clone, Debug)]
pub struct Worktree {
    /// Real path of the worktree's top directory.
    pub root: PathBuf,
    /// Real path of the main checkout (None when the main repository is bare).
    pub main_root: Option<PathBuf>,
    /// Real path of the shared git dir (`<main>/.git`).
    pub common_dir: PathBuf,
    /// The linked worktree's id (its dir under `<common>/worktrees/`); None for the main one.
    pub id: Option<String>,
}

impl Worktree {
    /// What identifies this worktree across runs: the repository plus the worktree id.
    pub fn identity(&self) -> String {
        format!(
            "{}\0{}",
            self.common_dir.display(),
            self.id.as_deref().unwrap_or("main")
        )
    }

    /// The worktree directory's own name (the base of the default VM name).
    pub fn dir_name(&self) -> String {
        self.root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn is_main(&self) -> bool {
        self.id.is_none()
    }
}

/// Finds the worktree containing `cwd`, honouring GIT_DIR/GIT_WORK_TREE like git does.
pub fn discover(cwd: &Path) -> Result<Worktree> {
    let repo = match gix::ThreadSafeRepository::discover_with_environment_overrides(cwd) {
        Ok(r) => r.to_thread_local(),
        Err(err) => {
            let not_found = err
                .downcast_any_ref::<gix::discover::upwards::Error>()
                .is_some_and(|e| {
                    matches!(
                        e,
                        gix::discover::upwards::Error::NoGitRepository { .. }
                            | gix::discover::upwards::Error::NoGitRepositoryWithinCeiling { .. }
                            | gix::discover::upwards::Error::NoGitRepositoryWithinFs { .. }
                    )
                });
            if not_found {
                return Err(hint(
                    format!("{} is not in a git repository", cwd.display()),
                    "run git-vmoat inside a worktree of your project (cd into it first)",
                ));
            }
            return Err(anyhow::anyhow!("{err}"))
                .with_context(|| format!("opening the git repository at {}", cwd.display()));
        }
    };
    let Some(workdir) = repo.workdir() else {
        return Err(hint(
            format!(
                "{} is a bare repository: it has no worktree to run",
                repo.git_dir().display()
            ),
            "create a worktree with `git worktree add <path>` and run git-vmoat inside it",
        ));
    };
    let root = realpath(workdir)?;
    let common_dir = realpath(repo.common_dir())?;
    let id = repo
        .worktree()
        .and_then(|wt| wt.id().ok().flatten().map(|id| id.to_string()))
        .filter(|_| repo.kind() == gix::repository::Kind::LinkedWorkTree);
    let main_root = if id.is_none() {
        Some(root.clone())
    } else {
        match repo.main_repo() {
            Ok(main) => main.workdir().map(realpath).transpose()?,
            Err(_) => None,
        }
    };
    Ok(Worktree {
        root,
        main_root,
        common_dir,
        id,
    })
}

fn realpath(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()))
}

/// How git sees a path of the main checkout, for seeding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathStatus {
    /// Matched by an ignore rule and not tracked: a candidate to seed.
    Ignored,
    /// Tracked (or holds tracked files): every checkout has its own; never seeded.
    Tracked,
    /// Neither tracked nor ignored.
    Untracked,
}

/// Answers "is this path ignored / tracked?" for many paths of one checkout.
pub struct IgnoreCheck {
    repo: gix::Repository,
}

impl IgnoreCheck {
    pub fn open(checkout: &Path) -> Result<Self> {
        let repo = gix::open(checkout)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("opening the repository at {}", checkout.display()))?;
        Ok(Self { repo })
    }

    /// `rel` is a repo-relative path with `/` separators; `is_dir` selects directory-only rules.
    pub fn status(&self, rel: &str, is_dir: bool) -> Result<PathStatus> {
        let index = self
            .repo
            .index_or_empty()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let path: &gix::bstr::BStr = rel.into();
        let prefix = format!("{rel}/");
        if index.entry_by_path(path).is_some()
            || index
                .prefixed_entries(prefix.as_str().into())
                .is_some_and(|e| !e.is_empty())
        {
            return Ok(PathStatus::Tracked);
        }
        let wt = self
            .repo
            .worktree()
            .context("the main repository has no worktree")?;
        let mut excludes = wt.excludes(None).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mode = is_dir.then_some(gix::index::entry::Mode::DIR);
        let platform = excludes
            .at_entry(path, mode)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(if platform.is_excluded() {
            PathStatus::Ignored
        } else {
            PathStatus::Untracked
        })
    }
}
