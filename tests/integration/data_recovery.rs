//! Volume copies and snapshots that die midway or do not fit: a snapshot killed between its
//! volumes, one too big for the disk, containers a dead copy had stopped.

use std::time::Duration;

use super::data::{PAUSED, bb_worktree, big_pair, docker_in};
use crate::common::*;

/// A snapshot killed between its volumes is no snapshot: the next command removes the copies
/// made so far, and none is listed.
fn a_snapshot_killed_midway_is_removed_whole() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let (a, _b) = big_pair(&env, 600);
    let mut snap = env
        .cmd(bin(), &a)
        .args(["data", "snapshot", "s1"])
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // `appdata` is copied first; the copy of the 600 MiB `big` has begun once its volume exists.
    let vols = ["volume", "ls", "-q"];
    assert!(wait_until(Duration::from_secs(60), || {
        docker_in(&env, "wt-first", &vols)
            .lines()
            .any(|v| v == "git-vmoat-snap.s1.big")
    }));
    let pgid = rustix::process::Pid::from_raw(snap.id() as i32).unwrap();
    rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL).unwrap();
    snap.wait().unwrap();
    assert!(
        docker_in(&env, "wt-first", &vols).contains("git-vmoat-snap.s1.appdata"),
        "killed after a first volume was copied"
    );

    let ls: serde_json::Value =
        serde_json::from_str(&env.vmoat(&a, &["data", "ls", "--json"]).ok().stdout).unwrap();
    assert_eq!(ls["snapshots"], serde_json::json!([]), "{ls}");
    assert!(
        !docker_in(&env, "wt-first", &vols).contains("git-vmoat-snap."),
        "every copy of the dead snapshot was removed"
    );
    let r = env.vmoat(&a, &["data", "restore", "s1"]);
    assert_eq!(r.code, 1, "{r:?}");
    env.vmoat(&a, &["data", "snapshot", "s1"]).ok();
}

/// A copy (or restore) that died after stopping this VM's containers that use the volumes:
/// the next command touching the VM starts them again.
fn containers_an_interrupted_copy_stopped_are_started_again() {
    let env = Env::new();
    let repo = env.repo("proj");
    let b = bb_worktree(&env, &repo, "second", "[]", None);
    env.vmoat(&b, &["up"]).ok();
    docker_in(&env, "wt-second", &["stop", "-t", "0", "app"]);
    let running = ["inspect", "-f", "{{.State.Running}}", "app"];
    assert_eq!(docker_in(&env, "wt-second", &running), "false");
    // What the copy wrote before stopping them, its process gone since.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let record = env.state_dir().join("vms/wt-second/data-stopped.json");
    env.write(
        &record,
        &format!("{{\"pid\": {pid}, \"containers\": [\"app\"]}}"),
    );
    env.vmoat(&b, &["ssh", "true"]).ok();
    assert_eq!(docker_in(&env, "wt-second", &running), "true");
    assert!(!record.exists());
}

/// A snapshot that cannot fit beside the volumes is refused before anything is copied.
fn a_snapshot_too_big_for_the_disk_is_refused_before_copying() {
    let mut env = Env::new();
    // The state dir on a tmpfs: roomy for `up`, then shrunk to 32 MiB more than is used, so
    // the 64 MiB of volume data fit once but not twice.
    let mut disk = SmallDisk::mount(env.tmp.path().join("state"), "2g");
    env.extra_env.extend(disk.env_vars.clone());
    let repo = env.repo("proj");
    let a = bb_worktree(&env, &repo, "first", "[]", Some(64));
    disk.vms.push(a.clone());
    env.vmoat(&a, &["up"]).ok();
    // This state dir is not the one `docker_in` knows: ask through the VM.
    let docker = |args: &[&str]| {
        let mut argv = vec!["ssh", "docker"];
        argv.extend(args);
        env.vmoat(&a, &argv).stdout.trim().to_string()
    };
    let stat = ["exec", "app", "busybox", "stat", "-c", "%s", "/big/blob"];
    let full = (64u64 << 20).to_string();
    assert!(wait_until(Duration::from_secs(60), || docker(&stat) == full));
    let used = std::process::Command::new("df")
        .args(["-B1M", "--output=used"])
        .arg(&disk.dir)
        .output()
        .unwrap();
    let used: u64 = String::from_utf8_lossy(&used.stdout)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap();
    disk.shrink(&format!("{}m", used + 32));
    let r = env.vmoat(&a, &["data", "snapshot", "s1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("too little") && r.stderr.contains("no snapshot was made"),
        "{r:?}"
    );
    assert!(!docker(&["volume", "ls", "-q"]).contains("git-vmoat-snap."));
    assert_eq!(docker(&PAUSED), "false");
}

crate::tests! {
    a_snapshot_killed_midway_is_removed_whole: StackNetns;
    containers_an_interrupted_copy_stopped_are_started_again: StackNetns;
    a_snapshot_too_big_for_the_disk_is_refused_before_copying: StackNetns, Root;
}
