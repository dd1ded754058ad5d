//! Identity, names, usage and the errors a user meets first.

use crate::common::*;

fn name_is_the_original_one_from_any_subdirectory() {
    let env = Env::new();
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src/Feature_X"), "feature-x");
    std::fs::create_dir_all(wt.join("deep/er")).unwrap();
    assert_eq!(env.vmoat(&wt, &["name"]).ok().stdout, "wt-feature-x\n");
    assert_eq!(
        env.vmoat(&wt.join("deep/er"), &["name"]).ok().stdout,
        "wt-feature-x\n"
    );
    assert_eq!(env.vmoat(&repo, &["name"]).ok().stdout, "wt-proj\n");
    let j: serde_json::Value =
        serde_json::from_str(&env.vmoat(&wt, &["name", "--json"]).ok().stdout).unwrap();
    assert_eq!(j["version"], 1);
    assert_eq!(j["name"], "wt-feature-x");
    assert_eq!(j["backend"], "colima");
    assert_eq!(
        j["worktree"],
        std::fs::canonicalize(&wt).unwrap().to_str().unwrap()
    );
}

fn name_honours_git_dir_like_git_does() {
    let env = Env::new();
    let repo = env.repo("proj");
    let out = env
        .cmd(bin(), &env.home)
        .args(["name"])
        .env("GIT_DIR", repo.join(".git"))
        .env("GIT_WORK_TREE", &repo)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "wt-proj\n");
}

fn two_worktrees_named_main_in_two_repos_get_two_vms() {
    let env = Env::new();
    let a = env.repo("a");
    let b = env.repo("b");
    let wa = env.worktree(&a, &env.home.join("src/x/main"), "wa");
    let wb = env.worktree(&b, &env.home.join("src/y/main"), "wb");
    for wt in [&wa, &wb] {
        env.write(&wt.join("vmoat.toml"), "[commands]\nup = \"true\"\n");
    }
    env.vmoat(&wa, &["up"]).ok();
    env.vmoat(&wb, &["up"]).ok();
    let na = env.vmoat(&wa, &["name"]).ok().stdout;
    let nb = env.vmoat(&wb, &["name"]).ok().stdout;
    assert_eq!(na, "wt-main\n");
    assert!(
        nb.starts_with("wt-main-") && nb.trim().len() == "wt-main-".len() + 6,
        "{nb}"
    );
    assert!(env.profile("wt-main").is_some() && env.profile(nb.trim()).is_some());
    // Stable across runs.
    assert_eq!(env.vmoat(&wb, &["name"]).ok().stdout, nb);
}

fn long_names_fit_the_socket_path_limit() {
    let env = Env::new();
    let repo = env.repo("p");
    let long = "a-really-quite-extraordinarily-long-worktree-directory-name-for-a-feature";
    let wt = env.worktree(&repo, &env.home.join("src").join(long), "long");
    let name = env.vmoat(&wt, &["name"]).ok().stdout.trim().to_string();
    let lima = std::fs::canonicalize(&env.home)
        .unwrap()
        .join(".config/colima/_lima");
    let sock = format!("{}/colima-{name}/ssh.sock.1234567890123456", lima.display());
    assert!(sock.len() < 108, "{sock} is {} long", sock.len());
    assert!(name.starts_with("wt-a-really-"), "{name}");
}

