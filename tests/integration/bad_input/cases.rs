//! The bad-input table, by theme: each function a group of cases, `cases()` all of them.

use std::path::{Path, PathBuf};

use crate::common::*;

pub(super) struct Case {
    pub name: &'static str,
    /// Prepares the worktree (files, env); returns the dir to run in.
    pub setup: fn(&mut Env, &Path) -> PathBuf,
    pub args: &'static [&'static str],
    pub code: i32,
    pub message: &'static str,
}

fn write(env: &Env, wt: &Path, file: &str, text: &str) -> PathBuf {
    env.write(&wt.join(file), text);
    wt.to_path_buf()
}

fn toml(env: &mut Env, wt: &Path, text: &str) -> PathBuf {
    write(env, wt, "vmoat.toml", text)
}

const UP: &str = "backend = \"colima\"\n[commands]\nup = \"true\"\ntest = \"true\"\n";

/// One row of the table.
macro_rules! case {
    ($name:expr, $setup:expr, $args:expr, $code:expr, $msg:expr) => {
        Case {
            name: $name,
            setup: $setup,
            args: $args,
            code: $code,
            message: $msg,
        }
    };
}

// After the macro: the themes there use it.
mod paths;

/// Every case, theme by theme.
pub(super) fn cases() -> Vec<Case> {
    [
        config_syntax(),
        ports(),
        paths::seed_paths(),
        paths::seed_symlinks(),
        paths::mount(),
        paths::mount_spelling(),
        repositories(),
        backends(),
        values(),
        commands(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Config files that are not what git-vmoat reads: syntax, keys, types, sizes.
fn config_syntax() -> Vec<Case> {
    vec![
        case!(
            "malformed toml",
            |e, w| toml(e, w, "[vm\ncpus = 2\n"),
            &["up"],
            1,
            "vmoat.toml is not valid TOML: TOML parse error at line 1"
        ),
        case!(
            "unknown key",
            |e, w| toml(e, w, "[vm]\ncpu = 2\n"),
            &["up"],
            1,
            "did you mean `vm.cpus`"
        ),
        case!(
            "unknown table",
            |e, w| toml(e, w, "[helth]\nurl = \"http://localhost/\"\n"),
            &["up"],
            1,
            "did you mean `[health]`"
        ),
        case!(
            "legacy name in toml",
            |e, w| toml(e, w, "HEALTH_URL = \"x\"\n"),
            &["config"],
            1,
            "did you mean `health.url`"
        ),
        case!(
            "wrong type",
            |e, w| toml(e, w, "[vm]\ncpus = \"four\"\n"),
            &["up"],
            1,
            "`vm.cpus` must be a whole number from 1 to 1024, got the string \"four\""
        ),
        case!(
            "zero cpus",
            |e, w| toml(e, w, "[vm]\ncpus = 0\n"),
            &["provision"],
            1,
            "`vm.cpus` must be a whole number from 1 to 1024"
        ),
        case!(
            "negative memory",
            |e, w| toml(e, w, "[vm]\nmemory = -2\n"),
            &["up"],
            1,
            "`vm.memory` must be a whole number from 1 to 4096"
        ),
        case!(
            "huge disk",
            |e, w| toml(e, w, "[vm]\ndisk = 999999999\n"),
            &["up"],
            1,
            "`vm.disk` must be a whole number from 1 to 65536"
        ),
    ]
}

/// Ports out of range or not numbers, in the config and as arguments.
fn ports() -> Vec<Case> {
    vec![
        case!(
            "port 0 in config",
            |e, w| toml(e, w, "[tunnel]\nports = [0]\n"),
            &["tunnel"],
            1,
            "`tunnel.ports` must be a list of ports from 1 to 65535"
        ),
        case!(
            "port 70000 in config",
            |e, w| toml(e, w, "[tunnel]\nports = [70000]\n"),
            &["tunnel"],
            1,
            "`tunnel.ports` must be a list of ports"
        ),
        case!(
            "port abc in config",
            |e, w| toml(e, w, "[tunnel]\nports = [\"abc\"]\n"),
            &["tunnel"],
            1,
            "`tunnel.ports` must be a list of ports"
        ),
        case!(
            "port abc argument",
            |e, w| toml(e, w, UP),
            &["tunnel", "abc"],
            2,
            "port `abc` is not a number from 1 to 65535"
        ),
        case!(
            "port 0 argument",
            |e, w| toml(e, w, UP),
            &["tunnel", "0"],
            2,
            "port `0` is not a number"
        ),
        case!(
            "port 70000 argument",
            |e, w| toml(e, w, UP),
            &["tunnel", "8080", "70000"],
            2,
            "port `70000` is not a number"
        ),
    ]
}

/// Not a usable repository, and legacy configs untrusted or broken.
fn repositories() -> Vec<Case> {
    vec![
        case!(
            "not a repository",
            |e, _| {
                let d = e.home.join("plain");
                std::fs::create_dir_all(&d).unwrap();
                d
            },
            &["up"],
            1,
            "is not in a git repository"
        ),
        case!(
            "bare repository",
            |e, _| {
                let d = e.home.join("bare.git");
                e.git(&e.home, &["init", "-q", "--bare", d.to_str().unwrap()]);
                d
            },
            &["up"],
            1,
            "is a bare repository"
        ),
        case!(
            "untrusted legacy config",
            |e, w| write(e, w, "vmoat.conf", "VM_CPU=2\n"),
            &["up"],
            1,
            "you have not trusted it"
        ),
        case!(
            "legacy syntax error",
            |e, w| {
                write(e, w, "vmoat.conf", "VM_CPU=(\n");
                // Trusted, though the config cannot be approved (trust says why).
                assert_eq!(e.vmoat(w, &["trust"]).code, 1);
                w.to_path_buf()
            },
            &["up"],
            1,
            "syntax error"
        ),
        case!(
            "legacy bad value",
            |e, w| {
                write(e, w, "vmoat.conf", "VM_CPU=four\n");
                // Trusted, though the config cannot be approved (trust says why).
                assert_eq!(e.vmoat(w, &["trust"]).code, 1);
                w.to_path_buf()
            },
            &["up"],
            1,
            "VM_CPU must be a whole number from 1 to 1024, got \"four\""
        ),
    ]
}

/// A missing, failing or too old backend, and VM names and types that cannot be.
fn backends() -> Vec<Case> {
    vec![
        case!(
            "colima missing",
            |e, w| {
                e.extra_env
                    .push(("PATH".into(), std::env::var("PATH").unwrap()));
                toml(e, w, UP)
            },
            &["up"],
            1,
            "colima is not installed"
        ),
        case!(
            "colima fails",
            |e, w| {
                e.extra_env.push((
                    "FAKE_COLIMA_FAIL".into(),
                    "start:disk quota exceeded".into(),
                ));
                toml(e, w, UP)
            },
            &["up"],
            1,
            "disk quota exceeded"
        ),
        case!(
            "colima too old",
            |e, w| {
                e.extra_env
                    .push(("FAKE_COLIMA_VERSION".into(), "v0.8.1".into()));
                toml(e, w, UP)
            },
            &["up"],
            1,
            "colima 0.8.1 is too old"
        ),
        case!(
            "no valid vm name",
            |e, w| {
                let long = e.home.join("c".repeat(90));
                std::fs::create_dir_all(&long).unwrap();
                e.extra_env
                    .push(("COLIMA_HOME".into(), long.to_string_lossy().into_owned()));
                toml(e, w, UP)
            },
            &["up"],
            1,
            "no valid VM name fits"
        ),
        case!(
            "unknown backend in config",
            |e, w| toml(e, w, "backend = \"docker\"\n"),
            &["up"],
            1,
            "`backend` is `docker`; use auto, colima, netns or rootless"
        ),
        case!(
            "unknown backend flag",
            |e, w| toml(e, w, UP),
            &["--backend", "docker", "up"],
            2,
            "invalid value 'docker'"
        ),
        case!(
            "bad vm.type",
            |e, w| toml(e, w, "[vm]\ntype = \"hyperv\"\n"),
            &["up"],
            1,
            "`vm.type` is `hyperv`; use vz, qemu or krunkit"
        ),
    ]
}

/// Values the keys do not take.
fn values() -> Vec<Case> {
    vec![
        case!(
            "health url without scheme",
            |e, w| toml(e, w, "[health]\nurl = \"localhost:8080\"\n"),
            &["up"],
            1,
            "must start with http:// or https://"
        ),
        case!(
            "bad apt name",
            |e, w| toml(e, w, "[provision]\napt = [\"curl; rm -rf /\"]\n"),
            &["up"],
            1,
            "is not an apt package name"
        ),
        case!(
            "bad prefix",
            |e, w| toml(e, w, "[vm]\nprefix = \"WT_\"\n"),
            &["name"],
            1,
            "not a usable VM name prefix"
        ),
        case!(
            "section not a table",
            |e, w| toml(e, w, "health = 3\n"),
            &["up"],
            1,
            "`health` must be a table"
        ),
    ]
}

/// Commands that cannot run here: nothing configured, nothing to overwrite, no VM running.
fn commands() -> Vec<Case> {
    vec![
        case!(
            "no up command",
            |e, w| toml(e, w, "backend = \"colima\"\n"),
            &["up"],
            1,
            "no up command"
        ),
        case!(
            "no test command",
            |e, w| toml(e, w, "backend = \"colima\"\n"),
            &["test"],
            1,
            "no test command configured"
        ),
        case!(
            "init over an existing file",
            |e, w| toml(e, w, "# mine\n"),
            &["init"],
            1,
            "already exists"
        ),
        case!(
            "init --from-conf without vmoat.conf",
            |_, w| w.to_path_buf(),
            &["init", "--from-conf"],
            1,
            "there is no vmoat.conf"
        ),
        case!(
            "destroy without a terminal",
            |e, w| toml(e, w, UP),
            &["destroy"],
            0,
            "this worktree has no VM: nothing to destroy"
        ),
        case!(
            "unknown command",
            |_, w| w.to_path_buf(),
            &["frobnicate"],
            2,
            "unrecognized subcommand 'frobnicate'"
        ),
        case!(
            "test on a stopped vm",
            |e, w| toml(e, w, UP),
            &["test"],
            1,
            "is absent, not running"
        ),
        case!(
            "ssh on a stopped vm",
            |e, w| toml(e, w, UP),
            &["ssh", "true"],
            1,
            "start it with `git vmoat up`"
        ),
    ]
}
