//! Completions, man pages, README and the agent plugin: checked in, in sync with the binary,
//! usable (installing them with `setup`: setup.rs).

use std::path::Path;

use crate::common::*;

pub(crate) fn repo_file(rel: &str) -> String {
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
/// Files in subdirs are parts of a test file (its tables, its helpers), listed through it.
fn every_integration_test_is_registered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration");
    for path in rs_files(&dir) {
        let text = std::fs::read_to_string(&path).unwrap();
        let marker = concat!("#[", "test]");
        assert!(
            !text.contains(marker),
            "{}: register tests in its `crate::tests!` list instead of {marker}",
            path.display()
        );
        assert!(
            path.parent() != Some(dir.as_path())
                || text.contains("crate::tests! {")
                || text.contains("pub fn tests()"),
            "{}: has no `crate::tests!` list",
            path.display()
        );
    }
}

/// Every `.rs` file under `dir`, at any depth.
fn rs_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rs_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// No source file is over 600 lines: a longer one is split by what its parts are about.
fn no_source_file_is_over_600_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files: Vec<_> = ["src", "tests"]
        .iter()
        .flat_map(|d| rs_files(&root.join(d)))
        .collect();
    assert!(files.len() > 50, "found only {} files", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|p| {
            let n = std::fs::read_to_string(p).unwrap().lines().count();
            (n > 600).then(|| format!("{} ({n} lines)", p.strip_prefix(root).unwrap().display()))
        })
        .collect();
    assert!(long.is_empty(), "over 600 lines: {long:#?}");
}

/// The top-level module of a source file (`src/steps/up.rs` -> `steps`), `crate` for lib/main.
fn top_module(root: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(root).unwrap();
    let first = rel.iter().next().unwrap().to_string_lossy();
    let name = first.trim_end_matches(".rs");
    if name == "lib" || name == "main" {
        "crate".into()
    } else {
        name.into()
    }
}

/// What a file uses of the crate: `crate::x` and `use crate::{x, y}` (test code left out).
fn crate_uses(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = vec![];
    for part in code.split("crate::").skip(1) {
        if let Some(rest) = part.strip_prefix('{') {
            let inner = rest.split('}').next().unwrap_or("");
            for item in inner.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.push(name);
            }
        } else {
            out.push(
                part.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// Layering: no command module imports another (shared steps live below them), and no two
/// top-level modules depend on each other in a circle.
fn modules_are_layered_without_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut deps: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for p in rs_files(&root) {
        let text = std::fs::read_to_string(&p).unwrap();
        let rel = p.strip_prefix(&root).unwrap().to_path_buf();
        if rel.starts_with("commands") && rel != Path::new("commands/mod.rs") {
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            assert!(
                !code.contains("crate::commands::"),
                "{}: a command imports another command module",
                rel.display()
            );
            let parent_is_commands = rel.parent() == Some(Path::new("commands"));
            assert!(
                !(parent_is_commands && code.contains("super::")),
                "{}: a command imports another through super::",
                rel.display()
            );
            // The MCP server is a front end to the other commands, like the dispatcher: the
            // one place that may reach them (commands/mod.rs says so).
            assert!(
                rel.starts_with("commands/mcp") || !code.contains("super::super::"),
                "{}: a command imports another through super::super::",
                rel.display()
            );
        }
        let me = top_module(&root, &p);
        for u in crate_uses(&text) {
            if u != me && (root.join(format!("{u}.rs")).exists() || root.join(&u).is_dir()) {
                deps.entry(me.clone()).or_default().insert(u);
            }
        }
    }
    // A circle exists when some module reaches itself.
    for start in deps.keys() {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo: Vec<&String> = deps[start].iter().collect();
        while let Some(m) = todo.pop() {
            assert!(
                m != start,
                "modules depend on each other in a circle through `{start}`"
            );
            if seen.insert(m.clone())
                && let Some(next) = deps.get(m)
            {
                todo.extend(next.iter());
            }
        }
    }
    assert!(
        deps.len() > 15,
        "found only {} modules: {deps:?}",
        deps.len()
    );
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
        "README's \"a table of N bad inputs\" must be the count of cases() in tests/integration/bad_input/cases.rs"
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
    modules_are_layered_without_cycles;
    readme_key_table_matches_the_config_keys;
    every_integration_test_is_registered;
    no_source_file_is_over_600_lines;
    readme_states_the_bad_input_tables_real_size;
    checked_in_completions_and_man_pages_match_the_binary;
    the_agent_plugin_files_are_valid;
    doctor_reports_json_and_fails_only_on_blockers;
    doctor_fails_a_missing_configured_backend_and_counts_this_vm_once: Ssh;
}
