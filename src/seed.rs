//! Seeding: copies chosen gitignored files (secrets, local config) from the main checkout into
//! a worktree. Never overwrites, never leaves the repository, never copies a tracked file.

use std::fs::OpenOptions;
use std::io;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::hint;
use crate::repo::{IgnoreCheck, PathStatus};

/// What happened to one seed entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Copied this many files.
    Copied(usize),
    /// Already present in the worktree: left alone.
    Exists,
    /// In neither checkout.
    Missing,
    /// Tracked by git: every checkout has its own, nothing to seed.
    Tracked,
    /// Present in the main checkout but not gitignored there.
    NotIgnored,
    /// Some files were copied, the ones already present were kept.
    Partial { copied: usize, kept: usize },
}

/// Checks a seed path as written in the config: relative, inside the repo, no `..`.
pub fn check_path(raw: &str) -> Result<PathBuf> {
    let bad = |why: &str| {
        hint(
            format!("seed path `{raw}` {why}"),
            "seed paths are relative to the repository root, e.g. \".env.keys\" or \"config/local.yaml\"",
        )
    };
    let p = Path::new(raw.trim_end_matches('/'));
    if raw.is_empty() || p.as_os_str().is_empty() {
        return Err(bad("is empty"));
    }
    if p.is_absolute() {
        return Err(bad("is absolute"));
    }
    let mut clean = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(part) if part == ".git" => return Err(bad("points into .git")),
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(bad("uses `..` to leave the repository")),
            _ => return Err(bad("is not a plain relative path")),
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(bad("names the repository root itself"));
    }
    Ok(clean)
}

/// Seeds `entries` from `main` into `worktree`. Validates every entry before copying any.
pub fn seed(
    main: &Path,
    worktree: &Path,
    entries: &[String],
    dry_run: bool,
) -> Result<Vec<(String, Outcome)>> {
    let paths: Vec<PathBuf> = entries
        .iter()
        .map(|e| check_path(e))
        .collect::<Result<_>>()?;
    let check = IgnoreCheck::open(main)?;
    let mut out = vec![];
    for (raw, rel) in entries.iter().zip(paths) {
        let src = main.join(&rel);
        let dst = worktree.join(&rel);
        let outcome = if std::fs::symlink_metadata(&src).is_err() {
            if std::fs::symlink_metadata(&dst).is_ok() {
                Outcome::Exists
            } else {
                Outcome::Missing
            }
        } else {
            // Resolve symlinks on the way: the real source must still be inside the main checkout.
            let real = std::fs::canonicalize(&src)
                .with_context(|| format!("resolving {}", src.display()))?;
            if !real.starts_with(main) {
                return Err(hint(
                    format!(
                        "seed path `{raw}` leads outside the repository (to {})",
                        real.display()
                    ),
                    "seed only files that live inside the main checkout",
                ));
            }
            check_dest_inside(worktree, &dst, raw)?;
            let rel_str = rel.to_string_lossy().replace('\\', "/");
            match check.status(&rel_str, real.is_dir())? {
                PathStatus::Tracked => Outcome::Tracked,
                PathStatus::Untracked => Outcome::NotIgnored,
                PathStatus::Ignored if dry_run => {
                    if std::fs::symlink_metadata(&dst).is_ok() {
                        Outcome::Exists
                    } else {
                        Outcome::Copied(0)
                    }
                }
                PathStatus::Ignored => copy_tree(&real, &dst)?,
            }
        };
        out.push((raw.clone(), outcome));
    }
    Ok(out)
}

/// The nearest existing ancestor of the destination must resolve inside the worktree, so a
/// symlinked directory in the worktree cannot redirect a copy elsewhere.
fn check_dest_inside(worktree: &Path, dst: &Path, raw: &str) -> Result<()> {
    let mut probe = dst.to_path_buf();
    while std::fs::symlink_metadata(&probe).is_err() {
        if !probe.pop() {
            break;
        }
    }
    let real = std::fs::canonicalize(&probe).unwrap_or(probe);
    if !real.starts_with(worktree) {
        return Err(hint(
            format!(
                "seed path `{raw}` would be written outside the worktree (through {})",
                real.display()
            ),
            "remove the symlink in the worktree that points elsewhere, or drop the seed entry",
        ));
    }
    Ok(())
}

