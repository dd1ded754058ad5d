//! `config`, `init`, `trust` and the config errors users meet.

use crate::common::*;

fn config_shows_values_and_their_sources() {
    let env = Env::new();
    let repo = env.repo("proj");
    env.write(&repo.join("compose.yaml"), "services: {}\n");
    env.write(&repo.join("vmoat.toml"), "[vm]\ncpus = 2\n");
    env.write(&repo.join("vmoat.local.toml"), "[vm]\nmemory = 12\n");
    let r = env.vmoat(&repo, &["config"]).ok();
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("vm.cpus") && l.contains("= 2") && l.ends_with("# vmoat.toml")),
        "{r:?}"
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("vm.memory") && l.ends_with("# vmoat.local.toml")),
        "{r:?}"
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("commands.up") && l.contains("detected from compose.yaml")),
        "{r:?}"
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("commands.test") && l.contains("unset")),
        "{r:?}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&env.vmoat(&repo, &["config", "--json"]).ok().stdout).unwrap();
    assert_eq!(j["version"], 1);
    assert_eq!(j["values"]["vm.cpus"]["value"], 2);
    assert_eq!(j["values"]["vm.cpus"]["source"], "vmoat.toml");
    assert_eq!(j["values"]["vm.cpus"]["legacy"], "VM_CPU");
    assert_eq!(j["values"]["vm.disk"]["source"], "default");
    assert_eq!(j["values"]["vm.disk"]["default"], "60");
    assert_eq!(j["values"]["vm.mount"]["default"], "\"~\"");
    assert_eq!(j["values"]["commands.up"]["default"], "detected");
    assert!(
        j["values"]["vm.disk"]["doc"]
            .as_str()
            .unwrap()
            .contains("disk")
    );
    assert_eq!(j["values"]["commands.up"]["value"], "docker compose up -d");
}

