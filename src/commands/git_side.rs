//! The git side: hooks, the background job a new worktree gets, its logs, seeding, the watcher,
//! `gc` and `status --all`.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use crate::backend;
use crate::cli::HooksCommand;
use crate::context::Ctx;
use crate::jobs::{self, Job, JobState};
use crate::output::{self, JSON_VERSION};
use crate::reconcile::{self, Verdict};
use crate::repo;
use crate::seed::{self, Outcome};
use crate::state::State;
use crate::{git, hooks};

fn here() -> Result<repo::Worktree> {
    repo::discover(&std::env::current_dir()?)
}

pub fn hooks_cmd(cmd: &HooksCommand) -> Result<()> {
    let wt = here()?;
    let config_dir = wt.main_root.clone().unwrap_or_else(|| wt.root.clone());
    match cmd {
        HooksCommand::Install { up } => {
            let st = hooks::install(&wt)?;
            let mode = if *up {
                hooks::AutoMode::Up
            } else {
                hooks::AutoMode::Provision
            };
            git::config_set(&config_dir, hooks::AUTO_KEY, mode.as_str())?;
            output::info(format!("installed {}", st.dir.join(hooks::HOOK).display()));
            if st.chained {
                output::info(format!(
                    "your earlier hook is kept as {} and runs first",
                    hooks::ORIG
                ));
            }
            output::info(format!(
                "every `git worktree add` now {} its VM in the background; run `git vmoat watch --install-service` so removed worktrees lose theirs",
                if *up {
                    "seeds, provisions and starts the stack in"
                } else {
                    "seeds and provisions"
                }
            ));
            // What the job will run unattended is shown and approved here.
            crate::consent::approve_on_install(&wt);
        }
        HooksCommand::Uninstall => {
            if hooks::uninstall(&wt)? {
                output::info(
                    "removed git-vmoat's post-checkout hook (any earlier hook is back in place)",
                );
            } else {
                output::info("git-vmoat's hook is not installed here: nothing to remove");
            }
            git::config_unset(&config_dir, "vmoat.auto")?;
        }
        HooksCommand::Status { json: as_json } => {
            let st = hooks::state(&wt)?;
            let auto = repo::config_string(&wt.root, "vmoat.auto")?;
            if *as_json {
                return output::json(&json!({
                    "version": JSON_VERSION,
                    "hooks_dir": st.dir,
                    "core_hooks_path": st.hooks_path,
                    "installed": st.installed,
                    "outdated": st.outdated,
                    "chained": st.chained,
                    "auto": auto,
                }));
            }
            let mut out = format!("hooks dir: {}\n", st.dir.display());
            out.push_str(&format!(
                "post-checkout: {}\n",
                match (st.installed, st.outdated) {
                    (false, _) => "not installed (`git vmoat hooks install`)",
                    (true, true) =>
                        "installed, older version (`git vmoat hooks install` refreshes it)",
                    (true, false) => "installed",
                }
            ));
            if st.chained {
                out.push_str(&format!("chained: {} runs first\n", hooks::ORIG));
            }
            out.push_str(&format!(
                "vmoat.auto: {}\n",
                auto.as_deref().unwrap_or("unset (no automatic VMs)")
            ));
            output::data(out)?;
        }
    }
    Ok(())
}

/// Called by the hook shim. Must return at once and never fail the git command.
pub fn hook(args: &[String]) -> Result<()> {
    let Some(old) = args
        .get(1)
        .filter(|_| args.first().is_some_and(|h| h == "post-checkout"))
    else {
        return Ok(());
    };
    if !hooks::is_null_oid(old) {
        return Ok(()); // a plain checkout or switch
    }
    let Ok(wt) = here() else { return Ok(()) };
    let Ok(state) = State::open() else {
        return Ok(());
    };
    if let Err(e) = jobs::spawn(&state, &wt) {
        jobs::log_line(
            &jobs::log_path(&state, &wt),
            &format!("could not start the job: {e:#}"),
        );
    }
    Ok(())
}

