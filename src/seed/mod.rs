//! Seeding: copies chosen gitignored files (secrets, local config) from the main checkout into
//! a worktree. Never overwrites, never leaves the repository, never copies a tracked file.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::error::hint;
use crate::repo::{Checkout, IgnoreCheck, PathStatus};

mod include;

pub use include::entries;

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
    /// Left out, and why: it would lead outside the main checkout or the worktree, or it is
    /// not something a copy makes sense of.
    Skipped(String),
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
///
/// Every path is opened one component at a time from a directory handle, never following a
/// symlink on the way (`O_NOFOLLOW`), and files are created with `O_EXCL`: a symlink planted
/// in the worktree (even one swapped in while seeding runs) cannot redirect a write elsewhere,
/// and nothing already there is ever overwritten. An entry that would leave either checkout is
/// skipped with a warning instead of failing the whole seed.
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
    let checkout = Checkout::open(main)?;
    let check = checkout.ignore_check()?;
    let main_fd = open_root(main)?;
    let wt_fd = open_root(worktree)?;
    let mut out = vec![];
    for (raw, rel) in entries.iter().zip(paths) {
        let mut copy = Copy {
            entry: raw,
            main,
            worktree,
            copied: 0,
            kept: 0,
            skipped: 0,
        };
        let outcome = copy.entry(&main_fd, &wt_fd, &check, &rel, dry_run)?;
        out.push((raw.clone(), outcome));
    }
    Ok(out)
}

const DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

fn open_root(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {}", dir.display()))
}

/// A directory reached without following a symlink, or why not.
enum Reach {
    Dir(OwnedFd),
    /// Some component does not exist (or is not a directory on the source side).
    Missing,
    /// Reaching it would leave the checkout: the reason, for the warning.
    Refused(String),
}

fn holds_git(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    rustix::fs::openat(dir, name, DIR, Mode::empty())
        .is_ok_and(|d| rustix::fs::statat(&d, ".git", AtFlags::SYMLINK_NOFOLLOW).is_ok())
}

fn is_link_errno(e: Errno) -> bool {
    e == Errno::LOOP || e == Errno::NOTDIR || e == Errno::MLINK
}

fn kind_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<(FileType, Stat)>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some((FileType::from_raw_mode(st.st_mode as _), st))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn link_target(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    rustix::fs::readlinkat(dir, name, Vec::new())
        .map(|t| PathBuf::from(OsStr::from_bytes(t.to_bytes())))
        .unwrap_or_default()
}

/// Why a destination component that is not a plain directory cannot be written through.
fn blocked(dir: BorrowedFd<'_>, name: &OsStr, rel: &Path) -> Result<String> {
    Ok(match kind_at(dir, name)? {
        Some((FileType::Symlink, _)) => format!(
            "{} is a symlink in this worktree (to {}): seeding never writes through one",
            rel.display(),
            link_target(dir, name).display()
        ),
        _ => format!("{} is not a directory in this worktree", rel.display()),
    })
}

/// Opens (and, with `create`, makes) the worktree directory `rel`, refusing any symlink on the way.
fn dest_dir(wt: &OwnedFd, rel: &Path, create: bool) -> Result<Reach> {
    let mut cur = rustix::fs::openat(wt, ".", DIR, Mode::empty())?;
    let mut so_far = PathBuf::new();
    for part in rel.iter() {
        so_far.push(part);
        let mut opened = rustix::fs::openat(&cur, part, DIR, Mode::empty());
        if matches!(opened, Err(Errno::NOENT)) {
            if !create {
                return Ok(Reach::Missing);
            }
            match rustix::fs::mkdirat(&cur, part, Mode::from_raw_mode(0o777)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => {
                    return Err(io::Error::from(e))
                        .with_context(|| format!("creating {}", so_far.display()));
                }
            }
            // Opened again without following: a symlink raced into its place is refused too.
            opened = rustix::fs::openat(&cur, part, DIR, Mode::empty());
        }
        cur = match opened {
            Ok(fd) => fd,
            Err(e) if is_link_errno(e) => {
                return Ok(Reach::Refused(blocked(cur.as_fd(), part, &so_far)?));
            }
            Err(e) => {
                return Err(io::Error::from(e))
                    .with_context(|| format!("opening {} in the worktree", so_far.display()));
            }
        };
    }
    Ok(Reach::Dir(cur))
}

