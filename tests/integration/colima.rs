//! What breaks with a real Colima on a Mac (contract §10): version gates, `list` parsing, names,
//! mounts, the host docker CLI, COLIMA_SAVE_CONFIG and resizing a running VM, against the stand-in.

use std::path::{Path, PathBuf};

use crate::common::*;

const UP: &str = "[commands]\nup = \"true\"\n";

fn setup(env: &Env, toml: &str) -> PathBuf {
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    env.write(&wt.join("vmoat.toml"), toml);
    wt
}

/// PATH with `dir` first, then what the tests normally get.
fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}:{}:{}",
        dir.display(),
        support_dir().display(),
        bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    )
}

/// A profile as the stand-in records it, without booting anything.
fn fake_profile(env: &Env, name: &str, status: &str, cpus: u64, memory_gib: u64) {
    env.write(
        &env.colima_state().join(format!("profiles/{name}.json")),
        &serde_json::json!({"status": status, "cpus": cpus, "memory": memory_gib, "disk": 100, "runtime": "docker", "mounts": []})
            .to_string(),
    );
}

fn starts(env: &Env) -> Vec<String> {
    env.call_lines()
        .into_iter()
        .filter(|c| c.starts_with("start"))
        .collect()
}

fn doctor_check(env: &Env, dir: &Path, name: &str) -> serde_json::Value {
    let r = env.vmoat(dir, &["doctor", "--json"]);
    let j: serde_json::Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {j}"))
        .clone()
}

