//! Completions, man pages and the agent plugin: checked in, in sync with the binary, usable.

use std::path::Path;

use crate::common::*;

fn repo_file(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn checked_in_completions_and_man_pages_match_the_binary() {
    let env = Env::new();
    let out = env.tmp.path().join("gen");
    for kind in ["completions", "man"] {
        env.vmoat(
            &env.home,
            &["generate", kind, "--out", out.join(kind).to_str().unwrap()],
        )
        .ok();
        let mut generated: Vec<_> = std::fs::read_dir(out.join(kind))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let mut checked_in: Vec<_> =
            std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(kind))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
        generated.sort();
        checked_in.sort();
        assert_eq!(
            generated, checked_in,
            "{kind}/ differs: run `git-vmoat generate {kind} --out {kind}`"
        );
        for name in generated {
            let fresh = std::fs::read(out.join(kind).join(&name)).unwrap();
            let kept = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(kind).join(&name))
                .unwrap();
            assert!(
                fresh == kept,
                "{kind}/{} is stale: run `git-vmoat generate {kind} --out {kind}`",
                name.to_string_lossy()
            );
        }
    }
    // `completions <shell>` prints the same scripts as the installed files.
    for (shell, file) in [
        ("bash", "git-vmoat.bash"),
        ("zsh", "_git-vmoat"),
        ("fish", "git-vmoat.fish"),
    ] {
        let printed = env.vmoat(&env.home, &["completions", shell]).ok().stdout;
        assert!(
            printed == repo_file(&format!("completions/{file}")),
            "completions {shell} differs from completions/{file}"
        );
    }
    let main = repo_file("man/git-vmoat.1");
    assert!(
        main.contains(".TH git-vmoat 1"),
        "{}",
        &main[..200.min(main.len())]
    );
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("man/git-vmoat-tunnel.1")
            .exists()
    );
}

/// A user's machine in the test's HOME: `git-vmoat` installed in `~/.cargo/bin` (a link to the
/// built binary, as `cargo install` would put it there) and a PATH of that dir plus the system
/// dirs holding git, man and the shells, nothing else (no MANPATH: man derives its search
/// path from PATH, as on the user's machine).
struct Installed {
    env: Env,
    path: String,
}

impl Installed {
    fn new() -> Self {
        let env = Env::new();
        let cargo_bin = env.home.join(".cargo/bin");
        std::fs::create_dir_all(&cargo_bin).unwrap();
        std::os::unix::fs::symlink(bin(), cargo_bin.join("git-vmoat")).unwrap();
        let mut dirs = vec![cargo_bin];
        for tool in ["git", "man", "bash", "zsh", "fish"] {
            if let Some(d) = which(tool).and_then(|p| p.parent().map(Path::to_path_buf))
                && !dirs.contains(&d)
            {
                dirs.push(d);
            }
        }
        for d in ["/usr/bin", "/bin"] {
            if !dirs.contains(&d.into()) {
                dirs.push(d.into());
            }
        }
        let path = std::env::join_paths(dirs).unwrap().into_string().unwrap();
        Self { env, path }
    }

    fn cmd(&self, program: &str) -> std::process::Command {
        let mut c = self.env.cmd(program, &self.env.home);
        c.env("PATH", &self.path)
            .env("MANPAGER", "cat")
            .env("PAGER", "cat");
        c
    }

