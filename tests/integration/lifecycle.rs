//! provision / up / test / ssh / down / destroy against the stand-in, asserting Colima's argv.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;

fn setup(env: &Env, toml: &str) -> std::path::PathBuf {
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    env.write(&wt.join("vmoat.toml"), toml);
    wt
}

fn up_creates_the_vm_with_exactly_the_contract_flags() {
    let env = Env::new();
    let wt = setup(
        &env,
        "[commands]\nup = \"echo stack-up > up.out\"\n[vm]\ncpus = 2\nmemory = 3\ndisk = 20\n",
    );
    let mut env = env;
    // Variables that would redirect Colima must not reach it.
    env.extra_env
        .push(("LIMA_HOME".into(), "/nonexistent".into()));
    env.extra_env
        .push(("COLIMA_PROFILE".into(), "hijack".into()));
    let r = env.vmoat(&wt, &["up"]).ok();
    assert!(
        r.stdout.is_empty(),
        "up prints messages on stderr only: {r:?}"
    );
    let home = env.home.to_str().unwrap().to_string();
    assert_eq!(
        env.call_lines(),
        vec![
            "version".to_string(),
            "list wt-feat --json".into(),
            format!(
                "start wt-feat --runtime docker --cpus 2 --memory 3 --disk 20 --mount {home}:w --activate=false --template=false --ssh-config=false --port-forwarder=none"
            ),
            "list wt-feat --json".into(),
            "ssh-config wt-feat".into(),
        ]
    );
    for c in env.calls() {
        assert_eq!(c["stdin_null"], true, "colima gets /dev/null as stdin: {c}");
        assert_eq!(c["env"], serde_json::json!({}), "scrubbed env: {c}");
    }
    // The up command ran in the worktree directory.
    assert_eq!(
        std::fs::read_to_string(wt.join("up.out")).unwrap(),
        "stack-up\n"
    );
    assert!(
        !env.colima_state().join("docker-context").exists(),
        "the user's docker context was not switched"
    );
    let p = env.profile("wt-feat").unwrap();
    assert_eq!(p["status"], "Running");

    // Running: no start at all the second time.
    env.clear_calls();
    env.vmoat(&wt, &["up"]).ok();
    assert!(
        !env.call_lines().iter().any(|c| c.starts_with("start")),
        "{:?}",
        env.call_lines()
    );
}

