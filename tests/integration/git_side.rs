//! The git side, for real: hooks fired by real `git worktree add`, seeding, the notify watcher,
//! gc (approval of what the hook's job runs: approval.rs). VMs come from the Colima stand-in so creation and destruction are observable.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;

const CONFIG: &str = "backend = \"colima\"\n[commands]\nup = \"true\"\n";

/// A repo whose committed vmoat.toml every new worktree gets.
pub(crate) fn repo_with_config(env: &Env, name: &str, init_args: &[&str]) -> PathBuf {
    let dir = env.home.join("src").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut args = vec!["init", "-q", "-b", "main"];
    args.extend(init_args);
    env.git(&dir, &args);
    env.write(&dir.join("vmoat.toml"), CONFIG);
    env.write(&dir.join(".gitignore"), ".env\nsecrets/\nlocal/\n");
    env.git(&dir, &["add", "."]);
    env.git(&dir, &["commit", "-q", "-m", "init"]);
    dir
}

/// How many background jobs were ever recorded (the hook records one before git returns).
fn jobs(env: &Env) -> usize {
    std::fs::read_dir(env.state_dir().join("jobs")).map_or(0, |d| d.count())
}

pub(crate) fn job_state(env: &Env, wt: &Path) -> Option<String> {
    let r = env.vmoat(wt, &["status", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).ok()?;
    j["job"]["state"].as_str().map(String::from)
}

#[track_caller]
pub(crate) fn wait_job_done(env: &Env, wt: &Path) {
    let ok = wait_until(Duration::from_secs(60), || {
        matches!(job_state(env, wt).as_deref(), Some("ok") | Some("failed"))
    });
    let log = env.vmoat(wt, &["logs"]).stdout;
    assert!(
        ok && job_state(env, wt).as_deref() == Some("ok"),
        "job did not finish well; log:\n{log}"
    );
}

fn worktree_add_provisions_in_the_background_and_plain_checkouts_do_nothing() {
    let env = Env::new();
    let repo = install_hook_seeding_env(&env);
    let wt = add_worktree_provisioned_and_seeded(&env, &repo);
    plain_checkouts_and_no_checkout_start_nothing(&env, &repo, &wt);
}

/// A repo seeding `.env`, with the hook installed (twice: idempotent) set to provision.
fn install_hook_seeding_env(env: &Env) -> PathBuf {
    let repo = repo_with_config(env, "proj", &[]);
    env.write(&repo.join(".env"), "SECRET=1\n");
    env.write(&repo.join(".git/info/exclude"), ".worktreeinclude\n");
    env.write(&repo.join(".worktreeinclude"), ".env\n");
    env.vmoat(&repo, &["hooks", "install"]).ok();
    let st = env.vmoat(&repo, &["hooks", "status", "--json"]).ok();
    let j: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(
        (j["installed"].as_bool(), j["auto"].as_str()),
        (Some(true), Some("provision"))
    );
    // Idempotent.
    env.vmoat(&repo, &["hooks", "install"]).ok();
    repo
}

/// `git worktree add` (silent) provisions the worktree's VM in the background and seeds it.
fn add_worktree_provisioned_and_seeded(env: &Env, repo: &Path) -> PathBuf {
    let wt = env.home.join("src/feat");
    let out = env
        .cmd("git", repo)
        .args(["worktree", "add", "-q", "-b", "feat"])
        .arg(&wt)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{out:?}"
    );
    wait_job_done(env, &wt);
    assert_eq!(env.profile("wt-feat").unwrap()["status"], "Running");
    assert_eq!(
        std::fs::read_to_string(wt.join(".env")).unwrap(),
        "SECRET=1\n",
        "seeded"
    );
    let log = env.vmoat(&wt, &["logs"]).ok().stdout;
    assert!(
        log.contains("seeded .env") && log.contains("job done"),
        "{log}"
    );
    wt
}

