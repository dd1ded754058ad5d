//! `setup`: installs the completions for the user's shell and the man pages where that shell
//! and `man` find them, and says what (if anything) the shell's rc file still needs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cli::Shell;
use crate::error::hint;
use crate::output;

/// Marks a file as written by `setup`: only such a file is ever replaced or removed.
const MARKER: &str =
    "installed by `git vmoat setup`, which updates it; delete this line to keep your own version";

/// One file `setup` installs.
struct Target {
    path: PathBuf,
    content: Vec<u8>,
    what: String,
}

/// What would happen to a target.
#[derive(PartialEq, Eq)]
enum Action {
    Create,
    Update,
    UpToDate,
}

pub fn run(shell: Option<Shell>, dry_run: bool) -> Result<()> {
    let home = home()?;
    let shell = match shell {
        Some(s) => s,
        None => shell_from_env()?,
    };
    let bin = bin_dir();
    let man_root = man_root(&home, bin.as_ref().map(|(d, _)| d.as_path()));
    let man1 = man_root.join("man1");
    let plan = plan(targets(shell, &home, &man1)?)?;
    let stale = stale_pages(&man1, &plan);
    install(&plan, &man1, dry_run)?;
    remove_stale(stale, dry_run)?;
    report_rc(shell, &home, &man_root, bin.as_ref(), dry_run)
}

/// Every file `setup` installs: the shell's completions and the man pages.
fn targets(shell: Shell, home: &Path, man1: &Path) -> Result<Vec<Target>> {
    let mut targets = vec![completion_target(shell, home)];
    for (name, page) in crate::gendocs::man_pages()? {
        targets.push(Target {
            path: man1.join(&name),
            content: with_marker(Kind::Roff, &page),
            what: format!("man page {name}"),
        });
    }
    Ok(targets)
}

/// What happens to each target, decided before anything is written: a refused file leaves
/// nothing half installed.
fn plan(targets: Vec<Target>) -> Result<Vec<(Target, Action)>> {
    let mut plan = vec![];
    let mut foreign = vec![];
    for t in targets {
        match action(&t)? {
            Some(a) => plan.push((t, a)),
            None => foreign.push(t.path.display().to_string()),
        }
    }
    if foreign.is_empty() {
        return Ok(plan);
    }
    let what = match foreign.as_slice() {
        [one] => format!("{one} exists and was not written by `git vmoat setup`"),
        many => format!(
            "{} files exist that were not written by `git vmoat setup`: {}",
            many.len(),
            many.join(", ")
        ),
    };
    Err(hint(
        what,
        "setup never replaces a file of yours: move it aside (or delete it) and run `git vmoat setup` again",
    ))
}

fn verb(a: &Action, dry_run: bool) -> &'static str {
    match (a, dry_run) {
        (Action::Create, false) => "installed",
        (Action::Create, true) => "would install",
        (Action::Update, false) => "updated",
        (Action::Update, true) => "would update",
        (Action::UpToDate, _) => "up to date:",
    }
}

/// Writes what the plan changes and says so: a line per other file, one for all man pages.
fn install(plan: &[(Target, Action)], man1: &Path, dry_run: bool) -> Result<()> {
    let (mut changed, mut total, mut created) = (0, 0, false);
    for (t, a) in plan {
        if !dry_run && *a != Action::UpToDate {
            write_atomic(&t.path, &t.content)?;
        }
        if t.what.starts_with("man page") {
            changed += usize::from(*a != Action::UpToDate);
            created |= *a == Action::Create;
            total += 1;
        } else {
            output::info(format!(
                "{} {} {}",
                verb(a, dry_run),
                t.what,
                t.path.display()
            ));
        }
    }
    let count = if changed == total {
        total.to_string()
    } else {
        format!("{changed} of {total}")
    };
    output::info(match changed {
        0 => format!("up to date: {total} man pages in {}", man1.display()),
        _ => format!(
            "{} {count} man pages in {}",
            verb(
                if created {
                    &Action::Create
                } else {
                    &Action::Update
                },
                dry_run
            ),
            man1.display()
        ),
    });
    Ok(())
}