fn down_then_up_resumes_and_destroy_deletes_with_data() {
    let env = Env::new();
    let wt = setup(&env, "[commands]\nup = \"true\"\n");
    env.vmoat(&wt, &["up"]).ok();
    env.clear_calls();
    env.vmoat(&wt, &["down"]).ok();
    assert_eq!(
        env.call_lines(),
        vec!["list wt-feat --json", "stop wt-feat"]
    );
    assert_eq!(env.profile("wt-feat").unwrap()["status"], "Stopped");
    env.clear_calls();
    env.vmoat(&wt, &["up"]).ok();
    assert!(
        env.call_lines()
            .iter()
            .any(|c| c.starts_with("start wt-feat --runtime docker")),
        "{:?}",
        env.call_lines()
    );
    assert_eq!(env.profile("wt-feat").unwrap()["status"], "Running");

    // destroy without -f and without a terminal refuses and changes nothing.
    env.clear_calls();
    let r = env.vmoat(&wt, &["destroy"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("destroy -f"), "{r:?}");
    assert!(
        !r.stderr.contains("destroying VM wt-feat of"),
        "nothing says it is destroying before the refusal: {r:?}"
    );
    assert!(!env.call_lines().iter().any(|c| c.starts_with("delete")));
    assert!(env.profile("wt-feat").is_some());

    env.clear_calls();
    let r = env.vmoat(&wt, &["destroy", "-f"]).ok();
    assert!(
        r.stderr.contains(&format!(
            "wt-feat of worktree {}",
            std::fs::canonicalize(&wt).unwrap().display()
        )),
        "{r:?}"
    );
    // The last list checks the VM is really gone before anything is forgotten.
    assert_eq!(
        env.call_lines(),
        vec![
            "list wt-feat --json",
            "delete wt-feat --force --data",
            "list wt-feat --json"
        ]
    );
    assert!(env.profile("wt-feat").is_none());
    assert!(
        !env.colima_state().join("disks/wt-feat").exists(),
        "the data disk went too"
    );
    assert!(
        wt.join("vmoat.toml").exists(),
        "worktree files are untouched"
    );
    let names = std::fs::read_to_string(env.state_dir().join("names.json")).unwrap();
    assert!(!names.contains("wt-feat"), "name released: {names}");
    // Idempotent.
    env.vmoat(&wt, &["destroy", "-f"]).ok();
}

fn test_and_ssh_pass_exit_codes_and_arguments_through_exactly() {
    let env = Env::new();
    let repo = env.repo("proj");
    // A worktree path with spaces, quotes and unicode (under a mount without them).
    let wt = env.worktree(&repo, &env.home.join("src/it's a wörk tree"), "odd");
    env.write(
        &wt.join("vmoat.toml"),
        "[commands]\nup = \"true\"\ntest = \"printf '%s|' \\\"$(pwd)\\\"; printf '[%s]' \"\n",
    );
    env.vmoat(&wt, &["up"]).ok();
    let args = ["a b", "it's", "\"q\"", "ünï", "new\nline", "$HOME", "-k"];
    let mut argv = vec!["test"];
    argv.extend(args);
    let r = env.vmoat(&wt, &argv).ok();
    let real = std::fs::canonicalize(&wt).unwrap();
    let want: String =
        format!("{}|", real.display()) + &args.iter().map(|a| format!("[{a}]")).collect::<String>();
    assert_eq!(r.stdout, want);

    let r = env.vmoat(&wt, &["ssh", "sh", "-c", "echo out; echo err >&2; exit 42"]);
    assert_eq!(r.code, 42, "{r:?}");
    assert_eq!(r.stdout, "out\n");
    assert!(
        r.stderr.contains("err") && !r.stderr.contains("error:"),
        "{r:?}"
    );
    assert_eq!(
        env.vmoat(&wt, &["ssh", "pwd"]).ok().stdout,
        format!("{}\n", real.display())
    );
    assert_eq!(
        env.vmoat(&wt, &["ssh", "printf", "%s", "a  b"]).ok().stdout,
        "a  b"
    );

    // Arguments are bytes, not text: ones that are not UTF-8 arrive exactly as given.
    use std::os::unix::ffi::OsStrExt;
    let odd = std::ffi::OsStr::from_bytes(b"x\xff y'\xfe\xe2\x9c");
    let out = env
        .cmd(bin(), &wt)
        .args(["ssh", "sh", "-c", "printf '%s' \"$1\" | od -An -tx1", "sh"])
        .arg(odd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["78", "ff", "20", "79", "27", "fe", "e2", "9c"],
        "{out:?}"
    );
    let out = env.cmd(bin(), &wt).arg("test").arg(odd).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut want = format!("{}|[", real.display()).into_bytes();
    want.extend(odd.as_bytes());
    want.push(b']');
    assert_eq!(out.stdout, want);

    env.write(
        &wt.join("vmoat.local.toml"),
        "[commands]\ntest = \"exit 3\"\n",
    );
    assert_eq!(env.vmoat(&wt, &["test"]).code, 3);
}

fn test_needs_a_command_and_a_running_vm() {
    let env = Env::new();
    let wt = setup(&env, "[commands]\nup = \"true\"\n");
    let r = env.vmoat(&wt, &["test"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no test command") && r.stderr.contains("commands.test"),
        "{r:?}"
    );
    env.write(&wt.join("vmoat.toml"), "[commands]\ntest = \"true\"\n");
    let r = env.vmoat(&wt, &["test"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("VM wt-feat is absent, not running") && r.stderr.contains("git vmoat up"),
        "{r:?}"
    );
    let r = env.vmoat(&wt, &["ssh", "true"]);
    assert_eq!(r.code, 1, "{r:?}");
}

fn up_without_an_up_command_fails_before_touching_colima() {
    let env = Env::new();
    let repo = env.repo("proj");
    let r = env.vmoat(&repo, &["up"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no up command") && r.stderr.contains("compose.yaml"),
        "{r:?}"
    );
    assert!(env.calls().is_empty());
}

fn a_worktree_outside_vm_mount_is_refused() {
    let env = Env::new();
    let wt = setup(
        &env,
        "[commands]\nup = \"true\"\n[vm]\nmount = \"~/elsewhere\"\n",
    );
    std::fs::create_dir_all(env.home.join("elsewhere")).unwrap();
    let r = env.vmoat(&wt, &["up"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("is outside vm.mount"), "{r:?}");
    assert!(!env.call_lines().iter().any(|c| c.starts_with("start")));
}

fn colima_failures_show_its_stderr() {
    let mut env = Env::new();
    let wt = setup(&env, "[commands]\nup = \"true\"\n");
    env.extra_env.push((
        "FAKE_COLIMA_FAIL".into(),
        "start:error starting vm: qemu exploded".into(),
    ));
    let r = env.vmoat(&wt, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("creating the VM failed") && r.stderr.contains("qemu exploded"),
        "{r:?}"
    );
    assert!(r.stderr.contains("hint:"), "{r:?}");
}

fn too_old_colima_is_refused_before_start() {
    let mut env = Env::new();
    let wt = setup(&env, "[commands]\nup = \"true\"\n");
    env.extra_env
        .push(("FAKE_COLIMA_VERSION".into(), "v0.8.4".into()));
    let r = env.vmoat(&wt, &["up"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("colima 0.8.4 is too old"), "{r:?}");
    assert!(!env.call_lines().iter().any(|c| c.starts_with("start")));
}

fn vm_type_is_passed_only_where_colima_has_it() {
    let mut env = Env::new();
    let wt = setup(&env, "[commands]\nup = \"true\"\n[vm]\ntype = \"qemu\"\n");
    // Stop at the start: its argv is what matters.
    env.extra_env
        .push(("FAKE_COLIMA_FAIL".into(), "start:stopped here".into()));
    let r = env.vmoat(&wt, &["up"]);
    assert!(r.stderr.contains("--vm-type only on macOS"), "{r:?}");
    let start = env
        .call_lines()
        .into_iter()
        .find(|c| c.starts_with("start"));
    let start = start.unwrap_or_else(|| panic!("{r:?}"));
    assert!(!start.contains("--vm-type"), "{start}");
}

fn provisioning_runs_the_script_once_per_config_and_seeds_safely() {
    let env = Env::new();
    let repo = main_with_ignored_files(&env);
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    env.write(&wt.join("local.yaml"), "mine\n");
    env.write(
        &wt.join("vmoat.toml"),
        "[commands]\nup = \"true\"\n[provision]\napt = [\"bash\"]\nscript = \"pwd >> provisioned.log\"\nseed = [\".env.keys\", \"secrets\", \"local.yaml\", \"README.md\", \"untracked.txt\", \"nowhere\"]\n",
    );
    let r = env.vmoat(&wt, &["up"]).ok();
    assert!(
        !r.stderr.contains("installing:"),
        "bash is installed: no apt run: {r:?}"
    );
    seeded_safely(&wt, &r);
    let real = std::fs::canonicalize(&wt).unwrap();
    assert_eq!(
        std::fs::read_to_string(wt.join("provisioned.log")).unwrap(),
        format!("{}\n", real.display())
    );
    // A second up does not re-run the script; an explicit provision does.
    env.vmoat(&wt, &["up"]).ok();
    assert_eq!(
        std::fs::read_to_string(wt.join("provisioned.log"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    env.vmoat(&wt, &["provision"]).ok();
    assert_eq!(
        std::fs::read_to_string(wt.join("provisioned.log"))
            .unwrap()
            .lines()
            .count(),
        2
    );
}

/// A main checkout with ignored files to seed (a private key file, a dir, a file the worktree
/// has its own of) and an untracked one that must not be.
fn main_with_ignored_files(env: &Env) -> PathBuf {
    let repo = env.repo("proj");
    env.write(
        &repo.join(".gitignore"),
        ".env.keys\nsecrets/\nlocal.yaml\nvmoat.local.toml\n",
    );
    env.git(&repo, &["add", ".gitignore"]);
    env.git(&repo, &["commit", "-q", "-m", "ignore"]);
    env.write(&repo.join(".env.keys"), "KEY=main\n");
    std::fs::set_permissions(
        repo.join(".env.keys"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    env.write(&repo.join("secrets/a.txt"), "a\n");
    env.write(&repo.join("secrets/sub/b.txt"), "b\n");
    env.write(&repo.join("local.yaml"), "from main\n");
    env.write(&repo.join("untracked.txt"), "x\n");
    repo
}

/// What `up` seeded: ignored files copied with their permissions, nothing overwritten, and
/// each entry it refused named.
fn seeded_safely(wt: &Path, r: &Run) {
    assert_eq!(
        std::fs::read_to_string(wt.join(".env.keys")).unwrap(),
        "KEY=main\n"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(wt.join(".env.keys"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "permissions kept");
    assert_eq!(
        std::fs::read_to_string(wt.join("secrets/sub/b.txt")).unwrap(),
        "b\n"
    );
    assert_eq!(
        std::fs::read_to_string(wt.join("local.yaml")).unwrap(),
        "mine\n",
        "never overwritten"
    );
    assert!(
        !wt.join("untracked.txt").exists(),
        "not ignored: not seeded"
    );
    assert!(r.stderr.contains("seed README.md is tracked"), "{r:?}");
    assert!(
        r.stderr.contains("seed untracked.txt is not gitignored"),
        "{r:?}"
    );
    assert!(r.stderr.contains("seed nowhere is in neither"), "{r:?}");
}

fn seed_paths_escaping_the_repo_are_rejected() {
    let env = Env::new();
    let repo = env.repo("proj");
    env.write(&repo.join(".gitignore"), "link\n");
    env.git(&repo, &["add", ".gitignore"]);
    env.git(&repo, &["commit", "-q", "-m", "ignore"]);
    let outside = env.home.join("outside-secret");
    env.write(&outside, "secret\n");
    std::os::unix::fs::symlink(&outside, repo.join("link")).unwrap();
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    // A bad path is a config error; a link out of the repository is skipped with a warning
    // (the rest of provisioning goes on).
    for (seed, code, want) in [
        ("../x", 1, "uses `..`"),
        ("/etc/passwd", 1, "is absolute"),
        (
            "link",
            0,
            "seed link skipped: it is a symlink leading outside the repository",
        ),
    ] {
        env.write(
            &wt.join("vmoat.toml"),
            &format!("[commands]\nup = \"true\"\n[provision]\nseed = [\"{seed}\"]\n"),
        );
        let r = env.vmoat(&wt, &["provision"]);
        assert_eq!(r.code, code, "{seed}: {r:?}");
        assert!(r.stderr.contains(want), "{seed}: {r:?}");
    }
    assert!(std::fs::symlink_metadata(wt.join("link")).is_err());
}

fn two_concurrent_ups_provision_once() {
    let env = Env::new();
    let wt = setup(
        &env,
        "[commands]\nup = \"true\"\n[provision]\nscript = \"echo x >> prov.log\"\n",
    );
    let spawn = || {
        env.cmd(bin(), &wt)
            .arg("up")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for c in [a, b] {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let starts = env
        .call_lines()
        .iter()
        .filter(|c| c.starts_with("start"))
        .count();
    assert_eq!(starts, 1, "{:?}", env.call_lines());
    assert_eq!(std::fs::read_to_string(wt.join("prov.log")).unwrap(), "x\n");
}

fn health_gates_up() {
    let env = Env::new();
    let wt = setup(&env, "");
    // Healthy after a few seconds: the up command starts a server that appears after a delay.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.write(
        &wt.join("vmoat.toml"),
        &format!(
            "[commands]\nup = \"(sleep 3; exec python3 -m http.server {port} --bind 127.0.0.1 --directory {dir}) </dev/null >/dev/null 2>&1 &\"\n[health]\nurl = \"http://127.0.0.1:{port}/\"\ntimeout = 60\n",
            dir = wt.display()
        ),
    );
    let r = env.vmoat(&wt, &["up"]).ok();
    assert!(
        r.stderr
            .contains(&format!("healthy: http://127.0.0.1:{port}/")),
        "{r:?}"
    );
    let s: serde_json::Value =
        serde_json::from_str(&env.vmoat(&wt, &["status", "--json"]).ok().stdout).unwrap();
    assert_eq!(s["health"]["ok"], true);

    // Never healthy: fails after the timeout with the promised message.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.write(&wt.join("vmoat.local.toml"), &format!("[commands]\nup = \"true\"\n[health]\nurl = \"http://127.0.0.1:{dead}/health\"\ntimeout = 3\n"));
    let t = std::time::Instant::now();
    let r = env.vmoat(&wt, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "http://127.0.0.1:{dead}/health did not become healthy within 3.0s"
        )),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("its last answer: curl: (7)"),
        "what the URL answered: {r:?}"
    );
    // No container runs (the up command is `true`), and no compose file: no compose commands.
    assert!(
        (r.stderr.contains("no container exists in VM wt-feat")
            || r.stderr.contains("git vmoat ssh docker ps -a"))
            && !r.stderr.contains("compose"),
        "{r:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(30));
}

fn status_reports_absent_and_running_vms() {
    let env = Env::new();
    let wt = setup(&env, "[commands]\nup = \"true\"\n");
    let r = env.vmoat(&wt, &["status"]).ok();
    assert!(
        r.stdout.contains("wt-feat (colima, absent)") && r.stdout.contains("git vmoat up"),
        "{r:?}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&env.vmoat(&wt, &["status", "--json"]).ok().stdout).unwrap();
    assert_eq!(
        (
            j["version"].as_u64(),
            j["exists"].as_bool(),
            j["state"].as_str()
        ),
        (Some(1), Some(false), Some("absent"))
    );
    env.vmoat(&wt, &["up"]).ok();
    let j: serde_json::Value =
        serde_json::from_str(&env.vmoat(&wt, &["status", "--json"]).ok().stdout).unwrap();
    assert_eq!(j["state"], "Running");
    assert_eq!(j["cpus"], 4);
    assert_eq!(j["memory_bytes"], 8u64 << 30);
    assert!(j["tunnels"].as_array().unwrap().is_empty());
}

crate::tests! {
    up_creates_the_vm_with_exactly_the_contract_flags: Ssh;
    down_then_up_resumes_and_destroy_deletes_with_data: Ssh;
    test_and_ssh_pass_exit_codes_and_arguments_through_exactly: Ssh;
    test_needs_a_command_and_a_running_vm;
    up_without_an_up_command_fails_before_touching_colima;
    a_worktree_outside_vm_mount_is_refused;
    colima_failures_show_its_stderr;
    too_old_colima_is_refused_before_start;
    vm_type_is_passed_only_where_colima_has_it;
    provisioning_runs_the_script_once_per_config_and_seeds_safely: Ssh;
    seed_paths_escaping_the_repo_are_rejected: Ssh;
    two_concurrent_ups_provision_once: Ssh;
    health_gates_up: Ssh;
    status_reports_absent_and_running_vms: Ssh;
}