/// Opens the main checkout's directory `rel`. A symlink on the way is followed only when it
/// resolves inside the main checkout (and not into `.git`); the resolved path is then walked
/// again without following, so a link swapped in meanwhile is refused rather than followed.
fn source_dir(main: &Path, main_fd: &OwnedFd, rel: &Path) -> Result<Reach> {
    let mut cur = rustix::fs::openat(main_fd, ".", DIR, Mode::empty())?;
    let mut so_far = PathBuf::new();
    for part in rel.iter() {
        so_far.push(part);
        cur = match rustix::fs::openat(&cur, part, DIR, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Reach::Missing),
            Err(e) if is_link_errno(e) => {
                if !matches!(kind_at(cur.as_fd(), part)?, Some((FileType::Symlink, _))) {
                    return Ok(Reach::Missing);
                }
                let real = match std::fs::canonicalize(main.join(&so_far)) {
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Reach::Missing),
                    Err(e) => {
                        return Err(e).with_context(|| format!("resolving {}", so_far.display()));
                    }
                };
                let inside = real
                    .strip_prefix(main)
                    .ok()
                    .filter(|r| r.iter().next().is_none_or(|c| c != ".git"));
                let Some(inner) = inside else {
                    return Ok(Reach::Refused(format!(
                        "it goes through {}, a symlink leading outside the main checkout (to {})",
                        so_far.display(),
                        real.display()
                    )));
                };
                let mut fd = rustix::fs::openat(main_fd, ".", DIR, Mode::empty())?;
                for p in inner.iter() {
                    fd = match rustix::fs::openat(&fd, p, DIR, Mode::empty()) {
                        Ok(fd) => fd,
                        Err(Errno::NOENT) => return Ok(Reach::Missing),
                        Err(_) => {
                            return Ok(Reach::Refused(format!(
                                "{} changed while being read",
                                so_far.display()
                            )));
                        }
                    };
                }
                fd
            }
            Err(e) => {
                return Err(io::Error::from(e))
                    .with_context(|| format!("opening {}", main.join(&so_far).display()));
            }
        };
    }
    Ok(Reach::Dir(cur))
}

/// Why a symlink found in the main checkout is not copied (None: it is copied as a link).
///
/// A link is copied as a link, never followed, and only when it stays inside the repository:
/// a relative target that climbs no higher than the repository root and, where it exists in
/// the main checkout, resolves inside it. Copying the file behind it instead would turn a link
/// into a second, diverging copy; copying a link that points out (an absolute path, `../..`)
/// would give the worktree, and everything running in its VM, a door out of the worktree, and
/// an absolute link into the main checkout would make the worktree write into main's files.
fn link_refusal(main: &Path, target: &Path, rel: &Path, src: &Path) -> Option<String> {
    let out = || {
        Some(format!(
            "it is a symlink leading outside the repository (to {}): not copied",
            target.display()
        ))
    };
    if target.is_absolute() {
        return out();
    }
    let mut depth = rel.parent().map_or(0, |p| p.iter().count()) as isize;
    for c in target.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => depth -= 1,
            Component::Normal(p) if p == ".git" => return out(),
            Component::Normal(_) => depth += 1,
            _ => return out(),
        }
        if depth < 0 {
            return out();
        }
    }
    let real = std::fs::canonicalize(src.parent()?.join(target)).ok()?;
    if !real.starts_with(main) {
        return out();
    }
    None
}

/// One entry's copy: counts, and what messages need to name.
struct Copy<'a> {
    entry: &'a str,
    main: &'a Path,
    worktree: &'a Path,
    copied: usize,
    kept: usize,
    skipped: usize,
}