/// Removes the man pages of an older version that this one no longer has.
fn remove_stale(stale: Vec<PathBuf>, dry_run: bool) -> Result<()> {
    for p in stale {
        if !dry_run {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
        let v = if dry_run { "would remove" } else { "removed" };
        output::info(format!("{v} the old man page {}", p.display()));
    }
    Ok(())
}

/// Says what the shell's rc file still needs, the lines themselves on stdout.
fn report_rc(
    shell: Shell,
    home: &Path,
    man_root: &Path,
    bin: Option<&(PathBuf, bool)>,
    dry_run: bool,
) -> Result<()> {
    let rc = rc_file(shell, home);
    let rc_text = std::fs::read_to_string(&rc).unwrap_or_default();
    let mut lines = shell_lines(shell, home, &rc_text);
    lines.extend(man_lines(shell, man_root, bin, dry_run, &rc_text));
    if lines.is_empty() {
        output::info(format!(
            "nothing to add to {}; open a new shell to use them (`git vmoat <TAB>`, `git help vmoat`)",
            tilde(&rc, home)
        ));
        return Ok(());
    }
    output::info(format!(
        "add to {} (the lines are on stdout: `git vmoat setup >> {}` appends them), then open a new shell:",
        tilde(&rc, home),
        tilde(&rc, home)
    ));
    output::data(lines.join("\n"))
}

fn home() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .ok_or_else(|| {
            hint(
                "HOME is not set",
                "set HOME to your home directory and run `git vmoat setup` again",
            )
        })
}

/// The login shell, from `$SHELL`.
fn shell_from_env() -> Result<Shell> {
    let var = std::env::var("SHELL").unwrap_or_default();
    match Path::new(&var).file_name().and_then(|n| n.to_str()) {
        Some("bash") => Ok(Shell::Bash),
        Some("zsh") => Ok(Shell::Zsh),
        Some("fish") => Ok(Shell::Fish),
        _ => Err(hint(
            format!(
                "cannot tell your shell from SHELL ({})",
                if var.is_empty() { "unset" } else { &var }
            ),
            "name it: `git vmoat setup --shell bash` (or zsh, fish)",
        )),
    }
}

/// An XDG base directory: the variable when it holds an absolute path (the spec ignores a
/// relative one), else its default under HOME.
fn xdg(var: &str, home: &Path, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(default))
}

#[derive(Clone, Copy)]
enum Kind {
    Script,
    Roff,
}

/// The content with the marker as a comment, where each format allows one.
fn with_marker(kind: Kind, content: &[u8]) -> Vec<u8> {
    match kind {
        // zsh reads `#compdef` only on the first line: the marker goes second.
        Kind::Script if content.starts_with(b"#compdef") => {
            let cut = content
                .iter()
                .position(|&b| b == b'\n')
                .map_or(content.len(), |i| i + 1);
            [
                &content[..cut],
                format!("# {MARKER}\n").as_bytes(),
                &content[cut..],
            ]
            .concat()
        }
        Kind::Script => [format!("# {MARKER}\n").as_bytes(), content].concat(),
        Kind::Roff => [format!(".\\\" {MARKER}\n").as_bytes(), content].concat(),
    }
}

/// Where the shell loads `git-vmoat`'s completion from by itself (bash-completion and fish
/// load it on demand; zsh from a dir on `$fpath`).
fn completion_target(shell: Shell, home: &Path) -> Target {
    let text = crate::gendocs::completion(shell);
    let path = match shell {
        // bash-completion's own lookup: BASH_COMPLETION_USER_DIR (a list), else XDG_DATA_HOME.
        // git's completion asks it for `git-vmoat` on `git vmoat <TAB>`, so one file serves both.
        Shell::Bash => std::env::var_os("BASH_COMPLETION_USER_DIR")
            .and_then(|v| std::env::split_paths(&v).next())
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| xdg("XDG_DATA_HOME", home, ".local/share").join("bash-completion"))
            .join("completions/git-vmoat"),
        Shell::Zsh => home.join(".zfunc/_git-vmoat"),
        // conf.d, not completions/: fish loads completions/ only for the command named by the
        // file, so `git vmoat <TAB>` would never see the `git` half of the script.
        Shell::Fish => xdg("XDG_CONFIG_HOME", home, ".config").join("fish/conf.d/git-vmoat.fish"),
    };
    Target {
        path,
        content: with_marker(Kind::Script, text.as_bytes()),
        what: format!("{} completion", shell_name(shell)),
    }
}

fn shell_name(shell: Shell) -> &'static str {
    match shell {
        Shell::Bash => "bash",
        Shell::Zsh => "zsh",
        Shell::Fish => "fish",
    }
}

/// None: the file exists and is not ours.
fn action(t: &Target) -> Result<Option<Action>> {
    let old = match std::fs::read(&t.path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(Action::Create)),
        Err(e) => return Err(e).with_context(|| format!("reading {}", t.path.display())),
    };
    if old == t.content {
        return Ok(Some(Action::UpToDate));
    }
    let ours = String::from_utf8_lossy(&old)
        .lines()
        .take(2)
        .any(|l| l.contains(MARKER));
    Ok(ours.then_some(Action::Update))
}