/// The background job for a new worktree: seed, then provision (or up), as `vmoat.auto` says.
pub fn job(backend_flag: Option<crate::backend::BackendKind>) -> Result<()> {
    let state = State::open()?;
    let wt = match here() {
        Ok(wt) => wt,
        Err(e) => {
            // Removed before the job could start: say so in its record, not "the job died".
            let why =
                format!("the worktree could not be read when its job started (removed?): {e:#}");
            if let Ok(key) = std::env::var(jobs::KEY_ENV) {
                let _ = jobs::fail_by_key(&state, &key, &why);
            }
            return Err(e);
        }
    };
    // The worktree may be removed while the job runs; every tool it starts (colima, ssh, git)
    // must still work then, so nothing may depend on the worktree as the current directory.
    std::env::set_current_dir("/")?;
    let mut record = jobs::read(&state, &wt)?.unwrap_or(Job {
        pid: std::process::id(),
        worktree: wt.root.clone(),
        state: JobState::Running,
        started: jobs::now(),
        finished: None,
        error: None,
    });
    record.pid = std::process::id();
    jobs::write(&state, &wt, &record)?;
    output::info(format!("job for {} started", wt.root.display()));
    if !crate::consent::check_auto(&wt, &state)? {
        return Ok(()); // not approved: recorded as needs-approval, nothing of the project ran
    }
    let result = (|| -> Result<()> {
        let Some(auto) = hooks::AutoMode::of(&wt.root)? else {
            output::info(
                "vmoat.auto is not set for this repository: nothing to do (`git vmoat hooks install` sets it)",
            );
            return Ok(());
        };
        if !still_listed(&wt) {
            output::info("git no longer lists this worktree: nothing to do");
            return Ok(());
        }
        let ctx = crate::context::Base::at(wt.clone(), state.clone(), backend_flag).full()?;
        seed_worktree(&ctx, false)?;
        if auto == hooks::AutoMode::Up {
            super::provision::up(&ctx)?;
            // The stack is meant to be reachable the moment it is up: tunnel it too.
            match super::tunnel::open(&ctx, vec![]) {
                Ok((vm, opened)) => super::tunnel::report(&vm, &opened),
                Err(e) => {
                    output::info(format!("no tunnel opened: {e:#}"));
                    Ok(())
                }
            }
        } else {
            super::provision::provision(&ctx, super::provision::Mode::IfNeeded).map(drop)
        }
    })();
    // The worktree may have been removed while its VM was being made (the watcher, if any,
    // may have looked before the VM was recorded): if git forgot it, leave no VM behind.
    // Whatever the steps said (an up in a vanished directory fails), a forgotten worktree's
    // VM goes.
    let result = match reclaim_if_forgotten(&wt, &state) {
        Ok(true) => Ok(()),
        Ok(false) => result,
        Err(e) => Err(e),
    };
    record.finished = Some(jobs::now());
    match &result {
        Ok(()) => {
            record.state = JobState::Ok;
            output::info("job done");
        }
        Err(e) => {
            record.state = JobState::Failed;
            record.error = Some(format!("{e:#}"));
            output::error(format!("{e:#}"), crate::error::find_hint(e));
        }
    }
    jobs::write(&state, &wt, &record)?;
    // Reported above, in the log: exit 1 without printing it again.
    result.map_err(|_| crate::error::PassThrough(1).into())
}

/// Whether git still lists the worktree (the main one always is).
fn still_listed(wt: &repo::Worktree) -> bool {
    let Some(id) = &wt.id else { return true };
    // An unreadable list is not proof of removal.
    repo::linked_worktrees(&wt.common_dir).map_or(true, |l| l.iter().any(|w| &w.id == id))
}

