//! Test fixtures: hermetic temp dirs, real git repos and worktrees, the built binary run against
//! the Colima stand-in (tests/support/colima), and cleanup of every process a test started.

#![allow(dead_code)]

pub mod harness;
mod users;
mod watcher;

pub use users::TempUser;
pub use watcher::Watcher;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub extra_env: Vec<(String, String)>,
    /// Servers a test started; killed and reaped on drop.
    pub children: std::cell::RefCell<Vec<std::process::Child>>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }
}

pub fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support")
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_git-vmoat"))
}

/// Why tests that need a real sshd cannot run here (None: they can).
pub fn ssh_unavailable() -> Option<String> {
    // The stand-in itself is a python3 script.
    if which("python3").is_none() {
        return Some(
            "python3 is not installed (apt install python3): the Colima stand-in needs it".into(),
        );
    }
    for tool in ["ssh", "ssh-keygen"] {
        if which(tool).is_none() {
            return Some(format!(
                "{tool} is not installed (apt install openssh-client)"
            ));
        }
    }
    if which("sshd").is_none() && !Path::new("/usr/sbin/sshd").exists() {
        return Some("sshd is not installed (apt install openssh-server)".into());
    }
    None
}

pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

impl Env {
    pub fn new() -> Self {
        let tmp = tempfile::Builder::new().prefix("vmt").tempdir().unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir_all(home.join("src")).unwrap();
        // The user's own config (below every project file): the Colima stand-in's VMs hold no
        // real memory, so a machine-wide budget no test reaches unless it sets its own.
        let user = if cfg!(target_os = "macos") {
            home.join("Library/Application Support/git-vmoat")
        } else {
            home.join(".config/git-vmoat")
        };
        std::fs::create_dir_all(&user).unwrap();
        std::fs::write(user.join("config.toml"), "[vm]\nbudget = 4096\n").unwrap();
        Self {
            tmp,
            home,
            extra_env: vec![],
            children: Default::default(),
        }
    }

    pub fn colima_state(&self) -> PathBuf {
        self.tmp.path().join("colima")
    }

    /// Where git-vmoat keeps its state for this HOME, by the platform's rule (`directories`:
    /// the XDG state dir on Linux; macOS has none, so its local data dir).
    pub fn state_dir(&self) -> PathBuf {
        if cfg!(target_os = "macos") {
            self.home.join("Library/Application Support/git-vmoat")
        } else {
            self.home.join(".local/state/git-vmoat")
        }
    }

    pub fn path_var(&self, with_colima: bool) -> String {
        let sys = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        let bin_dir = bin().parent().unwrap().to_path_buf();
        if with_colima {
            format!("{}:{}:{sys}", support_dir().display(), bin_dir.display())
        } else {
            // Without Colima means without any: drop the dirs where a real one could be found.
            let sys: Vec<String> = std::env::split_paths(&sys)
                .filter(|d| !d.join("colima").exists())
                .map(|d| d.display().to_string())
                .collect();
            format!("{}:{}", bin_dir.display(), sys.join(":"))
        }
    }

    /// A command with the hermetic environment: no user or system git config, HOME in the temp dir.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(dir)
            .env_clear()
            .env("PATH", self.path_var(true))
            .env("HOME", &self.home)
            .env(
                "USER",
                std::env::var("USER").unwrap_or_else(|_| "root".into()),
            )
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_SYSTEM", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env("FAKE_COLIMA_STATE", self.colima_state())
            .stdin(std::process::Stdio::null());
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    #[track_caller]
    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.cmd("git", dir).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A repo with one commit under $HOME/src/<name>.
    pub fn repo(&self, name: &str) -> PathBuf {
        let dir = self.home.join("src").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        self.git(&dir, &["init", "-q", "-b", "main"]);
        std::fs::write(dir.join("README.md"), "hello\n").unwrap();
        self.git(&dir, &["add", "."]);
        self.git(&dir, &["commit", "-q", "-m", "init"]);
        dir
    }

