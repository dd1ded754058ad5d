//! Bad input, table-driven: each case must fail with a clear message and the documented exit
//! code, and change nothing: not the worktree, not git-vmoat's state, not the stand-in's VMs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;

/// Every file under `dir` with its content (symlinks by target), for before/after comparison.
/// git-vmoat's lock files and empty registries carry no state and are left out.
fn snapshot(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        // Lock files are opened (not changed) by every run; git's index is refreshed by status.
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".lock") || name == "index" || name == "logs" || name == "locks" {
            continue;
        }
        if ft.is_symlink() {
            out.insert(
                p.clone(),
                std::fs::read_link(&p)
                    .unwrap()
                    .to_string_lossy()
                    .as_bytes()
                    .to_vec(),
            );
        } else if ft.is_dir() {
            snapshot(&p, out);
        } else {
            let bytes = std::fs::read(&p).unwrap_or_default();
            if name.ends_with(".json")
                && matches!(serde_json::from_slice(&bytes), Ok(serde_json::Value::Object(m)) if m.is_empty())
            {
                continue;
            }
            out.insert(p.clone(), bytes);
        }
    }
}

struct Case {
    name: &'static str,
    /// Prepares the worktree (files, env); returns the dir to run in.
    setup: fn(&mut Env, &Path) -> PathBuf,
    args: &'static [&'static str],
    code: i32,
    message: &'static str,
}

fn write(env: &Env, wt: &Path, file: &str, text: &str) -> PathBuf {
    env.write(&wt.join(file), text);
    wt.to_path_buf()
}

fn toml(env: &mut Env, wt: &Path, text: &str) -> PathBuf {
    write(env, wt, "vmoat.toml", text)
}

const UP: &str = "backend = \"colima\"\n[commands]\nup = \"true\"\ntest = \"true\"\n";

/// How many bad inputs the table holds (README states it; docs.rs checks the two agree).
pub fn cases_len() -> usize {
    cases().len()
}

