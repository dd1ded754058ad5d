//! What VMs use of the host: `top` on a real netns stack (memory, disk, tunnels, a suspended VM
//! left asleep), disk per VM and in total in `status --all`, a Colima VM measured from Lima's
//! files, and `up` refusing to make a VM where its disk would not fit.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::*;

/// A worktree whose stack is busybox httpd published on 8080 in the VM.
fn stack(env: &Env, repo: &Path, name: &str) -> PathBuf {
    let wt = env.worktree(repo, &env.home.join("src").join(name), name);
    env.write(&wt.join("www/index.html"), "the stack's page\n");
    let up = httpd_up(env);
    env.write(
        &wt.join("vmoat.toml"),
        &format!(
            "backend = \"netns\"\n[vm]\nmemory = 3\n[commands]\nup = {up:?}\n[health]\nurl = \"http://127.0.0.1:8080/\"\ntimeout = 60\n"
        ),
    );
    wt
}

/// A worktree whose VM runs nothing.
fn bare(env: &Env, repo: &Path, name: &str, backend: &str) -> PathBuf {
    let wt = env.worktree(repo, &env.home.join("src").join(name), name);
    env.write(
        &wt.join("vmoat.toml"),
        &format!("backend = {backend:?}\n[commands]\nup = \"true\"\n"),
    );
    wt
}

fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

fn row<'a>(report: &'a Value, vm: &str) -> &'a Value {
    report["vms"]
        .as_array()
        .and_then(|v| v.iter().find(|r| r["vm"] == vm))
        .unwrap_or_else(|| panic!("{vm} not listed: {report:#}"))
}