    /// A linked worktree of `repo` at `path` on a new branch.
    pub fn worktree(&self, repo: &Path, path: &Path, branch: &str) -> PathBuf {
        self.git(
            repo,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                branch,
                path.to_str().unwrap(),
            ],
        );
        path.to_path_buf()
    }

    pub fn output(&self, dir: &Path, args: &[&str], with_colima: bool) -> Output {
        let mut c = self.cmd(bin(), dir);
        c.args(args).env("PATH", self.path_var(with_colima));
        // A test's own environment wins, PATH included.
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    pub fn vmoat(&self, dir: &Path, args: &[&str]) -> Run {
        to_run(self.output(dir, args, true))
    }

    pub fn vmoat_without_colima(&self, dir: &Path, args: &[&str]) -> Run {
        to_run(self.output(dir, args, false))
    }

    /// Every colima call the stand-in recorded: argv, and whether stdin was /dev/null.
    pub fn calls(&self) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(self.colima_state().join("calls.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The argv of every recorded call, space-joined.
    pub fn call_lines(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|c| {
                c["argv"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    pub fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.colima_state().join("calls.jsonl"));
    }

    /// The stand-in's record of a profile (None when it does not exist).
    pub fn profile(&self, name: &str) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(
            self.colima_state()
                .join("profiles")
                .join(format!("{name}.json")),
        )
        .ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn write(&self, path: &Path, text: &str) {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }
}

fn to_run(out: Output) -> Run {
    use std::os::unix::process::ExitStatusExt;
    Run {
        code: out
            .status
            .code()
            .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0)),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Drop for Env {
    /// Ends every process whose command line mentions this test's temp dir (sshds, tunnels,
    /// ssh masters, servers), so a failing test leaks nothing.
    fn drop(&mut self) {
        for mut c in self.children.borrow_mut().drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Tear VMs down the way a user would, so namespaces, daemons and mounts go too.
        if let Ok(names) = std::fs::read_to_string(self.state_dir().join("names.json"))
            && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&names)
        {
            for owner in map.values() {
                let root = PathBuf::from(owner["root"].as_str().unwrap_or_default());
                let backend = owner["backend"].as_str().unwrap_or("colima");
                if root.is_dir() {
                    let _ = self
                        .cmd(bin(), &root)
                        .args(["--backend", backend, "destroy", "-f"])
                        .output();
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.colima_state().join("profiles")) {
            for e in entries.flatten() {
                let name = e
                    .file_name()
                    .to_string_lossy()
                    .trim_end_matches(".json")
                    .to_string();
                let _ = self
                    .cmd(support_dir().join("colima"), &self.home)
                    .args(["delete", &name, "--force", "--data"])
                    .output();
            }
        }
        let needle = self.tmp.path().to_string_lossy().into_owned();
        let me = std::process::id();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid as u32 == me {
                continue;
            }
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            if String::from_utf8_lossy(&cmdline).contains(&needle)
                && let Some(p) = rustix::process::Pid::from_raw(pid)
            {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
            }
        }
    }
}

/// Polls `f` until it is true or the deadline passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A plain HTTP GET over TCP; returns the body or None.
pub fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// Serves `dir` over HTTP on 127.0.0.1 at a free port (a stand-in for a stack in the VM);
/// killed by Env's cleanup because its command line holds the temp dir.
pub fn serve(env: &Env, dir: &Path) -> u16 {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = env
        .cmd("python3", dir)
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    env.children.borrow_mut().push(child);
    assert!(
        wait_until(Duration::from_secs(10), || http_get(port).is_some()),
        "server did not start"
    );
    port
}

/// Why the stand-in cannot boot isolated VMs here (namespaces, own dockerd): None when it can.
pub fn isolation_unavailable() -> Option<String> {
    if let Some(why) = ssh_unavailable() {
        return Some(why);
    }
    if !rustix::process::geteuid().is_root() {
        return Some("isolated VMs (network namespaces, dockerd) need root".into());
    }
    for tool in ["ip", "nsenter", "dockerd", "docker", "nc"] {
        if which(tool).is_none() {
            return Some(format!(
                "{tool} is not installed (apt install iproute2 docker.io netcat-openbsd)"
            ));
        }
    }
    None
}

/// A port free on the host right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Serves `dir` over HTTP on the VM's 127.0.0.1:`port` (started with `git vmoat ssh`).
pub fn serve_in_vm(env: &Env, wt: &Path, dir: &Path, port: u16) {
    let script = format!(
        "python3 -m http.server {port} --bind 127.0.0.1 --directory '{}' </dev/null >/dev/null 2>&1 &",
        dir.display()
    );
    env.vmoat(wt, &["ssh", "sh", "-c", &script]).ok();
    let url = format!("http://127.0.0.1:{port}/");
    assert!(
        wait_until(Duration::from_secs(10), || env
            .vmoat(wt, &["ssh", "curl", "-sf", "-o", "/dev/null", &url])
            .code
            == 0),
        "server in the VM did not start"
    );
}

/// Why the netns backend cannot run here (None: it can).
pub fn netns_unavailable() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("the netns backend needs root".into());
    }
    ["ip", "nsenter", "dockerd", "docker"]
        .iter()
        .find(|t| which(t).is_none())
        .map(|t| format!("{t} is not installed (apt install iproute2 docker.io)"))
}

/// A busybox root filesystem to `docker import` (no image can be pulled in tests); made once
/// per test environment.
pub fn busybox_rootfs(env: &Env) -> PathBuf {
    let root = env.tmp.path().join("rootfs");
    if root.join("bin/busybox").exists() {
        return root;
    }
    std::fs::create_dir_all(root.join("bin")).unwrap();
    let bb = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox (apt install busybox-static)");
    std::fs::copy(bb, root.join("bin/busybox")).unwrap();
    for app in ["sh", "httpd", "sleep", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(app)).unwrap();
    }
    root
}

