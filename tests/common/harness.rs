//! The integration tests' harness: each test declares what it needs from the machine, and a test
//! whose needs are missing is reported as ignored (with the reason) in cargo's own summary, never
//! as passed. With `VMOAT_REQUIRE_ALL=1` (CI) a missing need is a failure instead.

use std::path::Path;

use super::{
    isolation_unavailable, mcp_inspector_unavailable, mcp_python_unavailable, netns_unavailable,
    ssh_unavailable, which,
};

/// Something a test needs from the machine it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// ssh and sshd (the Colima stand-in serves each VM over a real sshd).
    Ssh,
    /// The stand-in's isolated VMs: root, network namespaces, dockerd.
    Isolation,
    /// The netns backend: root, iproute2, dockerd.
    Netns,
    /// The netns backend plus what its network tests use.
    NetnsFull,
    /// A container stack on the netns backend (busybox image, curl).
    StackNetns,
    /// A container stack in the stand-in's isolated VMs.
    StackColima,
    /// Root (mounting a small tmpfs).
    Root,
    /// Debian's PostgreSQL server and client (a real database image is built from them).
    Postgres,
    Man,
    /// util-linux `script`, for a real pseudo-terminal.
    Script,
    GitBashCompletion,
    /// The bash-completion framework (what loads completions on demand).
    BashCompletion,
    Zsh,
    Fish,
    Make,
    /// Root with useradd/userdel/setpriv, to run as a new unprivileged user.
    TestUser,
    /// No real colima installed (a test of life without any backend).
    NoColima,
    /// The rootless backend for a test user: root to make the user, rootlesskit, slirp4netns,
    /// uidmap, dockerd, a tun device users may open, user namespaces, busybox and curl.
    Rootless,
    /// The official Python MCP SDK (PyPI `mcp`), for tests/support/mcp_client.py.
    McpPython,
    /// The MCP Inspector's command line (npm `@modelcontextprotocol/inspector`).
    McpInspector,
}

fn tool(t: &str, package: &str) -> Option<String> {
    which(t)
        .is_none()
        .then(|| format!("{t} is not installed (apt install {package})"))
}

fn busybox() -> Option<String> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .all(|p| !Path::new(p).exists())
        .then(|| "busybox is not installed (apt install busybox-static)".to_string())
}

/// What the rootless backend needs of this machine that a test user would lack.
fn rootless_missing() -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let sbin = |t: &str| which(t).is_some() || Path::new("/usr/sbin").join(t).exists();
    [
        ("rootlesskit", "rootlesskit"),
        ("slirp4netns", "slirp4netns"),
        ("newuidmap", "uidmap"),
        ("nsenter", "util-linux"),
        ("dockerd", "docker.io"),
        ("docker-proxy", "docker.io"),
        ("curl", "curl"),
    ]
    .into_iter()
    .find(|(t, _)| !sbin(t))
    .map(|(t, p)| format!("{t} is not installed (apt install {p})"))
    .or_else(busybox)
    .or_else(|| {
        let mode = std::fs::metadata("/dev/net/tun").map_or(0, |m| m.permissions().mode());
        (mode & 0o006 != 0o006)
            .then(|| "/dev/net/tun is not open to users (chmod 0666 /dev/net/tun)".to_string())
    })
    .or_else(|| {
        (std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
            .is_ok_and(|v| v.trim() == "0"))
        .then(|| "unprivileged user namespaces are off (kernel.unprivileged_userns_clone)".into())
    })
}