impl Copy<'_> {
    fn entry(
        &mut self,
        main_fd: &OwnedFd,
        wt_fd: &OwnedFd,
        check: &IgnoreCheck,
        rel: &Path,
        dry_run: bool,
    ) -> Result<Outcome> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().context("a seed path has a name")?;
        // Whether the destination is there, looked up without creating or following anything.
        let dest = || -> Result<std::result::Result<bool, String>> {
            Ok(match dest_dir(wt_fd, parent, false)? {
                Reach::Dir(fd) => Ok(kind_at(fd.as_fd(), name)?.is_some()),
                Reach::Missing => Ok(false),
                Reach::Refused(why) => Err(why),
            })
        };
        let absent = || -> Result<Outcome> {
            Ok(if dest()? == Ok(true) {
                Outcome::Exists
            } else {
                Outcome::Missing
            })
        };
        let src_dir = match source_dir(self.main, main_fd, parent)? {
            Reach::Dir(fd) => fd,
            Reach::Refused(why) => return Ok(Outcome::Skipped(why)),
            Reach::Missing => return absent(),
        };
        let Some((kind, _)) = kind_at(src_dir.as_fd(), name)? else {
            return absent();
        };
        let rel_str = rel.to_string_lossy().replace('\\', "/");
        match check.status(&rel_str, kind == FileType::Directory)? {
            PathStatus::Tracked => return Ok(Outcome::Tracked),
            PathStatus::Untracked => return Ok(Outcome::NotIgnored),
            PathStatus::Ignored => {}
        }
        let src = self.main.join(rel);
        if dry_run {
            let refusal = match kind {
                FileType::Symlink => {
                    link_refusal(self.main, &link_target(src_dir.as_fd(), name), rel, &src)
                }
                FileType::Directory | FileType::RegularFile => None,
                _ => Some(NOT_A_FILE.to_string()),
            };
            return Ok(match (refusal, dest()?) {
                (Some(why), _) | (None, Err(why)) => Outcome::Skipped(why),
                (None, Ok(true)) => Outcome::Exists,
                (None, Ok(false)) => Outcome::Copied(0),
            });
        }
        let dst_dir = match dest_dir(wt_fd, parent, true)? {
            Reach::Dir(fd) => fd,
            Reach::Refused(why) => return Ok(Outcome::Skipped(why)),
            Reach::Missing => return Ok(Outcome::Missing),
        };
        if let Some(why) = self.copy(src_dir.as_fd(), dst_dir.as_fd(), name, rel, &src)? {
            return Ok(Outcome::Skipped(why));
        }
        Ok(match (self.copied, self.kept) {
            (0, 0) if self.skipped > 0 => Outcome::Skipped(format!(
                "nothing left to copy once {} path{} in it {} left out",
                self.skipped,
                if self.skipped == 1 { "" } else { "s" },
                if self.skipped == 1 { "was" } else { "were" }
            )),
            (0, _) => Outcome::Exists,
            (c, 0) => Outcome::Copied(c),
            (c, k) => Outcome::Partial { copied: c, kept: k },
        })
    }

    /// Copies `name` from `src_dir` into `dst_dir`; Some(reason) when it is left out.
    fn copy(
        &mut self,
        src_dir: BorrowedFd<'_>,
        dst_dir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
        src: &Path,
    ) -> Result<Option<String>> {
        let Some((kind, st)) = kind_at(src_dir, name)? else {
            return Ok(None); // gone since it was listed
        };
        let mode = Mode::from_raw_mode((st.st_mode & 0o7777) as _);
        match kind {
            // Another checkout nested in this one (an agent's worktree): not its files.
            FileType::Directory if holds_git(src_dir, name) => Ok(None),
            FileType::Directory => self.copy_dir(src_dir, dst_dir, name, rel, src, mode),
            FileType::RegularFile => self.copy_file(src_dir, dst_dir, name, rel, src, mode),
            FileType::Symlink => self.copy_link(src_dir, dst_dir, name, rel, src),
            _ => Ok(Some(NOT_A_FILE.to_string())),
        }
    }

    /// A directory: created (or entered when it exists) and filled entry by entry, each left-out
    /// entry warned about; given its mode once filled when this run made it.
    fn copy_dir(
        &mut self,
        src_dir: BorrowedFd<'_>,
        dst_dir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
        src: &Path,
        mode: Mode,
    ) -> Result<Option<String>> {
        let from = match rustix::fs::openat(src_dir, name, DIR, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) if is_link_errno(e) => {
                return Ok(Some(format!("{} changed while being read", rel.display())));
            }
            Err(e) => {
                return Err(io::Error::from(e))
                    .with_context(|| format!("reading {}", src.display()));
            }
        };
        // Made private first, given its real mode once filled.
        let created = match rustix::fs::mkdirat(dst_dir, name, Mode::RWXU) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(e) => {
                return Err(io::Error::from(e))
                    .with_context(|| format!("creating {}", self.worktree.join(rel).display()));
            }
        };
        let to = match rustix::fs::openat(dst_dir, name, DIR, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) if is_link_errno(e) => return Ok(Some(blocked(dst_dir, name, rel)?)),
            Err(e) => {
                return Err(io::Error::from(e))
                    .with_context(|| format!("opening {}", self.worktree.join(rel).display()));
            }
        };
        let mut names = vec![];
        for e in rustix::fs::Dir::read_from(&from)? {
            let n = OsStr::from_bytes(e?.file_name().to_bytes()).to_os_string();
            if n != "." && n != ".." {
                names.push(n);
            }
        }
        names.sort();
        for n in names {
            let child = rel.join(&n);
            if let Some(why) = self.copy(from.as_fd(), to.as_fd(), &n, &child, &src.join(&n))? {
                self.skipped += 1;
                crate::output::warn(format!(
                    "seed {}: skipped {}: {why}",
                    self.entry,
                    child.display()
                ));
            }
        }
        if created {
            rustix::fs::fchmod(&to, mode)?;
        }
        Ok(None)
    }

    /// A regular file: copied only where nothing is (an existing one is kept), counted once copied.
    fn copy_file(
        &mut self,
        src_dir: BorrowedFd<'_>,
        dst_dir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
        src: &Path,
        mode: Mode,
    ) -> Result<Option<String>> {
        let from = match rustix::fs::openat(
            src_dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) if is_link_errno(e) => {
                return Ok(Some(format!("{} changed while being read", rel.display())));
            }
            Err(e) => {
                return Err(io::Error::from(e))
                    .with_context(|| format!("reading {}", src.display()));
            }
        };
        // O_EXCL: never overwrites, and fails on a symlink instead of following it.
        let to = match rustix::fs::openat(
            dst_dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        ) {
            Ok(fd) => fd,
            Err(Errno::EXIST) => {
                self.kept += 1;
                return Ok(None);
            }
            Err(e) => {
                return Err(io::Error::from(e))
                    .with_context(|| format!("creating {}", self.worktree.join(rel).display()));
            }
        };
        let (mut from, mut to) = (std::fs::File::from(from), std::fs::File::from(to));
        let result = io::copy(&mut from, &mut to)
            .and_then(|_| to.sync_all())
            .and_then(|()| rustix::fs::fchmod(&to, mode).map_err(io::Error::from));
        if let Err(e) = result {
            // No truncated secret left behind; removed only while the name is still
            // the file this run created.
            let ours = rustix::fs::fstat(&to).ok();
            let there = rustix::fs::statat(dst_dir, name, AtFlags::SYMLINK_NOFOLLOW).ok();
            if let (Some(a), Some(b)) = (ours, there)
                && (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
            {
                let _ = rustix::fs::unlinkat(dst_dir, name, AtFlags::empty());
            }
            return Err(e).with_context(|| {
                format!(
                    "copying {} to {}",
                    src.display(),
                    self.worktree.join(rel).display()
                )
            });
        }
        self.copied += 1;
        Ok(None)
    }

    /// A symlink: recreated as it is unless it leads out of the checkout (an existing one is kept).
    fn copy_link(
        &mut self,
        src_dir: BorrowedFd<'_>,
        dst_dir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
        src: &Path,
    ) -> Result<Option<String>> {
        let target = link_target(src_dir, name);
        if let Some(why) = link_refusal(self.main, &target, rel, src) {
            return Ok(Some(why));
        }
        match rustix::fs::symlinkat(&target, dst_dir, name) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                self.kept += 1;
                return Ok(None);
            }
            Err(e) => {
                return Err(io::Error::from(e))
                    .with_context(|| format!("creating {}", self.worktree.join(rel).display()));
            }
        }
        self.copied += 1;
        Ok(None)
    }
}

const NOT_A_FILE: &str =
    "it is not a file, directory or symlink (a fifo, socket or device): not copied";

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