    fn run(&self, program: &str, args: &[&str]) -> Run {
        let out = self.cmd(program).args(args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn setup(&self, args: &[&str]) -> Run {
        self.run("git", &[&["vmoat", "setup"][..], args].concat())
    }
}

/// How many man pages the binary has (all checked in under man/).
fn man_page_count() -> usize {
    std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("man"))
        .unwrap()
        .count()
}

fn setup_installs_man_pages_that_git_help_finds_without_manpath() {
    let u = Installed::new();
    let help = || u.run("git", &["help", "vmoat"]);
    let before = help();
    assert!(before.code != 0, "no page before setup: {before:?}");

    let r = u.setup(&["--shell", "bash"]).ok();
    let man1 = u.env.home.join(".cargo/share/man/man1");
    assert!(
        r.stderr.contains(&format!(
            "installed {} man pages in {}",
            man_page_count(),
            man1.display()
        )),
        "{r:?}"
    );
    let r = help();
    assert!(
        r.code == 0 && r.stdout.contains("git-vmoat") && r.stdout.contains("tunnel"),
        "{r:?}"
    );
    // git turns `git vmoat --help` into the same page; subcommands have their own.
    let r = u.run("git", &["vmoat", "--help"]);
    assert!(r.code == 0 && r.stdout.contains("git-vmoat"), "{r:?}");
    let r = u.run("man", &["git-vmoat-tunnel"]);
    assert!(
        r.code == 0 && r.stdout.contains("git-vmoat-tunnel"),
        "{r:?}"
    );

    // Again: nothing to do, nothing rewritten.
    let page = man1.join("git-vmoat.1");
    let mtime = std::fs::metadata(&page).unwrap().modified().unwrap();
    let r = u.setup(&["--shell", "bash"]).ok();
    assert!(
        r.stderr
            .contains(&format!("up to date: {} man pages", man_page_count())),
        "{r:?}"
    );
    assert_eq!(std::fs::metadata(&page).unwrap().modified().unwrap(), mtime);

    // A page of an older version it installed goes; a page it did not write stays.
    let old = std::fs::read_to_string(&page).unwrap();
    std::fs::write(man1.join("git-vmoat-gone.1"), &old).unwrap();
    std::fs::write(man1.join("git-vmoat-mine.1"), ".TH mine 1\n").unwrap();
    let r = u.setup(&["--shell", "bash"]).ok();
    assert!(r.stderr.contains("removed the old man page"), "{r:?}");
    assert!(!man1.join("git-vmoat-gone.1").exists());
    assert!(man1.join("git-vmoat-mine.1").exists());
}

fn setup_refuses_to_replace_a_file_it_did_not_write_and_dry_run_writes_nothing() {
    let u = Installed::new();
    let r = u.setup(&["--shell", "zsh", "--dry-run"]).ok();
    assert!(
        r.stderr.contains("would install zsh completion")
            && r.stdout.contains("fpath=(~/.zfunc $fpath)"),
        "{r:?}"
    );
    assert!(!u.env.home.join(".zfunc").exists());
    assert!(!u.env.home.join(".cargo/share").exists());

    let mine = u.env.home.join(".config/fish/conf.d/git-vmoat.fish");
    u.env.write(&mine, "# my own\n");
    let r = u.setup(&["--shell", "fish"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("not written by `git vmoat setup`")
            && r.stderr.contains(&mine.display().to_string())
            && r.stderr
                .contains("hint: setup never replaces a file of yours"),
        "{r:?}"
    );
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "# my own\n");
    assert!(
        !u.env.home.join(".cargo/share").exists(),
        "nothing is installed when one file is refused"
    );

    // No shell named and none in $SHELL: it asks.
    let r = u.setup(&[]);
    assert!(r.code == 1 && r.stderr.contains("--shell bash"), "{r:?}");
    // $SHELL names it.
    let r = u
        .cmd("git")
        .args(["vmoat", "setup", "--dry-run"])
        .env("SHELL", "/usr/bin/zsh")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("would install zsh completion"),
        "{r:?}"
    );
}