/// Man pages an earlier `setup` installed for subcommands that no longer exist.
fn stale_pages(man1: &Path, plan: &[(Target, Action)]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(man1) else {
        return vec![];
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("git-vmoat") && n.ends_with(".1"))
                && !plan.iter().any(|(t, _)| &t.path == p)
                && std::fs::read_to_string(p)
                    .is_ok_and(|s| s.lines().next().is_some_and(|l| l.contains(MARKER)))
        })
        .collect();
    out.sort();
    out
}

fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file path without a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.vmoat-tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// The PATH entry git runs `git-vmoat` from, and whether it is the binary running now (the
/// binary's own dir when it was started from elsewhere).
fn bin_dir() -> Option<(PathBuf, bool)> {
    let exe = std::env::current_exe().ok()?;
    let real = exe.canonicalize().ok()?;
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .filter(|d| d.is_absolute())
            .find(|d| d.join("git-vmoat").canonicalize().is_ok_and(|c| c == real))
    });
    match on_path {
        Some(d) => Some((d, true)),
        None => Some((exe.parent()?.to_path_buf(), false)),
    }
}

/// Where the man pages go: `<prefix>/share/man` for a binary in `<prefix>/bin`, because man
/// (man-db, and macOS's) searches `../share/man` of every PATH dir by itself; else
/// `~/.local/share/man`, which then needs MANPATH.
/// `~/.local/share/man`, which then needs MANPATH. A system prefix the user cannot write to
/// (`/usr/bin`: a package, which ships its own pages) gets the home dir too.
fn man_root(home: &Path, bin: Option<&Path>) -> PathBuf {
    match bin {
        Some(d)
            if d.file_name().is_some_and(|n| n == "bin")
                && d.parent()
                    .is_some_and(|p| writable(&p.join("share/man/man1"))) =>
        {
            d.parent().unwrap_or(d).join("share/man")
        }
        _ => home.join(".local/share/man"),
    }
}

/// Whether `dir` can be written, or created in its nearest existing ancestor.
fn writable(dir: &Path) -> bool {
    dir.ancestors()
        .find(|a| a.exists())
        .is_some_and(|a| rustix::fs::access(a, rustix::fs::Access::WRITE_OK).is_ok())
}

/// The rc file a user edits for interactive shells.
fn rc_file(shell: Shell, home: &Path) -> PathBuf {
    match shell {
        Shell::Bash => home.join(".bashrc"),
        Shell::Zsh => std::env::var_os("ZDOTDIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.to_path_buf())
            .join(".zshrc"),
        Shell::Fish => xdg("XDG_CONFIG_HOME", home, ".config").join("fish/config.fish"),
    }
}

fn tilde(p: &Path, home: &Path) -> String {
    match p.strip_prefix(home) {
        Ok(rest) => format!("~/{}", rest.display()),
        Err(_) => p.display().to_string(),
    }
}

/// Lines the shell's rc file lacks for the completion to load.
fn shell_lines(shell: Shell, home: &Path, rc_text: &str) -> Vec<String> {
    let active = |needle: &str| {
        rc_text
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains(needle))
    };
    match shell {
        Shell::Bash => {
            let framework = [
                "/usr/share/bash-completion/bash_completion",
                "/opt/homebrew/etc/profile.d/bash_completion.sh",
                "/usr/local/etc/profile.d/bash_completion.sh",
                "/usr/local/share/bash-completion/bash_completion",
            ]
            .into_iter()
            .find(|p| Path::new(p).is_file());
            let Some(framework) = framework else {
                output::warn(
                    "bash loads completions like this one only with the bash-completion package: `sudo apt install bash-completion` (macOS: `brew install bash-completion@2`)",
                );
                return vec![];
            };
            // Debian's default ~/.bashrc loads it; a system-wide bashrc may too.
            let system = std::fs::read_to_string("/etc/bash.bashrc").unwrap_or_default();
            let loaded = active("bash_completion")
                || system
                    .lines()
                    .any(|l| !l.trim_start().starts_with('#') && l.contains("bash_completion"));
            if loaded {
                vec![]
            } else {
                vec![format!("[ -r {framework} ] && . {framework}")]
            }
        }
        Shell::Zsh => {
            let mut lines = vec![];
            if !active(".zfunc") {
                output::info("zsh finds the completion through $fpath, set before compinit runs");
                lines.push(format!(
                    "fpath=({} $fpath)",
                    tilde(&home.join(".zfunc"), home)
                ));
            }
            if !active("compinit") {
                lines.push("autoload -Uz compinit && compinit".into());
            }
            lines
        }
        // fish reads conf.d by itself.
        Shell::Fish => vec![],
    }
}

