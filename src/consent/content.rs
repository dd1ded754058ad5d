//! A worktree's automatic content: the items the background job would run (config values,
//! legacy files, every tracked file the tools read by themselves or the commands name) and
//! their digest, which approvals record.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::config::{Config, Source};
use crate::repo;

/// A worktree's automatic content: named items and their digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content {
    /// Item name -> value; the digest covers exactly these.
    pub items: BTreeMap<String, String>,
    pub digest: String,
}

impl Content {
    /// Collects the content from the loaded config and the worktree's files.
    pub fn of(root: &Path, cfg: &Config) -> Result<Self> {
        let mut items = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            items.insert(k.to_string(), v);
        };
        put("backend", cfg.backend.clone());
        put("vm.mount", cfg.mount.to_string_lossy().into_owned());
        if let Some(up) = &cfg.up {
            put(
                "commands.up",
                match cfg.values.get("commands.up") {
                    Some((_, Source::Detected(f))) => format!("{up} (detected from {f})"),
                    _ => up.clone(),
                },
            );
        }
        if let Some(t) = &cfg.test {
            put("commands.test", t.clone());
        }
        if !cfg.apt.is_empty() {
            put("provision.apt", cfg.apt.join(" "));
        }
        if let Some(s) = &cfg.script {
            put("provision.script", s.clone());
        }
        // Tests never run by themselves, so only what up and provision name counts.
        let commands: Vec<&str> = [&cfg.up, &cfg.script]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        for (p, hash) in crate::config::legacy_files(root)? {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            put(&format!("legacy {name}"), format!("sha256 {hash}"));
        }
        let tracked = repo::tracked_files(root)?;
        items.extend(file_items(root, &tracked, &commands)?);
        let digest = digest(&items);
        Ok(Self { items, digest })
    }

    /// One line per item (multi-line values indented), for the user to review.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.items {
            let v = match v.strip_prefix("sha256 ") {
                Some(h) => format!("sha256 {}", &h[..h.len().min(16)]),
                None => v.clone(),
            };
            let mut lines = v.lines();
            out.push_str(&format!("  {k:<20} {}\n", lines.next().unwrap_or("")));
            for l in lines {
                out.push_str(&format!("  {:<20} {l}\n", ""));
            }
        }
        out
    }
}

/// A canonical digest: length-prefixed fields, so no value can pose as another item.
fn digest(items: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(b"git-vmoat consent v1\n");
    for (k, v) in items {
        h.update(format!("{}:{k}{}:", k.len(), v.len()));
        h.update(v.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Names of the files the common tools read by themselves wherever they are in the worktree:
/// make, just, npm/yarn/pnpm/bun, docker compose (overrides included), docker build, dotenv
/// loaders. `*` is any run of characters; case is ignored, as a case-insensitive filesystem finds
/// `MAKEFILE` for `Makefile`.
const READ_BY_TOOLS: [&str; 21] = [
    "GNUmakefile",
    "makefile",
    "Makefile",
    "*.mk",
    "justfile",
    "Justfile",
    ".justfile",
    "package.json",
    ".npmrc",
    ".yarnrc",
    ".yarnrc.yml",
    ".pnpmfile.cjs",
    "pnpm-workspace.yaml",
    "bunfig.toml",
    "compose*.y*ml",
    "docker-compose*.y*ml",
    "Dockerfile*",
    "*.dockerfile",
    ".dockerignore",
    ".env",
    ".env.*",
];

/// Whether a file name matches one of `READ_BY_TOOLS`.
fn read_by_tools(name: &[u8]) -> bool {
    fn glob(pat: &[u8], name: &[u8]) -> bool {
        match pat.split_first() {
            None => name.is_empty(),
            Some((b'*', rest)) => (0..=name.len()).any(|i| glob(rest, &name[i..])),
            Some((c, rest)) => name
                .split_first()
                .is_some_and(|(n, tail)| n.eq_ignore_ascii_case(c) && glob(rest, tail)),
        }
    }
    READ_BY_TOOLS.iter().any(|p| glob(p.as_bytes(), name))
}

/// The file items: every tracked file the tools read by themselves plus every tracked file the
/// commands name, each by its content on disk. Item names are unique per path: a path that is
/// not UTF-8 is spelled with escapes under its own prefix.
fn file_items(
    root: &Path,
    tracked: &[PathBuf],
    commands: &[&str],
) -> Result<BTreeMap<String, String>> {
    let set: BTreeSet<&Path> = tracked.iter().map(PathBuf::as_path).collect();
    let mut files: BTreeSet<&Path> = tracked
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| read_by_tools(n.as_encoded_bytes()))
        })
        .map(PathBuf::as_path)
        .collect();
    for cmd in commands {
        for f in files_named(cmd, root) {
            if let Some(p) = set.get(f.as_path()) {
                files.insert(p);
            }
        }
    }
    let mut out = BTreeMap::new();
    for f in files {
        let key = match f.to_str() {
            Some(s) => format!("file {s}"),
            None => format!(
                "file-bytes {}",
                f.as_os_str().as_encoded_bytes().escape_ascii()
            ),
        };
        out.insert(key, file_value(&root.join(f))?);
    }
    Ok(out)
}