/// Tears down the worktree's VM when git has forgotten the worktree; true when it had.
fn reclaim_if_forgotten(wt: &repo::Worktree, state: &State) -> Result<bool> {
    if still_listed(wt) {
        return Ok(false);
    }
    // The job may have given the repository its id after `wt` was read.
    let mut wt = wt.clone();
    if wt.repo_id.is_none() {
        wt.repo_id = repo::read_repo_id(&wt.common_dir);
    }
    let names = crate::registry::load(state)?;
    if let Some((name, owner)) = crate::registry::find(&names, &wt) {
        output::info(format!(
            "the worktree was removed while its VM was being made: destroying {name}"
        ));
        let b = backend::select(owner.backend, state)?;
        crate::context::teardown(state, b.as_ref(), &name)?;
    }
    Ok(true)
}

pub fn logs(follow: bool) -> Result<()> {
    let wt = here()?;
    let state = State::open()?;
    let path = jobs::log_path(&state, &wt);
    let Ok(mut f) = std::fs::File::open(&path) else {
        output::info("no background job has run for this worktree");
        return Ok(());
    };
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        f.read_to_end(&mut buf)?;
        out.write_all(&buf)?;
        out.flush()?;
        let running =
            jobs::read(&state, &wt)?.is_some_and(|j| j.effective_state() == JobState::Running);
        if !follow || (!running && buf.is_empty()) {
            return Ok(());
        }
        if buf.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Seeds the worktree from the main checkout (config seeds + `.worktreeinclude`).
pub fn seed_worktree(ctx: &Ctx, dry_run: bool) -> Result<Vec<(String, Outcome)>> {
    if ctx.wt.is_main() {
        output::info("this is the main checkout: it is the source of seeds, nothing to copy");
        return Ok(vec![]);
    }
    let Some(main) = &ctx.wt.main_root else {
        output::warn("the main repository is bare: there is no main checkout to seed from");
        return Ok(vec![]);
    };
    let entries = seed::entries(main, &ctx.wt.root, &ctx.cfg.seed)?;
    let outcomes = seed::seed(main, &ctx.wt.root, &entries, dry_run)?;
    for (entry, outcome) in &outcomes {
        let verb = if dry_run { "would seed" } else { "seeded" };
        match outcome {
            Outcome::Copied(_) if dry_run => output::info(format!("{verb} {entry}")),
            Outcome::Copied(n) => output::info(format!(
                "{verb} {entry} ({n} file{})",
                if *n == 1 { "" } else { "s" }
            )),
            Outcome::Partial { copied, kept } => {
                output::info(format!(
                    "{verb} {entry}: {copied} copied, {kept} already present and kept"
                ));
            }
            Outcome::Exists => output::info(format!("{entry}: already in this worktree, kept")),
            Outcome::Missing => output::warn(format!(
                "seed {entry} is in neither the main checkout nor this worktree"
            )),
            Outcome::Tracked => output::warn(format!(
                "seed {entry} is tracked by git, so every checkout has it: not copied"
            )),
            Outcome::NotIgnored => output::warn(format!(
                "seed {entry} is not gitignored in the main checkout: not copied"
            )),
            Outcome::Skipped(why) => output::warn(format!("seed {entry} skipped: {why}")),
        }
    }
    Ok(outcomes)
}

pub fn seed_cmd(ctx: &Ctx, dry_run: bool) -> Result<()> {
    let outcomes = seed_worktree(ctx, dry_run)?;
    let list: Vec<String> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Copied(_) | Outcome::Partial { .. }))
        .map(|(e, _)| e.clone())
        .collect();
    if !list.is_empty() {
        output::data(list.join("\n"))?;
    }
    Ok(())
}

/// Who may reclaim what: the watcher only what git forgot; an explicit `gc` also what is missing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reclaim {
    Watcher,
    Gc { dry_run: bool },
}

