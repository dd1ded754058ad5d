//! Which entries to seed: the configured ones, plus the gitignored paths of the main checkout
//! that a `.worktreeinclude` file selects.

use std::path::Path;

use anyhow::Result;

/// Entries to seed: the configured ones, plus every gitignored path of the main checkout that
/// the `.worktreeinclude` file (gitignore syntax; the worktree's own, else the main one's) selects.
pub fn entries(main: &Path, worktree: &Path, configured: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = configured.to_vec();
    let text = std::fs::read_to_string(worktree.join(".worktreeinclude"))
        .or_else(|_| std::fs::read_to_string(main.join(".worktreeinclude")));
    if let Ok(text) = text {
        let pats = crate::repo::Patterns::parse(&text)?;
        for (rel, is_dir) in crate::repo::ignored_entries(main)? {
            if in_nested_checkout(main, &rel) {
                continue;
            }
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
        if is_dir && is_checkout(&main.join(&child)) {
            continue;
        }
        if pats.matches(&child, is_dir) {
            out.push(child);
        } else if is_dir {
            walk_matches(main, &child, pats, out, budget);
        }
    }
}

/// Whether `dir` is a checkout of its own (a worktree or repository: it has a `.git`).
fn is_checkout(dir: &Path) -> bool {
    dir.join(".git").symlink_metadata().is_ok()
}

/// Whether `rel` is or lies in another checkout nested in the main one (a coding agent's
/// worktree such as `.claude/worktrees/<name>`): its files are not the main checkout's, and
/// seeding one into itself would never end.
fn in_nested_checkout(main: &Path, rel: &str) -> bool {
    let mut dir = main.to_path_buf();
    Path::new(rel).components().any(|c| {
        dir.push(c);
        is_checkout(&dir)
    })
}