fn the_stand_in_rejects_port_forwarder_none_below_0_10() {
    let mut env = Env::new();
    env.extra_env
        .push(("FAKE_COLIMA_VERSION".into(), "v0.9.1".into()));
    let out = env
        .cmd(support_dir().join("colima"), &env.home)
        .args(["start", "x", "--port-forwarder=none"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid port forwarder: 'none'"),
        "{out:?}"
    );
}

fn colima_0_9_is_refused_in_preflight_and_doctor_before_any_start() {
    let mut env = Env::new();
    let wt = setup(&env, UP);
    env.extra_env
        .push(("FAKE_COLIMA_VERSION".into(), "v0.9.1".into()));
    let r = env.vmoat(&wt, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("colima 0.9.1 is too old") && r.stderr.contains("0.10.0"),
        "{r:?}"
    );
    assert!(r.stderr.contains("hint:"), "{r:?}");
    assert_eq!(starts(&env), Vec::<String>::new(), "no start was attempted");
    let c = doctor_check(&env, &wt, "colima");
    assert_eq!(c["status"], "fail", "{c}");
    assert!(c["detail"].as_str().unwrap().contains("0.10.0"), "{c}");
}

fn lima_before_1_0_is_refused_in_preflight_and_doctor() {
    let mut env = Env::new();
    let wt = setup(&env, UP);
    let bin_dir = env.tmp.path().join("lima-bin");
    env.write(
        &bin_dir.join("limactl"),
        "#!/bin/sh\necho 'limactl version 0.23.2'\n",
    );
    std::fs::set_permissions(
        bin_dir.join("limactl"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    env.extra_env.push(("PATH".into(), path_with(&bin_dir)));
    let r = env.vmoat(&wt, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("Lima 0.23.2 is too old") && r.stderr.contains("1.0.0"),
        "{r:?}"
    );
    assert_eq!(starts(&env), Vec::<String>::new(), "no start was attempted");
    let c = doctor_check(&env, &wt, "lima");
    assert_eq!(c["status"], "fail", "{c}");
}

fn old_colima_listing_every_profile_still_gives_this_vms_state() {
    let mut env = Env::new();
    let wt = setup(&env, UP);
    let vm = vm_name(&env, &wt);
    // Sorted first, so taking the first line would read the wrong profile.
    fake_profile(&env, "a-other", "Running", 8, 16);
    fake_profile(&env, &vm, "Stopped", 2, 3);
    env.extra_env
        .push(("FAKE_COLIMA_VERSION".into(), "v0.8.4".into()));
    let r = env.vmoat(&wt, &["status", "--json"]).ok();
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["state"], "Stopped", "{j}");
    assert_eq!(j["cpus"], 2, "{j}");
    // The stand-in really listed both.
    assert!(
        env.call_lines().contains(&format!("list {vm} --json")),
        "{:?}",
        env.call_lines()
    );
}

fn a_failed_list_is_missing_only_without_the_lima_instance_dir() {
    let mut env = Env::new();
    let wt = setup(&env, UP);
    let colima_home = env.home.join(".colima");
    env.extra_env.push((
        "COLIMA_HOME".into(),
        colima_home.to_string_lossy().into_owned(),
    ));
    let vm = vm_name(&env, &wt);
    fake_profile(&env, &vm, "Stopped", 2, 2);
    let inst = colima_home.join("_lima").join(format!("colima-{vm}"));
    std::fs::create_dir_all(&inst).unwrap();
    env.extra_env.push((
        "FAKE_COLIMA_FAIL".into(),
        "list:error retrieving instances: exit status 1".into(),
    ));
    // Before: a failed list read as "no VM", so destroy skipped its confirmation and deleted.
    let r = env.vmoat(&wt, &["destroy"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("cannot tell the state of VM") && r.stderr.contains("hint:"),
        "{r:?}"
    );
    assert!(
        !env.call_lines().iter().any(|c| c.starts_with("delete")),
        "{:?}",
        env.call_lines()
    );
    assert!(env.profile(&vm).is_some(), "the VM was not touched");

    // No instance dir: Lima does not know the VM, so it is missing.
    std::fs::remove_dir_all(&inst).unwrap();
    let r = env.vmoat(&wt, &["status", "--json"]).ok();
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["exists"], false, "{j}");
}

fn a_worktree_named_colima_something_never_gets_a_colima_dash_name() {
    let env = Env::new();
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src/colima-foo"), "cf");
    env.write(&wt.join("vmoat.toml"), "[vm]\nprefix = \"\"\n");
    let name = vm_name(&env, &wt);
    assert!(!name.starts_with("colima-"), "{name}");
    assert_eq!(name, "colimafoo");
    let r = env.vmoat(&wt, &["config"]);
    assert_eq!(r.code, 0, "{r:?}");
    env.write(&wt.join("vmoat.toml"), "[vm]\nprefix = \"colima-\"\n");
    let r = env.vmoat(&wt, &["name"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("vm.prefix"), "{r:?}");
}

fn the_mount_is_passed_as_its_real_path() {
    let mut env = Env::new();
    let link = env.tmp.path().join("link");
    std::os::unix::fs::symlink(&env.home, &link).unwrap();
    let wt = setup(&env, &format!("{UP}[vm]\nmount = \"{}\"\n", link.display()));
    // Stop at the start: its argv is what matters, no VM needs to boot.
    env.extra_env
        .push(("FAKE_COLIMA_FAIL".into(), "start:stopped here".into()));
    let r = env.vmoat(&wt, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    let real = std::fs::canonicalize(&env.home).unwrap();
    let s = starts(&env);
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(
        s[0].contains(&format!("--mount {}:w ", real.display())),
        "{s:?}"
    );
    assert!(!s[0].contains(link.to_str().unwrap()), "{s:?}");
}

fn a_mount_path_with_colon_or_dollar_is_refused_before_anything() {
    for dir in ["a:b", "a$HOME"] {
        let env = Env::new();
        let repo = env.repo("proj");
        let parent = env.home.join(dir);
        let wt = env.worktree(&repo, &parent.join("feat"), "feat");
        env.write(
            &wt.join("vmoat.toml"),
            &format!("{UP}[vm]\nmount = \"{}\"\n", parent.display()),
        );
        let r = env.vmoat(&wt, &["up"]);
        assert_eq!(r.code, 1, "{dir}: {r:?}");
        let c = &dir[1..2];
        assert!(
            r.stderr.contains(&format!("its path has `{c}`")) && r.stderr.contains("hint:"),
            "{dir}: {r:?}"
        );
        assert_eq!(starts(&env), Vec::<String>::new(), "{dir}");
        let names = std::fs::read_to_string(env.state_dir().join("names.json")).unwrap_or_default();
        assert!(!names.contains("feat"), "nothing recorded: {names}");
    }
}

fn a_missing_docker_cli_fails_doctor_and_preflight() {
    let mut env = Env::new();
    let wt = setup(&env, UP);
    // A PATH with what git-vmoat and the stand-in need, but no docker.
    let tools = env.tmp.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    std::os::unix::fs::symlink(which("git").unwrap(), tools.join("git")).unwrap();
    // The real interpreter, not a version manager's shell shim that needs more of PATH.
    let python = ["/usr/bin/python3", "/bin/python3"]
        .map(PathBuf::from)
        .into_iter()
        .find(|p| p.exists())
        .or_else(|| which("python3"))
        .unwrap();
    std::os::unix::fs::symlink(python, tools.join("python3")).unwrap();
    env.extra_env.push((
        "PATH".into(),
        format!(
            "{}:{}:{}",
            support_dir().display(),
            bin().parent().unwrap().display(),
            tools.display()
        ),
    ));
    let r = env.vmoat(&wt, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("docker CLI is not installed"), "{r:?}");
    assert_eq!(starts(&env), Vec::<String>::new());
    let c = doctor_check(&env, &wt, "docker CLI");
    assert_eq!(c["status"], "fail", "{c}");
}

fn colima_save_config_never_reaches_colima() {
    let mut env = Env::new();
    let wt = setup(&env, UP);
    env.extra_env
        .push(("COLIMA_SAVE_CONFIG".into(), "false".into()));
    env.extra_env
        .push(("FAKE_COLIMA_FAIL".into(), "start:stopped here".into()));
    let r = env.vmoat(&wt, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(starts(&env).len(), 1, "{:?}", env.call_lines());
    for c in env.calls() {
        assert!(c["env"].get("COLIMA_SAVE_CONFIG").is_none(), "{c}");
    }
}

fn a_running_vm_of_another_size_says_how_to_apply_it() {
    let env = Env::new();
    let wt = setup(&env, &format!("{UP}[vm]\ncpus = 4\nmemory = 3\n"));
    let vm = vm_name(&env, &wt);
    fake_profile(&env, &vm, "Running", 2, 3);
    let r = env.vmoat(&wt, &["provision"]).ok();
    assert!(
        r.stderr.contains("2 CPU, 3 GiB") && r.stderr.contains("asks for 4 CPU, 3 GiB"),
        "{r:?}"
    );
    assert!(r.stderr.contains("git vmoat down && git vmoat up"), "{r:?}");
    assert_eq!(starts(&env), Vec::<String>::new());
    // Same size: no note.
    env.write(
        &wt.join("vmoat.toml"),
        &format!("{UP}[vm]\ncpus = 2\nmemory = 3\n"),
    );
    let r = env.vmoat(&wt, &["provision"]).ok();
    assert!(
        !r.stderr.contains("git vmoat down && git vmoat up"),
        "{r:?}"
    );
}

crate::tests! {
    the_stand_in_rejects_port_forwarder_none_below_0_10;
    colima_0_9_is_refused_in_preflight_and_doctor_before_any_start;
    lima_before_1_0_is_refused_in_preflight_and_doctor;
    old_colima_listing_every_profile_still_gives_this_vms_state;
    a_failed_list_is_missing_only_without_the_lima_instance_dir;
    a_worktree_named_colima_something_never_gets_a_colima_dash_name;
    the_mount_is_passed_as_its_real_path;
    a_mount_path_with_colon_or_dollar_is_refused_before_anything;
    a_missing_docker_cli_fails_doctor_and_preflight;
    colima_save_config_never_reaches_colima;
    a_running_vm_of_another_size_says_how_to_apply_it;
}