/// A tmpfs mounted for a test, unmounted (after the VMs on it are gone) when dropped.
pub struct SmallDisk {
    pub dir: PathBuf,
    pub vms: Vec<PathBuf>,
    pub env_vars: Vec<(String, String)>,
}

impl SmallDisk {
    pub fn mount(dir: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(ok.success());
        Self {
            env_vars: vec![("GIT_VMOAT_STATE_DIR".into(), dir.display().to_string())],
            dir,
            vms: vec![],
        }
    }

    pub fn shrink(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        for wt in &self.vms {
            let _ = std::process::Command::new(bin())
                .args(["destroy", "-f"])
                .current_dir(wt)
                .envs(self.env_vars.iter().cloned())
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .output();
        }
        let _ = std::process::Command::new("umount").arg(&self.dir).status();
    }
}

/// The tests' web stack: busybox httpd serving the worktree's `www` dir on the VM's port 8080
/// (its image imported from the busybox rootfs once per VM).
pub fn httpd_up(env: &Env) -> String {
    format!(
        "docker image inspect bb >/dev/null 2>&1 || tar -C {} -c . | docker import - bb >/dev/null; docker rm -f web >/dev/null 2>&1; docker run -d --name web --pull never -p 8080:80 -v \"$PWD/www:/www\" bb httpd -f -p 80 -h /www >/dev/null",
        busybox_rootfs(env).display()
    )
}

/// The worktree's VM name, as `git vmoat name` prints it.
pub fn vm_name(env: &Env, wt: &Path) -> String {
    env.vmoat(wt, &["name"]).ok().stdout.trim().to_string()
}

/// The worktree's VM state, as `git vmoat status --json` reports it.
pub fn vm_state(env: &Env, wt: &Path) -> String {
    let r = env.vmoat(wt, &["status", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v["state"]
        .as_str()
        .unwrap_or_else(|| panic!("no state in {v:#}"))
        .to_string()
}

/// Kills the netns VM's dockerd with SIGKILL (a daemon crash); returns its pid.
pub fn kill_dockerd(env: &Env, vm: &str) -> i32 {
    let pid: i32 =
        std::fs::read_to_string(format!("/run/git-vmoat/{}/docker.pid", netns_id(env, vm)))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    pid
}

/// The machine-wide name the netns backend gives a VM's namespace, cgroup and runtime dir:
/// the VM name plus a short hash of the state dir (the backend's own rule).
pub fn netns_id(env: &Env, vm: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(env.state_dir().to_string_lossy().as_bytes());
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("{vm}-{}", &hex[..4])
}

/// The Python that has the MCP SDK: $VMOAT_MCP_PYTHON (.ci/run sets it), else python3.
pub fn mcp_python() -> PathBuf {
    std::env::var_os("VMOAT_MCP_PYTHON").map_or_else(|| "python3".into(), PathBuf::from)
}

/// Why the Python MCP client cannot run here (None: it can).
pub fn mcp_python_unavailable() -> Option<String> {
    let ok = Command::new(mcp_python())
        .args(["-c", "import mcp, jsonschema"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!ok).then(|| {
        format!(
            "{} cannot import the MCP SDK (python3 -m venv V && V/bin/pip install mcp, then VMOAT_MCP_PYTHON=V/bin/python)",
            mcp_python().display()
        )
    })
}

/// The MCP Inspector's CLI: $VMOAT_MCP_INSPECTOR (.ci/run sets it), else mcp-inspector on PATH.
pub fn mcp_inspector() -> Option<PathBuf> {
    std::env::var_os("VMOAT_MCP_INSPECTOR")
        .map(PathBuf::from)
        .or_else(|| which("mcp-inspector"))
        .filter(|p| p.exists())
}

pub fn mcp_inspector_unavailable() -> Option<String> {
    mcp_inspector().is_none().then(|| {
        "the MCP Inspector is not installed (npm i @modelcontextprotocol/inspector, then VMOAT_MCP_INSPECTOR=node_modules/.bin/mcp-inspector)".into()
    })
}
