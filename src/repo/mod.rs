//! Everything git-vmoat asks of the repository, answered by gix (the only module that uses it):
//! which worktree we stand in, its main checkout, its common dir, whether a path is ignored, and
//! which files a worktree tracks.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

mod discover;
mod explicit;
mod quick;

pub use discover::discover;

/// The worktree a command acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worktree {
    /// Real path of the worktree's top directory.
    pub root: PathBuf,
    /// Real path of the main checkout (None when the main repository is bare).
    pub main_root: Option<PathBuf>,
    /// Real path of the shared git dir (`<main>/.git`).
    pub common_dir: PathBuf,
    /// The linked worktree's id (its dir under `<common>/worktrees/`); None for the main one.
    pub id: Option<String>,
    /// The repository's own id (`vmoat.id` in the common dir's config), once one was made.
    pub repo_id: Option<String>,
}

/// What identifies a worktree however its directories move: the repository's id (kept in the
/// repository itself) and git's admin id of the worktree (`main` for the main checkout).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Identity {
    pub repo: String,
    pub worktree: String,
}

/// The config key holding a repository's id.
pub const REPO_ID_KEY: &str = "vmoat.id";

impl Worktree {
    /// Where the worktree is now (repository dir + worktree id): keys short-lived records
    /// (the hook's job) that exist before a repository id is needed.
    pub fn location_key(&self) -> String {
        format!(
            "{}\0{}",
            self.common_dir.display(),
            self.id.as_deref().unwrap_or("main")
        )
    }

    /// git's id of this worktree: its admin dir name, or `main`.
    pub fn worktree_id(&self) -> &str {
        self.id.as_deref().unwrap_or("main")
    }

    /// The identity, when the repository has an id already.
    pub fn identity(&self) -> Option<Identity> {
        self.repo_id.as_ref().map(|repo| Identity {
            repo: repo.clone(),
            worktree: self.worktree_id().to_string(),
        })
    }

    /// The common dir's own config file (where the repository id lives).
    pub fn common_config(&self) -> PathBuf {
        self.common_dir.join("config")
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

/// Whether discovering failed because there is no repository (not because one is broken).
fn no_repository(err: &gix::Error) -> bool {
    err.downcast_any_ref::<gix::discover::upwards::Error>()
        .is_some_and(|e| {
            matches!(
                e,
                gix::discover::upwards::Error::NoGitRepository { .. }
                    | gix::discover::upwards::Error::NoGitRepositoryWithinCeiling { .. }
                    | gix::discover::upwards::Error::NoGitRepositoryWithinFs { .. }
            )
        })
}

/// A well-formed repository id: what `new_repo_id` makes (a hand-edited value is ignored).
pub fn is_repo_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The repository id a config value holds: git-vmoat's form, whatever the case it was edited
/// into; None for anything else.
pub fn repo_id_of(value: &str) -> Option<String> {
    let id = value.trim().to_ascii_lowercase();
    is_repo_id(&id).then_some(id)
}

/// The `vmoat.id` value of a common dir's config as written, well-formed or not.
pub fn raw_repo_id(common_dir: &Path) -> Option<String> {
    let file = gix::config::File::from_path_no_includes(
        common_dir.join("config"),
        gix::config::Source::Local,
    )
    .ok()?;
    file.string(REPO_ID_KEY).map(|v| v.to_string())
}

/// A fresh random repository id (128 bits from the OS).
pub fn new_repo_id() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a repository id")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The repository id stored in a common dir's config, if any (for telling a moved repository
/// from a copied one).
pub fn read_repo_id(common_dir: &Path) -> Option<String> {
    raw_repo_id(common_dir).and_then(|v| repo_id_of(&v))
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

/// A checkout opened once, for asking many questions about its paths.
pub struct Checkout {
    repo: gix::Repository,
}

impl Checkout {
    pub fn open(checkout: &Path) -> Result<Self> {
        Ok(Self {
            repo: open_cached(checkout)?,
        })
    }

    /// The index and ignore rules, read once for every path asked about afterwards.
    pub fn ignore_check(&self) -> Result<IgnoreCheck<'_>> {
        let index = self.repo.index_or_empty()?;
        let excludes = self.repo.excludes(
            &index,
            None,
            gix::worktree::stack::state::ignore::Source::WorktreeThenIdMappingIfNotSkipped,
        )?;
        Ok(IgnoreCheck {
            index,
            excludes: std::cell::RefCell::new(excludes),
        })
    }
}

/// Answers "is this path ignored / tracked?" for many paths of one checkout.
pub struct IgnoreCheck<'r> {
    index: gix::worktree::Index,
    excludes: std::cell::RefCell<gix::AttributeStack<'r>>,
}

impl IgnoreCheck<'_> {
    /// `rel` is a repo-relative path with `/` separators; `is_dir` selects directory-only rules.
    pub fn status(&self, rel: &str, is_dir: bool) -> Result<PathStatus> {
        let path: &gix::bstr::BStr = rel.into();
        let prefix = format!("{rel}/");
        if self.index.entry_by_path(path).is_some()
            || self
                .index
                .prefixed_entries(prefix.as_str().into())
                .is_some_and(|e| !e.is_empty())
        {
            return Ok(PathStatus::Tracked);
        }
        let mode = is_dir.then_some(gix::index::entry::Mode::DIR);
        let mut excludes = self.excludes.borrow_mut();
        let platform = excludes
            .at_entry(path, mode)
            .with_context(|| format!("matching {rel} against the ignore rules"))?;
        Ok(if platform.is_excluded() {
            PathStatus::Ignored
        } else {
            PathStatus::Untracked
        })
    }
}