/// Completes `line` in a real bash with git's own completion loaded, as a user's TAB would.
fn bash_complete(env: &Env, line: &str) -> Option<String> {
    let git_completion = [
        "/usr/share/bash-completion/completions/git",
        "/etc/bash_completion.d/git",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())?;
    let script = format!(
        "source {git_completion}; source {}; COMP_LINE=\"$1\"; COMP_POINT=${{#COMP_LINE}}; read -ra COMP_WORDS <<< \"$COMP_LINE\"; \
         [[ \"$COMP_LINE\" == *' ' ]] && COMP_WORDS+=(''); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); \
         if [[ ${{COMP_WORDS[0]}} == git ]]; then __git_wrap__git_main; else _git__vmoat git-vmoat \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; fi; echo \"${{COMPREPLY[*]}}\"",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("completions/git-vmoat.bash")
            .display()
    );
    let out = env
        .cmd("bash", &env.home)
        .args(["-c", &script, "_", line])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn bash_completes_both_git_vmoat_and_git_space_vmoat() {
    let env = Env::new();
    let got = bash_complete(&env, "git vmoat st").expect("git's bash completion");
    assert_eq!(got, "status");
    assert_eq!(bash_complete(&env, "git-vmoat st").unwrap(), "status");
    assert_eq!(
        bash_complete(&env, "git vmoat --backend ").unwrap(),
        "auto colima netns"
    );
    assert_eq!(
        bash_complete(&env, "git-vmoat completions ")
            .unwrap()
            .split_whitespace()
            .filter(|w| !w.starts_with('-'))
            .collect::<Vec<_>>(),
        vec!["bash", "zsh", "fish"]
    );
    let top = bash_complete(&env, "git vmoat ").unwrap();
    assert!(top.contains("tunnel") && top.contains("hooks"), "{top}");
    assert!(
        !top.contains("__forward") && !top.contains("__job") && !top.contains("generate"),
        "internal commands are not offered: {top}"
    );
}

/// Completes `line` as an interactive bash would with `rc` as its ~/.bashrc: nothing of
/// git-vmoat's is sourced by hand; bash-completion loads git's and git-vmoat's files on demand
/// from where they are installed.
fn bash_complete_installed(u: &Installed, rc: &str, line: &str) -> String {
    let script = format!(
        "{rc}\nCOMP_LINE=\"$1\"; COMP_POINT=${{#COMP_LINE}}; read -ra COMP_WORDS <<< \"$COMP_LINE\"; \
         [[ \"$COMP_LINE\" == *' ' ]] && COMP_WORDS+=(''); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); \
         cmd=${{COMP_WORDS[0]}}; complete -p \"$cmd\" >/dev/null 2>&1 || _completion_loader \"$cmd\"; \
         f=$(complete -p \"$cmd\" 2>/dev/null | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p'); \
         [ -n \"$f\" ] && \"$f\" \"$cmd\" \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[*]}}\""
    );
    let r = u.run("bash", &["--norc", "--noprofile", "-c", &script, "_", line]);
    r.stdout.trim().to_string()
}

fn setup_makes_bash_complete_git_vmoat_from_its_own_dirs() {
    let framework = "/usr/share/bash-completion/bash_completion";
    let u = Installed::new();
    let rc = format!(". {framework}");
    assert_eq!(
        bash_complete_installed(&u, &rc, "git vmoat st"),
        "",
        "nothing completes before setup"
    );
    let r = u.setup(&["--shell", "bash"]).ok();
    assert!(
        r.stderr.contains(&format!(
            "installed bash completion {}",
            u.env
                .home
                .join(".local/share/bash-completion/completions/git-vmoat")
                .display()
        )),
        "{r:?}"
    );
    // No ~/.bashrc here: setup prints the line that loads bash-completion, which is all the rc
    // this bash gets.
    assert!(r.stdout.contains(framework), "{r:?}");
    let rc = r.stdout;
    assert_eq!(bash_complete_installed(&u, &rc, "git vmoat st"), "status");
    assert_eq!(bash_complete_installed(&u, &rc, "git-vmoat st"), "status");
    assert_eq!(
        bash_complete_installed(&u, &rc, "git vmoat --backend "),
        "auto colima netns"
    );
    // With that line in ~/.bashrc, there is nothing left to add.
    u.env.write(&u.env.home.join(".bashrc"), &rc);
    let r = u.setup(&["--shell", "bash"]).ok();
    assert_eq!(r.stdout, "", "{r:?}");
    assert!(r.stderr.contains("nothing to add to ~/.bashrc"), "{r:?}");
}

fn setup_puts_the_zsh_completion_on_fpath_before_compinit() {
    let u = Installed::new();
    let r = u.setup(&["--shell", "zsh"]).ok();
    assert_eq!(
        r.stdout, "fpath=(~/.zfunc $fpath)\nautoload -Uz compinit && compinit\n",
        "{r:?}"
    );
    // zsh's _git completes `git vmoat` with the function `_git-vmoat` when it is defined: the
    // printed lines make compinit register it from the installed file.
    let script = format!(
        "{}\nprint -r -- $_comps[git-vmoat]; zmodload zsh/parameter; autoload +X _git-vmoat; print -r -- $functions_source[_git-vmoat]",
        r.stdout
    );
    let z = u.run("zsh", &["-f", "-c", &script]);
    assert_eq!(
        z.stdout,
        format!(
            "_git-vmoat\n{}\n",
            u.env.home.join(".zfunc/_git-vmoat").display()
        ),
        "{z:?}"
    );
    u.env.write(&u.env.home.join(".zshrc"), &r.stdout);
    let r = u.setup(&["--shell", "zsh"]).ok();
    assert_eq!(r.stdout, "", "{r:?}");
}

fn setup_makes_fish_complete_git_vmoat() {
    let u = Installed::new();
    let complete = |line: &str| {
        u.run("fish", &["-c", &format!("complete -C '{line}'")])
            .stdout
    };
    assert!(!complete("git vmoat hoo").starts_with("hooks\t"));
    let r = u.setup(&["--shell", "fish"]).ok();
    assert_eq!(r.stdout, "", "fish needs no rc line: {r:?}");
    assert!(
        complete("git vmoat hoo").starts_with("hooks\t"),
        "{}",
        complete("git vmoat hoo")
    );
    assert!(complete("git-vmoat hoo").starts_with("hooks\t"));
}

fn fish_and_zsh_scripts_hook_into_git() {
    let fish = repo_file("completions/git-vmoat.fish");
    assert!(fish.contains("complete -c git -n '__fish_seen_subcommand_from vmoat'"));
    let zsh = repo_file("completions/_git-vmoat");
    assert!(
        zsh.starts_with("#compdef git-vmoat"),
        "zsh's _git calls _git-vmoat for `git vmoat`"
    );
    {
        let env = Env::new();
        let script = format!(
            "source {}; complete -C 'git vmoat hoo'",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("completions/git-vmoat.fish")
                .display()
        );
        let out = env
            .cmd("fish", &env.home)
            .args(["--no-config", "-c", &script])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("hooks\t"),
            "{out:?}"
        );
    }
}

