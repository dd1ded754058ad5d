//! Trustworthy automation: a worktree that still exists keeps its VM through moves and renames,
//! damaged state never acts on another repository's VM, teardown follows the record made at
//! creation, and `up`s on one worktree never overlap. VMs come from the Colima stand-in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;

pub(crate) const CONFIG: &str = "backend = \"colima\"\n[commands]\nup = \"true\"\n";

pub(crate) fn repo_with_config(env: &Env, name: &str, config: &str) -> PathBuf {
    let dir = env.home.join("src").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    env.git(&dir, &["init", "-q", "-b", "main"]);
    env.write(&dir.join("vmoat.toml"), config);
    env.git(&dir, &["add", "."]);
    env.git(&dir, &["commit", "-q", "-m", "init"]);
    dir
}

fn status_all(env: &Env, dir: &Path) -> Vec<serde_json::Value> {
    let r = env.vmoat(dir, &["status", "--all", "--json"]).ok();
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    j["vms"].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [serde_json::Value], vm: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["vm"] == vm)
        .unwrap_or_else(|| panic!("{vm} not in {rows:?}"))
}

fn profiles(env: &Env) -> usize {
    std::fs::read_dir(env.colima_state().join("profiles"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn moving_or_renaming_worktrees_and_repositories_never_costs_a_vm() {
    let env = Env::new();
    let repo = repo_with_config(&env, "proj", CONFIG);
    let src = env.home.join("src");
    let feat = env.worktree(&repo, &src.join("feat"), "feat");
    let locked = env.worktree(&repo, &src.join("locked"), "locked");
    env.vmoat(&repo, &["up"]).ok();
    env.vmoat(&feat, &["up"]).ok();
    env.vmoat(&locked, &["up"]).ok();
    env.git(&repo, &["worktree", "lock", locked.to_str().unwrap()]);
    let w = Watcher::start(&env, &repo, &["--all", "--interval", "1"]);
    let renamed = src.join("feat-renamed");
    mv_without_telling_git_keeps_the_vm(&env, &w, &repo, &feat, &renamed);
    repair_and_move_follow_the_worktree(&env, &repo, &renamed, &src.join("feat-moved"));

    // Rename the directory holding the repository and all its worktrees.
    drop(w);
    let w = Watcher::start(&env, &repo, &["--all", "--interval", "1"]);
    let (repo2, feat2) = renaming_the_parent_keeps_every_vm(&env, &w, &src);

    // Only when git forgets the worktree does the watcher destroy its VM.
    env.git(
        &repo2,
        &["worktree", "remove", "--force", feat2.to_str().unwrap()],
    );
    assert!(
        wait_until(Duration::from_secs(15), || env.profile("wt-feat").is_none()),
        "git worktree remove did not reclaim the VM"
    );
    assert!(env.profile("wt-locked").is_some());
    drop(w);
}

fn mv_without_telling_git_keeps_the_vm(
    env: &Env,
    w: &Watcher,
    repo: &Path,
    feat: &Path,
    renamed: &Path,
) {
    // mv without telling git: the directory is missing, the VM stays.
    let m = w.mark();
    std::fs::rename(feat, renamed).unwrap();
    assert!(w.wait_verdict(m, "wt-feat", "missing"));
    assert!(env.profile("wt-feat").is_some(), "mv destroyed the VM");
    let rows = status_all(env, repo);
    assert_eq!(row(&rows, "wt-feat")["missing"], true, "{rows:?}");
    assert_eq!(row(&rows, "wt-feat")["orphan"], false, "{rows:?}");
    let dry = env.vmoat(repo, &["gc", "--dry-run"]).ok();
    assert!(dry.stderr.contains("would destroy wt-feat"), "{dry:?}");
    assert!(
        env.profile("wt-feat").is_some(),
        "a dry run destroys nothing"
    );
}

/// `git worktree repair` after the mv to `renamed`, then `git worktree move` to `moved`.
fn repair_and_move_follow_the_worktree(env: &Env, repo: &Path, renamed: &Path, moved: &Path) {
    // git worktree repair: the same VM, found from the new place; the registry follows.
    env.git(renamed, &["worktree", "repair"]);
    assert_eq!(env.vmoat(renamed, &["name"]).ok().stdout.trim(), "wt-feat");
    let rows = status_all(env, repo);
    assert_eq!(
        row(&rows, "wt-feat")["worktree"],
        renamed.canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(row(&rows, "wt-feat")["missing"], false);

    // git worktree move: status --all shows the current path.
    env.git(
        repo,
        &[
            "worktree",
            "move",
            renamed.to_str().unwrap(),
            moved.to_str().unwrap(),
        ],
    );
    let rows = status_all(env, repo);
    assert_eq!(
        row(&rows, "wt-feat")["worktree"],
        moved.canonicalize().unwrap().to_str().unwrap()
    );
}

/// `src` renamed to `src2` with the repository and its worktrees; returns the main checkout and
/// feat in their new places.
fn renaming_the_parent_keeps_every_vm(env: &Env, w: &Watcher, src: &Path) -> (PathBuf, PathBuf) {
    let src2 = env.home.join("src2");
    let m = w.mark();
    std::fs::rename(src, &src2).unwrap();
    for vm in ["wt-proj", "wt-feat", "wt-locked"] {
        assert!(w.wait_verdict(m, vm, "missing"), "{vm}");
    }
    for vm in ["wt-proj", "wt-feat", "wt-locked"] {
        assert!(
            env.profile(vm).is_some(),
            "renaming the parent destroyed {vm}"
        );
    }
    let repo2 = src2.join("proj");
    let feat2 = src2.join("feat-moved");
    let locked2 = src2.join("locked");
    // Both sides moved: repair from the main checkout, naming each worktree's new place.
    env.git(
        &repo2,
        &[
            "worktree",
            "repair",
            feat2.to_str().unwrap(),
            locked2.to_str().unwrap(),
        ],
    );
    let n = profiles(env);
    // In the new place: the same VMs, no second one made by up.
    assert_eq!(env.vmoat(&repo2, &["name"]).ok().stdout.trim(), "wt-proj");
    assert_eq!(env.vmoat(&feat2, &["name"]).ok().stdout.trim(), "wt-feat");
    env.vmoat(&repo2, &["up"]).ok();
    env.vmoat(&feat2, &["up"]).ok();
    assert_eq!(profiles(env), n, "up made a second VM after the move");
    let s: serde_json::Value =
        serde_json::from_str(&env.vmoat(&feat2, &["status", "--json"]).ok().stdout).unwrap();
    assert_eq!(s["vm"], "wt-feat");
    assert_eq!(s["state"], "Running");
    let rows = status_all(env, &repo2);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r["orphan"] == false), "{rows:?}");
    (repo2, feat2)
}

fn a_copied_repository_gets_its_own_vms_and_never_touches_the_original() {
    let env = Env::new();
    let repo = repo_with_config(&env, "orig", CONFIG);
    env.vmoat(&repo, &["up"]).ok();
    let copy = env.home.join("src/copy");
    let st = std::process::Command::new("cp")
        .args(["-a", repo.to_str().unwrap(), copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let name = env.vmoat(&copy, &["name"]).ok().stdout.trim().to_string();
    assert_ne!(name, "wt-orig", "a copy must not share the original's VM");
    env.vmoat(&copy, &["destroy", "-f"]).ok();
    assert!(
        env.profile("wt-orig").is_some(),
        "destroy in the copy hit the original"
    );
    assert_eq!(env.vmoat(&repo, &["name"]).ok().stdout.trim(), "wt-orig");
    // Now the original moves away: the copy still must not take its VM (it carries the same
    // id, and the original's recorded place is empty).
    let copy2 = env.home.join("src/copy2");
    let st = std::process::Command::new("cp")
        .args(["-a", repo.to_str().unwrap(), copy2.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let moved = env.home.join("src/orig-moved");
    std::fs::rename(&repo, &moved).unwrap();
    assert_ne!(env.vmoat(&copy2, &["name"]).ok().stdout.trim(), "wt-orig");
    assert!(
        status_all(&env, &copy2)
            .iter()
            .all(|r| r["vm"] != "wt-orig")
    );
    env.vmoat(&copy2, &["gc"]).ok();
    env.vmoat(&copy2, &["destroy", "-f"]).ok();
    assert!(
        env.profile("wt-orig").is_some(),
        "the copy acted on the original's VM"
    );
    // The moved original still finds its VM.
    assert_eq!(env.vmoat(&moved, &["name"]).ok().stdout.trim(), "wt-orig");
    assert_eq!(row(&status_all(&env, &moved), "wt-orig")["orphan"], false);
}

fn gc_in_a_copy_never_reclaims_the_originals_locked_worktree() {
    let env = Env::new();
    let repo = repo_with_config(&env, "proj", CONFIG);
    let lk = env.worktree(&repo, &env.home.join("src/lk"), "lk");
    env.vmoat(&lk, &["up"]).ok();
    env.git(&repo, &["worktree", "lock", lk.to_str().unwrap()]);
    let src2 = env.home.join("src2");
    std::fs::rename(env.home.join("src"), &src2).unwrap();
    let repo2 = src2.join("proj");
    env.git(
        &repo2,
        &["worktree", "repair", src2.join("lk").to_str().unwrap()],
    );
    // The locked worktree's record follows the move too.
    let rows = status_all(&env, &repo2);
    assert_eq!(
        row(&rows, "wt-lk")["worktree"],
        src2.join("lk").canonicalize().unwrap().to_str().unwrap()
    );
    let copy = src2.join("proj-copy");
    let st = std::process::Command::new("cp")
        .args(["-a", repo2.to_str().unwrap(), copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_dir_all(copy.join(".git/worktrees")).unwrap();
    assert!(status_all(&env, &copy).iter().all(|r| r["vm"] != "wt-lk"));
    env.vmoat(&copy, &["gc"]).ok();
    assert!(
        env.profile("wt-lk").is_some(),
        "gc in a copy destroyed the original's VM"
    );
}

fn a_lost_registry_never_hands_a_vm_to_another_repository() {
    let env = Env::new();
    let a = repo_with_config(&env, "a", CONFIG);
    let c = repo_with_config(&env, "c", CONFIG);
    let af = env.worktree(&a, &env.home.join("a-wt/feat"), "feat");
    let cf = env.worktree(&c, &env.home.join("c-wt/feat"), "feat");
    env.vmoat(&af, &["up"]).ok();
    assert_eq!(env.vmoat(&af, &["name"]).ok().stdout.trim(), "wt-feat");
    // Both records in the state dir are lost; the VM keeps its own.
    std::fs::write(env.state_dir().join("names.json"), "").unwrap();
    std::fs::write(env.state_dir().join("vms/wt-feat/owner.json"), "").unwrap();
    let r = env.vmoat(&cf, &["doctor", "--repair", "--json"]).ok();
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        j["vms"].as_array().unwrap().iter().any(|v| v == "wt-feat"),
        "the VM's own record brings it back: {j}"
    );
    assert_eq!(env.vmoat(&af, &["name"]).ok().stdout.trim(), "wt-feat");
    assert_ne!(env.vmoat(&cf, &["name"]).ok().stdout.trim(), "wt-feat");
    env.vmoat(&cf, &["destroy", "-f"]).ok();
    assert!(env.profile("wt-feat").is_some(), "c destroyed a's VM");

    // With the whole state dir gone, the VM's own record still keeps it from c.
    std::fs::remove_dir_all(env.state_dir()).unwrap();
    assert_ne!(env.vmoat(&cf, &["name"]).ok().stdout.trim(), "wt-feat");
    let r = env.vmoat(&cf, &["status", "--json"]).ok();
    assert!(!r.stdout.contains("\"Running\""), "{r:?}");
    env.vmoat(&cf, &["destroy", "-f"]).ok();
    assert!(env.profile("wt-feat").is_some(), "c destroyed a's VM");
}

fn an_empty_registry_is_refused_and_repaired_without_acting_on_another_repository() {
    let env = Env::new();
    let x = repo_with_config(&env, "x", CONFIG);
    let y = repo_with_config(&env, "y", CONFIG);
    let xa = env.worktree(&x, &env.home.join("x-wt/app"), "app");
    let ya = env.worktree(&y, &env.home.join("y-wt/app"), "app");
    env.vmoat(&xa, &["up"]).ok();
    env.vmoat(&ya, &["up"]).ok();
    let x_vm = env.vmoat(&xa, &["name"]).ok().stdout.trim().to_string();
    let y_vm = env.vmoat(&ya, &["name"]).ok().stdout.trim().to_string();
    assert_ne!(x_vm, y_vm);

    // A power cut leaves a 0-byte registry.
    let names = env.state_dir().join("names.json");
    std::fs::write(&names, "").unwrap();
    for args in [
        &["destroy", "-f"][..],
        &["up"],
        &["name"],
        &["status"],
        &["down"],
    ] {
        let r = env.vmoat(&ya, args);
        assert_eq!(r.code, 1, "{args:?} {r:?}");
        assert!(r.stderr.contains("names.json is corrupt"), "{r:?}");
        assert!(r.stderr.contains("doctor --repair"), "{r:?}");
    }
    assert!(env.profile(&x_vm).is_some(), "x's VM was touched");
    assert!(env.profile(&y_vm).is_some());
    assert_eq!(
        std::fs::read(&names).unwrap(),
        b"",
        "a refusal changes nothing"
    );

    let r = env.vmoat(&ya, &["doctor", "--repair", "--json"]).ok();
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let vms: Vec<&str> = j["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        vms.contains(&x_vm.as_str()) && vms.contains(&y_vm.as_str()),
        "{j}"
    );
    assert_eq!(j["set_aside"].as_array().unwrap().len(), 1, "{j}");
    // Each worktree finds its own VM again; destroy in y deletes y's only.
    assert_eq!(env.vmoat(&xa, &["name"]).ok().stdout.trim(), x_vm);
    assert_eq!(env.vmoat(&ya, &["name"]).ok().stdout.trim(), y_vm);
    env.vmoat(&ya, &["destroy", "-f"]).ok();
    assert!(env.profile(&y_vm).is_none());
    assert!(
        env.profile(&x_vm).is_some(),
        "destroy in y destroyed x's VM"
    );
}

fn teardown_uses_the_recorded_backend_and_name_and_needs_no_trust() {
    let env = Env::new();
    let repo = env.repo("proj");
    env.write(
        &repo.join("vmoat.conf"),
        "VM_BACKEND=colima\nCMD_UP=true\nVM_PREFIX=wt-\n",
    );
    env.vmoat(&repo, &["trust"]).ok();
    env.vmoat(&repo, &["up"]).ok();
    assert!(env.profile("wt-proj").is_some());

    // A pull changes the shell config: it is not trusted, and names another prefix and backend.
    env.write(
        &repo.join("vmoat.conf"),
        "VM_BACKEND=netns\nCMD_UP=true\nVM_PREFIX=other-\n",
    );
    let r = env.vmoat(&repo, &["up"]);
    assert_eq!(r.code, 1, "running untrusted shell config: {r:?}");
    assert_eq!(env.vmoat(&repo, &["name"]).ok().stdout.trim(), "wt-proj");
    let s = env.vmoat(&repo, &["status", "--json"]).ok();
    let j: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
    assert_eq!(
        (j["vm"].as_str(), j["backend"].as_str()),
        (Some("wt-proj"), Some("colima"))
    );
    assert!(
        j["config_error"]
            .as_str()
            .is_some_and(|e| e.contains("trust")),
        "{j}"
    );
    env.vmoat(&repo, &["untunnel"]).ok();
    env.vmoat(&repo, &["down"]).ok();
    assert_eq!(env.profile("wt-proj").unwrap()["status"], "Stopped");
    let r = env.vmoat(&repo, &["destroy", "-f"]).ok();
    assert!(r.stderr.contains("destroyed wt-proj"), "{r:?}");
    assert!(
        env.profile("wt-proj").is_none(),
        "destroy reported success but the VM lives"
    );
}

fn a_prefix_change_does_not_hide_the_vm_from_destroy() {
    let env = Env::new();
    let repo = repo_with_config(&env, "proj", CONFIG);
    env.vmoat(&repo, &["up"]).ok();
    env.write(&repo.join("vmoat.local.toml"), "[vm]\nprefix = \"zz-\"\n");
    assert_eq!(env.vmoat(&repo, &["name"]).ok().stdout.trim(), "wt-proj");
    env.vmoat(&repo, &["destroy", "-f"]).ok();
    assert!(env.profile("wt-proj").is_none());
    assert!(env.profile("zz-proj").is_none());
    // Now nothing is recorded: the next VM takes today's prefix.
    assert_eq!(env.vmoat(&repo, &["name"]).ok().stdout.trim(), "zz-proj");
}

fn a_backend_change_is_refused_by_up_while_the_old_vm_exists() {
    let env = Env::new();
    let repo = repo_with_config(&env, "proj", CONFIG);
    env.vmoat(&repo, &["up"]).ok();
    env.write(&repo.join("vmoat.local.toml"), "backend = \"netns\"\n");
    let n = profiles(&env);
    let r = env.vmoat(&repo, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("runs on colima") && r.stderr.contains("destroy"),
        "{r:?}"
    );
    assert_eq!(profiles(&env), n);
    env.vmoat(&repo, &["destroy", "-f"]).ok();
    assert!(
        env.profile("wt-proj").is_none(),
        "destroy used the configured backend"
    );
}

fn concurrent_ups_of_one_worktree_run_one_after_the_other() {
    let env = Env::new();
    // An up command that fails when another copy of it runs at the same time (like a second
    // `docker compose up` meeting the first one's containers).
    let repo = repo_with_config(
        &env,
        "proj",
        "backend = \"colima\"\n[commands]\nup = \"mkdir .uplock && sleep 1 && rmdir .uplock\"\n",
    );
    env.vmoat(&repo, &["provision"]).ok();
    let kids: Vec<_> = (0..3)
        .map(|_| {
            env.cmd(bin(), &repo)
                .arg("up")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = kids
        .into_iter()
        .map(|k| k.wait_with_output().unwrap())
        .collect();
    let errs: Vec<String> = outs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert!(outs.iter().all(|o| o.status.success()), "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.contains("another `git vmoat up` is running for this worktree")),
        "{errs:#?}"
    );
}

fn worktrees_removed_while_their_job_provisions_leave_no_vm() {
    let env = Env::new();
    // A slow provision script: the worktree goes while its VM exists and is being provisioned.
    let repo = repo_with_config(
        &env,
        "proj",
        "backend = \"colima\"\n[commands]\nup = \"true\"\n[provision]\nscript = \"sleep 3\"\n",
    );
    env.vmoat(&repo, &["hooks", "install"]).ok();
    for i in 0..3 {
        let wt = env.home.join(format!("src/slow{i}"));
        env.git(
            &repo,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                &format!("s{i}"),
                wt.to_str().unwrap(),
            ],
        );
        assert!(
            wait_until(Duration::from_secs(30), || env
                .profile(&format!("wt-slow{i}"))
                .is_some()),
            "the job made no VM"
        );
        env.git(
            &repo,
            &["worktree", "remove", "--force", wt.to_str().unwrap()],
        );
    }
    for i in 0..6 {
        let wt = env.home.join(format!("src/quick{i}"));
        env.git(
            &repo,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                &format!("q{i}"),
                wt.to_str().unwrap(),
            ],
        );
        env.git(
            &repo,
            &["worktree", "remove", "--force", wt.to_str().unwrap()],
        );
    }
    // No watcher: every job must clean up after itself once it sees the worktree gone.
    assert!(every_job_process_gone(&env), "jobs did not finish");
    let (left, logs) = vms_left_and_logs(&env);
    assert!(
        left.is_empty(),
        "VMs left behind: {left:?}\n{}",
        logs.join("\n")
    );
}

/// A job whose worktree vanished before it started cannot even record that: waits for every
/// job process to be gone, not for the records.
fn every_job_process_gone(env: &Env) -> bool {
    wait_until(Duration::from_secs(90), || {
        !std::fs::read_dir(env.state_dir().join("jobs"))
            .map(|d| {
                d.flatten().any(|e| {
                    let j: serde_json::Value = serde_json::from_str(
                        &std::fs::read_to_string(e.path()).unwrap_or_default(),
                    )
                    .unwrap_or_default();
                    j["state"] == "running"
                        && j["pid"]
                            .as_u64()
                            .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists())
                })
            })
            .unwrap_or(false)
    })
}

/// The stand-in's VMs still there, and every job's log (to show why).
fn vms_left_and_logs(env: &Env) -> (Vec<String>, Vec<String>) {
    let left: Vec<String> = std::fs::read_dir(env.colima_state().join("profiles"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let logs: Vec<String> = std::fs::read_dir(env.state_dir().join("logs"))
        .map(|d| {
            d.flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    (left, logs)
}

fn destroy_never_reports_a_vm_destroyed_that_still_exists() {
    let env = Env::new();
    let repo = repo_with_config(&env, "proj", CONFIG);
    env.vmoat(&repo, &["up"]).ok();
    // Colima says nothing went wrong, but the VM is still there.
    let r = env
        .cmd(bin(), &repo)
        .args(["destroy", "-f"])
        .env("FAKE_COLIMA_DELETE_KEEPS", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("still exists"), "{err}");
    assert!(!err.contains("destroyed wt-proj"), "{err}");
    assert!(env.profile("wt-proj").is_some());
    // Still recorded: a later destroy finds it and finishes the job.
    assert_eq!(env.vmoat(&repo, &["name"]).ok().stdout.trim(), "wt-proj");
    env.vmoat(&repo, &["destroy", "-f"]).ok();
    assert!(env.profile("wt-proj").is_none());
}

crate::tests! {
    gc_in_a_copy_never_reclaims_the_originals_locked_worktree: Ssh;
    a_lost_registry_never_hands_a_vm_to_another_repository: Ssh;
    destroy_never_reports_a_vm_destroyed_that_still_exists: Ssh;
    moving_or_renaming_worktrees_and_repositories_never_costs_a_vm: Ssh;
    a_copied_repository_gets_its_own_vms_and_never_touches_the_original: Ssh;
    an_empty_registry_is_refused_and_repaired_without_acting_on_another_repository: Ssh;
    teardown_uses_the_recorded_backend_and_name_and_needs_no_trust: Ssh;
    a_prefix_change_does_not_hide_the_vm_from_destroy: Ssh;
    a_backend_change_is_refused_by_up_while_the_old_vm_exists: Ssh;
    concurrent_ups_of_one_worktree_run_one_after_the_other: Ssh;
    worktrees_removed_while_their_job_provisions_leave_no_vm: Ssh;
}
