//! Consent: what runs by itself (the hook's background job) runs only content the user approved.
//!
//! A worktree's automatic content is everything of the project the job would run: the up and
//! test commands, the provision script and packages, the mount and the backend, the legacy shell
//! config by hash, and by hash every tracked file the common tools read by themselves anywhere
//! in the worktree (Makefiles, justfiles, package manager files, compose files, Dockerfiles, env
//! files) plus every tracked file the commands name. Untracked files (gitignored ones seeded
//! from the main checkout) are the user's own: no branch can supply them, so they are not part
//! of it. `hooks install` and `trust` record its digest per repository; a new worktree with the
//! same content runs unattended, one that differs waits for the user.

mod content;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::jobs::{self, JobState};
use crate::output;
use crate::repo::Worktree;
use crate::state::State;
use crate::state::files::APPROVALS;

pub use self::content::Content;

/// Approvals kept per repository (newest last): enough for the branches in flight.
const KEEP: usize = 32;

pub use crate::registry::{repo_key, repo_key_for_record};

#[derive(Default, Serialize, Deserialize)]
struct Approvals {
    /// Repository key -> approvals, newest last.
    #[serde(default)]
    repos: BTreeMap<String, Vec<Approval>>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Approval {
    digest: String,
    /// Unix seconds.
    at: u64,
    /// What was approved, to say later what changed.
    items: BTreeMap<String, String>,
}

/// Records the content as approved for the worktree's repository.
pub fn record(state: &State, wt: &Worktree, content: &Content) -> Result<()> {
    let key = repo_key_for_record(state, wt)?;
    state.update_json(APPROVALS, |a: &mut Approvals| {
        let list = a.repos.entry(key).or_default();
        list.retain(|x| x.digest != content.digest);
        list.push(Approval {
            digest: content.digest.clone(),
            at: jobs::now(),
            items: content.items.clone(),
        });
        let excess = list.len().saturating_sub(KEEP);
        list.drain(..excess);
        Ok(())
    })
}

/// Loads the worktree's config (legacy files must be trusted), records its content as approved
/// and returns it.
pub fn approve(wt: &Worktree, state: &State) -> Result<Content> {
    let cfg = Config::load(&wt.root, state)?;
    let content = Content::of(&wt.root, &cfg)?;
    record(state, wt, &content)?;
    Ok(content)
}

/// Shows what was approved (stderr: a message, not data).
pub fn show_approved(content: &Content) {
    output::info(format!(
        "approved for automatic runs in this repository's worktrees (digest {}):\n{}",
        &content.digest[..12],
        content.listing().trim_end()
    ));
}

/// `hooks install`: approve what the job will run, or say why nothing could be approved.
pub fn approve_on_install(wt: &Worktree) {
    match State::open().and_then(|st| approve(wt, &st)) {
        Ok(c) => show_approved(&c),
        Err(e) => output::warn(format!(
            "nothing approved, so new worktrees will wait for you: {e:#} (fix it, then `git vmoat trust`)"
        )),
    }
}

/// Why the worktree's content is not approved (None: it is), and what it would run.
fn unapproved(wt: &Worktree, state: &State) -> Result<Option<(Vec<String>, Option<Content>)>> {
    let key = repo_key(wt);
    // Untrusted shell config is never evaluated, not even to list the rest.
    let untrusted = crate::config::untrusted_legacy(&wt.root, &key, state)?;
    if !untrusted.is_empty() {
        let why = untrusted
            .iter()
            .map(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                format!("legacy {name}: shell config with content not trusted for this repository")
            })
            .collect();
        return Ok(Some((why, None)));
    }
    let cfg = Config::load(&wt.root, state)?;
    let content = Content::of(&wt.root, &cfg)?;
    let store: Approvals = state.read_json(APPROVALS)?;
    let list = store.repos.get(&key).map(Vec::as_slice).unwrap_or_default();
    if list.iter().any(|a| a.digest == content.digest) {
        return Ok(None);
    }
    let why = match list.last() {
        Some(last) => diff(&last.items, &content.items),
        None => vec!["nothing is approved for this repository yet".into()],
    };
    Ok(Some((why, Some(content))))
}