/// A plain checkout or switch, `--no-checkout`, and anything after uninstall start no job.
fn plain_checkouts_and_no_checkout_start_nothing(env: &Env, repo: &Path, wt: &Path) {
    // A plain checkout or switch does not start anything.
    let starts = |e: &Env| {
        e.call_lines()
            .iter()
            .filter(|c| c.starts_with("start"))
            .count()
    };
    let before = starts(env);
    let jobs_before = jobs(env);
    env.git(wt, &["checkout", "-q", "-b", "other"]);
    env.git(wt, &["switch", "-q", "feat"]);
    // The hook records any job it starts before git returns: none means none will come.
    assert_eq!(jobs(env), jobs_before);
    assert_eq!(starts(env), before);

    // --no-checkout runs no hook: no job.
    let nc = env.home.join("src/nocheckout");
    env.git(
        repo,
        &[
            "worktree",
            "add",
            "-q",
            "--no-checkout",
            "-b",
            "nc",
            nc.to_str().unwrap(),
        ],
    );
    assert_eq!(jobs(env), jobs_before, "no hook ran, so no job");
    assert!(env.profile("wt-nocheckout").is_none());

    // Uninstall, then a new worktree gets nothing.
    env.vmoat(repo, &["hooks", "uninstall"]).ok();
    assert!(!repo.join(".git/hooks/post-checkout").exists());
    let later = env.home.join("src/later");
    env.git(
        repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "later",
            later.to_str().unwrap(),
        ],
    );
    assert_eq!(jobs(env), jobs_before, "no hook, no job");
    assert!(env.profile("wt-later").is_none());
}

fn an_existing_hook_is_chained_its_exit_code_kept_and_restored_on_uninstall() {
    let env = Env::new();
    let repo = repo_with_config(&env, "proj", &[]);
    let hook = repo.join(".git/hooks/post-checkout");
    let marker = env.home.join("user-hook-ran");
    let user_hook = format!("#!/bin/sh\necho \"$@\" >> {}\nexit 3\n", marker.display());
    env.write(&hook, &user_hook);
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let r = env.vmoat(&repo, &["hooks", "install", "--up"]).ok();
    assert!(r.stderr.contains("earlier hook is kept"), "{r:?}");
    let wt = env.home.join("src/feat");
    let out = env
        .cmd("git", &repo)
        .args(["worktree", "add", "-q", "-b", "feat"])
        .arg(&wt)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "the user's hook's status is kept: {out:?}"
    );
    assert!(wt.join("vmoat.toml").exists());
    assert!(
        std::fs::read_to_string(&marker)
            .unwrap()
            .starts_with("0000000000000000000000000000000000000000 ")
    );
    wait_job_done(&env, &wt);
    assert!(
        env.vmoat(&wt, &["logs"]).stdout.contains("is up"),
        "--up ran the up command"
    );
    env.vmoat(&repo, &["hooks", "uninstall"]).ok();
    assert_eq!(std::fs::read_to_string(&hook).unwrap(), user_hook);
}