/// How a checkout's file stands against the checkout's HEAD commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committed {
    /// HEAD has it with exactly this content.
    Yes,
    /// HEAD does not have it (untracked, or only staged).
    NotInHead,
    /// HEAD has it with other content (modified, staged or not).
    Changed,
}

/// Whether `rel` (a file of `checkout`) is committed as it is on disk: compares the file's blob
/// hash with HEAD's entry, so neither a `git status` nor a scan of the index is needed.
pub fn file_committed(checkout: &Path, rel: &str) -> Result<Committed> {
    let repo = gix::open(checkout)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("opening the repository at {}", checkout.display()))?;
    if repo.head().map_err(|e| anyhow::anyhow!("{e}"))?.is_unborn() {
        return Ok(Committed::NotInHead);
    }
    let tree = repo.head_tree().map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(entry) = tree
        .lookup_entry_by_path(rel)
        .map_err(|e| anyhow::anyhow!("{e}"))?
    else {
        return Ok(Committed::NotInHead);
    };
    let data = std::fs::read(checkout.join(rel))
        .with_context(|| format!("reading {}", checkout.join(rel).display()))?;
    let id = gix::objs::compute_hash(repo.object_hash(), gix::objs::Kind::Blob, &data)?;
    Ok(if id == entry.object_id() {
        Committed::Yes
    } else {
        Committed::Changed
    })
}

/// The repository at `at`, opened once per process: seeding and status ask about one
/// checkout many times, and each open reads its config files again. Only for index and ignore
/// questions (the index is re-read when it changes); config values are read fresh.
fn open_cached(at: &Path) -> Result<gix::Repository> {
    // Per thread: gix is built without its thread-safe handles; commands use one thread.
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::HashMap<PathBuf, gix::Repository>> =
            Default::default();
    }
    if let Some(r) = CACHE.with_borrow(|m| m.get(at).cloned()) {
        return Ok(r);
    }
    let repo =
        gix::open(at).with_context(|| format!("opening the repository at {}", at.display()))?;
    CACHE.with_borrow_mut(|m| m.insert(at.to_path_buf(), repo.clone()));
    Ok(repo)
}

/// A linked worktree as the repository records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkedWorktree {
    pub id: String,
    /// Where its checkout is (may not exist any more).
    pub base: PathBuf,
    pub locked: bool,
    /// Its checkout (or that checkout's `.git`) is missing.
    pub prunable: bool,
}

