//! The worktree when git's environment names the repository or the work tree, by git's own
//! rules: `GIT_WORK_TREE` (relative to the current directory) wins over `core.worktree`; a
//! `GIT_DIR` with neither makes the current directory the work tree; without `GIT_DIR` the
//! repository is still the one found from the current directory. Unlike git, a work tree that
//! belongs to another worktree or repository is refused (see `refuse_foreign`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use gix::discover::repository::Path as Found;

use super::discover::{GitEnv, assemble, bare, not_in_repository};
use super::{Worktree, no_repository, realpath};
use crate::error::hint;

/// `discover` with `GIT_DIR` or `GIT_WORK_TREE` set.
pub(super) fn discover(cwd: &Path, env: &GitEnv) -> Result<Worktree> {
    let git_dir = match &env.git_dir {
        Some(v) => named_git_dir(cwd, v)?,
        None => discovered_git_dir(cwd, env)?,
    };
    let repo = gix::ThreadSafeRepository::open_opts(
        &git_dir,
        gix::open::Options::isolated().open_path_as_is(true),
    )
    .with_context(|| format!("opening the git repository at {}", git_dir.display()))?
    .to_thread_local();
    let git_dir = realpath(repo.git_dir())?;
    let common_dir = realpath(repo.common_dir())?;
    let root = match &env.work_tree {
        Some(v) => named_work_tree(cwd, v)?,
        None => implied_work_tree(cwd, &git_dir, &common_dir)?,
    };
    let id = worktree_id(&git_dir, &common_dir)?;
    refuse_foreign(&root, &git_dir, &common_dir)?;
    assemble(&repo, root, common_dir, id)
}

/// `GIT_DIR`, relative to `cwd`: a git dir, or a `.git` file pointing at one. Unlike a plain
/// open, a work tree's top directory is not taken for its `.git` (git does not either).
fn named_git_dir(cwd: &Path, value: &OsStr) -> Result<PathBuf> {
    let fix = "unset GIT_DIR, or set it to a repository's git dir (the `.git` of a checkout)";
    if value.is_empty() {
        return Err(hint("GIT_DIR is set but empty", fix));
    }
    let path = cwd.join(value);
    let path = if path.is_file() {
        gix::discover::path::from_gitdir_file(&path)
            .map_err(|e| hint(format!("GIT_DIR={}: {e}", path.display()), fix))?
    } else {
        path
    };
    gix::discover::is_git(&path).map_err(|_| {
        hint(
            format!("GIT_DIR={} is not a git repository", path.display()),
            fix,
        )
    })?;
    Ok(path)
}

/// The git dir git finds walking up from `cwd` (then paired with `GIT_WORK_TREE`).
fn discovered_git_dir(cwd: &Path, env: &GitEnv) -> Result<PathBuf> {
    let opts = gix::discover::upwards::Options {
        current_dir: Some(cwd),
        ..env.upwards()
    };
    match gix::discover::upwards_opts(cwd, opts) {
        Ok((Found::WorkTree(dir), _)) => Ok(dir.join(".git")),
        Ok((Found::LinkedWorkTree { git_dir, .. }, _)) => Ok(git_dir),
        Ok((Found::Repository(git_dir), _)) => Ok(git_dir),
        Err(err) => {
            if no_repository(&err) {
                return Err(not_in_repository(cwd));
            }
            Err(anyhow::Error::new(err))
                .with_context(|| format!("finding the git repository at {}", cwd.display()))
        }
    }
}

/// `GIT_WORK_TREE`, relative to `cwd`; it must be a directory. (`git rev-parse` prints any
/// path, but every command that touches the work tree then fails.)
fn named_work_tree(cwd: &Path, value: &OsStr) -> Result<PathBuf> {
    let fix = "unset GIT_WORK_TREE, or set it to the top directory of the worktree to use";
    if value.is_empty() {
        return Err(hint("GIT_WORK_TREE is set but empty", fix));
    }
    let path = cwd.join(value);
    if !path.is_dir() {
        return Err(hint(
            format!("GIT_WORK_TREE={} is not a directory", path.display()),
            fix,
        ));
    }
    realpath(&path)
}