fn hooks_path_relative_absolute_and_tracked() {
    let env = Env::new();
    // Relative and untracked: resolved from the main checkout, where `git worktree add` runs.
    let repo = repo_with_config(&env, "rel", &[]);
    env.git(&repo, &["config", "core.hooksPath", "myhooks"]);
    env.vmoat(&repo, &["hooks", "install"]).ok();
    assert!(repo.join("myhooks/post-checkout").exists());
    let wt = env.home.join("src/rel-wt");
    env.git(
        &repo,
        &["worktree", "add", "-q", "-b", "x", wt.to_str().unwrap()],
    );
    wait_job_done(&env, &wt);

    // Absolute.
    let repo2 = repo_with_config(&env, "abs", &[]);
    let abs = env.home.join("global-hooks");
    env.git(&repo2, &["config", "core.hooksPath", abs.to_str().unwrap()]);
    env.vmoat(&repo2, &["hooks", "install"]).ok();
    assert!(abs.join("post-checkout").exists());
    let wt2 = env.home.join("src/abs-wt");
    env.git(
        &repo2,
        &["worktree", "add", "-q", "-b", "x", wt2.to_str().unwrap()],
    );
    wait_job_done(&env, &wt2);

    // Tracked (a hook manager's dir): refused, nothing written.
    let repo3 = repo_with_config(&env, "tracked", &[]);
    env.write(&repo3.join(".githooks/pre-commit"), "#!/bin/sh\n");
    env.git(&repo3, &["add", ".githooks"]);
    env.git(&repo3, &["commit", "-q", "-m", "hooks"]);
    env.git(&repo3, &["config", "core.hooksPath", ".githooks"]);
    let r = env.vmoat(&repo3, &["hooks", "install"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("tracked in git") && r.stderr.contains("git-vmoat hook post-checkout"),
        "{r:?}"
    );
    assert!(!repo3.join(".githooks/post-checkout").exists());
}

fn sha256_repositories_fire_the_hook_too() {
    let env = Env::new();
    let repo = repo_with_config(&env, "sha", &["--object-format=sha256"]);
    env.vmoat(&repo, &["hooks", "install"]).ok();
    let wt = env.home.join("src/sha-wt");
    env.git(
        &repo,
        &["worktree", "add", "-q", "-b", "x", wt.to_str().unwrap()],
    );
    wait_job_done(&env, &wt);
    assert!(env.profile("wt-sha-wt").is_some());
}

fn a_missing_git_vmoat_never_breaks_worktree_add() {
    let env = Env::new();
    let repo = repo_with_config(&env, "proj", &[]);
    env.vmoat(&repo, &["hooks", "install"]).ok();
    let wt = env.home.join("src/feat");
    let out = env
        .cmd("git", &repo)
        .args(["worktree", "add", "-q", "-b", "feat"])
        .arg(&wt)
        .env("PATH", std::env::var("PATH").unwrap()) // no git-vmoat on it
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(wt.join("vmoat.toml").exists());
}

fn seeding_follows_worktreeinclude_and_never_overwrites() {
    let env = Env::new();
    let repo = repo_with_config(&env, "proj", &[]);
    env.write(
        &repo.join(".worktreeinclude"),
        "secrets/*.key\nlocal/\n!local/skip.txt\nREADME.md\n../outside\n",
    );
    env.write(&repo.join("README.md"), "tracked\n");
    env.git(&repo, &["add", "README.md", ".worktreeinclude"]);
    env.git(&repo, &["commit", "-q", "-m", "more"]);
    env.write(&repo.join("secrets/a.key"), "A\n");
    env.write(&repo.join("secrets/notes.txt"), "not selected\n");
    env.write(&repo.join("local/conf.yaml"), "from main\n");
    env.write(&repo.join("local/skip.txt"), "skip\n");
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    env.write(&wt.join("local/conf.yaml"), "mine\n");

    let dry = env.vmoat(&wt, &["seed", "--dry-run"]).ok();
    assert!(dry.stderr.contains("would seed secrets/a.key"), "{dry:?}");
    assert!(!wt.join("secrets/a.key").exists(), "dry run copies nothing");

    let r = env.vmoat(&wt, &["seed"]).ok();
    assert_eq!(
        std::fs::read_to_string(wt.join("secrets/a.key")).unwrap(),
        "A\n"
    );
    assert!(
        !wt.join("secrets/notes.txt").exists(),
        "not selected by .worktreeinclude"
    );
    assert_eq!(
        std::fs::read_to_string(wt.join("local/conf.yaml")).unwrap(),
        "mine\n",
        "never overwritten"
    );
    assert!(
        !r.stderr.contains("README.md") || r.stderr.contains("tracked"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read_to_string(wt.join("README.md")).unwrap(),
        "tracked\n"
    );
    assert!(r.stdout.contains("secrets/a.key"), "{r:?}");
}

fn the_watcher_destroys_vms_of_removed_and_pruned_worktrees_only() {
    let env = Env::new();
    let repo = repo_with_config(&env, "proj", &[]);
    let mut wts = vec![];
    for name in ["removed", "deleted", "pruned", "locked"] {
        let wt = env.worktree(&repo, &env.home.join("src").join(name), name);
        env.vmoat(&wt, &["up"]).ok();
        wts.push(wt);
    }
    let w = Watcher::start(&env, &repo, &["--interval", "60"]);
    let gone = |name: &str| {
        wait_until(Duration::from_secs(10), || {
            env.profile(&format!("wt-{name}")).is_none()
        })
    };

    env.git(
        &repo,
        &["worktree", "remove", "--force", wts[0].to_str().unwrap()],
    );
    assert!(gone("removed"), "git worktree remove");
    // rm -rf: git still lists the worktree, so it may have moved: kept, shown as missing.
    let m = w.mark();
    std::fs::remove_dir_all(&wts[1]).unwrap();
    assert!(w.wait_verdict(m, "wt-deleted", "missing"));
    assert!(
        env.profile("wt-deleted").is_some(),
        "rm -rf alone destroyed the VM"
    );
    env.git(
        &repo,
        &[
            "worktree",
            "lock",
            "--reason",
            "usb disk",
            wts[3].to_str().unwrap(),
        ],
    );
    std::fs::remove_dir_all(&wts[3]).unwrap();
    std::fs::remove_dir_all(&wts[2]).unwrap();
    let m = w.mark();
    env.git(&repo, &["worktree", "prune"]);
    assert!(gone("pruned"), "git worktree prune");
    // The pass that reclaimed `pruned` judged `locked` too.
    assert!(w.wait_verdict(m, "wt-locked", "kept"));
    assert!(
        env.profile("wt-locked").is_some(),
        "a locked worktree is not gone"
    );
    // `prune` above made git forget `deleted` too: only then did its VM go.
    assert!(gone("deleted"), "rm -rf + git worktree prune");
    drop(w);
}

fn gc_catches_up_on_what_happened_while_nothing_watched() {
    let env = Env::new();
    let repo = repo_with_config(&env, "proj", &[]);
    let a = env.worktree(&repo, &env.home.join("src/a"), "a");
    let b = env.worktree(&repo, &env.home.join("src/b"), "b");
    env.vmoat(&a, &["up"]).ok();
    env.vmoat(&b, &["up"]).ok();
    env.git(
        &repo,
        &["worktree", "remove", "--force", a.to_str().unwrap()],
    );

    let s: serde_json::Value =
        serde_json::from_str(&env.vmoat(&repo, &["status", "--all", "--json"]).ok().stdout)
            .unwrap();
    let vms = s["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 2, "{s}");
    let orphan = |n: &str| {
        vms.iter().find(|v| v["vm"] == n).unwrap()["orphan"]
            .as_bool()
            .unwrap()
    };
    assert!(orphan("wt-a") && !orphan("wt-b"));
    assert!(
        env.vmoat(&repo, &["status", "--all"])
            .ok()
            .stdout
            .contains("ORPHAN")
    );

    let dry: serde_json::Value =
        serde_json::from_str(&env.vmoat(&repo, &["gc", "--dry-run", "--json"]).ok().stdout)
            .unwrap();
    assert_eq!(dry["version"], 1);
    assert!(
        dry["vms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["vm"] == "wt-a" && v["orphan"] == true && v["destroyed"] == false)
    );
    assert!(env.profile("wt-a").is_some(), "dry run destroys nothing");

    env.vmoat(&repo, &["gc"]).ok();
    assert!(env.profile("wt-a").is_none());
    assert!(
        env.profile("wt-b").is_some(),
        "a VM whose worktree exists is never destroyed"
    );
}

/// Every path under `dir` (an empty list: nothing was written there).
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(e.path());
        if e.file_type().unwrap().is_dir() {
            out.extend(listing(&e.path()));
        }
    }
    out
}

fn seeding_never_writes_through_a_tracked_symlink_to_outside() {
    let env = Env::new();
    let repo = repo_with_config(&env, "proj", &[]);
    env.write(&repo.join(".gitignore"), ".env\nsecrets/\nlocal/\nconf/\n");
    env.write(&repo.join(".worktreeinclude"), "conf/\n.env\n");
    env.git(&repo, &["add", "."]);
    env.git(&repo, &["commit", "-q", "-m", "ignore conf"]);
    env.write(&repo.join("conf/sub/key"), "SECRET\n");
    env.write(&repo.join("conf/top.yaml"), "top\n");
    env.write(&repo.join(".env"), "E=1\n");
    // A branch that tracks conf/sub as a symlink to a directory outside the repository.
    let outside = env.home.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let maker = env.worktree(&repo, &env.home.join("src/maker"), "evil");
    std::fs::create_dir_all(maker.join("conf")).unwrap();
    std::os::unix::fs::symlink(&outside, maker.join("conf/sub")).unwrap();
    env.git(&maker, &["add", "-f", "conf/sub"]);
    env.git(&maker, &["commit", "-q", "-m", "link"]);
    let wt = env.home.join("src/feat");
    env.git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "feat",
            wt.to_str().unwrap(),
            "evil",
        ],
    );

    let r = env.vmoat(&wt, &["seed"]).ok();
    assert!(listing(&outside).is_empty(), "{r:?}");
    assert!(
        r.stderr
            .contains("seed conf: skipped conf/sub: conf/sub is a symlink"),
        "the warning names the entry: {r:?}"
    );
    assert_eq!(
        std::fs::read_to_string(wt.join("conf/top.yaml")).unwrap(),
        "top\n"
    );
    assert_eq!(std::fs::read_to_string(wt.join(".env")).unwrap(), "E=1\n");
    assert!(
        std::fs::symlink_metadata(wt.join("conf/sub"))
            .unwrap()
            .is_symlink()
    );
}