/// The repository's linked worktrees, read from `<common>/worktrees/` (cheap: a dir listing).
pub fn linked_worktrees(common_dir: &Path) -> Result<Vec<LinkedWorktree>> {
    // gix opens a non-bare repository by its work tree, a bare one by its git dir.
    let at = match common_dir.file_name() {
        Some(n) if n == ".git" => common_dir.parent().unwrap_or(common_dir),
        _ => common_dir,
    };
    let repo = gix::open(at).with_context(|| format!("opening {}", common_dir.display()))?;
    let mut out = vec![];
    for proxy in repo
        .worktrees()
        .with_context(|| format!("listing the worktrees of {}", common_dir.display()))?
    {
        let id = proxy.id()?.to_string();
        let base = proxy.base()?;
        out.push(LinkedWorktree {
            id,
            base,
            locked: proxy.is_locked(),
            prunable: proxy.is_prunable(),
        });
    }
    Ok(out)
}

/// The files the index of the worktree at `root` tracks, relative to it, sorted. Submodules
/// (their commit, not files) and sparse directories are left out.
pub fn tracked_files(root: &Path) -> Result<Vec<PathBuf>> {
    let repo = open_cached(root)?;
    let index = repo
        .index_or_empty()
        .with_context(|| format!("reading the index of {}", root.display()))?;
    let mut out: Vec<PathBuf> = index
        .entries()
        .iter()
        .filter(|e| !e.mode.is_submodule() && !e.mode.is_sparse())
        .map(|e| gix::path::from_bstr(e.path(&index)).map(|p| p.into_owned()))
        .collect::<std::result::Result<_, _>>()?;
    // A conflicted path has an entry per stage.
    out.sort();
    out.dedup();
    Ok(out)
}

/// Whether the file `rel` of the worktree at `root` is tracked (in its index). Outside a
/// repository nothing is.
pub fn is_tracked(root: &Path, rel: &str) -> Result<bool> {
    let Some(repo) = open_enclosing(root)? else {
        return Ok(false);
    };
    let Some(workdir) = repo.workdir() else {
        return Ok(false);
    };
    let abs = realpath(root)?.join(rel);
    let Ok(rel) = abs.strip_prefix(realpath(workdir)?) else {
        return Ok(false);
    };
    let index = repo.index_or_empty()?;
    let path = gix::path::into_bstr(rel)?;
    let path = gix::path::to_unix_separators_on_windows(path);
    Ok(index.entry_by_path(path.as_ref()).is_some())
}

/// The repository holding `dir` (None: there is none), found like `discover` finds it.
fn open_enclosing(dir: &Path) -> Result<Option<gix::Repository>> {
    match gix::discover(dir) {
        Ok(r) => Ok(Some(r)),
        Err(e) if no_repository(&e) => Ok(None),
        Err(e) => Err(anyhow::Error::new(e))
            .with_context(|| format!("opening the git repository at {}", dir.display())),
    }
}

/// A config value of the repository (all scopes git would read), e.g. `vmoat.auto`.
pub fn config_string(dir: &Path, key: &str) -> Result<Option<String>> {
    let repo =
        gix::open(dir).with_context(|| format!("opening the repository at {}", dir.display()))?;
    Ok(repo.config_snapshot().string(key).map(|v| v.to_string()))
}

/// The directory git runs hooks from, by git's rules: `core.hooksPath` (absolute, or relative to
/// the worktree git runs in), else `<common>/hooks`.
pub fn hooks_dir(wt: &Worktree) -> Result<(PathBuf, Option<String>)> {
    let repo = gix::open(&wt.root)
        .with_context(|| format!("opening the repository at {}", wt.root.display()))?;
    let cfg = repo.config_snapshot();
    let raw = cfg.string("core.hooksPath").map(|v| v.to_string());
    let dir = match cfg
        .trusted_path("core.hooksPath")
        .context("reading core.hooksPath")?
    {
        Some(p) if p.is_absolute() => p,
        // Relative: git resolves it in the worktree it runs in; `git worktree add` runs in the
        // main checkout, so that is where the hook must be.
        Some(p) => wt
            .main_root
            .clone()
            .unwrap_or_else(|| wt.root.clone())
            .join(p),
        None => wt.common_dir.join("hooks"),
    };
    Ok((dir, raw))
}