impl Need {
    /// Why this machine cannot give it (None: it can).
    pub fn missing(self) -> Option<String> {
        match self {
            Need::Ssh => ssh_unavailable(),
            Need::Isolation => isolation_unavailable(),
            Need::Netns => netns_unavailable(),
            Need::NetnsFull => netns_unavailable()
                .or_else(busybox)
                .or_else(|| tool("curl", "curl"))
                .or_else(|| tool("python3", "python3"))
                .or_else(|| tool("iptables", "iptables"))
                .or_else(|| tool("slirp4netns", "slirp4netns")),
            Need::StackNetns => netns_unavailable()
                .or_else(busybox)
                .or_else(|| tool("curl", "curl")),
            Need::StackColima => isolation_unavailable()
                .or_else(busybox)
                .or_else(|| tool("curl", "curl")),
            Need::Root => (!rustix::process::geteuid().is_root())
                .then(|| "needs root".to_string())
                .or_else(|| tool("mount", "mount")),
            Need::Postgres => std::fs::read_dir("/usr/lib/postgresql")
                .ok()
                .and_then(|d| {
                    d.flatten()
                        .find(|e| e.path().join("bin/postgres").is_file())
                })
                .is_none()
                .then(|| "PostgreSQL is not installed (apt install postgresql)".to_string())
                .or_else(|| tool("psql", "postgresql-client")),
            Need::Man => tool("man", "man-db"),
            Need::Script => tool("script", "util-linux"),
            Need::GitBashCompletion => [
                "/usr/share/bash-completion/completions/git",
                "/etc/bash_completion.d/git",
            ]
            .iter()
            .all(|p| !Path::new(p).exists())
            .then(|| {
                "git's bash completion is not installed (apt install bash-completion git)".into()
            }),
            Need::BashCompletion => (!Path::new("/usr/share/bash-completion/bash_completion")
                .exists())
            .then(|| "bash-completion is not installed (apt install bash-completion)".into()),
            Need::Zsh => tool("zsh", "zsh"),
            Need::Fish => tool("fish", "fish"),
            Need::Make => tool("make", "make"),
            Need::TestUser => (!rustix::process::geteuid().is_root())
                .then(|| "creating a test user needs root".to_string())
                .or_else(|| {
                    ["useradd", "userdel", "setpriv"].into_iter().find_map(|t| {
                        (which(t).is_none() && !Path::new("/usr/sbin").join(t).exists()).then(
                            || format!("{t} is not installed (apt install passwd util-linux)"),
                        )
                    })
                }),
            Need::Rootless => Need::TestUser.missing().or_else(rootless_missing),
            Need::NoColima => {
                which("colima").map(|c| format!("a real colima is on PATH ({})", c.display()))
            }
            Need::McpPython => mcp_python_unavailable(),
            Need::McpInspector => mcp_inspector_unavailable(),
        }
    }
}

/// One registered test.
pub struct Test {
    pub name: String,
    pub needs: &'static [Need],
    pub run: Box<dyn FnOnce() + Send>,
}

/// Registers a module's tests: `crate::tests! { name; other: Ssh, Root; }`.
#[macro_export]
macro_rules! tests {
    ($($name:ident $(: $($need:ident),+)?;)*) => {
        pub fn tests() -> Vec<$crate::common::harness::Test> {
            // The crate's own name leads the module path; the rest is as libtest would show it.
            let module = module_path!().split_once("::").map_or(module_path!(), |(_, m)| m);
            vec![$($crate::common::harness::Test {
                name: format!("{module}::{}", stringify!($name)),
                needs: &[$($($crate::common::harness::Need::$need),+)?],
                run: Box::new($name),
            }),*]
        }
    };
}

/// Runs the tests as libtest would, with missing needs shown as ignored (or failed in CI).
pub fn main(tests: Vec<Test>) -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let require_all = std::env::var_os("VMOAT_REQUIRE_ALL").is_some_and(|v| v == "1");
    let mut missing_reasons: Vec<String> = vec![];
    let trials = tests
        .into_iter()
        .map(|t| {
            let missing = t.needs.iter().find_map(|n| n.missing());
            match missing {
                None => {
                    let run = t.run;
                    libtest_mimic::Trial::test(t.name, move || {
                        run();
                        Ok(())
                    })
                }
                Some(why) if require_all => libtest_mimic::Trial::test(t.name, move || {
                    Err(format!("not run: {why} (VMOAT_REQUIRE_ALL=1 demands every test)").into())
                }),
                Some(why) => {
                    if !missing_reasons.contains(&why) {
                        missing_reasons.push(why.clone());
                    }
                    libtest_mimic::Trial::test(t.name, || Ok(()))
                        .with_ignored_flag(true)
                        .with_kind(format!("needs: {why}"))
                }
            }
        })
        .collect();
    if !missing_reasons.is_empty() && !args.list {
        eprintln!("ignored tests, because this machine lacks:");
        for r in &missing_reasons {
            eprintln!("  - {r}");
        }
    }
    libtest_mimic::run(&args, trials).exit_code()
}
