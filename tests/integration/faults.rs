//! Fault injection: killed processes, races and a full disk must end in a clear error or a
//! recovery, never a hang, a leak or a partial file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

fn rootfs(env: &Env) -> PathBuf {
    busybox_rootfs(env)
}

fn netns_config(fs: &Path, up_extra: &str) -> String {
    let up = format!(
        "{up_extra}docker image inspect bb >/dev/null 2>&1 || tar -C {} -c . | docker import - bb >/dev/null; docker rm -f web >/dev/null 2>&1; docker run -d --name web --pull never -p 8080:80 -v \"$PWD:/www\" bb httpd -f -p 80 -h /www >/dev/null",
        fs.display()
    );
    format!(
        "backend = \"netns\"\n[commands]\nup = {up:?}\ntest = \"sleep 1; docker ps >/dev/null\"\n[health]\nurl = \"http://127.0.0.1:8080/vmoat.toml\"\ntimeout = 30\n"
    )
}

fn a_killed_dockerd_fails_the_running_test_and_the_next_up_recovers() {
    let env = Env::new();
    let repo = env.repo("proj");
    let fs = rootfs(&env);
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    env.write(&wt.join("vmoat.toml"), &netns_config(&fs, ""));
    env.vmoat(&wt, &["up"]).ok();
    let test = env
        .cmd(bin(), &wt)
        .arg("test")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    kill_dockerd(&env, "wt-feat");
    let out = test.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0), "the test saw its daemon die");
    let s: serde_json::Value =
        serde_json::from_str(&env.vmoat(&wt, &["status", "--json"]).ok().stdout).unwrap();
    assert_eq!(
        s["state"], "Stopped",
        "status tells the daemon is gone: {s}"
    );
    let r = env.vmoat(&wt, &["up"]).ok();
    assert!(r.stderr.contains("healthy"), "{r:?}");
    let t = env.vmoat(&wt, &["test"]);
    assert_eq!(t.code, 0, "{t:?}");
}

