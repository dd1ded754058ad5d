//! Suspend on the netns backend, for real: a suspended worktree's every process is frozen (and
//! no other worktree's), resume thaws it, the watcher's idle rule suspends an idle VM but never
//! one running `test`, and RAM admission refuses over budget or evicts the idle VM.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// A worktree whose stack is busybox httpd on 8080 in its VM; `extra_up` runs after it.
fn stack(env: &Env, repo: &Path, name: &str, extra_up: &str, config: &str) -> PathBuf {
    let wt = env.worktree(repo, &env.home.join("src").join(name), name);
    env.write(&wt.join("www/index.html"), "page\n");
    let up = format!("{}{extra_up}", httpd_up(env));
    env.write(
        &wt.join("vmoat.toml"),
        &format!(
            "backend = \"netns\"\n[vm]\n{config}\n[commands]\nup = {up:?}\ntest = \"sleep 6\"\n[health]\nurl = \"http://127.0.0.1:8080/\"\ntimeout = 60\n"
        ),
    );
    wt
}

/// Every pid in the worktree's cgroup tree of one v1 hierarchy (or the v2 tree).
fn pids_in(hierarchy: &str, id: &str) -> BTreeSet<u32> {
    let root = ["/sys/fs/cgroup", hierarchy, "git-vmoat", id]
        .iter()
        .collect::<PathBuf>();
    let root = if root.exists() {
        root
    } else {
        Path::new("/sys/fs/cgroup/git-vmoat").join(id)
    };
    let mut out = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        if let Ok(t) = std::fs::read_to_string(d.join("cgroup.procs")) {
            out.extend(t.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out
}

fn frozen(id: &str) -> bool {
    let v1 = Path::new("/sys/fs/cgroup/freezer/git-vmoat").join(id);
    if v1.exists() {
        return std::fs::read_to_string(v1.join("freezer.state"))
            .unwrap()
            .trim()
            == "FROZEN";
    }
    std::fs::read_to_string(
        Path::new("/sys/fs/cgroup/git-vmoat")
            .join(id)
            .join("cgroup.freeze"),
    )
    .is_ok_and(|s| s.trim() == "1")
}

/// A request to the stack from inside the VM's own namespace (not through a tunnel).
fn answers_inside(id: &str) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            id,
            "curl",
            "-sf",
            "-m",
            "3",
            "http://127.0.0.1:8080/",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn suspend_freezes_every_process_of_the_worktree_and_only_those() {
    let env = Env::new();
    let repo = env.repo("proj");
    let a = stack(&env, &repo, "a", "", "");
    let b = stack(&env, &repo, "b", "", "");
    env.vmoat(&a, &["up"]).ok();
    env.vmoat(&b, &["up"]).ok();
    let (ia, ib) = (
        netns_id(&env, &vm_name(&env, &a)),
        netns_id(&env, &vm_name(&env, &b)),
    );
    let all = pids_in("memory", &ia);
    assert!(
        all.len() >= 3,
        "dockerd, containerd, httpd at least: {all:?}"
    );

    let r = env.vmoat(&a, &["suspend"]).ok();
    assert!(r.stderr.contains("suspended VM"), "{r:?}");
    assert!(frozen(&ia) && !frozen(&ib));
    let in_freezer = pids_in("freezer", &ia);
    assert!(
        all.is_subset(&in_freezer),
        "every process of the worktree is frozen: {all:?} vs {in_freezer:?}"
    );
    assert!(pids_in("freezer", &ib).is_disjoint(&in_freezer));
    assert_eq!(vm_state(&env, &a), "Suspended");
    assert!(!answers_inside(&ia), "a frozen stack does not answer");
    assert!(answers_inside(&ib), "the other worktree runs on");

    let r = env.vmoat(&a, &["resume"]).ok();
    assert!(r.stderr.contains("resumed VM"), "{r:?}");
    assert!(!frozen(&ia));
    assert!(answers_inside(&ia));
    assert_eq!(vm_state(&env, &a), "Running");

    // Any command that needs the VM resumes it first.
    env.vmoat(&a, &["suspend"]).ok();
    let r = env.vmoat(&a, &["ssh", "echo", "inside"]).ok();
    assert_eq!(r.stdout.trim(), "inside");
    assert!(!frozen(&ia) && r.stderr.contains("resumed VM"), "{r:?}");
    for wt in [&a, &b] {
        env.vmoat(wt, &["destroy", "-f"]).ok();
    }
}

fn the_idle_rule_suspends_an_idle_vm_but_never_one_running_a_test() {
    let env = Env::new();
    let repo = env.repo("proj");
    let a = stack(&env, &repo, "idle", "", "suspend-after = \"3s\"");
    env.vmoat(&a, &["up"]).ok();
    let vm = vm_name(&env, &a);
    // `test` runs `sleep 6`: a command in the VM, with no CPU use, the hardest case.
    let mut test = env.cmd(bin(), &a).arg("test").spawn().unwrap();
    let w = Watcher::start(&env, &a, &["--interval", "1"]);
    let mark = w.mark();
    // Passes while the test runs (6 s, twice the idle time): never suspended.
    assert!(wait_until(Duration::from_secs(30), || w
        .log()
        .get(mark..)
        .is_some_and(|l| l.matches("watch pass").count() >= 10)));
    let status = test.wait().unwrap();
    assert!(status.success(), "the test ran to its end: {status:?}");
    assert!(!w.log().contains(&format!("suspended {vm}")), "{}", w.log());
    // Once nothing happens for 3 s the watcher suspends it.
    let line = format!("suspended {vm} (idle for");
    assert!(
        wait_until(Duration::from_secs(30), || w.log().contains(&line)),
        "{}",
        w.log()
    );
    assert_eq!(vm_state(&env, &a), "Suspended");
    drop(w);
    // A suspended VM is destroyed whole: frozen processes are thawed to die.
    let id = netns_id(&env, &vm);
    env.vmoat(&a, &["destroy", "-f"]).ok();
    assert!(pids_in("memory", &id).is_empty() && pids_in("freezer", &id).is_empty());
    assert!(!Path::new("/run/netns").join(&id).exists());
}

/// Fills the page cache of the worktree's cgroup with a 600 MiB file: a running VM holds it, a
/// frozen one does not (the kernel may drop it any time).
const FILL: &str =
    "; dd if=/dev/zero of=\"$PWD/fill\" bs=1M count=600 status=none; cat \"$PWD/fill\" >/dev/null";

fn admission_refuses_over_budget_and_evicts_an_idle_vm_when_asked() {
    let env = Env::new();
    let repo = env.repo("proj");
    let a = stack(&env, &repo, "a", FILL, "memory = 1\nbudget = 1");
    env.vmoat(&a, &["up"]).ok();
    let b = stack(&env, &repo, "b", "", "memory = 1\nbudget = 1");
    let r = env.vmoat(&b, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    let va = vm_name(&env, &a);
    for want in ["memory budget", va.as_str(), "git vmoat suspend", "--force"] {
        assert!(r.stderr.contains(want), "{want}: {}", r.stderr);
    }
    assert_eq!(vm_state(&env, &b), "absent", "a refused up makes nothing");
    assert_eq!(vm_state(&env, &a), "Running", "nor touches another VM");

    // A branch's committed file cannot turn eviction on: it would suspend others' VMs.
    let committed = std::fs::read_to_string(b.join("vmoat.toml")).unwrap();
    env.write(
        &b.join("vmoat.toml"),
        &committed.replace("[vm]\n", "[vm]\nevict = true\n"),
    );
    let r = env.vmoat(&b, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("ignoring vm.evict"), "{}", r.stderr);
    assert_eq!(vm_state(&env, &a), "Running");
    env.write(&b.join("vmoat.toml"), &committed);
    env.write(&b.join("vmoat.local.toml"), "[vm]\nevict = true\n");
    let r = env.vmoat(&b, &["up"]).ok();
    assert!(
        r.stderr.contains(&format!("suspending {va}")),
        "{}",
        r.stderr
    );
    assert_eq!(vm_state(&env, &a), "Suspended");
    assert_eq!(vm_state(&env, &b), "Running");
    for wt in [&a, &b] {
        env.vmoat(wt, &["destroy", "-f"]).ok();
    }
}

/// A command run inside a VM (a hostile branch's `up`, or `ssh`) cannot suspend, stop or
/// delete that VM or open its tunnels: it would freeze or kill itself midway.
fn the_vm_cannot_be_suspended_or_destroyed_from_inside_it() {
    let env = Env::new();
    let repo = env.repo("proj");
    let a = stack(&env, &repo, "in", "", "");
    env.vmoat(&a, &["up"]).ok();
    for args in [&["suspend"][..], &["down"], &["tunnel", "8080"]] {
        let mut argv = vec!["ssh", "git-vmoat"];
        argv.extend(args);
        let r = env.vmoat(&a, &argv);
        assert_ne!(r.code, 0, "{r:?}");
        assert!(
            r.stderr.contains("from a command running inside it"),
            "{r:?}"
        );
        assert_eq!(vm_state(&env, &a), "Running", "{args:?} changed nothing");
    }
    let r = env.vmoat(&a, &["ssh", "git-vmoat", "destroy", "-f"]);
    assert!(
        r.stderr.contains("from a command running inside it"),
        "{r:?}"
    );
    assert_eq!(vm_state(&env, &a), "Running");
    env.vmoat(&a, &["destroy", "-f"]).ok();
}

/// Colima, through the stand-in: suspend stops the VM (disk kept), resume starts it and the
/// containers that ran; a suspended VM is shown as such, and `ssh` resumes it by itself.
fn suspend_on_colima_stops_and_resume_starts_the_vm_and_its_containers() {
    let env = Env::new();
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src").join("c"), "c");
    env.write(&wt.join("www/index.html"), "page\n");
    let up = httpd_up(&env);
    env.write(
        &wt.join("vmoat.toml"),
        &format!("backend = \"colima\"\n[vm]\nmemory = 2\n[commands]\nup = {up:?}\n[health]\nurl = \"http://127.0.0.1:8080/\"\ntimeout = 60\n"),
    );
    env.vmoat(&wt, &["up"]).ok();
    let vm = vm_name(&env, &wt);
    env.clear_calls();
    env.vmoat(&wt, &["suspend"]).ok();
    assert!(
        env.call_lines()
            .iter()
            .any(|c| c.ends_with(&format!("stop {vm}"))),
        "{:?}",
        env.call_lines()
    );
    assert_eq!(vm_state(&env, &wt), "Suspended");
    env.clear_calls();
    let r = env
        .vmoat(&wt, &["ssh", "sh", "-c", "curl -sf http://127.0.0.1:8080/"])
        .ok();
    assert_eq!(r.stdout, "page\n", "the container runs again: {r:?}");
    assert!(
        env.call_lines()
            .iter()
            .any(|c| c.contains(&format!("start {vm}"))),
        "{:?}",
        env.call_lines()
    );
    assert_eq!(vm_state(&env, &wt), "Running");
    // `down` of a suspended VM stops it for good, without starting it first.
    env.vmoat(&wt, &["suspend"]).ok();
    env.clear_calls();
    env.vmoat(&wt, &["down"]).ok();
    assert!(
        !env.call_lines().iter().any(|c| c.contains(" start ")),
        "{:?}",
        env.call_lines()
    );
    assert_eq!(vm_state(&env, &wt), "Stopped");
    env.vmoat(&wt, &["destroy", "-f"]).ok();
}

crate::tests! {
    suspend_freezes_every_process_of_the_worktree_and_only_those: StackNetns;
    the_idle_rule_suspends_an_idle_vm_but_never_one_running_a_test: StackNetns;
    admission_refuses_over_budget_and_evicts_an_idle_vm_when_asked: StackNetns;
    the_vm_cannot_be_suspended_or_destroyed_from_inside_it: StackNetns;
    suspend_on_colima_stops_and_resume_starts_the_vm_and_its_containers: StackColima;
}