fn the_agent_plugin_files_are_valid() {
    for f in [
        ".claude-plugin/plugin.json",
        ".claude-plugin/marketplace.json",
    ] {
        let v: serde_json::Value =
            serde_json::from_str(&repo_file(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(v["name"].is_string(), "{f} has a name");
    }
    let market: serde_json::Value =
        serde_json::from_str(&repo_file(".claude-plugin/marketplace.json")).unwrap();
    let plugins = market["plugins"].as_array().unwrap();
    assert!(
        plugins
            .iter()
            .any(|p| p["name"] == "git-vmoat" && p["source"].is_string())
    );
    let skill = repo_file("skills/vmoat/SKILL.md");
    assert!(
        skill.starts_with("---\nname: vmoat\ndescription: "),
        "SKILL.md front matter"
    );
    for needle in [
        "git vmoat up",
        "git vmoat status --json",
        "git vmoat test",
        "git vmoat tunnel",
        "vmoat.toml",
    ] {
        assert!(skill.contains(needle), "SKILL.md mentions {needle}");
    }
    let cmd = repo_file("commands/vmoat.md");
    assert!(
        cmd.starts_with("---\ndescription: "),
        "commands/vmoat.md front matter"
    );
}

fn doctor_reports_json_and_fails_only_on_blockers() {
    let env = Env::new();
    let repo = env.repo("proj");
    let r = env.vmoat(&repo, &["doctor", "--json"]);
    let j: serde_json::Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    assert_eq!(j["version"], 1);
    let checks = j["checks"].as_array().unwrap();
    for name in [
        "git",
        "colima",
        "netns backend",
        "config",
        "hooks",
        "watcher",
    ] {
        assert!(
            checks.iter().any(|c| c["name"] == name),
            "doctor checks {name}: {j}"
        );
    }
    for c in checks {
        assert!(["ok", "warn", "fail"].contains(&c["status"].as_str().unwrap()));
        if c["status"] != "ok" {
            assert!(
                !c["fix"].as_str().unwrap().is_empty(),
                "every gap says how to fix it: {c}"
            );
        }
    }
    let blocked = checks.iter().any(|c| c["status"] == "fail");
    assert_eq!(j["ok"], !blocked);
    assert_eq!(r.code, if blocked { 1 } else { 0 }, "{r:?}");

    // A broken config blocks `up`: doctor says so and exits 1.
    env.write(&repo.join("vmoat.toml"), "[vm]\ncpu = 2\n");
    let r = env.vmoat(&repo, &["doctor"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("FAIL  config") && r.stdout.contains("vm.cpus"),
        "{r:?}"
    );
}

/// Every integration test is registered with the harness: a libtest test attribute there would
/// compile to nothing (the harness does not use libtest) and the test would silently never run.
fn every_integration_test_is_registered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration");
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap();
        let marker = concat!("#[", "test]");
        assert!(
            !text.contains(marker),
            "{}: register tests in its `crate::tests!` list instead of {marker}",
            e.path().display()
        );
        assert!(
            text.contains("crate::tests! {") || text.contains("pub fn tests()"),
            "{}: has no `crate::tests!` list",
            e.path().display()
        );
    }
}

fn readme_states_the_bad_input_tables_real_size() {
    let readme = repo_file("README.md");
    let stated: Vec<usize> = readme
        .split("a table of ")
        .skip(1)
        .filter_map(|rest| rest.split_once(" bad inputs"))
        .filter_map(|(n, _)| n.parse().ok())
        .collect();
    assert_eq!(
        stated,
        vec![super::bad_input::cases_len()],
        "README's \"a table of N bad inputs\" must be the count of cases() in tests/integration/bad_input.rs"
    );
}

/// README's key table lists exactly the keys git-vmoat knows, each with the legacy name and
/// documented default that `config --json` gives (both from the key table in
/// src/config/keys.rs), so a key added, renamed or given a new default cannot go undocumented.
fn readme_key_table_matches_the_config_keys() {
    let env = Env::new();
    let repo = env.repo("proj");
    let r = env.vmoat(&repo, &["config", "--json"]).ok();
    let j: serde_json::Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    let keys = j["values"].as_object().unwrap();
    let readme = repo_file("README.md");
    // key -> (legacy cell, default cell), from the rows after the table's header and rule.
    let rows: Vec<(String, String, String)> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| TOML key |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            // "`warm.enabled` (or `warm = false`)": the key is the first code span.
            let key = cells[0].split('`').nth(1).unwrap_or(cells[0]);
            (
                key.to_string(),
                cells[1].to_string(),
                cells[2].replace('`', ""),
            )
        })
        .collect();
    assert!(!rows.is_empty(), "README has no `| TOML key |` table");
    for (key, v) in keys {
        let found: Vec<_> = rows.iter().filter(|(k, _, _)| k == key).collect();
        assert_eq!(found.len(), 1, "README's key table must list `{key}` once");
        let (_, legacy, default) = found[0];
        assert_eq!(
            *legacy,
            format!("`{}`", v["legacy"].as_str().unwrap()),
            "README: legacy name of `{key}`"
        );
        assert_eq!(
            default,
            v["default"].as_str().unwrap(),
            "README: default of `{key}`"
        );
    }
    let unknown: Vec<_> = rows
        .iter()
        .filter(|(k, _, _)| !keys.contains_key(k))
        .map(|(k, _, _)| k)
        .collect();
    assert!(
        unknown.is_empty(),
        "README lists keys that do not exist: {unknown:?}"
    );
}

