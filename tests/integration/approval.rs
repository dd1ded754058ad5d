//! Approval, for real: the hook's background job runs only content the user approved, and a
//! branch changing what it would run (commands, Makefiles, package files, compose, env, legacy
//! config) waits for the user.

use std::path::Path;
use std::time::Duration;

use super::git_side::{job_state, repo_with_config, wait_job_done};
use crate::common::*;

/// Waits for the worktree's job to end; returns its state.
#[track_caller]
fn wait_job_end(env: &Env, wt: &Path) -> String {
    let mut last = None;
    wait_until(Duration::from_secs(60), || {
        last = job_state(env, wt);
        matches!(
            last.as_deref(),
            Some("ok") | Some("failed") | Some("needs-approval")
        )
    });
    last.unwrap_or_default()
}

/// Commits `files` on a new branch `name` made from main, leaving the main checkout on main.
fn branch_with(env: &Env, repo: &Path, name: &str, files: &[(&str, &str)]) {
    env.git(repo, &["checkout", "-q", "-b", name]);
    for (f, text) in files {
        env.write(&repo.join(f), text);
    }
    env.git(repo, &["add", "."]);
    env.git(repo, &["commit", "-q", "-m", name]);
    env.git(repo, &["checkout", "-q", "main"]);
}

fn add_worktree(env: &Env, repo: &Path, path: &Path, branch: &str) {
    env.git(
        repo,
        &["worktree", "add", "-q", path.to_str().unwrap(), branch],
    );
}

fn a_branch_changing_the_up_command_is_not_run_by_the_job_until_approved() {
    let env = Env::new();
    let repo = repo_with_config(&env, "proj", &[]);
    let r = env.vmoat(&repo, &["hooks", "install", "--up"]).ok();
    assert!(
        r.stderr.contains("approved")
            && r.stderr.contains("commands.up")
            && r.stderr.contains("true"),
        "install shows what runs by itself: {r:?}"
    );
    let marker = env.home.join("pwned");
    let evil = format!(
        "backend = \"colima\"\n[commands]\nup = \"touch {}\"\n",
        marker.display()
    );
    branch_with(&env, &repo, "evil", &[("vmoat.toml", &evil)]);
    let wt = env.home.join("src/evil");
    add_worktree(&env, &repo, &wt, "evil");
    assert_eq!(wait_job_end(&env, &wt), "needs-approval");
    assert!(
        !marker.exists(),
        "an unapproved up command never runs by itself"
    );
    assert!(
        !env.call_lines().iter().any(|c| c.starts_with("start")),
        "no VM was started: {:?}",
        env.call_lines()
    );
    let log = env.vmoat(&wt, &["logs"]).ok().stdout;
    assert!(
        log.contains("commands.up: changed from `true` to `touch"),
        "the log says what changed: {log}"
    );
    let s = env.vmoat(&wt, &["status"]).ok().stdout;
    assert!(
        s.contains("NEEDS APPROVAL")
            && s.contains("`git vmoat trust`")
            && s.contains("`git vmoat up`"),
        "{s}"
    );

    // An explicit `up` runs what the user asked for, as `make up` would.
    env.vmoat(&wt, &["up"]).ok();
    assert!(marker.exists());
    std::fs::remove_file(&marker).unwrap();

    // Approved once, the same content runs by itself in any later worktree.
    let t = env.vmoat(&wt, &["trust"]).ok();
    assert!(t.stderr.contains("touch"), "trust lists it: {t:?}");
    let wt2 = env.home.join("src/evil2");
    env.git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "evil2",
            wt2.to_str().unwrap(),
            "evil",
        ],
    );
    wait_job_done(&env, &wt2);
    assert!(marker.exists());
}

fn approved_content_runs_by_itself_and_a_changed_makefile_does_not() {
    let env = Env::new();
    let repo = env.home.join("src/proj");
    std::fs::create_dir_all(&repo).unwrap();
    env.git(&repo, &["init", "-q", "-b", "main"]);
    // No commands.up: `make up` is detected from the Makefile.
    env.write(&repo.join("vmoat.toml"), "backend = \"colima\"\n");
    env.write(&repo.join("Makefile"), "up:\n\ttouch made-up\n");
    env.write(&repo.join(".gitignore"), ".env\n");
    env.git(&repo, &["add", "."]);
    env.git(&repo, &["commit", "-q", "-m", "init"]);
    // The user's own ignored .env, seeded into new worktrees: not part of what is approved.
    env.write(&repo.join(".env"), "SECRET=1\n");
    env.write(&repo.join(".git/info/exclude"), ".worktreeinclude\n");
    env.write(&repo.join(".worktreeinclude"), ".env\n");
    let r = env.vmoat(&repo, &["hooks", "install", "--up"]).ok();
    assert!(
        r.stderr.contains("make up (detected from Makefile)") && r.stderr.contains("file Makefile"),
        "{r:?}"
    );

    // Same content: runs unattended.
    let same = env.home.join("src/same");
    env.git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "same",
            same.to_str().unwrap(),
        ],
    );
    wait_job_done(&env, &same);
    assert!(same.join("made-up").exists(), "the approved up ran");
    assert!(same.join(".env").exists(), "the ignored .env was seeded");

    // The Makefile the detected command runs changed: not run.
    let marker = env.home.join("pwned");
    let mk = format!("up:\n\ttouch {}\n", marker.display());
    branch_with(&env, &repo, "mk", &[("Makefile", &mk)]);
    let wt = env.home.join("src/mk");
    add_worktree(&env, &repo, &wt, "mk");
    assert_eq!(wait_job_end(&env, &wt), "needs-approval");
    assert!(!marker.exists() && !wt.join("made-up").exists());
    let log = env.vmoat(&wt, &["logs"]).ok().stdout;
    assert!(log.contains("file Makefile: content changed"), "{log}");
    let j: serde_json::Value =
        serde_json::from_str(&env.vmoat(&wt, &["status", "--json"]).ok().stdout).unwrap();
    assert!(
        j["job"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("file Makefile") && e.contains("git vmoat trust")),
        "{j}"
    );
}

