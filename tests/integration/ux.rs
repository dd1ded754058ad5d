//! Terminal behaviour users see: the interactive shell, colours only on a TTY and never with
//! NO_COLOR, -q and -v, the watcher's service file.

use crate::common::*;

/// Runs `git-vmoat args` on a pseudo-terminal (util-linux `script`), feeding `input`.
pub(crate) fn on_tty(
    env: &Env,
    dir: &std::path::Path,
    args: &str,
    input: &str,
    extra: &[(&str, &str)],
) -> Option<Run> {
    which("script")?;
    let mut c = env.cmd("script", dir);
    c.args(["-qec", &format!("{} {args}", bin().display()), "/dev/null"])
        .stdin(std::process::Stdio::piped());
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in extra {
        c.env(k, v);
    }
    let mut child = c.spawn().ok()?;
    use std::io::Write;
    child.stdin.take()?.write_all(input.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    Some(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn ssh_without_a_command_is_an_interactive_shell_in_the_worktree() {
    let env = Env::new();
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    env.write(
        &wt.join("vmoat.toml"),
        "backend = \"netns\"\n[commands]\nup = \"true\"\n",
    );
    env.vmoat(&wt, &["up"]).ok();
    let r = on_tty(
        &env,
        &wt,
        "ssh",
        "echo in-$VMOAT_VM at $(pwd)\nexit 7\n",
        &[("SHELL", "/bin/sh")],
    )
    .expect("util-linux `script`");
    let real = std::fs::canonicalize(&wt).unwrap();
    assert!(
        r.stdout
            .contains(&format!("in-wt-feat at {}", real.display())),
        "{r:?}"
    );
    assert_eq!(r.code, 7, "the shell's exit status comes back: {r:?}");
}

fn colours_only_on_a_terminal_and_never_with_no_color() {
    let env = Env::new();
    let repo = env.repo("proj");
    // Not a terminal: no escape codes.
    let r = env.vmoat(&repo, &["frobnicate-nothing-here"]);
    assert!(!r.stderr.contains('\u{1b}'), "{r:?}");
    let r = env.vmoat(&repo, &["test"]);
    assert!(
        !r.stderr.contains('\u{1b}') && r.stderr.contains("error: "),
        "{r:?}"
    );
    let tty = on_tty(&env, &repo, "test", "", &[("TERM", "xterm")]).expect("util-linux `script`");
    assert!(
        tty.stdout.contains("\u{1b}[1;31merror:"),
        "coloured on a TTY: {tty:?}"
    );
    let plain = on_tty(
        &env,
        &repo,
        "test",
        "",
        &[("TERM", "xterm"), ("NO_COLOR", "1")],
    )
    .unwrap();
    assert!(
        plain.stdout.contains("error:") && !plain.stdout.contains('\u{1b}'),
        "NO_COLOR: {plain:?}"
    );
}

fn quiet_and_verbose() {
    let env = Env::new();
    let repo = env.repo("proj");
    env.write(
        &repo.join("vmoat.toml"),
        "backend = \"colima\"\n[commands]\nup = \"true\"\n",
    );
    let r = env.vmoat(&repo, &["-v", "up"]).ok();
    assert!(
        r.stderr
            .contains("vmoat: $ colima start wt-proj --runtime docker"),
        "-v shows commands: {r:?}"
    );
    let r = env.vmoat(&repo, &["-q", "up"]).ok();
    assert!(r.stderr.is_empty(), "-q prints nothing on success: {r:?}");
    let r = env.vmoat(&repo, &["-q", "test"]);
    assert!(
        r.code == 1 && r.stderr.contains("error: no test command"),
        "-q still prints errors: {r:?}"
    );
}

fn watch_install_service_writes_a_user_unit() {
    let env = Env::new();
    let r = env.vmoat(&env.home, &["watch", "--install-service"]).ok();
    let unit = env
        .home
        .join(".config/systemd/user/git-vmoat-watch.service");
    assert_eq!(r.stdout.trim(), unit.to_str().unwrap());
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        text.contains(&format!("ExecStart={} watch --all", bin().display())),
        "{text}"
    );
    assert!(
        r.stderr
            .contains("systemctl --user enable --now git-vmoat-watch"),
        "{r:?}"
    );
}

/// A broken stderr (`2>&1 | head -1` once `head` is gone) never turns a message into a crash.
fn a_broken_stderr_never_crashes_a_command() {
    let env = Env::new();
    let repo = env.repo("proj");
    // A pipe whose reader is gone: every write to it fails with EPIPE.
    let script = "import os, subprocess, sys\nr, w = os.pipe()\nos.close(r)\nprint(subprocess.run(sys.argv[1:], stderr=w, stdout=subprocess.DEVNULL).returncode)";
    let out = env
        .cmd("python3", &repo)
        .args(["-c", script, "git-vmoat", "-v", "doctor"])
        .output()
        .unwrap();
    let rc = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(rc == "0" || rc == "1", "doctor ended with {rc:?}: {out:?}");
}

crate::tests! {
    ssh_without_a_command_is_an_interactive_shell_in_the_worktree: Netns, Script;
    colours_only_on_a_terminal_and_never_with_no_color: Script;
    quiet_and_verbose: Ssh;
    watch_install_service_writes_a_user_unit;
    a_broken_stderr_never_crashes_a_command;
}