fn an_ignored_symlink_to_etc_matched_by_a_catch_all_is_skipped_not_fatal() {
    let env = Env::new();
    let repo = repo_with_config(&env, "proj", &[]);
    env.write(
        &repo.join(".git/info/exclude"),
        "etclink\n.worktreeinclude\ninlink\n",
    );
    env.write(&repo.join(".worktreeinclude"), "/**\n");
    std::os::unix::fs::symlink("/etc", repo.join("etclink")).unwrap();
    std::os::unix::fs::symlink(".env", repo.join("inlink")).unwrap();
    env.write(&repo.join(".env"), "E=1\n");
    env.write(&repo.join("secrets/a.key"), "A\n");
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");

    let dry = env.vmoat(&wt, &["seed", "--dry-run"]).ok();
    assert!(dry.stderr.contains("seed etclink skipped"), "{dry:?}");
    let r = env.vmoat(&wt, &["seed"]).ok();
    assert!(
        r.stderr.contains(
            "seed etclink skipped: it is a symlink leading outside the repository (to /etc)"
        ),
        "{r:?}"
    );
    assert!(std::fs::symlink_metadata(wt.join("etclink")).is_err());
    assert_eq!(std::fs::read_to_string(wt.join(".env")).unwrap(), "E=1\n");
    assert_eq!(
        std::fs::read_to_string(wt.join("secrets/a.key")).unwrap(),
        "A\n"
    );
    // A link that stays inside is copied as the link it is.
    assert_eq!(
        std::fs::read_link(wt.join("inlink")).unwrap(),
        PathBuf::from(".env")
    );
}