fn a_legacy_config_trusted_once_works_in_new_worktrees_jobs() {
    let env = Env::new();
    let repo = env.home.join("src/proj");
    std::fs::create_dir_all(&repo).unwrap();
    env.git(&repo, &["init", "-q", "-b", "main"]);
    env.write(
        &repo.join("vmoat.conf"),
        "VM_BACKEND=colima\nCMD_UP='touch legacy-up'\n",
    );
    env.git(&repo, &["add", "."]);
    env.git(&repo, &["commit", "-q", "-m", "init"]);
    let t = env.vmoat(&repo, &["trust"]).ok();
    assert!(
        t.stderr.contains("trusted") && t.stderr.contains("legacy vmoat.conf"),
        "{t:?}"
    );
    env.vmoat(&repo, &["hooks", "install", "--up"]).ok();
    let wt = env.home.join("src/feat");
    env.git(
        &repo,
        &["worktree", "add", "-q", "-b", "feat", wt.to_str().unwrap()],
    );
    wait_job_done(&env, &wt);
    assert!(wt.join("legacy-up").exists());
    // Explicit commands in the new worktree need no new trust either.
    env.vmoat(&wt, &["config"]).ok();

    // Changed shell config is never evaluated by the job.
    let marker = env.home.join("pwned");
    let conf = format!(
        "touch {}\nVM_BACKEND=colima\nCMD_UP='touch legacy-up'\n",
        marker.display()
    );
    branch_with(&env, &repo, "changed", &[("vmoat.conf", &conf)]);
    let wt2 = env.home.join("src/changed");
    add_worktree(&env, &repo, &wt2, "changed");
    // `status` reads the config, which waits for trust itself: the log tells the job's end.
    let logged = wait_until(Duration::from_secs(60), || {
        env.vmoat(&wt2, &["logs"])
            .stdout
            .contains("legacy vmoat.conf: shell config with content not trusted")
    });
    assert!(logged, "{}", env.vmoat(&wt2, &["logs"]).stdout);
    assert!(!marker.exists(), "untrusted shell config never ran");
    let s = env.vmoat(&wt2, &["status"]);
    assert!(
        s.code == 1
            && s.stderr.contains("changed since you trusted it")
            && s.stderr.contains("git vmoat trust"),
        "{s:?}"
    );
    // The log line comes before the job's record says how it ended: wait for that.
    let job = || {
        std::fs::read_dir(env.state_dir().join("jobs"))
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .find(|t| t.contains("src/changed"))
            .unwrap_or_default()
    };
    wait_until(Duration::from_secs(30), || {
        let j = job();
        !j.is_empty() && !j.contains("\"running\"")
    });
    let job = job();
    assert!(job.contains("\"needs-approval\""), "{job}");
}

/// Installs the hook with `--up` in `repo`, whose content is then approved, and says so.
fn install_approving(env: &Env, repo: &Path, shown: &[&str]) {
    let r = env.vmoat(repo, &["hooks", "install", "--up"]).ok();
    for s in shown {
        assert!(r.stderr.contains(s), "install lists {s}: {r:?}");
    }
}

/// Adds a worktree of `branch` and asserts its job ran nothing: needs-approval, `marker` absent,
/// the log naming each of `changed`.
#[track_caller]
fn refused_by_the_job(env: &Env, repo: &Path, branch: &str, marker: &Path, changed: &[&str]) {
    let wt = env.home.join("src").join(branch);
    add_worktree(env, repo, &wt, branch);
    assert_eq!(wait_job_end(env, &wt), "needs-approval", "{branch}");
    assert!(!marker.exists(), "{branch}: nothing ran by itself");
    assert!(
        !env.call_lines().iter().any(|c| c.starts_with("start")),
        "{branch}: no VM was started: {:?}",
        env.call_lines()
    );
    let log = env.vmoat(&wt, &["logs"]).ok().stdout;
    for c in changed {
        assert!(log.contains(c), "{branch}: the log says {c}: {log}");
    }
}