/// Which items differ between the approved content and this one.
fn diff(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let short = |v: &str| {
        let one: String = v.split_whitespace().collect::<Vec<_>>().join(" ");
        if one.chars().count() > 60 {
            format!("{}…", one.chars().take(59).collect::<String>())
        } else {
            one
        }
    };
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter_map(|k| match (old.get(k), new.get(k)) {
            (Some(a), Some(b)) if a == b => None,
            (Some(_), Some(_)) if k.starts_with("file") || k.starts_with("legacy ") => {
                Some(format!("{k}: content changed"))
            }
            (Some(a), Some(b)) => Some(format!(
                "{k}: changed from `{}` to `{}`",
                short(a),
                short(b)
            )),
            (None, Some(b)) => Some(format!("{k}: added (`{}`)", short(b))),
            (Some(_), None) => Some(format!("{k}: removed")),
            (None, None) => None,
        })
        .collect()
}

/// The background job's gate, called before it runs anything of the project. True: the content
/// is approved (or there is nothing to run), go on. False: it is not; the job's record says
/// so and the job must stop. An error is recorded as the job's failure.
/// `requested`: the job was asked for by an agent (the MCP server's `up`), not by the hook, so
/// it runs whatever `vmoat.auto` says and needs the approval all the same.
pub fn check_auto(wt: &Worktree, state: &State, requested: bool) -> Result<bool> {
    if !requested && crate::hooks::AutoMode::of(&wt.root)?.is_none() {
        return Ok(true); // the job itself says there is nothing to do
    }
    let (state_, note, go) = match unapproved(wt, state) {
        Ok(None) => {
            output::info("this worktree's commands, files and mount are approved: running them");
            return Ok(true);
        }
        Ok(Some((why, content))) => {
            let mut msg = String::from(
                "not running anything: this worktree's automatic content differs from what you approved:\n",
            );
            for w in &why {
                msg.push_str(&format!("  {w}\n"));
            }
            if let Some(c) = &content {
                msg.push_str(&format!("it would run:\n{}", c.listing()));
            }
            output::info(msg.trim_end());
            output::info(
                "run it once with `git vmoat up`, or review it and approve it with `git vmoat trust` (later worktrees with the same content then start by themselves)",
            );
            let keys: Vec<&str> = why
                .iter()
                .map(|w| w.split(':').next().unwrap_or(w))
                .collect();
            let note = format!(
                "not approved ({}): `git vmoat up` runs it once, `git vmoat trust` approves it",
                keys.join(", ")
            );
            (JobState::NeedsApproval, note, Ok(false))
        }
        Err(e) => (JobState::Failed, format!("{e:#}"), Err(e)),
    };
    if let Some(mut job) = jobs::read(state, wt)? {
        job.state = state_;
        job.finished = Some(jobs::now());
        job.error = Some(note);
        jobs::write(state, wt, &job)?;
    }
    go
}

/// For what an agent asks for (the MCP server): an error unless a person approved this
/// worktree's content; nothing is ever approved on the agent's behalf.
pub fn require_approved(wt: &Worktree, state: &State) -> Result<()> {
    let Some((why, _)) = unapproved(wt, state)? else {
        return Ok(());
    };
    Err(crate::error::hint(
        format!(
            "not running anything: this worktree's commands, files and mount are not approved ({})",
            why.join("; ")
        ),
        format!(
            "a person must review and approve them: run `git vmoat trust` in {}",
            wt.root.display()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
    #[test]
    fn diff_names_what_changed() {
        let old = items(&[("commands.up", "true"), ("file Makefile", "sha256 aa")]);
        let new = items(&[
            ("commands.up", "touch /x"),
            ("file Makefile", "sha256 bb"),
            ("provision.apt", "curl"),
        ]);
        let d = diff(&old, &new);
        assert_eq!(
            d,
            vec![
                "commands.up: changed from `true` to `touch /x`",
                "file Makefile: content changed",
                "provision.apt: added (`curl`)",
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }
}