/// The work tree git uses for a `GIT_DIR` without `GIT_WORK_TREE`: `core.worktree` (relative to
/// the git dir), none in a bare repository, else the current directory. A linked worktree's
/// git dir takes neither from the shared config, only from its own `config.worktree`.
fn implied_work_tree(cwd: &Path, git_dir: &Path, common_dir: &Path) -> Result<PathBuf> {
    let linked = git_dir != common_dir;
    let mut files = vec![git_dir.join("config.worktree")];
    if !linked {
        files.insert(0, git_dir.join("config"));
    }
    let (mut worktree, mut is_bare) = (None, None);
    for file in files {
        let Ok(config) = gix::config::File::from_path_no_includes(file, gix::config::Source::Local)
        else {
            continue;
        };
        if let Some(v) = config.string("core.worktree") {
            worktree = Some(gix::path::from_bstr(v.as_ref() as &gix::bstr::BStr)?.into_owned());
        }
        if let Ok(Some(b)) = config.boolean("core.bare") {
            is_bare = Some(b);
        }
    }
    match worktree {
        Some(dir) => realpath(&git_dir.join(dir)),
        None if is_bare == Some(true) && !linked => Err(bare(git_dir)),
        None => realpath(cwd),
    }
}

/// The linked worktree's id (its git dir's name under `<common>/worktrees/`), None for the
/// main one. Any other git dir with a common dir elsewhere is not a layout git makes.
fn worktree_id(git_dir: &Path, common_dir: &Path) -> Result<Option<String>> {
    if git_dir == common_dir {
        return Ok(None);
    }
    match (git_dir.parent(), git_dir.file_name()) {
        (Some(parent), Some(name)) if parent == common_dir.join("worktrees") => {
            Ok(Some(name.to_string_lossy().into_owned()))
        }
        _ => Err(hint(
            format!(
                "{} shares {} but is not one of its worktrees",
                git_dir.display(),
                common_dir.display()
            ),
            "point GIT_DIR at a checkout's `.git` or at `<repo>/.git/worktrees/<id>`",
        )),
    }
}

/// Git pairs any work tree with the git dir it was given or found. git-vmoat keys a VM by
/// the git dir (the worktree's id) and runs it on the work tree's files, so a work tree that is
/// another worktree's checkout (or inside one, or another repository's) would run one
/// worktree's VM on another's files. Where git would (it shows the other checkout as changes
/// of this one), this refuses: such a pairing is a mistake or damage far more often than
/// intent, and acting on the wrong VM is not undone.
fn refuse_foreign(root: &Path, git_dir: &Path, common_dir: &Path) -> Result<()> {
    let owner = enclosing_checkout(root);
    let nearest = owner.as_ref().and_then(|(dot_git, _)| dot_git.parent());
    let registered = registered_elsewhere(root, git_dir, common_dir, nearest);
    let claimed_by = match (&owner, registered) {
        (Some((dot_git, owner)), _) if owner.as_deref() != Some(git_dir) => dot_git.clone(),
        (_, Some(checkout)) => checkout,
        // The git dir's own checkout, but a directory inside it (git takes the current
        // directory for a `GIT_DIR` alone): the VM is the whole checkout's, never a part's.
        (Some((_, _)), _) if nearest != Some(root) => {
            return Err(hint(
                format!(
                    "the work tree {} is inside the checkout {} of the git dir {}, not its top",
                    root.display(),
                    nearest.map_or_else(|| "?".into(), |n| n.display().to_string()),
                    git_dir.display()
                ),
                "run git-vmoat at the top of the worktree, or unset GIT_DIR and GIT_WORK_TREE",
            ));
        }
        _ => return refuse_unrecorded(root, git_dir, common_dir, owner.as_ref(), nearest),
    };
    Err(hint(
        format!(
            "the work tree {} belongs to another worktree or repository ({}), not to the git dir {} that GIT_DIR/GIT_WORK_TREE pair it with; git-vmoat will not run one worktree's VM on another's files",
            root.display(),
            claimed_by.display(),
            git_dir.display()
        ),
        "unset GIT_DIR and GIT_WORK_TREE and run git-vmoat inside the worktree you mean (or `git -C <worktree> vmoat ...`)",
    ))
}

