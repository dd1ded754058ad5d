//! Works out the command that starts a project's stack when none is configured.

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
    if let Ok(text) = std::fs::read_to_string(root.join("Makefile"))
        && text.lines().any(|l| l.starts_with("up:"))
    {
        return Some(("make up".into(), "Makefile".into()));
    }
    if let Ok(text) = std::fs::read_to_string(root.join("package.json"))
        && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
        && json.pointer("/scripts/dev").is_some_and(|v| v.is_string())
    {
        return Some(("npm run dev".into(), "package.json".into()));
    }
    for name in ["justfile", "Justfile", ".justfile"] {
        if let Ok(text) = std::fs::read_to_string(root.join(name))
            && text.lines().any(is_just_up_recipe)
        {
            return Some(("just up".into(), name.into()));
        }
    }
    None
}

/// A justfile recipe header named `up`: `up:`, `@up:`, `up arg:` (not `up := …`).
fn is_just_up_recipe(line: &str) -> bool {
    let l = line.strip_prefix('@').unwrap_or(line);
    let Some(rest) = l.strip_prefix("up") else {
        return false;
    };
    let rest = rest.trim_start();
    if rest.starts_with(":=") {
        return false;
    }
    rest.starts_with(':') || (line.starts_with("up ") && rest.contains(':') && !rest.contains(":="))
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
    }
}