fn four_concurrent_ups_on_one_worktree_provision_once_and_all_succeed() {
    let env = Env::new();
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    env.write(&wt.join("vmoat.toml"), "backend = \"colima\"\n[commands]\nup = \"true\"\n[provision]\nscript = \"echo once >> prov.log\"\n");
    let kids: Vec<_> = (0..4)
        .map(|_| {
            env.cmd(bin(), &wt)
                .arg("up")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        env.call_lines()
            .iter()
            .filter(|c| c.starts_with("start"))
            .count(),
        1,
        "{:?}",
        env.call_lines()
    );
    assert_eq!(
        std::fs::read_to_string(wt.join("prov.log")).unwrap(),
        "once\n"
    );
}

fn five_worktree_adds_at_once_get_five_vms() {
    let env = Env::new();
    let repo = env.home.join("src/proj");
    std::fs::create_dir_all(&repo).unwrap();
    env.git(&repo, &["init", "-q", "-b", "main"]);
    env.write(
        &repo.join("vmoat.toml"),
        "backend = \"netns\"\n[commands]\nup = \"true\"\n",
    );
    env.git(&repo, &["add", "."]);
    env.git(&repo, &["commit", "-q", "-m", "init"]);
    env.vmoat(&repo, &["hooks", "install"]).ok();
    let wts: Vec<PathBuf> = (1..=5)
        .map(|i| env.home.join(format!("src/par{i}")))
        .collect();
    let kids: Vec<_> = wts
        .iter()
        .enumerate()
        .map(|(i, wt)| {
            env.cmd("git", &repo)
                .args(["worktree", "add", "-q", "-b", &format!("b{i}")])
                .arg(wt)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, k) in kids.into_iter().enumerate() {
        let out = k.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // git itself races when adds overlap (one reads another's half-written
        // `worktrees/<id>`) and gives up before creating anything; that add is retried.
        if !out.status.success()
            && err.contains("failed to read .git/worktrees")
            && !wts[i].exists()
        {
            env.git(
                &repo,
                &[
                    "worktree",
                    "add",
                    "-q",
                    "-B",
                    &format!("b{i}"),
                    wts[i].to_str().unwrap(),
                ],
            );
            continue;
        }
        assert!(out.status.success(), "{err}");
    }
    for (i, wt) in wts.iter().enumerate() {
        let done = wait_until(Duration::from_secs(90), || {
            serde_json::from_str::<serde_json::Value>(&env.vmoat(wt, &["status", "--json"]).stdout)
                .is_ok_and(|j| j["job"]["state"] == "ok" && j["state"] == "Running")
        });
        assert!(
            done,
            "worktree {} got no VM: {}",
            i + 1,
            env.vmoat(wt, &["logs"]).stdout
        );
        assert!(
            Path::new("/run/netns")
                .join(netns_id(&env, &format!("wt-par{}", i + 1)))
                .exists()
        );
    }
}

fn a_restarted_watcher_catches_up_on_what_it_missed() {
    let env = Env::new();
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    env.write(
        &wt.join("vmoat.toml"),
        "backend = \"colima\"\n[commands]\nup = \"true\"\n",
    );
    env.vmoat(&wt, &["up"]).ok();
    // A watcher that has made its first pass, then dies.
    drop(Watcher::start(&env, &repo, &[]));
    env.git(
        &repo,
        &["worktree", "remove", "--force", wt.to_str().unwrap()],
    );
    // Nothing runs now (the watcher is gone, and git-vmoat has no other background part).
    assert!(
        env.profile("wt-feat").is_some(),
        "nothing watched meanwhile"
    );
    let w = Watcher::start(&env, &repo, &["--interval", "60"]);
    // Its first pass (which `start` waited for) already caught up.
    assert!(
        env.profile("wt-feat").is_none(),
        "the restarted watcher reconciles at once"
    );
    drop(w);
}

fn destroy_while_up_runs_neither_hangs_nor_leaks() {
    let env = Env::new();
    let repo = env.repo("proj");
    let fs = rootfs(&env);
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    env.write(&wt.join("vmoat.toml"), &netns_config(&fs, "sleep 2; "));
    let start = Instant::now();
    let up = env
        .cmd(bin(), &wt)
        .arg("up")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = netns_id(&env, "wt-feat");
    assert!(wait_until(Duration::from_secs(20), || Path::new(
        "/run/netns"
    )
    .join(&id)
    .exists()));
    std::thread::sleep(Duration::from_millis(300));
    let d = env.vmoat(&wt, &["destroy", "-f"]);
    assert_eq!(d.code, 0, "{d:?}");
    let out = up.wait_with_output().unwrap();
    assert!(start.elapsed() < Duration::from_secs(60), "no hang");
    assert_ne!(
        out.status.code(),
        Some(0),
        "up reports that its VM went away: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Whatever up left half-made, a destroy after it leaves nothing.
    env.vmoat(&wt, &["destroy", "-f"]).ok();
    assert!(!Path::new("/run/netns").join(&id).exists());
    assert!(!Path::new("/run/git-vmoat").join(&id).exists());
    assert!(!env.state_dir().join("netns/wt-feat").exists());
    let procs: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&format!("/run/git-vmoat/{id}/")))
        .collect();
    assert!(procs.is_empty(), "{procs:#?}");
}

fn a_full_disk_during_seeding_leaves_no_partial_file() {
    let env = Env::new();
    let repo = env.repo("proj");
    env.write(&repo.join(".gitignore"), "big/\n");
    env.git(&repo, &["add", ".gitignore"]);
    env.git(&repo, &["commit", "-q", "-m", "ignore"]);
    env.write(&repo.join("big/blob.bin"), &"x".repeat(512 * 1024));
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    env.write(
        &wt.join("vmoat.toml"),
        "backend = \"colima\"\n[provision]\nseed = [\"big\"]\n",
    );
    let small = wt.join("big");
    std::fs::create_dir_all(&small).unwrap();
    let m = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(m.success());
    let r = env.vmoat(&wt, &["seed"]);
    let _ = std::process::Command::new("umount").arg(&small).status();
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("copying") && r.stderr.contains("No space left"),
        "{r:?}"
    );
    assert!(!small.join("blob.bin").exists(), "no partial file left");
}

/// VM names are unique per state dir; two state dirs (users, HOMEs) with a worktree named
/// alike must not share or tear down each other's namespace, cgroup or daemon.
fn two_state_dirs_with_the_same_vm_name_stay_apart() {
    let envs = [Env::new(), Env::new()];
    let wts: Vec<PathBuf> = envs
        .iter()
        .map(|env| {
            let repo = env.repo("proj");
            let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
            env.write(
                &wt.join("vmoat.toml"),
                "backend = \"netns\"\n[commands]\nup = \"true\"\n",
            );
            env.vmoat(&wt, &["up"]).ok();
            wt
        })
        .collect();
    assert_ne!(netns_id(&envs[0], "wt-feat"), netns_id(&envs[1], "wt-feat"));
    envs[0].vmoat(&wts[0], &["destroy", "-f"]).ok();
    let s: serde_json::Value =
        serde_json::from_str(&envs[1].vmoat(&wts[1], &["status", "--json"]).ok().stdout).unwrap();
    assert_eq!(
        s["state"], "Running",
        "the other state dir's VM is untouched: {s}"
    );
    assert_eq!(envs[1].vmoat(&wts[1], &["ssh", "docker", "ps"]).code, 0);
}

crate::tests! {
    a_killed_dockerd_fails_the_running_test_and_the_next_up_recovers: Netns;
    four_concurrent_ups_on_one_worktree_provision_once_and_all_succeed: Ssh;
    five_worktree_adds_at_once_get_five_vms: Netns;
    a_restarted_watcher_catches_up_on_what_it_missed: Ssh;
    destroy_while_up_runs_neither_hangs_nor_leaks: Netns;
    a_full_disk_during_seeding_leaves_no_partial_file: Root;
    two_state_dirs_with_the_same_vm_name_stay_apart: Netns;
}