/// A linked worktree's git dir is that worktree's alone: paired with any other directory
/// (one without a `.git` of its own too) it would run that worktree's VM on other files.
fn refuse_unrecorded(
    root: &Path,
    git_dir: &Path,
    common_dir: &Path,
    owner: Option<&(PathBuf, Option<PathBuf>)>,
    nearest: Option<&Path>,
) -> Result<()> {
    if git_dir != common_dir {
        let own_dot_git =
            nearest == Some(root) && owner.and_then(|(_, o)| o.as_deref()) == Some(git_dir);
        let recorded = recorded_checkout(git_dir);
        if !own_dot_git && recorded.as_deref() != Some(root) {
            return Err(hint(
                format!(
                    "the git dir {} is the linked worktree {}'s, not the work tree {}",
                    git_dir.display(),
                    recorded.map_or_else(|| "?".into(), |r| r.display().to_string()),
                    root.display()
                ),
                "unset GIT_DIR and GIT_WORK_TREE and run git-vmoat inside the worktree you mean (or `git -C <worktree> vmoat ...`)",
            ));
        }
    }
    Ok(())
}

/// The nearest `.git` at or above `dir`, and the git dir it stands for (None: unreadable).
fn enclosing_checkout(dir: &Path) -> Option<(PathBuf, Option<PathBuf>)> {
    dir.ancestors().find_map(|d| {
        let dot_git = d.join(".git");
        let meta = dot_git.symlink_metadata().ok()?;
        let target = if meta.is_file() {
            gix::discover::path::from_gitdir_file(&dot_git).ok()
        } else {
            Some(dot_git.clone())
        };
        Some((dot_git.clone(), target.and_then(|t| t.canonicalize().ok())))
    })
}

/// The checkout a linked worktree's git dir records as its own (`gitdir` names its `.git`).
fn recorded_checkout(git_dir: &Path) -> Option<PathBuf> {
    let dot_git = gix::discover::path::from_plain_file(&git_dir.join("gitdir"))?.ok()?;
    let checkout = dot_git.parent()?;
    Some(checkout.canonicalize().unwrap_or_else(|_| checkout.into()))
}

/// A linked worktree of the repository, other than `git_dir`'s, whose recorded checkout holds
/// `root`: caught even when that checkout's `.git` is missing. A checkout around the
/// `nearest` one with a `.git` (a worktree nested in another) does not hold it.
fn registered_elsewhere(
    root: &Path,
    git_dir: &Path,
    common_dir: &Path,
    nearest: Option<&Path>,
) -> Option<PathBuf> {
    let entries = std::fs::read_dir(common_dir.join("worktrees")).ok()?;
    entries.flatten().find_map(|entry| {
        let admin = entry.path();
        let checkout = recorded_checkout(&admin)?;
        let ours = admin.canonicalize().is_ok_and(|a| a == git_dir);
        let farther = nearest.is_some_and(|n| n != checkout && n.starts_with(&checkout));
        (root.starts_with(&checkout) && !ours && !farther).then_some(checkout)
    })
}

/// `GIT_COMMON_DIR` moves the shared dir (and so the repository's identity) in git; the open
/// does not follow it, so anything but the common dir found anyway is refused.
pub(super) fn check_common_dir(cwd: &Path, value: &OsStr, wt: &Worktree) -> Result<()> {
    let named = std::fs::canonicalize(cwd.join(value)).ok();
    if named.as_deref() == Some(wt.common_dir.as_path()) {
        return Ok(());
    }
    Err(hint(
        format!(
            "GIT_COMMON_DIR={} is not the common dir of {} ({})",
            cwd.join(value).display(),
            wt.root.display(),
            wt.common_dir.display()
        ),
        "unset GIT_COMMON_DIR and run git-vmoat inside the worktree you mean",
    ))
}

#[cfg(test)]
mod tests;