/// Destroys the orphans of one repository; returns what it did, for messages and JSON.
fn collect(
    state: &State,
    common: &Path,
    recorded_here: bool,
    how: Reclaim,
) -> Result<Vec<serde_json::Value>> {
    let mut out = vec![];
    for (k, verdict) in reconcile::scan(state, common, recorded_here)? {
        let reclaim = verdict.reclaims(matches!(how, Reclaim::Gc { .. }));
        let reason = verdict.note().to_string();
        let mut destroyed = false;
        if reclaim && how != (Reclaim::Gc { dry_run: true }) {
            match backend::select(k.owner.backend, state)
                .and_then(|b| crate::context::teardown(state, b.as_ref(), &k.name))
            {
                Ok(()) => {
                    destroyed = true;
                    output::info(format!(
                        "destroyed {} ({reason}: {})",
                        k.name,
                        k.owner.root.display()
                    ));
                }
                Err(e) => output::warn(format!("could not destroy {}: {e:#}", k.name)),
            }
        } else if reclaim {
            output::info(format!(
                "would destroy {} ({reason}: {})",
                k.name,
                k.owner.root.display()
            ));
        }
        out.push(json!({
            "vm": k.name,
            "worktree": k.owner.root,
            "backend": k.owner.backend,
            "orphan": matches!(verdict, Verdict::Gone(_)),
            "missing": matches!(verdict, Verdict::Missing(_)),
            "reason": reason,
            "destroyed": destroyed,
        }));
    }
    Ok(out)
}

pub fn gc(dry_run: bool, all: bool, as_json: bool) -> Result<()> {
    let state = State::open()?;
    let repos = if all {
        reconcile::repos(&state)?
    } else {
        vec![here()?.common_dir]
    };
    let mut list = vec![];
    for common in repos {
        list.extend(collect(&state, &common, all, Reclaim::Gc { dry_run })?);
    }
    let strays = backend::netns::gc_strays(dry_run);
    if as_json {
        return output::json(
            &json!({"version": JSON_VERSION, "dry_run": dry_run, "vms": list, "strays": strays}),
        );
    }
    if !list
        .iter()
        .any(|v| v["orphan"] == true || v["missing"] == true)
    {
        output::info("no orphaned VMs: every VM has its worktree");
    }
    Ok(())
}

pub fn status_all(as_json: bool) -> Result<()> {
    let wt = here()?;
    let state = State::open()?;
    let mut rows = vec![];
    for (k, verdict) in reconcile::scan(&state, &wt.common_dir, false)? {
        let vm_state = backend::select(k.owner.backend, &state)
            .and_then(|b| b.info(&k.name))
            .map(|i| i.state.to_string())
            .unwrap_or_else(|e| format!("unknown ({e})"));
        let orphan = matches!(verdict, Verdict::Gone(_));
        let missing = matches!(verdict, Verdict::Missing(_));
        rows.push(json!({"vm": k.name, "worktree": k.owner.root, "backend": k.owner.backend, "state": vm_state, "orphan": orphan, "missing": missing, "note": verdict.note()}));
    }
    if as_json {
        return output::json(&json!({"version": JSON_VERSION, "vms": rows}));
    }
    if rows.is_empty() {
        output::info("no VMs for this repository yet (`git vmoat up` makes one)");
        return Ok(());
    }
    let mut out = String::new();
    for r in &rows {
        let note = r["note"].as_str().unwrap_or("");
        let mark = if r["orphan"] == true {
            "  ORPHAN: `git vmoat gc` removes it".to_string()
        } else if r["missing"] == true {
            format!("  MISSING: {note}; `git vmoat gc` would remove it")
        } else if note.is_empty() {
            String::new()
        } else {
            format!("  ({note})")
        };
        out.push_str(&format!(
            "{:<24} {:<8} {:<10} {}{mark}\n",
            r["vm"].as_str().unwrap_or(""),
            r["backend"].as_str().unwrap_or(""),
            r["state"].as_str().unwrap_or(""),
            r["worktree"].as_str().unwrap_or("")
        ));
    }
    output::data(out)
}