fn cases() -> Vec<Case> {
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
        case!(
            "seed absolute",
            |e, w| toml(
                e,
                w,
                &format!("{UP}[provision]\nseed = [\"/etc/passwd\"]\n")
            ),
            &["seed"],
            1,
            "seed path `/etc/passwd` is absolute"
        ),
        case!(
            "seed dotdot",
            |e, w| toml(e, w, &format!("{UP}[provision]\nseed = [\"../secrets\"]\n")),
            &["seed"],
            1,
            "uses `..` to leave the repository"
        ),
        case!(
            "seed into .git",
            |e, w| toml(
                e,
                w,
                &format!("{UP}[provision]\nseed = [\".git/config\"]\n")
            ),
            &["seed"],
            1,
            "points into .git"
        ),
        case!(
            "seed symlink escape",
            |e, w| {
                let main = e.home.join("src/proj");
                std::os::unix::fs::symlink("/etc", main.join("etclink")).unwrap();
                e.write(&main.join(".git/info/exclude"), "etclink\n");
                toml(
                    e,
                    w,
                    &format!("{UP}[provision]\nseed = [\"etclink/hostname\"]\n"),
                )
            },
            &["seed"],
            0,
            "seed etclink/hostname skipped: it goes through etclink, a symlink leading outside the main checkout (to /etc)"
        ),
        case!(
            "seed through a tracked symlink to outside",
            |e, w| {
                // The worktree's conf/sub leads out; main's ignored conf/sub/key must not follow.
                let main = e.home.join("src/proj");
                e.write(&main.join(".git/info/exclude"), "conf/\n");
                e.write(&main.join("conf/sub/key"), "SECRET\n");
                std::fs::create_dir_all(e.home.join("outside")).unwrap();
                std::fs::create_dir_all(w.join("conf")).unwrap();
                std::os::unix::fs::symlink(e.home.join("outside"), w.join("conf/sub")).unwrap();
                write(e, w, ".worktreeinclude", "conf/\n")
            },
            &["seed"],
            0,
            "seed conf: skipped conf/sub: conf/sub is a symlink in this worktree"
        ),
        case!(
            "seed an ignored symlink to /etc matched by /**",
            |e, w| {
                let main = e.home.join("src/proj");
                std::os::unix::fs::symlink("/etc", main.join("etclink")).unwrap();
                e.write(&main.join(".git/info/exclude"), "etclink\n");
                write(e, w, ".worktreeinclude", "/**\n")
            },
            &["seed"],
            0,
            "seed etclink skipped: it is a symlink leading outside the repository (to /etc)"
        ),
        case!(
            "seed into a worktree dir symlinked outside",
            |e, w| {
                let main = e.home.join("src/proj");
                e.write(&main.join(".git/info/exclude"), "secrets/\n");
                e.write(&main.join("secrets/a.key"), "A\n");
                std::fs::create_dir_all(e.home.join("outside")).unwrap();
                std::os::unix::fs::symlink(e.home.join("outside"), w.join("secrets")).unwrap();
                toml(
                    e,
                    w,
                    &format!("{UP}[provision]\nseed = [\"secrets/a.key\"]\n"),
                )
            },
            &["seed"],
            0,
            "seed secrets/a.key skipped: secrets is a symlink in this worktree"
        ),
        case!(
            "seed from a main dir symlinked outside",
            |e, w| {
                let main = e.home.join("src/proj");
                e.write(&e.home.join("vault/key"), "K\n");
                std::os::unix::fs::symlink(e.home.join("vault"), main.join("vault")).unwrap();
                e.write(&main.join(".git/info/exclude"), "vault\n");
                toml(
                    e,
                    w,
                    &format!("{UP}[provision]\nseed = [\"vault/key\", \"vault\"]\n"),
                )
            },
            &["seed"],
            0,
            "seed vault/key skipped: it goes through vault, a symlink leading outside the main checkout"
        ),
        case!(
            "outside vm.mount",
            |e, w| {
                toml(e, w, UP);
                write(e, w, "vmoat.local.toml", "[vm]\nmount = \"/usr\"\n")
            },
            &["up"],
            1,
            "is outside vm.mount (VM_MOUNT) /usr"
        ),
        case!(
            "committed vm.mount /",
            |e, w| toml(e, w, &format!("{UP}[vm]\nmount = \"/\"\n")),
            &["up"],
            1,
            "vmoat.toml: `vm.mount` is `/`, outside your home"
        ),
        case!(
            "vm.mount / in a committed vmoat.local.toml",
            |e, w| {
                toml(e, w, UP);
                write(e, w, "vmoat.local.toml", "[vm]\nmount = \"/\"\n");
                e.git(w, &["add", "-f", "vmoat.toml", "vmoat.local.toml"]);
                e.git(w, &["commit", "-q", "-m", "local config"]);
                w.to_path_buf()
            },
            &["up"],
            1,
            "vmoat.local.toml: `vm.mount` is `/`, outside your home"
        ),
        case!(
            "committed vm.mount outside home",
            |e, w| toml(e, w, &format!("{UP}[vm]\nmount = \"/usr\"\n")),
            &["provision"],
            1,
            "set it in your own gitignored vmoat.local.toml"
        ),
        case!(
            "committed vm.mount not holding the worktree",
            |e, w| {
                std::fs::create_dir_all(e.home.join("elsewhere")).unwrap();
                toml(e, w, &format!("{UP}[vm]\nmount = \"~/elsewhere\"\n"))
            },
            &["up"],
            1,
            "is outside vm.mount: a committed config may only mount a dir that holds the worktree"
        ),
        case!(
            "legacy committed VM_MOUNT /etc",
            |e, w| {
                write(
                    e,
                    w,
                    "vmoat.conf",
                    "VM_BACKEND=colima\nCMD_UP=true\nVM_MOUNT=/etc\n",
                );
                // Trusts the file, then refuses to approve the mount.
                assert_eq!(e.vmoat(w, &["trust"]).code, 1);
                w.to_path_buf()
            },
            &["up"],
            1,
            "vmoat.conf: `vm.mount` is `/etc`"
        ),
        case!(
            "vm.mount relative",
            |e, w| toml(e, w, &format!("{UP}[vm]\nmount = \"rel\"\n")),
            &["up"],
            1,
            "it must be an absolute path"
        ),
        case!(
            "vm.mount with a space",
            |e, w| {
                std::fs::create_dir_all(e.home.join("my src")).unwrap();
                toml(e, w, &format!("{UP}[vm]\nmount = \"/\"\n"))
                    .join("../../..")
                    .canonicalize()
                    .ok();
                let wt = e.home.join("my src/feat");
                e.git(
                    &e.home.join("src/proj"),
                    &[
                        "worktree",
                        "add",
                        "-q",
                        "-b",
                        "spaced",
                        wt.to_str().unwrap(),
                    ],
                );
                e.write(
                    &wt.join("vmoat.toml"),
                    &format!(
                        "{UP}[vm]\nmount = \"{}\"\n",
                        e.home.join("my src").display()
                    ),
                );
                wt
            },
            &["up"],
            1,
            "its path has a space"
        ),
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
            "`backend` is `docker`; use auto, colima or netns"
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

/// One case: the message and exit code, and nothing changed in HOME, the state dir or the VMs.
fn check(case: &Case) {
    let mut env = Env::new();
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    let dir = (case.setup)(&mut env, &wt);
    let mut before = BTreeMap::new();
    snapshot(&env.home, &mut before);
    snapshot(&env.colima_state(), &mut before);
    let r = env.vmoat(&dir, case.args);
    assert_eq!(r.code, case.code, "{}: {r:?}", case.name);
    assert!(
        !case.message.is_empty(),
        "{}: a case names its message",
        case.name
    );
    assert!(
        r.stderr.contains(case.message),
        "{}: message {:?} not in {r:?}",
        case.name,
        case.message
    );
    if case.code == 1 && !r.stderr.contains("unrecognized") {
        assert!(
            r.stderr.contains("hint: "),
            "{}: an error says what to do: {r:?}",
            case.name
        );
    }
    let mut after = BTreeMap::new();
    snapshot(&env.home, &mut after);
    snapshot(&env.colima_state(), &mut after);
    // The stand-in's call log records attempts, not state.
    after.retain(|p, _| !p.ends_with("calls.jsonl"));
    before.retain(|p, _| !p.ends_with("calls.jsonl"));
    let changed: Vec<_> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(v))
        .map(|(p, _)| p.clone())
        .chain(before.keys().filter(|p| !after.contains_key(*p)).cloned())
        .collect();
    assert!(changed.is_empty(), "{}: changed {changed:#?}", case.name);
}

/// Each case is a test of its own, so one failure does not hide the others.
pub fn tests() -> Vec<crate::common::harness::Test> {
    let cases = cases();
    assert!(cases.len() >= 30, "at least 30 cases: {}", cases.len());
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, m)| m);
    cases
        .into_iter()
        .map(|case| {
            let slug: String = case
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            crate::common::harness::Test {
                name: format!("{module}::{slug}"),
                needs: &[],
                run: Box::new(move || check(&case)),
            }
        })
        .collect()
}