fn not_a_repository_and_bare_repository_are_clear_errors() {
    let env = Env::new();
    let plain = env.home.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let r = env.vmoat(&plain, &["name"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("is not in a git repository") && r.stderr.contains("hint:"),
        "{r:?}"
    );
    let bare = env.home.join("bare.git");
    env.git(&env.home, &["init", "-q", "--bare", bare.to_str().unwrap()]);
    let r = env.vmoat(&bare, &["status"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("bare repository") && r.stderr.contains("git worktree add"),
        "{r:?}"
    );
    assert!(env.calls().is_empty(), "no colima call for bad input");
}

fn usage_errors_exit_2_and_help_and_version_exit_0() {
    let env = Env::new();
    let repo = env.repo("p");
    assert_eq!(env.vmoat(&repo, &["frobnicate"]).code, 2);
    assert_eq!(env.vmoat(&repo, &["tunnel", "abc"]).code, 2);
    let r = env.vmoat(&repo, &["tunnel", "70000"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("port `70000` is not a number from 1 to 65535"),
        "{r:?}"
    );
    let h = env.vmoat(&repo, &["help"]).ok();
    for cmd in [
        "init",
        "provision",
        "up",
        "test",
        "tunnel",
        "untunnel",
        "status",
        "ssh",
        "down",
        "destroy",
        "name",
        "config",
        "version",
    ] {
        assert!(
            h.stdout.contains(&format!("  {cmd} ")),
            "help lists {cmd}: {}",
            h.stdout
        );
    }
    assert_eq!(
        env.vmoat(&repo, &["version"]).ok().stdout,
        format!("git-vmoat {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert!(
        env.vmoat(&repo, &["--version"])
            .ok()
            .stdout
            .contains(env!("CARGO_PKG_VERSION"))
    );
    assert!(env.calls().is_empty());
}

fn git_runs_it_as_a_subcommand() {
    let env = Env::new();
    let repo = env.repo("p");
    let out = env
        .cmd("git", &repo)
        .args(["vmoat", "name"])
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin().parent().unwrap().display(),
                std::env::var("PATH").unwrap()
            ),
        )
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "wt-p\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn colima_missing_gives_an_install_hint_and_changes_nothing() {
    let env = Env::new();
    let repo = env.repo("p");
    env.write(
        &repo.join("vmoat.toml"),
        "backend = \"colima\"\n[commands]\nup = \"true\"\n",
    );
    for args in [&["up"][..], &["provision"]] {
        let r = env.vmoat_without_colima(&repo, args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains("colima is not installed") && r.stderr.contains("hint: install"),
            "{r:?}"
        );
    }
    // `status` needs no VM: it reports the missing backend with what to install.
    let r = env.vmoat_without_colima(&repo, &["status"]).ok();
    assert!(
        r.stdout.contains("colima is not installed") && r.stdout.contains("install Colima"),
        "{r:?}"
    );
    // With no VM recorded, stopping and deleting have nothing to act on (whatever backend).
    for args in [&["down"][..], &["destroy", "-f"]] {
        let r = env.vmoat_without_colima(&repo, args).ok();
        assert!(r.stderr.contains("this worktree has no VM"), "{r:?}");
    }
    assert!(
        !env.state_dir().join("names.json").exists(),
        "no name was claimed"
    );
    assert!(
        !std::fs::read_to_string(repo.join(".git/config"))
            .unwrap()
            .contains("vmoat"),
        "the repository is as it was"
    );
}

/// A normal Linux user without Colima has no backend: what needs no VM still works for them,
/// and says so; what needs one fails with what to install.
fn commands_that_need_no_vm_work_for_a_user_with_no_backend() {
    let env = Env::new();
    let user = TempUser::create(&env).expect("a test user");
    // No subordinate ids: the rootless backend cannot run for this user either.
    user.without_subordinate_ids();
    let repo = env.repo("shop");
    env.write(&repo.join(".gitignore"), ".env\n");
    env.git(&repo, &["add", ".gitignore"]);
    env.git(&repo, &["commit", "-q", "-m", "ignore .env"]);
    env.write(&repo.join(".env"), "KEY=1\n");
    let wt = env.worktree(&repo, &env.home.join("src/shop-feature"), "feature");
    env.write(&wt.join("vmoat.toml"), "[provision]\nseed = [\".env\"]\n");
    user.own_home(&env);

    let r = user.vmoat(&env, &wt, &["status"]).ok();
    assert!(
        r.stdout
            .starts_with("vm:        wt-shop-feature (no backend available)")
            && r.stdout.contains("shop-feature\n")
            && r.stdout.contains("no VM backend available")
            && r.stdout.contains("install Colima"),
        "{r:?}"
    );
    let r = user.vmoat(&env, &wt, &["status", "--json"]).ok();
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (&j["vm"], &j["backend_available"], &j["exists"]),
        (
            &serde_json::json!("wt-shop-feature"),
            &serde_json::json!(false),
            &serde_json::json!(false)
        ),
        "{j}"
    );
    assert!(
        j["backend_error"]
            .as_str()
            .is_some_and(|e| e.contains("no VM backend available")),
        "{j}"
    );
    // The name `up` will make once Colima is installed.
    let r = user.vmoat(&env, &wt, &["name"]).ok();
    assert_eq!(r.stdout, "wt-shop-feature\n", "{r:?}");
    let r = user.vmoat(&env, &wt, &["config"]).ok();
    assert!(r.stdout.contains("provision.seed"), "{r:?}");
    let r = user.vmoat(&env, &wt, &["seed", "--dry-run"]).ok();
    assert!(r.stderr.contains("would seed .env"), "{r:?}");
    assert!(!wt.join(".env").exists(), "a dry run copies nothing");
    // What needs a VM still fails, saying what to install.
    let r = user.vmoat(&env, &wt, &["up"]);
    assert!(
        r.code == 1 && r.stderr.contains("no VM backend available"),
        "{r:?}"
    );
    // doctor gives a fix that is one: Colima, or root for netns.
    let r = user.vmoat(&env, &wt, &["doctor", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let netns = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "netns backend")
        .unwrap();
    let fix = netns["fix"].as_str().unwrap();
    assert!(
        fix.contains("install Colima") && fix.contains("root") && !fix.contains("only needed"),
        "{netns}"
    );
}

crate::tests! {
    commands_that_need_no_vm_work_for_a_user_with_no_backend: TestUser, NoColima;
    name_is_the_original_one_from_any_subdirectory;
    name_honours_git_dir_like_git_does;
    two_worktrees_named_main_in_two_repos_get_two_vms: Ssh;
    long_names_fit_the_socket_path_limit;
    not_a_repository_and_bare_repository_are_clear_errors;
    usage_errors_exit_2_and_help_and_version_exit_0;
    git_runs_it_as_a_subcommand;
    colima_missing_gives_an_install_hint_and_changes_nothing;
}
