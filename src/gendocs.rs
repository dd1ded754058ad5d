//! Completion scripts and man pages generated from the clap definition: printed by
//! `completions`, written by the hidden `generate` (checked in under `completions/` and `man/`;
//! a test keeps them in sync) and installed by `setup`.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, Shell};

/// git's bash completion calls `_git_vmoat` for `git vmoat <TAB>`: hand it to clap's function
/// with the words shifted so they read `git-vmoat …`.
const BASH_GIT_ADAPTER: &str = r#"
# `git vmoat <TAB>`: git's completion calls _git_<subcommand>.
_git_vmoat() {
    local COMP_WORDS=(git-vmoat "${words[@]:2}")
    local COMP_CWORD=$((cword - 1))
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    _git__vmoat git-vmoat "$cur" "$prev"
}
"#;

/// fish: complete `git vmoat …` with git-vmoat's own completions.
const FISH_GIT_ADAPTER: &str = r#"
# `git vmoat <TAB>`: complete with git-vmoat's own completions.
function __git_vmoat_complete
    set -l tokens (commandline -opc)
    set -e tokens[1..2]
    complete -C "git-vmoat $tokens "(commandline -ct)
end
complete -c git -n '__fish_seen_subcommand_from vmoat' -f -a '(__git_vmoat_complete)'
"#;

/// The completion script for one shell.
pub fn completion(shell: Shell) -> String {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    let (sh, adapter) = match shell {
        Shell::Bash => (clap_complete::Shell::Bash, BASH_GIT_ADAPTER),
        // zsh's _git calls `_git-vmoat`, which is the function this file defines.
        Shell::Zsh => (clap_complete::Shell::Zsh, ""),
        Shell::Fish => (clap_complete::Shell::Fish, FISH_GIT_ADAPTER),
    };
    clap_complete::generate(sh, &mut cmd, "git-vmoat", &mut buf);
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    // clap_complete offers hidden (internal) subcommands: drop them from every script.
    let hidden: Vec<String> = cmd
        .get_subcommands()
        .filter(|c| c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect();
    match shell {
        Shell::Bash => {
            // It also names the per-command cases inconsistently for a binary with a dash in
            // its name (`git__subcmd__vmoat…` vs `git__vmoat…`): nothing past the first word
            // would complete.
            text = text.replace("git__subcmd__vmoat", "git__vmoat");
            for h in &hidden {
                text = text
                    .replace(&format!(" {h} "), " ")
                    .replace(&format!(" {h}\""), "\"");
            }
        }
        Shell::Zsh => {
            text = drop_lines(&text, |l| {
                hidden
                    .iter()
                    .any(|h| l.trim_start().starts_with(&format!("'{h}:")))
            });
        }
        Shell::Fish => {
            text = drop_lines(&text, |l| {
                hidden.iter().any(|h| l.contains(&format!("-a \"{h}\"")))
            });
        }
    }
    text.push_str(adapter);
    text
}

fn drop_lines(text: &str, drop: impl Fn(&str) -> bool) -> String {
    text.lines()
        .filter(|l| !drop(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The completion files as installed: (file name, content).
pub fn completion_files() -> Vec<(&'static str, String)> {
    vec![
        ("git-vmoat.bash", completion(Shell::Bash)),
        ("_git-vmoat", completion(Shell::Zsh)),
        ("git-vmoat.fish", completion(Shell::Fish)),
    ]
}

/// Man pages: `git-vmoat.1` and one per subcommand: (file name, content).
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    let cmd = Cli::command();
    let mut out = vec![];
    let mut page = |c: clap::Command, name: String| -> Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).render(&mut buf)?;
        out.push((format!("{name}.1"), buf));
        Ok(())
    };
    page(cmd.clone(), "git-vmoat".into())?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("git-vmoat-{}", sub.get_name());
        page(sub.clone().name(name.clone()), name)?;
    }
    Ok(out)
}