/// Lines the rc file needs for man to find the pages in `man_root`.
fn man_lines(
    shell: Shell,
    man_root: &Path,
    bin: Option<&(PathBuf, bool)>,
    dry_run: bool,
    rc_text: &str,
) -> Vec<String> {
    let root = man_root.display().to_string();
    let mut lines = vec![];
    let on_path = match bin {
        Some((dir, false)) => {
            output::warn(format!(
                "{} is not on PATH, so git does not find git-vmoat (`git: 'vmoat' is not a git command`) and man does not look near it",
                dir.display()
            ));
            lines.push(path_line(shell, dir));
            false
        }
        _ => true,
    };
    let found = match manpath() {
        // manpath lists only dirs that exist, from the PATH of now: before installing, or
        // until the PATH line is added, predict instead.
        Some(list) if !dry_run && on_path => list.iter().any(|d| Path::new(d) == man_root),
        _ => predicted_on_manpath(man_root, bin.map(|(d, _)| d.as_path())),
    };
    // A line added earlier but not yet in this shell's environment.
    if found
        || rc_text
            .lines()
            .any(|l| l.contains("MANPATH") && l.contains(&root))
    {
        return lines;
    }
    output::info(format!("man does not look in {root} by itself"));
    let set = std::env::var_os("MANPATH").is_some_and(|v| !v.is_empty());
    lines.push(match (shell, set) {
        // A trailing empty entry keeps man's own dirs (they are dropped once MANPATH is set).
        (Shell::Fish, false) => format!("set -gx MANPATH {root} ''"),
        (Shell::Fish, true) => format!("set -gx MANPATH {root} $MANPATH"),
        (_, false) => format!("export MANPATH=\"{root}:\""),
        (_, true) => format!("export MANPATH=\"{root}:$MANPATH\""),
    });
    lines
}

fn path_line(shell: Shell, dir: &Path) -> String {
    match shell {
        Shell::Fish => format!("fish_add_path {}", dir.display()),
        _ => format!("export PATH=\"{}:$PATH\"", dir.display()),
    }
}

/// man's search path as `manpath` prints it (None when there is no `manpath`).
fn manpath() -> Option<Vec<String>> {
    let out = crate::exec::Cmd::new("manpath").arg("-q").output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(':')
            .map(str::to_string)
            .collect()
    })
}

/// Without `manpath`: MANPATH lists the dir, or holds an empty entry (man's own dirs, which
/// include `../share/man` of each PATH dir) or is unset, and the binary's dir is `<root>/../bin`.
fn predicted_on_manpath(man_root: &Path, bin: Option<&Path>) -> bool {
    let from_path =
        bin.is_some_and(|b| b.parent().map(|p| p.join("share/man")).as_deref() == Some(man_root));
    match std::env::var("MANPATH") {
        Ok(v) if !v.is_empty() => {
            v.split(':').any(|d| Path::new(d) == man_root)
                || (from_path && v.split(':').any(str::is_empty))
        }
        _ => from_path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_keeps_zsh_compdef_first_and_roff_valid() {
        let z = with_marker(Kind::Script, b"#compdef git-vmoat\nbody\n");
        assert!(
            String::from_utf8_lossy(&z)
                .starts_with(&format!("#compdef git-vmoat\n# {MARKER}\nbody"))
        );
        let b = with_marker(Kind::Script, b"_git__vmoat() {\n");
        assert!(String::from_utf8_lossy(&b).starts_with(&format!("# {MARKER}\n_git")));
        let m = with_marker(Kind::Roff, b".TH x 1\n");
        assert_eq!(
            String::from_utf8_lossy(&m),
            format!(".\\\" {MARKER}\n.TH x 1\n")
        );
    }

    #[test]
    fn man_pages_go_next_to_the_bin_dir() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        assert_eq!(
            man_root(home, Some(&home.join(".cargo/bin"))),
            home.join(".cargo/share/man")
        );
        assert_eq!(
            man_root(home, Some(Path::new("/work/target/debug"))),
            home.join(".local/share/man")
        );
        assert_eq!(man_root(home, None), home.join(".local/share/man"));
    }

    #[test]
    fn a_file_without_the_marker_is_never_ours() {
        let dir = tempfile::tempdir().unwrap();
        let t = Target {
            path: dir.path().join("f"),
            content: with_marker(Kind::Script, b"new\n"),
            what: "x".into(),
        };
        assert!(action(&t).unwrap() == Some(Action::Create));
        std::fs::write(&t.path, "mine\n").unwrap();
        assert!(action(&t).unwrap().is_none());
        std::fs::write(&t.path, with_marker(Kind::Script, b"old\n")).unwrap();
        assert!(action(&t).unwrap() == Some(Action::Update));
        std::fs::write(&t.path, &t.content).unwrap();
        assert!(action(&t).unwrap() == Some(Action::UpToDate));
    }
}