/// Whether `rel` (a dir relative to the main checkout) holds tracked files.
pub fn holds_tracked_files(main: &Path, rel: &str) -> Result<bool> {
    let repo = open_cached(main)?;
    let index = repo.index_or_empty()?;
    let prefix = format!("{}/", rel.trim_end_matches('/'));
    Ok(index
        .prefixed_entries(prefix.as_str().into())
        .is_some_and(|e| !e.is_empty()))
}

/// The gitignored entries of a checkout (an ignored directory comes back as one entry).
pub fn ignored_entries(checkout: &Path) -> Result<Vec<(String, bool)>> {
    use gix::dir::{entry::Status, walk::EmissionMode};
    let repo = open_cached(checkout)?;
    let index = repo.index_or_empty()?;
    let opts = repo
        .dirwalk_options()?
        .emit_ignored(Some(EmissionMode::Matching))
        .emit_untracked(EmissionMode::Matching)
        .emit_tracked(false);
    let mut out = vec![];
    let iter = repo
        .dirwalk_iter(index, None::<&str>, Default::default(), opts)
        .with_context(|| format!("listing the ignored files of {}", checkout.display()))?;
    for item in iter {
        let item = item?;
        if let Status::Ignored(_) = item.entry.status {
            let is_dir = matches!(item.entry.disk_kind, Some(gix::dir::entry::Kind::Directory));
            out.push((item.entry.rela_path.to_string(), is_dir));
        }
    }
    out.sort();
    Ok(out)
}

/// Gitignore-syntax patterns (a `.worktreeinclude` file), matched like git matches ignores.
pub struct Patterns {
    search: gix::ignore::Search,
    /// Literal path prefixes of the patterns, to know which ignored dirs to look into.
    prefixes: Vec<String>,
}

impl Patterns {
    pub fn parse(text: &str) -> Result<Self> {
        let mut search = gix::ignore::Search::default();
        search.add_patterns_buffer(
            text.as_bytes(),
            ".worktreeinclude",
            None,
            gix::ignore::search::Ignore {
                support_precious: false,
            },
        )?;
        let prefixes = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
            .map(|l| {
                let l = l.trim_start_matches('/');
                let cut = l.find(['*', '?', '[']).unwrap_or(l.len());
                l[..cut].to_string()
            })
            .collect();
        Ok(Self { search, prefixes })
    }

    /// True when the last matching pattern includes `rel` (a `!` pattern excludes it again),
    /// or, as in git, includes a directory `rel` is in (`.claude/` takes `.claude/x.json`).
    pub fn matches(&self, rel: &str, is_dir: bool) -> bool {
        rel.match_indices('/')
            .any(|(i, _)| self.matches_one(&rel[..i], true))
            || self.matches_one(rel, is_dir)
    }

    fn matches_one(&self, rel: &str, is_dir: bool) -> bool {
        self.search
            .pattern_matching_relative_path(
                rel.into(),
                Some(is_dir),
                gix::glob::pattern::Case::Sensitive,
            )
            .is_some_and(|m| !m.pattern.is_negative())
    }

    /// Whether some pattern could match a path inside directory `rel`.
    pub fn may_match_inside(&self, rel: &str) -> bool {
        let dir = format!("{rel}/");
        self.prefixes
            .iter()
            .any(|p| p.starts_with(&dir) || p.is_empty() || !p.contains('/'))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_directory_pattern_takes_what_is_inside_it() {
        let p = super::Patterns::parse(".claude/\n.env\n").unwrap();
        assert!(p.matches(".claude/settings.local.json", false));
        assert!(p.matches("sub/.env", false));
        assert!(!p.matches(".claudex/a", false));
        assert!(!p.matches("README.md", false));
    }
}