fn doctor_json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

fn doctor_check<'a>(j: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {j}"))
}

fn doctor_fails_a_missing_configured_backend_and_counts_this_vm_once() {
    let env = Env::new();
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    let host_cpus = std::thread::available_parallelism().unwrap().get();
    env.write(
        &wt.join("vmoat.toml"),
        &format!(
            "backend = \"colima\"\n[commands]\nup = \"true\"\n[vm]\ncpus = {}\n",
            host_cpus + 1
        ),
    );
    // `up` would fail on the missing Colima: so must doctor.
    let r = env.vmoat_without_colima(&wt, &["doctor", "--json"]);
    let j = doctor_json(&r);
    let backend = doctor_check(&j, "backend");
    assert_eq!(backend["status"], "fail", "{j}");
    assert!(
        backend["detail"]
            .as_str()
            .unwrap()
            .contains("colima is not installed")
            && !backend["fix"].as_str().unwrap().is_empty(),
        "{backend}"
    );
    assert_eq!((r.code, &j["ok"]), (1, &serde_json::json!(false)), "{r:?}");
    // More CPUs than the host has: a warning with the number to use.
    let cpus = doctor_check(&j, "cpus");
    assert_eq!(cpus["status"], "warn", "{cpus}");
    assert!(
        cpus["fix"]
            .as_str()
            .unwrap()
            .contains(&format!("vm.cpus = {host_cpus}")),
        "{cpus}"
    );
    // On netns the memory figure is a cap, and the line says so.
    let j = doctor_json(&env.vmoat(&wt, &["--backend", "netns", "doctor", "--json"]));
    let memory = doctor_check(&j, "memory")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        memory.contains("cap") && memory.contains("nothing is reserved"),
        "{memory}"
    );

    // With this worktree's VM made, it is counted once, not as "1 known + this one".
    env.vmoat(&wt, &["up"]).ok();
    let j = doctor_json(&env.vmoat(&wt, &["doctor", "--json"]));
    let memory = doctor_check(&j, "memory")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        memory.starts_with("0 other VM(s) known + this worktree's"),
        "{memory}"
    );
    assert_eq!(doctor_check(&j, "backend")["status"], "ok", "{j}");
}

crate::tests! {
    readme_key_table_matches_the_config_keys;
    every_integration_test_is_registered;
    readme_states_the_bad_input_tables_real_size;
    checked_in_completions_and_man_pages_match_the_binary;
    setup_installs_man_pages_that_git_help_finds_without_manpath: Man;
    setup_refuses_to_replace_a_file_it_did_not_write_and_dry_run_writes_nothing;
    bash_completes_both_git_vmoat_and_git_space_vmoat: GitBashCompletion;
    setup_makes_bash_complete_git_vmoat_from_its_own_dirs: BashCompletion, GitBashCompletion;
    setup_puts_the_zsh_completion_on_fpath_before_compinit: Zsh;
    setup_makes_fish_complete_git_vmoat: Fish;
    fish_and_zsh_scripts_hook_into_git: Fish;
    the_agent_plugin_files_are_valid;
    doctor_reports_json_and_fails_only_on_blockers;
    doctor_fails_a_missing_configured_backend_and_counts_this_vm_once: Ssh;
}