fn a_destination_parent_symlinked_outside_is_not_written_through() {
    let env = Env::new();
    let repo = repo_with_config(&env, "proj", &[]);
    env.write(&repo.join(".git/info/exclude"), ".worktreeinclude\n");
    env.write(
        &repo.join(".worktreeinclude"),
        "secrets/*.key\n.env\nlocal/\n",
    );
    env.write(&repo.join("secrets/a.key"), "A\n");
    env.write(&repo.join("local/conf.yaml"), "L\n");
    env.write(&repo.join(".env"), "E=1\n");
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    let outside = env.home.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, wt.join("secrets")).unwrap();
    std::os::unix::fs::symlink(&outside, wt.join("local")).unwrap();

    let dry = env.vmoat(&wt, &["seed", "--dry-run"]).ok();
    assert!(dry.stderr.contains("seed secrets/a.key skipped"), "{dry:?}");
    let r = env.vmoat(&wt, &["seed"]).ok();
    assert!(listing(&outside).is_empty(), "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "seed secrets/a.key skipped: secrets is a symlink in this worktree (to {})",
            outside.display()
        )),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("seed local skipped: local is a symlink"),
        "{r:?}"
    );
    assert_eq!(std::fs::read_to_string(wt.join(".env")).unwrap(), "E=1\n");
}

fn a_source_dir_symlinked_outside_the_main_checkout_is_not_followed() {
    let env = Env::new();
    let repo = repo_with_config(&env, "proj", &[]);
    let vault = env.home.join("vault");
    env.write(&vault.join("key"), "NOT FOR THE VM\n");
    std::os::unix::fs::symlink(&vault, repo.join("local")).unwrap();
    env.write(&repo.join(".env"), "E=1\n");
    env.write(&repo.join("secrets/inner/x"), "X\n");
    std::os::unix::fs::symlink(&vault, repo.join("secrets/out")).unwrap();
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    env.write(
        &wt.join("vmoat.toml"),
        &format!("{CONFIG}[provision]\nseed = [\"local/key\", \"secrets\", \".env\"]\n"),
    );

    let r = env.vmoat(&wt, &["seed"]).ok();
    assert!(
        r.stderr.contains(&format!(
            "seed local/key skipped: it goes through local, a symlink leading outside the main checkout (to {})",
            vault.display()
        )),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("seed secrets: skipped secrets/out: it is a symlink leading outside"),
        "{r:?}"
    );
    assert!(std::fs::symlink_metadata(wt.join("local")).is_err());
    assert!(std::fs::symlink_metadata(wt.join("secrets/out")).is_err());
    assert_eq!(
        std::fs::read_to_string(wt.join("secrets/inner/x")).unwrap(),
        "X\n"
    );
    assert_eq!(std::fs::read_to_string(wt.join(".env")).unwrap(), "E=1\n");
}

crate::tests! {
    worktree_add_provisions_in_the_background_and_plain_checkouts_do_nothing: Ssh;
    an_existing_hook_is_chained_its_exit_code_kept_and_restored_on_uninstall: Ssh;
    hooks_path_relative_absolute_and_tracked: Ssh;
    sha256_repositories_fire_the_hook_too: Ssh;
    a_missing_git_vmoat_never_breaks_worktree_add;
    seeding_follows_worktreeinclude_and_never_overwrites;
    the_watcher_destroys_vms_of_removed_and_pruned_worktrees_only: Ssh;
    gc_catches_up_on_what_happened_while_nothing_watched: Ssh;
    seeding_never_writes_through_a_tracked_symlink_to_outside;
    an_ignored_symlink_to_etc_matched_by_a_catch_all_is_skipped_not_fatal;
    a_destination_parent_symlinked_outside_is_not_written_through;
    a_source_dir_symlinked_outside_the_main_checkout_is_not_followed;
}