fn unknown_keys_and_bad_values_fail_with_the_file_and_a_suggestion() {
    let env = Env::new();
    let repo = env.repo("proj");
    env.write(&repo.join("vmoat.toml"), "[vm]\ncpu = 2\n");
    let r = env.vmoat(&repo, &["up"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("vmoat.toml: unknown key `vm.cpu`")
            && r.stderr.contains("did you mean `vm.cpus`"),
        "{r:?}"
    );
    assert!(env.calls().is_empty());
    env.write(&repo.join("vmoat.toml"), "[health]\ntimeout = \"soon\"\n");
    let r = env.vmoat(&repo, &["config"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("`health.timeout` must be a whole number"),
        "{r:?}"
    );
}

fn legacy_config_needs_trust_and_then_works_with_arrays() {
    let env = Env::new();
    let repo = env.repo("proj");
    let marker = env.home.join("ran");
    env.write(
        &repo.join("vmoat.conf"),
        &format!(
            "touch {}\nVM_CPU=3\nEXPOSE_PORTS=(8080 9229)\nCMD_UP='make up'\n",
            marker.display()
        ),
    );
    let r = env.vmoat(&repo, &["config"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("not trusted") && r.stderr.contains("git vmoat trust"),
        "{r:?}"
    );
    assert!(!marker.exists(), "an untrusted config never runs");
    let t = env.vmoat(&repo, &["trust"]).ok();
    assert!(
        t.stderr.contains("trusted") && t.stderr.contains("vmoat.conf"),
        "{t:?}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&env.vmoat(&repo, &["config", "--json"]).ok().stdout).unwrap();
    assert_eq!(j["values"]["vm.cpus"]["value"], 3);
    assert_eq!(
        j["values"]["tunnel.ports"]["value"],
        serde_json::json!([8080, 9229])
    );
    assert_eq!(j["values"]["commands.up"]["source"], "vmoat.conf");
    // A change needs a new review.
    env.write(&repo.join("vmoat.conf"), "VM_CPU=5\n");
    let r = env.vmoat(&repo, &["config"]);
    assert!(
        r.code == 1 && r.stderr.contains("changed since you trusted it"),
        "{r:?}"
    );
}

fn init_writes_a_commented_toml_and_never_overwrites() {
    let env = Env::new();
    let repo = env.repo("proj");
    env.write(&repo.join("Makefile"), "up:\n\tdocker compose up -d\n");
    env.vmoat(&repo, &["init"]).ok();
    let text = std::fs::read_to_string(repo.join("vmoat.toml")).unwrap();
    assert!(
        text.contains("up = \"make up\"  # detected from Makefile"),
        "{text}"
    );
    assert!(text.contains("# cpus = 4"), "{text}");
    let j: serde_json::Value =
        serde_json::from_str(&env.vmoat(&repo, &["config", "--json"]).ok().stdout).unwrap();
    assert_eq!(j["values"]["commands.up"]["source"], "vmoat.toml");
    env.write(&repo.join("vmoat.toml"), "# mine\n");
    let r = env.vmoat(&repo, &["init"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("already exists"), "{r:?}");
    assert_eq!(
        std::fs::read_to_string(repo.join("vmoat.toml")).unwrap(),
        "# mine\n"
    );
}

fn init_from_conf_converts_the_legacy_file() {
    let env = Env::new();
    let repo = env.repo("proj");
    env.write(&repo.join("vmoat.conf"), "VM_MEMORY=6\nPROVISION_APT=\"git jq\"\nPROVISION_SCRIPT='echo \"hi\"'\nEXPOSE_PORTS=(3000)\n");
    let r = env.vmoat(&repo, &["init"]);
    assert!(r.code == 1 && r.stderr.contains("--from-conf"), "{r:?}");
    let r = env.vmoat(&repo, &["init", "--from-conf"]);
    assert!(r.code == 1 && r.stderr.contains("git vmoat trust"), "{r:?}");
    assert!(!repo.join("vmoat.toml").exists());
    env.vmoat(&repo, &["trust"]).ok();
    env.vmoat(&repo, &["init", "--from-conf"]).ok();
    std::fs::remove_file(repo.join("vmoat.conf")).unwrap();
    let j: serde_json::Value =
        serde_json::from_str(&env.vmoat(&repo, &["config", "--json"]).ok().stdout).unwrap();
    assert_eq!(j["values"]["vm.memory"]["value"], 6);
    assert_eq!(
        j["values"]["provision.apt"]["value"],
        serde_json::json!(["git", "jq"])
    );
    assert_eq!(j["values"]["provision.script"]["value"], "echo \"hi\"");
    assert_eq!(
        j["values"]["tunnel.ports"]["value"],
        serde_json::json!([3000])
    );
}

fn a_wide_vm_mount_is_taken_from_the_local_file_only() {
    let env = Env::new();
    let repo = env.repo("proj");
    env.write(
        &repo.join("vmoat.toml"),
        "backend = \"colima\"\n[commands]\nup = \"true\"\n[vm]\nmount = \"/\"\n",
    );
    let r = env.vmoat(&repo, &["up"]);
    assert!(
        r.code == 1
            && r.stderr.contains("vmoat.toml: `vm.mount` is `/`")
            && r.stderr.contains("vmoat.local.toml"),
        "{r:?}"
    );
    assert!(
        env.calls().is_empty(),
        "nothing started: {:?}",
        env.call_lines()
    );
    env.write(
        &repo.join("vmoat.toml"),
        "backend = \"colima\"\n[commands]\nup = \"true\"\n",
    );
    env.write(&repo.join("vmoat.local.toml"), "[vm]\nmount = \"/\"\n");
    let j: serde_json::Value =
        serde_json::from_str(&env.vmoat(&repo, &["config", "--json"]).ok().stdout).unwrap();
    assert_eq!(
        (
            &j["values"]["vm.mount"]["value"],
            &j["values"]["vm.mount"]["source"]
        ),
        (
            &serde_json::json!("/"),
            &serde_json::json!("vmoat.local.toml")
        )
    );

    // Committed, the local file comes with the branch like any other: held to the same rule.
    env.git(&repo, &["add", "-f", "vmoat.toml", "vmoat.local.toml"]);
    env.git(&repo, &["commit", "-q", "-m", "local config"]);
    let r = env.vmoat(&repo, &["up"]);
    assert!(
        r.code == 1
            && r.stderr.contains("vmoat.local.toml: `vm.mount` is `/`")
            && r.stderr.contains("tracked by git")
            && r.stderr.contains("should not be committed")
            && r.stderr.contains("git rm --cached vmoat.local.toml"),
        "{r:?}"
    );
    assert!(
        env.calls().is_empty(),
        "nothing started: {:?}",
        env.call_lines()
    );
}

fn config_lists_every_key_even_when_a_file_is_broken() {
    let env = Env::new();
    let repo = env.repo("proj");
    env.write(&repo.join("vmoat.toml"), "[vm]\ncpus = 2\ncpu = 3\n");
    env.write(&repo.join("vmoat.local.toml"), "[vm\n");
    // The error's hint points at `config`, so `config` must list the keys: the defaults and
    // what could be read, with the error still on stderr and exit 1.
    let r = env.vmoat(&repo, &["config"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("vmoat.local.toml is not valid TOML")
            || r.stderr.contains("unknown key `vm.cpu`"),
        "{r:?}"
    );
    assert!(r.stderr.contains("hint: "), "{r:?}");
    for d in ["backend", "vm.memory", "health.url", "warm.images"] {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(d)),
            "{d} listed: {r:?}"
        );
    }
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("vm.cpus") && l.contains("= 2") && l.ends_with("# vmoat.toml")),
        "the readable value is shown with its source: {r:?}"
    );
    let r = env.vmoat(&repo, &["config", "--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["values"]["vm.disk"]["source"], "default");
    assert_eq!(j["values"]["vm.disk"]["default"], "60");
    assert_eq!(j["values"]["vm.mount"]["default"], "\"~\"");
    assert_eq!(j["values"]["commands.up"]["default"], "detected");
    assert!(
        j["values"]["vm.disk"]["doc"]
            .as_str()
            .unwrap()
            .contains("disk")
    );
    assert_eq!(j["values"]["vm.cpus"]["value"], 2);
    assert!(j["error"].as_str().is_some_and(|e| !e.is_empty()), "{j}");
    // A good config has no error field set.
    std::fs::remove_file(repo.join("vmoat.local.toml")).unwrap();
    env.write(&repo.join("vmoat.toml"), "[vm]\ncpus = 2\n");
    let j: serde_json::Value =
        serde_json::from_str(&env.vmoat(&repo, &["config", "--json"]).ok().stdout).unwrap();
    assert!(j["error"].is_null(), "{j}");
}

fn an_unknown_table_gets_a_suggestion_like_an_unknown_key() {
    let env = Env::new();
    let repo = env.repo("proj");
    env.write(
        &repo.join("vmoat.toml"),
        "[helth]\nurl = \"http://localhost/\"\n",
    );
    let r = env.vmoat(&repo, &["config"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("vmoat.toml: unknown table `[helth]`")
            && r.stderr.contains("did you mean `[health]`"),
        "{r:?}"
    );
}

fn init_proposes_the_test_command_and_says_to_commit_the_file() {
    let env = Env::new();
    let repo = env.repo("proj");
    env.write(
        &repo.join("Makefile"),
        "up:\n\tdocker compose up -d\ntest: up\n\tpytest\n",
    );
    let r = env.vmoat(&repo, &["init"]).ok();
    assert!(
        r.stderr
            .contains("git add vmoat.toml && git commit -m 'Add vmoat.toml'"),
        "{r:?}"
    );
    let text = std::fs::read_to_string(repo.join("vmoat.toml")).unwrap();
    assert!(
        text.contains("test = \"make test\"  # detected from Makefile"),
        "{text}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&env.vmoat(&repo, &["config", "--json"]).ok().stdout).unwrap();
    assert_eq!(j["values"]["commands.test"]["value"], "make test");

    // A worktree made now lacks the untracked file: `status` and `up` there say so.
    let wt = env.worktree(&repo, &env.home.join("src/proj-feature"), "feature");
    let file = repo.join("vmoat.toml");
    for args in [&["status"][..], &["up"][..]] {
        let r = env.vmoat(&wt, args);
        assert!(
            r.stderr.contains(&format!(
                "warning: {} is not committed, so this worktree and new ones do not have it",
                file.display()
            )) && r.stderr.contains("git add vmoat.toml && git commit"),
            "{args:?}: {r:?}"
        );
    }
    // Not in the main checkout itself, where the file is in effect.
    let r = env.vmoat(&repo, &["status"]).ok();
    assert!(!r.stderr.contains("not committed"), "{r:?}");

    env.git(&repo, &["add", "vmoat.toml", "Makefile"]);
    // Staged is not committed yet.
    let r = env.vmoat(&wt, &["status"]).ok();
    assert!(r.stderr.contains("is not committed"), "{r:?}");
    env.git(&repo, &["commit", "-q", "-m", "vmoat"]);
    let r = env.vmoat(&wt, &["status"]).ok();
    assert!(!r.stderr.contains("warning"), "{r:?}");

    std::fs::write(&file, format!("{text}\n[vm]\ncpus = 2\n")).unwrap();
    let r = env.vmoat(&wt, &["status"]).ok();
    assert!(
        r.stderr
            .contains("vmoat.toml has uncommitted changes, which this worktree")
            && r.stderr
                .contains("git commit -m 'Update vmoat.toml' vmoat.toml"),
        "{r:?}"
    );
}

crate::tests! {
    config_shows_values_and_their_sources;
    unknown_keys_and_bad_values_fail_with_the_file_and_a_suggestion;
    legacy_config_needs_trust_and_then_works_with_arrays;
    init_writes_a_commented_toml_and_never_overwrites;
    init_from_conf_converts_the_legacy_file;
    a_wide_vm_mount_is_taken_from_the_local_file_only;
    config_lists_every_key_even_when_a_file_is_broken;
    an_unknown_table_gets_a_suggestion_like_an_unknown_key;
    init_proposes_the_test_command_and_says_to_commit_the_file;
}
