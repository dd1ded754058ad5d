//! `setup` for real: the completions and man pages it installs are found by git, man, bash,
//! zsh and fish on a user's machine, and a file it did not write is never replaced.

use std::path::Path;

use super::docs::repo_file;
use crate::common::*;

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
        "auto colima netns rootless"
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
        "auto colima netns rootless"
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

crate::tests! {
    setup_installs_man_pages_that_git_help_finds_without_manpath: Man;
    setup_refuses_to_replace_a_file_it_did_not_write_and_dry_run_writes_nothing;
    bash_completes_both_git_vmoat_and_git_space_vmoat: GitBashCompletion;
    setup_makes_bash_complete_git_vmoat_from_its_own_dirs: BashCompletion, GitBashCompletion;
    setup_puts_the_zsh_completion_on_fpath_before_compinit: Zsh;
    setup_makes_fish_complete_git_vmoat: Fish;
    fish_and_zsh_scripts_hook_into_git: Fish;
}
