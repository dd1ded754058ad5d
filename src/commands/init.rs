//! `init`: writes a commented vmoat.toml, or converts a legacy vmoat.conf into one.

use std::io::Write;

use anyhow::{Context, Result};

use crate::cli::InitArgs;
use crate::config::{self, KEYS, TOML_FILE};
use crate::error::hint;
use crate::output;

/// The commented template, with the detected up and test commands filled in.
pub fn template(
    detected_up: Option<(String, String)>,
    detected_test: Option<(String, String)>,
) -> String {
    let mut out = String::from(
        "# git-vmoat: this project's VM and stack. `git vmoat config` shows the effective values.\n\
         # Personal overrides go in vmoat.local.toml (keep it out of git).\n",
    );
    let mut section = "";
    for d in KEYS {
        let (sec, leaf) = d.key.split_once('.').unwrap_or(("", d.key));
        if sec != section && !sec.is_empty() {
            out.push_str(&format!("\n[{sec}]\n"));
            section = sec;
        }
        out.push_str(&format!("# {}\n", d.doc));
        let detected = match d.key {
            "commands.up" => &detected_up,
            "commands.test" => &detected_test,
            _ => &None,
        };
        match detected {
            Some((cmd, file)) => out.push_str(&format!(
                "{leaf} = {}  # detected from {file}\n",
                toml::Value::String(cmd.clone())
            )),
            None => out.push_str(&format!("# {leaf} = {}\n", d.example)),
        }
    }
    out
}

pub fn run(args: &InitArgs) -> Result<()> {
    let wt = crate::repo::discover(&std::env::current_dir()?)?;
    let path = wt.root.join(TOML_FILE);
    if path.exists() {
        return Err(hint(
            format!("{} already exists", path.display()),
            "edit it, or remove it first to start over",
        ));
    }
    let text = if args.from_conf {
        if !wt.root.join("vmoat.conf").is_file() {
            return Err(hint(
                format!("there is no vmoat.conf in {}", wt.root.display()),
                "run `git vmoat init` without --from-conf to write a fresh vmoat.toml",
            ));
        }
        let state = crate::state::State::open()?;
        let values = config::legacy_values(&wt.root, &state)?;
        format!(
            "# git-vmoat: converted from vmoat.conf. `git vmoat config` shows the effective values.\n{}",
            config::render_toml(&values)
        )
    } else {
        if wt.root.join("vmoat.conf").is_file() {
            return Err(hint(
                "this worktree has a legacy vmoat.conf",
                "convert it with `git vmoat init --from-conf` (after `git vmoat trust`)",
            ));
        }
        template(
            crate::detect::up_command(&wt.root),
            crate::detect::test_command(&wt.root),
        )
    };
    // create_new: never overwrite, even if the file appeared since the check above.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    output::info(format!("wrote {}", path.display()));
    // Worktrees are checked out from commits: an uncommitted vmoat.toml stays in this one.
    output::info(format!(
        "commit it so that new worktrees have it: `{}git add {TOML_FILE} && git commit -m 'Add {TOML_FILE}'`",
        crate::steps::committed::cd_prefix(&wt.root)
    ));
    if args.from_conf {
        output::info(
            "vmoat.toml now takes precedence; remove vmoat.conf once you are happy with it",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_a_valid_config_with_the_detected_up() {
        let dir = tempfile::tempdir().unwrap();
        let text = template(
            Some(("make up".into(), "Makefile".into())),
            Some(("npm test".into(), "package.json".into())),
        );
        std::fs::write(dir.path().join(TOML_FILE), &text).unwrap();
        let st = crate::state::State::at(dir.path().join("st"));
        let cfg = config::Config::load(dir.path(), &st).unwrap();
        assert_eq!(cfg.up.as_deref(), Some("make up"));
        assert_eq!(cfg.test.as_deref(), Some("npm test"));
        // Every example, uncommented, must parse too.
        let all: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains(" = "))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let all = all
            .replace("type = \"vz\"", "")
            .replace("mount-type = \"virtiofs\"", "")
            // A committed mount must hold the worktree: this temp dir is outside the home.
            .replace("mount = \"~\"", "");
        std::fs::write(dir.path().join(TOML_FILE), all).unwrap();
        let cfg = config::Config::load(dir.path(), &st).unwrap();
        assert_eq!(cfg.ports, vec![8080]);
    }
}