/// Allocated bytes under `dir` as `du` counts them (one file system, hard links once).
fn du(dir: &Path) -> u64 {
    let out = Command::new("du")
        .args(["-sx", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("du {}: {out:?}", dir.display()))
}

/// `top --json` lists every VM of the state dir with what it uses: the stack's VM holds memory
/// under its limit, its data root's disk (as `du` counts it, overlay mounts not crossed) and
/// its tunnel; `status --all` gives the same disk per VM and their sum. Once suspended the VM
/// is shown so, with since when, and looking at it does not wake it.
fn top_shows_what_each_vm_uses_and_leaves_a_suspended_one_asleep() {
    let env = Env::new();
    let repo = env.repo("proj");
    let wt = stack(&env, &repo, "web");
    let idle = bare(&env, &repo, "idle", "netns");
    env.vmoat(&wt, &["up"]).ok();
    env.vmoat(&idle, &["up"]).ok();
    let (vm, other) = (vm_name(&env, &wt), vm_name(&env, &idle));
    let port: u16 = env
        .vmoat(&wt, &["tunnel"])
        .ok()
        .stdout
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let top = json(&env.vmoat(&repo, &["top", "--json"]).ok());
    let disk = check_running(&env, &top, &wt, port);
    assert_eq!(row(&top, &other)["state"], "Running");
    assert_eq!(
        top["total"]["disk_bytes"].as_u64().unwrap(),
        disk + row(&top, &other)["disk_bytes"].as_u64().unwrap()
    );
    check_status_all_disk(&env, &wt);

    env.vmoat(&wt, &["suspend"]).ok();
    let top = json(&env.vmoat(&repo, &["top", "--json"]).ok());
    let r = row(&top, &vm);
    assert_eq!(r["state"], "Suspended", "{r:#}");
    let since = r["suspended_since"].as_u64().expect("since when");
    assert!(row(&top, &other)["suspended_since"].is_null(), "{top:#}");
    let table = env.vmoat(&repo, &["top"]).ok();
    let line = table
        .stdout
        .lines()
        .find(|l| l.starts_with(&vm))
        .unwrap_or_else(|| panic!("{table:?}"));
    assert!(
        line.contains("Suspended") && line.contains("suspended"),
        "{table:?}"
    );
    assert!(
        !table.stdout.contains('\x1b'),
        "no colours off a terminal: {table:?}"
    );
    let all = json(&env.vmoat(&wt, &["status", "--all", "--json"]).ok());
    assert_eq!(
        row(&all, &vm)["suspended_since"].as_u64(),
        Some(since),
        "{all:#}"
    );
    assert_eq!(row(&all, &vm)["state"], "Suspended", "{all:#}");
    let one = json(&env.vmoat(&wt, &["status", "--json"]).ok());
    assert_eq!(
        one["state"], "Suspended",
        "looking did not wake it: {one:#}"
    );
    assert_eq!(one["suspended_since"].as_u64(), Some(since), "{one:#}");
    let text = env.vmoat(&wt, &["status"]).ok();
    assert!(text.stdout.contains("suspended: since"), "{text:?}");
}

/// The stack VM's row while it runs: memory under its cap, CPU, its tunnel, and its data
/// root's disk as `du` counts it (overlay mounts not crossed). Returns that disk use.
fn check_running(env: &Env, top: &Value, wt: &Path, port: u16) -> u64 {
    let vm = vm_name(env, wt);
    assert_eq!(top["version"], 1, "{top:#}");
    assert!(top["sampled_ms"].as_u64().unwrap() >= 400, "{top:#}");
    let r = row(top, &vm);
    assert_eq!(r["state"], "Running", "{r:#}");
    assert_eq!(r["backend"], "netns", "{r:#}");
    assert_eq!(
        r["worktree"],
        std::fs::canonicalize(wt).unwrap().to_str().unwrap()
    );
    let used = r["memory_used"].as_u64().unwrap_or(0);
    assert!(used > 0, "a running dockerd holds memory: {r:#}");
    assert_eq!(
        r["memory_limit"].as_u64(),
        Some(3 << 30),
        "vm.memory is the cap: {r:#}"
    );
    assert!(r["memory_anon"].as_u64().unwrap() <= used, "{r:#}");
    assert!(r["cpu_ns"].as_u64().unwrap() > 0, "{r:#}");
    assert!(
        r["cpu_percent"].is_number(),
        "two samples give a rate: {r:#}"
    );
    let tunnels = r["tunnels"].as_array().unwrap();
    assert!(
        tunnels
            .iter()
            .any(|t| t["host"] == port && t["guest"] == 8080 && t["alive"] == true),
        "{r:#}"
    );
    // The data root holds the imported busybox image, measured as du measures it.
    let disk = r["disk_bytes"].as_u64().unwrap();
    let data = env.state_dir().join("netns").join(&vm);
    let expected = du(&data);
    assert!(disk > 1 << 20, "the image is on the VM's disk: {disk}");
    assert!(
        disk.abs_diff(expected) <= (expected / 10).max(1 << 20),
        "top says {disk} bytes, du says {expected}"
    );
    disk
}

/// `status --all --json`: each VM's disk, and their sum.
fn check_status_all_disk(env: &Env, wt: &Path) {
    let vm = vm_name(env, wt);
    let all = json(&env.vmoat(wt, &["status", "--all", "--json"]).ok());
    let disks: Vec<u64> = all["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["disk_bytes"]
                .as_u64()
                .unwrap_or_else(|| panic!("no disk: {all:#}"))
        })
        .collect();
    assert_eq!(disks.len(), 2, "{all:#}");
    assert!(disks.iter().all(|&d| d > 0), "{all:#}");
    assert_eq!(
        all["total_disk_bytes"].as_u64(),
        Some(disks.iter().sum()),
        "{all:#}"
    );
    assert!(row(&all, &vm)["suspended_since"].is_null(), "{all:#}");
}