fn copy_tree(src: &Path, dst: &Path) -> Result<Outcome> {
    let (mut copied, mut kept) = (0, 0);
    copy_rec(src, dst, &mut copied, &mut kept)?;
    Ok(match (copied, kept) {
        (0, _) => Outcome::Exists,
        (c, 0) => Outcome::Copied(c),
        (c, k) => Outcome::Partial { copied: c, kept: k },
    })
}

fn copy_rec(src: &Path, dst: &Path, copied: &mut usize, kept: &mut usize) -> Result<()> {
    let meta =
        std::fs::symlink_metadata(src).with_context(|| format!("reading {}", src.display()))?;
    if meta.is_dir() {
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        match std::fs::create_dir(dst) {
            Ok(()) => std::fs::set_permissions(dst, meta.permissions())?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dst.is_dir() => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", dst.display())),
        }
        let mut entries: Vec<_> = std::fs::read_dir(src)?.collect::<io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            copy_rec(&e.path(), &dst.join(e.file_name()), copied, kept)?;
        }
        return Ok(());
    }
    if std::fs::symlink_metadata(dst).is_ok() {
        *kept += 1;
        return Ok(());
    }
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    if meta.file_type().is_symlink() {
        // Inside a copied directory a link is copied as a link, never followed.
        let target = std::fs::read_link(src)?;
        std::os::unix::fs::symlink(&target, dst)
            .with_context(|| format!("creating {}", dst.display()))?;
    } else {
        copy_file_new(src, dst, &meta)?;
    }
    *copied += 1;
    Ok(())
}

/// Copies into a file that must not exist yet (create_new: never overwrite, even in a race);
/// on failure the partial file is removed so no truncated secret is left behind.
fn copy_file_new(src: &Path, dst: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let mut from =
        std::fs::File::open(src).with_context(|| format!("reading {}", src.display()))?;
    let mut to = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("creating {}", dst.display())),
    };
    let result = io::copy(&mut from, &mut to)
        .and_then(|_| to.sync_all())
        .and_then(|()| {
            to.set_permissions(std::fs::Permissions::from_mode(meta.permissions().mode()))
        });
    if let Err(e) = result {
        drop(to);
        let _ = std::fs::remove_file(dst);
        return Err(e).with_context(|| format!("copying {} to {}", src.display(), dst.display()));
    }
    Ok(())
}

/// Entries to seed: the configured ones, plus every gitignored path of the main checkout that
/// the `.worktreeinclude` file (gitignore syntax; the worktree's own, else the main one's) selects.
pub fn entries(main: &Path, worktree: &Path, configured: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = configured.to_vec();
    let text = std::fs::read_to_string(worktree.join(".worktreeinclude"))
        .or_else(|_| std::fs::read_to_string(main.join(".worktreeinclude")));
    if let Ok(text) = text {
        let pats = crate::repo::Patterns::parse(&text)?;
        for (rel, is_dir) in crate::repo::ignored_entries(main)? {
            if pats.matches(&rel, is_dir) {
                out.push(rel);
            } else if is_dir && pats.may_match_inside(&rel) {
                let mut budget = 20_000usize;
                walk_matches(main, &rel, &pats, &mut out, &mut budget);
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|e| seen.insert(e.trim_end_matches('/').to_string()));
    Ok(out)
}

/// Looks inside an ignored directory for files a pattern selects (bounded: a huge ignored
/// tree such as node_modules is not walked forever).
fn walk_matches(
    main: &Path,
    rel: &str,
    pats: &crate::repo::Patterns,
    out: &mut Vec<String>,
    budget: &mut usize,
) {
    let Ok(rd) = std::fs::read_dir(main.join(rel)) else {
        return;
    };
    for e in rd.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let child = format!("{rel}/{}", e.file_name().to_string_lossy());
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if pats.matches(&child, is_dir) {
            out.push(child);
        } else if is_dir {
            walk_matches(main, &child, pats, out, budget);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_paths_must_stay_relative_and_inside() {
        assert_eq!(check_path(".env.keys").unwrap(), PathBuf::from(".env.keys"));
        assert_eq!(
            check_path("./config/local.yaml").unwrap(),
            PathBuf::from("config/local.yaml")
        );
        assert_eq!(check_path("secrets/").unwrap(), PathBuf::from("secrets"));
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "",
            ".",
            ".git/config",
            "a/.git",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