/// A file's content as an item value: its hash, or what stands in its place.
fn file_value(path: &Path) -> Result<String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(format!("sha256 {}", crate::config::file_hash(path)?)),
        Ok(_) => Ok("not a file".into()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok("missing".into())
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The worktree paths a command's words name (a script, a `-f` file), relative to the worktree:
/// as written, and where symlinks lead. Words leaving the worktree name nothing of it.
fn files_named(cmd: &str, root: &Path) -> BTreeSet<PathBuf> {
    let words = cmd
        .split(|c: char| c.is_whitespace() || ";|&()`=<>".contains(c))
        .map(|w| w.trim_matches(|c| c == '"' || c == '\''))
        .filter(|w| !w.is_empty());
    let mut out = BTreeSet::new();
    for w in words {
        let p = Path::new(w);
        let rel = if p.is_absolute() {
            p.strip_prefix(root).ok()
        } else {
            Some(p)
        };
        if let Some(rel) = rel.and_then(normalize) {
            out.insert(rel);
        }
        if let Ok(real) = root.join(p).canonicalize()
            && let Ok(rel) = real.strip_prefix(root)
        {
            out.insert(rel.to_path_buf());
        }
    }
    out
}

/// A relative path with `.` and `..` resolved by text; None when it leaves its base.
fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::diff;

    fn items(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_digest_is_stable_and_fields_cannot_run_together() {
        let a = items(&[("commands.up", "make up"), ("backend", "auto")]);
        assert_eq!(digest(&a), digest(&a.clone()));
        let b = items(&[("commands.up", "make up"), ("backend", "auto ")]);
        assert_ne!(digest(&a), digest(&b));
        // Moving text between a key and its value changes the digest.
        let c = items(&[("ab", "c")]);
        let d = items(&[("a", "bc")]);
        assert_ne!(digest(&c), digest(&d));
    }

    #[test]
    fn the_files_tools_read_by_themselves_are_matched_by_name() {
        for yes in [
            "Makefile",
            "GNUmakefile",
            "MAKEFILE",
            "rules.mk",
            "justfile",
            ".justfile",
            "package.json",
            ".npmrc",
            ".yarnrc.yml",
            ".pnpmfile.cjs",
            "pnpm-workspace.yaml",
            "bunfig.toml",
            "compose.yaml",
            "compose.override.yml",
            "docker-compose.yml",
            "docker-compose.prod.yaml",
            "Dockerfile",
            "Dockerfile.dev",
            "api.dockerfile",
            ".dockerignore",
            ".env",
            ".env.local",
        ] {
            assert!(read_by_tools(yes.as_bytes()), "{yes}");
        }
        for no in [
            "README.md",
            "Makefile.am",
            "package-lock.json",
            "compose.json",
            "my.env",
            "env",
            "npmrc",
            "evil.sh",
        ] {
            assert!(!read_by_tools(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn files_named_by_commands_stay_inside_the_worktree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("scripts")).unwrap();
        std::fs::write(root.join("scripts/up.sh"), "").unwrap();
        std::fs::create_dir(root.join("bin")).unwrap();
        std::os::unix::fs::symlink("../scripts/up.sh", root.join("bin/up")).unwrap();
        let got = files_named(
            "./scripts/up.sh && sh bin/up; cat /etc/passwd ../../x <sub/./in.txt",
            &root,
        );
        let got: Vec<_> = got.iter().map(|p| p.to_str().unwrap()).collect();
        for want in ["scripts/up.sh", "bin/up", "sub/in.txt"] {
            assert!(got.contains(&want), "{want} in {got:?}");
        }
        assert!(
            !got.iter().any(|p| p.contains("passwd") || p.contains("..")),
            "{got:?}"
        );
        assert_eq!(normalize(Path::new("a/../../b")), None);
        assert_eq!(normalize(Path::new("./a/./b/..")), Some(PathBuf::from("a")));
    }

    fn git(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }

    fn files_of(root: &Path, commands: &[&str]) -> BTreeMap<String, String> {
        file_items(root, &repo::tracked_files(root).unwrap(), commands).unwrap()
    }

    #[test]
    fn tracked_build_files_anywhere_are_covered_and_ignored_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("main");
        let files = [
            ("sub/Makefile", "up:\n\ttrue\n"),
            ("web/package.json", "{}"),
            ("web/.npmrc", "x=1\n"),
            ("deploy/compose.override.yaml", "services: {}\n"),
            ("scripts/up.sh", "true\n"),
            ("scripts/other.sh", "true\n"),
            (".env.example", "A=\n"),
            ("README.md", "hi\n"),
            (".gitignore", ".env\n"),
        ];
        for (f, t) in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
        git(&root, &["init", "-q", "-b", "main"]);
        git(&root, &["add", "."]);
        git(&root, &["commit", "-q", "-m", "init"]);
        // The user's own ignored file, as seeding copies it into worktrees.
        std::fs::write(root.join(".env"), "SECRET=1\n").unwrap();
        let root = root.canonicalize().unwrap();
        let cmds = ["make -C sub up && ./scripts/up.sh"];
        let got = files_of(&root, &cmds);
        let keys: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "file .env.example",
                "file deploy/compose.override.yaml",
                "file scripts/up.sh",
                "file sub/Makefile",
                "file web/.npmrc",
                "file web/package.json",
            ]
        );
        assert!(got.values().all(|v| v.starts_with("sha256 ")), "{got:?}");

        // Another worktree of the same content, with or without the seeded file: the same.
        let wt = dir.path().join("wt");
        git(
            &root,
            &["worktree", "add", "-q", "-b", "wt", wt.to_str().unwrap()],
        );
        let wt = wt.canonicalize().unwrap();
        assert_eq!(files_of(&wt, &cmds), got);
        std::fs::write(wt.join(".env"), "OTHER=1\n").unwrap();
        assert_eq!(files_of(&wt, &cmds), got);

        // A change anywhere in a covered file shows; a tracked file gone from disk is missing.
        std::fs::write(wt.join("sub/Makefile"), "up:\n\tevil\n").unwrap();
        std::fs::remove_file(wt.join("web/.npmrc")).unwrap();
        let changed = files_of(&wt, &cmds);
        assert_eq!(
            diff(&got, &changed),
            [
                "file sub/Makefile: content changed",
                "file web/.npmrc: content changed"
            ]
        );
        assert_eq!(changed["file web/.npmrc"], "missing");
        // A newly tracked file the tools read is an item of its own.
        std::fs::write(wt.join(".npmrc"), "script-shell=./evil.sh\n").unwrap();
        git(&wt, &["add", ".npmrc"]);
        assert!(files_of(&wt, &cmds).contains_key("file .npmrc"));
    }
}
