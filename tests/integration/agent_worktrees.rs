//! Coding agents' own worktrees, nested in the main checkout (Claude Code's `--worktree` makes
//! `.claude/worktrees/<name>`): with the hook installed each gets its VM by itself, named after
//! it, inside the mount, seeded from the main checkout without copying the other agents'
//! worktrees into it, and the watcher destroys it on `git worktree remove`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use crate::integration::git_side::{repo_with_config, wait_job_done};

/// A repository as an agent finds it: its worktrees dir and local settings gitignored, both
/// listed for seeding (`.claude/` holds the agent's own settings), the hook installed.
fn agent_repo(env: &Env) -> PathBuf {
    let repo = repo_with_config(env, "app", &[]);
    env.write(
        &repo.join(".gitignore"),
        ".env\n.claude/worktrees/\n.claude/settings.local.json\n",
    );
    env.write(&repo.join(".worktreeinclude"), ".env\n.claude/\n");
    env.git(&repo, &["add", "."]);
    env.git(&repo, &["commit", "-q", "-m", "agent files"]);
    env.write(&repo.join(".env"), "SECRET=1\n");
    env.write(&repo.join(".claude/settings.local.json"), "{}\n");
    env.vmoat(&repo, &["hooks", "install"]).ok();
    repo
}

/// `git worktree add` as the agent runs it: a relative path inside the main checkout.
fn agent_worktree(env: &Env, repo: &Path, name: &str) -> PathBuf {
    let rel = format!(".claude/worktrees/{name}");
    env.git(repo, &["worktree", "add", "-q", "-b", name, &rel]);
    let wt = repo.join(rel);
    wait_job_done(env, &wt);
    wt
}

/// Every file under `dir`, relative to it (the `.git` file left out).
fn files(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                todo.push(p);
            } else if e.file_name() != ".git" {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn agent_worktrees_nested_in_the_main_checkout_get_their_own_vms() {
    let env = Env::new();
    let repo = agent_repo(&env);
    let a = agent_worktree(&env, &repo, "agent-a");
    let b = agent_worktree(&env, &repo, "agent-b");

    // Named after the agent's worktree, distinct from the main checkout's.
    assert_eq!(env.vmoat(&a, &["name"]).ok().stdout.trim(), "wt-agent-a");
    assert_eq!(env.vmoat(&b, &["name"]).ok().stdout.trim(), "wt-agent-b");
    assert_eq!(env.vmoat(&repo, &["name"]).ok().stdout.trim(), "wt-app");
    for (wt, vm) in [(&a, "wt-agent-a"), (&b, "wt-agent-b")] {
        assert_eq!(env.profile(vm).unwrap()["status"], "Running");
        // The VM's mount holds the worktree (and so the main checkout's git dir around it).
        let cfg: serde_json::Value =
            serde_json::from_str(&env.vmoat(wt, &["config", "--json"]).ok().stdout).unwrap();
        let mount = cfg["values"]["vm.mount"]["value"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            wt.starts_with(&mount) && repo.starts_with(&mount),
            "{mount}"
        );
        let mounts = env.profile(vm).unwrap()["mounts"].to_string();
        assert!(mounts.contains(&mount), "{vm} mounts {mounts}, not {mount}");
    }

    // Seeded from the main checkout: its files, never the other agents' worktrees.
    for wt in [&a, &b] {
        assert_eq!(
            files(wt),
            [
                ".claude/settings.local.json",
                ".env",
                ".gitignore",
                ".worktreeinclude",
                "vmoat.toml"
            ],
            "{}",
            wt.display()
        );
    }

    // Removing one agent's worktree destroys its VM and only its VM.
    let w = Watcher::start(&env, &repo, &["--interval", "60"]);
    env.git(&repo, &["worktree", "remove", ".claude/worktrees/agent-a"]);
    assert!(
        wait_until(Duration::from_secs(10), || env
            .profile("wt-agent-a")
            .is_none()),
        "git worktree remove left the VM"
    );
    assert_eq!(env.profile("wt-agent-b").unwrap()["status"], "Running");
    // The watcher forgets the VM just after deleting it.
    let listed = || {
        let all = env.vmoat(&repo, &["status", "--all", "--json"]).ok().stdout;
        let all: serde_json::Value = serde_json::from_str(&all).unwrap();
        all["vms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["vm"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(10), || listed() == ["wt-agent-b"]),
        "{:?}",
        listed()
    );
    drop(w);
}

crate::tests! {
    agent_worktrees_nested_in_the_main_checkout_get_their_own_vms: Ssh;
}
