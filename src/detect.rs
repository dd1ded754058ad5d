//! Works out the commands that start a project's stack and run its tests when none is configured.

use std::path::Path;

/// Compose file names, in the order Docker Compose itself prefers them.
pub const COMPOSE_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// The up command and the file it was inferred from, first match wins:
/// a compose file, a Makefile `up:` target, a package.json `dev` script, a justfile `up` recipe.
pub fn up_command(root: &Path) -> Option<(String, String)> {
    if let Some(f) = COMPOSE_FILES.iter().find(|f| root.join(f).is_file()) {
        return Some(("docker compose up -d".into(), (*f).into()));
    }
    task_command(root, "up", "dev", "npm run dev")
}

/// The test command and the file it was inferred from, first match wins: a Makefile `test:`
/// target, a package.json `test` script (not npm's placeholder), a justfile `test` recipe.
pub fn test_command(root: &Path) -> Option<(String, String)> {
    task_command(root, "test", "test", "npm test")
}

/// A Makefile target or justfile recipe named `task`, else the package.json script `script`.
fn task_command(root: &Path, task: &str, script: &str, npm: &str) -> Option<(String, String)> {
    if let Ok(text) = std::fs::read_to_string(root.join("Makefile"))
        && text.lines().any(|l| is_make_target(l, task))
    {
        return Some((format!("make {task}"), "Makefile".into()));
    }
    if let Ok(text) = std::fs::read_to_string(root.join("package.json"))
        && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
        && json
            .pointer(&format!("/scripts/{script}"))
            .and_then(|v| v.as_str())
            // `npm init` writes a test script that only fails: not a test command.
            .is_some_and(|s| !s.contains("no test specified"))
    {
        return Some((npm.into(), "package.json".into()));
    }
    for name in ["justfile", "Justfile", ".justfile"] {
        if let Ok(text) = std::fs::read_to_string(root.join(name))
            && text.lines().any(|l| is_just_recipe(l, task))
        {
            return Some((format!("just {task}"), name.into()));
        }
    }
    None
}

/// A Makefile rule for `task`: `test:`, `test: deps`, `test::` (not the assignment `test := …`).
fn is_make_target(line: &str, task: &str) -> bool {
    line.strip_prefix(task)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|rest| !rest.starts_with('=') && !rest.starts_with(":="))
}

/// A justfile recipe header named `task`: `up:`, `@up:`, `up arg:` (not `up := …`).
fn is_just_recipe(line: &str, task: &str) -> bool {
    let l = line.strip_prefix('@').unwrap_or(line);
    let Some(rest) = l.strip_prefix(task) else {
        return false;
    };
    let rest = rest.trim_start();
    if rest.starts_with(":=") {
        return false;
    }
    rest.starts_with(':')
        || (l.starts_with(&format!("{task} ")) && rest.contains(':') && !rest.contains(":="))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(files: &[(&str, &str)]) -> Option<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        up_command(dir.path())
    }

    #[test]
    fn every_compose_name_is_found() {
        for f in COMPOSE_FILES {
            assert_eq!(
                detect(&[(f, "services: {}")]).unwrap().0,
                "docker compose up -d",
                "{f}"
            );
        }
    }

    #[test]
    fn first_match_wins() {
        let got = detect(&[
            ("Makefile", "up:\n\techo\n"),
            ("compose.yaml", ""),
            ("package.json", r#"{"scripts":{"dev":"vite"}}"#),
        ]);
        assert_eq!(got.unwrap().1, "compose.yaml");
        let got = detect(&[
            ("Makefile", "up:\n"),
            ("package.json", r#"{"scripts":{"dev":"x"}}"#),
        ]);
        assert_eq!(got.unwrap().0, "make up");
    }

    #[test]
    fn makefile_needs_an_up_target() {
        assert_eq!(
            detect(&[("Makefile", "build:\n\tupx\n setup: up:\n")]),
            None
        );
    }

    #[test]
    fn package_json_needs_a_dev_script() {
        assert_eq!(
            detect(&[("package.json", r#"{"scripts":{"start":"node ."}}"#)]),
            None
        );
        assert_eq!(
            detect(&[("package.json", r#"{"dev": "not a script"}"#)]),
            None
        );
        assert_eq!(detect(&[("package.json", "not json")]), None);
        assert_eq!(
            detect(&[("package.json", r#"{"scripts":{"dev":"vite"}}"#)])
                .unwrap()
                .0,
            "npm run dev"
        );
    }

    #[test]
    fn justfile_up_recipes() {
        for text in [
            "up:\n  docker compose up -d\n",
            "@up:\n  x\n",
            "up target='x':\n  y\n",
        ] {
            assert_eq!(
                detect(&[("justfile", text)]).unwrap().0,
                "just up",
                "{text:?}"
            );
        }
        for text in ["up := 'x'\n", "upgrade:\n  x\n", "build:\n  up\n"] {
            assert_eq!(detect(&[("justfile", text)]), None, "{text:?}");
        }
    }

    #[test]
    fn nothing_to_detect() {
        assert_eq!(detect(&[("README.md", "hi")]), None);
        assert_eq!(detect_test(&[("README.md", "hi")]), None);
    }

    fn detect_test(files: &[(&str, &str)]) -> Option<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        test_command(dir.path())
    }

    #[test]
    fn test_command_from_makefile_package_json_and_justfile() {
        let got = detect_test(&[("Makefile", "up:\n\tx\ntest: build\n\tpytest\n")]).unwrap();
        assert_eq!(got, ("make test".into(), "Makefile".into()));
        assert_eq!(
            detect_test(&[("Makefile", "test::\n\tx\n")]).unwrap().0,
            "make test"
        );
        for text in [
            "testing:\n",
            "test := 1\n",
            "test:=1\n",
            "test::=1\n",
            "\ttest:\n",
        ] {
            assert_eq!(detect_test(&[("Makefile", text)]), None, "{text:?}");
        }
        assert_eq!(
            detect_test(&[("package.json", r#"{"scripts":{"test":"vitest run"}}"#)]).unwrap(),
            ("npm test".into(), "package.json".into())
        );
        // npm init's placeholder only fails; a `dev` script is no test.
        for json in [
            r#"{"scripts":{"test":"echo \"Error: no test specified\" && exit 1"}}"#,
            r#"{"scripts":{"dev":"vite"}}"#,
            r#"{"scripts":{"test":1}}"#,
        ] {
            assert_eq!(detect_test(&[("package.json", json)]), None, "{json}");
        }
        for text in [
            "test:\n  cargo test\n",
            "@test:\n  x\n",
            "test *args:\n  x\n",
        ] {
            assert_eq!(
                detect_test(&[("Justfile", text)]).unwrap(),
                ("just test".into(), "Justfile".into()),
                "{text:?}"
            );
        }
        for text in ["test := 'x'\n", "tests:\n  x\n", "up:\n  test\n"] {
            assert_eq!(detect_test(&[("justfile", text)]), None, "{text:?}");
        }
        // First match wins, in the same order as for `up`.
        let got = detect_test(&[
            ("justfile", "test:\n  x\n"),
            ("package.json", r#"{"scripts":{"test":"jest"}}"#),
            ("Makefile", "test:\n\tx\n"),
        ]);
        assert_eq!(got.unwrap().0, "make test");
    }
}