fn a_branch_changing_a_makefile_or_package_json_in_a_subdir_is_not_run_by_itself() {
    let env = Env::new();
    let repo = env.home.join("src/proj");
    std::fs::create_dir_all(&repo).unwrap();
    env.git(&repo, &["init", "-q", "-b", "main"]);
    env.write(
        &repo.join("vmoat.toml"),
        "backend = \"colima\"\n[commands]\nup = \"make -C sub up && cd web && npm run dev\"\n",
    );
    env.write(&repo.join("sub/Makefile"), "up:\n\ttrue\n");
    env.write(
        &repo.join("web/package.json"),
        "{\"scripts\": {\"dev\": \"true\"}}\n",
    );
    env.git(&repo, &["add", "."]);
    env.git(&repo, &["commit", "-q", "-m", "init"]);
    install_approving(&env, &repo, &["file sub/Makefile", "file web/package.json"]);

    let marker = env.home.join("pwned");
    let mk = format!("up:\n\ttouch {}\n", marker.display());
    branch_with(&env, &repo, "mk", &[("sub/Makefile", &mk)]);
    refused_by_the_job(
        &env,
        &repo,
        "mk",
        &marker,
        &["file sub/Makefile: content changed"],
    );
    let pkg = format!(
        "{{\"scripts\": {{\"dev\": \"touch {}\"}}}}\n",
        marker.display()
    );
    branch_with(&env, &repo, "pkg", &[("web/package.json", &pkg)]);
    refused_by_the_job(
        &env,
        &repo,
        "pkg",
        &marker,
        &["file web/package.json: content changed"],
    );
}

fn a_branch_adding_an_npmrc_is_not_run_by_itself() {
    let env = Env::new();
    let repo = env.home.join("src/proj");
    std::fs::create_dir_all(&repo).unwrap();
    env.git(&repo, &["init", "-q", "-b", "main"]);
    // No commands.up: `npm run dev` is detected from package.json.
    env.write(&repo.join("vmoat.toml"), "backend = \"colima\"\n");
    env.write(
        &repo.join("package.json"),
        "{\"scripts\": {\"dev\": \"true\"}}\n",
    );
    env.git(&repo, &["add", "."]);
    env.git(&repo, &["commit", "-q", "-m", "init"]);
    install_approving(
        &env,
        &repo,
        &[
            "npm run dev (detected from package.json)",
            "file package.json",
        ],
    );
    // npm would run every script through this shell: a branch adding it changes what runs.
    let marker = env.home.join("pwned");
    let evil = format!("#!/bin/sh\ntouch {}\n", marker.display());
    branch_with(
        &env,
        &repo,
        "npmrc",
        &[(".npmrc", "script-shell=./evil.sh\n"), ("evil.sh", &evil)],
    );
    refused_by_the_job(&env, &repo, "npmrc", &marker, &["file .npmrc: added"]);
}

fn a_branch_adding_a_compose_override_or_env_is_not_run_by_itself() {
    let env = Env::new();
    let repo = env.home.join("src/proj");
    std::fs::create_dir_all(&repo).unwrap();
    env.git(&repo, &["init", "-q", "-b", "main"]);
    // No commands.up: `docker compose up -d` is detected from compose.yaml.
    env.write(&repo.join("vmoat.toml"), "backend = \"colima\"\n");
    env.write(
        &repo.join("compose.yaml"),
        "services:\n  web:\n    image: busybox\n",
    );
    env.git(&repo, &["add", "."]);
    env.git(&repo, &["commit", "-q", "-m", "init"]);
    install_approving(
        &env,
        &repo,
        &[
            "docker compose up -d (detected from compose.yaml)",
            "file compose.yaml",
        ],
    );
    // docker compose reads an override file and `.env` (COMPOSE_FILE) by itself.
    let marker = env.home.join("pwned");
    let over = format!(
        "services:\n  web:\n    volumes: [\"/:/host\"]\n    command: touch /host{}\n",
        marker.display()
    );
    branch_with(&env, &repo, "override", &[("compose.override.yaml", &over)]);
    refused_by_the_job(
        &env,
        &repo,
        "override",
        &marker,
        &["file compose.override.yaml: added"],
    );
    branch_with(
        &env,
        &repo,
        "dotenv",
        &[
            (".env", "COMPOSE_FILE=compose.yaml:deploy/evil.yml\n"),
            ("deploy/evil.yml", &over),
        ],
    );
    refused_by_the_job(&env, &repo, "dotenv", &marker, &["file .env: added"]);
}

crate::tests! {
    a_branch_changing_the_up_command_is_not_run_by_the_job_until_approved: Ssh;
    approved_content_runs_by_itself_and_a_changed_makefile_does_not: Ssh, Make;
    a_legacy_config_trusted_once_works_in_new_worktrees_jobs: Ssh;
    a_branch_changing_a_makefile_or_package_json_in_a_subdir_is_not_run_by_itself;
    a_branch_adding_an_npmrc_is_not_run_by_itself;
    a_branch_adding_a_compose_override_or_env_is_not_run_by_itself;
}