/// `up` refuses to make a VM where its disk would not fit: exit 1, how much is free and needed,
/// what to remove (the state dir's VMs by size), and nothing made: no name, no data dir.
fn up_refuses_a_new_vm_when_its_disk_would_not_fit() {
    let mut env = Env::new();
    let mut disk = SmallDisk::mount(env.tmp.path().join("state"), "2g");
    env.extra_env.extend(disk.env_vars.clone());
    let repo = env.repo("proj");
    let first = bare(&env, &repo, "first", "netns");
    disk.vms.push(first.clone());
    env.vmoat(&first, &["up"]).ok();
    let first_vm = vm_name(&env, &first);
    // What is left is far below the 1 GiB a new netns VM needs.
    disk.shrink("24m");

    let wt = bare(&env, &repo, "second", "netns");
    disk.vms.push(wt.clone());
    let vm = vm_name(&env, &wt);
    let r = env.vmoat(&wt, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("not enough free disk space for a new VM"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("MiB free") && r.stderr.contains("needs 1.0 GiB"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains(&disk.dir.join("netns").display().to_string()),
        "{r:?}"
    );
    let listed = r
        .stderr
        .lines()
        .find(|l| l.trim_start().starts_with(&first_vm))
        .unwrap_or_else(|| panic!("the biggest VMs are listed: {r:?}"));
    assert!(listed.contains("iB") && listed.contains("first"), "{r:?}");
    assert!(
        r.stderr.contains("git vmoat destroy") && r.stderr.contains("git vmoat gc"),
        "{r:?}"
    );

    let s = json(&env.vmoat(&wt, &["status", "--json"]).ok());
    assert_eq!(s["exists"], false, "{s:#}");
    assert_eq!(s["state"], "absent", "{s:#}");
    let names = std::fs::read_to_string(disk.dir.join("names.json")).unwrap();
    assert!(!names.contains(&vm), "no name claimed: {names}");
    assert!(
        !disk.dir.join("netns").join(&vm).exists(),
        "no data dir made"
    );
    assert!(
        !disk.dir.join("vms").join(&vm).exists(),
        "no VM record made"
    );
    let all = json(&env.vmoat(&wt, &["status", "--all", "--json"]).ok());
    assert_eq!(all["vms"].as_array().map(Vec::len), Some(1), "{all:#}");
}

/// A Colima VM is measured from Lima's own files: its instance dir's allocated bytes, the CPU
/// time of the processes its pid files name, and while it runs the memory it was given.
fn a_colima_vm_is_measured_from_its_lima_files() {
    let env = Env::new();
    let repo = env.repo("proj");
    let wt = bare(&env, &repo, "lima", "colima");
    env.vmoat(&wt, &["up"]).ok();
    let vm = vm_name(&env, &wt);
    let top = json(&env.vmoat(&repo, &["top", "--json"]).ok());
    let r = row(&top, &vm);
    assert_eq!(r["state"], "Running", "{r:#}");
    assert_eq!(r["backend"], "colima", "{r:#}");
    let status = json(&env.vmoat(&wt, &["status", "--json"]).ok());
    assert_eq!(
        r["memory_limit"], status["memory_bytes"],
        "{r:#} {status:#}"
    );
    assert_eq!(
        r["memory_used"], status["memory_bytes"],
        "a VM holds what it was given"
    );
    assert!(r["cpu_ns"].is_u64(), "ha.pid names the VM's process: {r:#}");
    assert!(r["disk_bytes"].as_u64().unwrap() > 0, "{r:#}");
    env.vmoat(&wt, &["down"]).ok();
    let top = json(&env.vmoat(&repo, &["top", "--json"]).ok());
    let r = row(&top, &vm);
    assert_eq!(r["state"], "Stopped", "{r:#}");
    assert!(r["memory_used"].is_null() && r["cpu_ns"].is_null(), "{r:#}");
    assert!(
        r["disk_bytes"].as_u64().unwrap() > 0,
        "a stopped VM keeps its disk: {r:#}"
    );
}

crate::tests! {
    top_shows_what_each_vm_uses_and_leaves_a_suspended_one_asleep: StackNetns;
    up_refuses_a_new_vm_when_its_disk_would_not_fit: Netns, Root;
    a_colima_vm_is_measured_from_its_lima_files: Ssh;
}