pub fn watch(all: bool, install_service: bool, interval: u64) -> Result<()> {
    if install_service {
        return install_service_file();
    }
    let state = State::open()?;
    let only = if all { None } else { Some(here()?.common_dir) };
    output::info(match &only {
        Some(c) => format!("watching {} (Ctrl-C to stop)", c.display()),
        None => "watching every repository with VMs (Ctrl-C to stop)".into(),
    });
    let st = state.clone();
    // With --all, a VM made for a new repository changes the registry: watch it to start
    // watching that repository at once.
    let extra = if all {
        vec![state.root().to_path_buf()]
    } else {
        vec![]
    };
    std::fs::create_dir_all(state.root())?;
    crate::watch::run(
        Duration::from_millis(300),
        Duration::from_secs(interval),
        &extra,
        || match &only {
            Some(c) => vec![c.clone()],
            None => reconcile::repos(&st).unwrap_or_default(),
        },
        |repo| {
            if let Err(e) = collect(&state, repo, true, Reclaim::Watcher) {
                output::warn(format!("reconciling {}: {e:#}", repo.display()));
            }
        },
    )
}

fn install_service_file() -> Result<()> {
    let exe = std::env::current_exe()?;
    let dirs = directories::BaseDirs::new().context("no home directory")?;
    if cfg!(target_os = "macos") {
        let path = dirs
            .home_dir()
            .join("Library/LaunchAgents/dev.git-vmoat.watch.plist");
        let text = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict>\n  <key>Label</key><string>dev.git-vmoat.watch</string>\n  <key>ProgramArguments</key><array><string>{}</string><string>watch</string><string>--all</string></array>\n  <key>RunAtLoad</key><true/>\n  <key>KeepAlive</key><true/>\n  <key>StandardErrorPath</key><string>{}/Library/Logs/git-vmoat-watch.log</string>\n</dict></plist>\n",
            exe.display(),
            dirs.home_dir().display()
        );
        write_service(&path, &text)?;
        output::info(format!(
            "enable it with: launchctl load -w {}",
            path.display()
        ));
    } else {
        let path = dirs
            .config_dir()
            .join("systemd/user/git-vmoat-watch.service");
        let text = format!(
            "[Unit]\nDescription=git-vmoat: destroy a worktree's VM when the worktree goes away\n\n[Service]\nExecStart={} watch --all\nRestart=on-failure\nRestartSec=5\n\n[Install]\nWantedBy=default.target\n",
            exe.display()
        );
        write_service(&path, &text)?;
        output::info(
            "enable it with: systemctl --user daemon-reload && systemctl --user enable --now git-vmoat-watch",
        );
    }
    Ok(())
}

fn write_service(path: &Path, text: &str) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    output::info(format!("wrote {}", path.display()));
    output::data(path.display().to_string())
}

/// `status` adds the background job of the worktree, if any.
pub fn job_line(state: &State, wt: &repo::Worktree) -> Option<(String, serde_json::Value)> {
    let job = jobs::read(state, wt).ok()??;
    let st = job.effective_state();
    let line = match st {
        JobState::Running => "running (follow it with `git vmoat logs -f`)".to_string(),
        JobState::Ok => "done".to_string(),
        JobState::NeedsApproval => format!(
            "NEEDS APPROVAL, nothing ran: {} (see `git vmoat logs`)",
            job.error.clone().unwrap_or_default()
        ),
        JobState::Failed => format!(
            "FAILED: {} (see `git vmoat logs`)",
            job.error
                .clone()
                .unwrap_or_else(|| "the job died".into())
                .lines()
                .next()
                .unwrap_or("")
        ),
    };
    Some((
        line,
        json!({"state": st, "started": job.started, "finished": job.finished, "error": job.error}),
    ))
}
