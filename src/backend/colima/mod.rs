//! The Colima backend: one Colima profile per worktree, driven as colima-contract.md says
//! (list --json for state; start with our own flags; commands and tunnels over plain ssh).

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use super::{Backend, BackendKind, ExecOut, Io, StartSpec, VmInfo, VmState};
use crate::error::hint;
use crate::exec::{self, Cmd};
use crate::output;
use crate::shell;
use crate::state::State;

mod parse;
mod usage;

pub use parse::show_version;
use parse::{parse_list, parse_version, pick_entry};

/// The VM's ssh config, in its runtime dir.
const SSH_CONFIG: &str = "ssh_config";
/// The forwarder's own copy of it, refreshed when the VM may have started again.
const TUNNEL_SSH_CONFIG: &str = "tunnel_ssh_config";
/// The owner record kept in the VM's Lima instance dir.
const OWNER_MARK: &str = "git-vmoat-owner.json";

/// Oldest Colima that accepts `--port-forwarder=none` (0.9.x exits 1 on it) and has
/// `delete --data` (the contract's version gate, §8 and §10).
pub const MIN_VERSION: (u64, u64, u64) = (0, 10, 0);
/// Oldest Lima that accepts the `proto: any` ignore rule `--port-forwarder=none` writes.
pub const MIN_LIMA_VERSION: (u64, u64, u64) = (1, 0, 0);
/// First macOS with Colima's `--vm-type` flag.
const VM_TYPE_MIN_MACOS: (u64, u64) = (13, 0);

pub struct Colima {
    state: State,
    /// ssh configs fetched in this process: one `colima ssh-config` per VM, not one per command.
    ssh_configs: std::sync::Mutex<std::collections::HashMap<String, PathBuf>>,
}

impl Colima {
    pub fn new(state: State) -> Self {
        Self {
            state,
            ssh_configs: Default::default(),
        }
    }

    /// A `colima` command with Lima/Colima variables that would redirect it scrubbed.
    /// COLIMA_SAVE_CONFIG=false would leave our flags unsaved, so a restart (`resume`, or
    /// Colima's own) would bring the VM back with 2 CPU, 2 GiB and `~` mounted.
    fn colima(&self) -> Cmd {
        Cmd::new("colima")
            .env_remove("LIMA_HOME")
            .env_remove("LIMA_INSTANCE")
            .env_remove("LIMA_WORKDIR")
            .env_remove("COLIMA_PROFILE")
            .env_remove("COLIMA_SAVE_CONFIG")
    }

    /// Colima's base dir, following its own lookup order (contract §2, "Where files live").
    fn base_dir() -> Option<PathBuf> {
        let home = directories::BaseDirs::new()?.home_dir().to_path_buf();
        if let Some(h) = std::env::var_os("COLIMA_HOME").filter(|v| !v.is_empty()) {
            let h = PathBuf::from(h);
            // Colima silently ignores a COLIMA_HOME that does not exist; make it exist.
            if std::fs::create_dir_all(&h).is_ok() {
                return Some(h);
            }
        }
        if home.join(".colima").is_dir() {
            return Some(home.join(".colima"));
        }
        if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(x).join("colima"));
        }
        if home.join(".config/colima").is_dir() {
            return Some(home.join(".config/colima"));
        }
        Some(if cfg!(target_os = "macos") {
            home.join(".colima")
        } else {
            home.join(".config/colima")
        })
    }

    /// Writes the profile's current ssh config (its port changes on every start).
    fn ssh_config(&self, vm: &str) -> Result<PathBuf> {
        if let Some(p) = self
            .ssh_configs
            .lock()
            .ok()
            .and_then(|m| m.get(vm).cloned())
        {
            return Ok(p);
        }
        let out = self
            .colima()
            .arg("ssh-config")
            .arg(vm)
            .checked()
            .map_err(|e| e.context(format!("reading the ssh config of VM {vm}")))?;
        let path = self.state.vm_dir(vm)?.join(SSH_CONFIG);
        std::fs::write(&path, &out.stdout)
            .with_context(|| format!("writing {}", path.display()))?;
        if let Ok(mut m) = self.ssh_configs.lock() {
            m.insert(vm.to_string(), path.clone());
        }
        Ok(path)
    }

    /// Forgets a cached ssh config: every start gives the VM a new ssh port.
    fn forget_ssh_config(&self, vm: &str) {
        if let Ok(mut m) = self.ssh_configs.lock() {
            m.remove(vm);
        }
    }

    fn check_version(&self) -> Result<()> {
        let out = self.colima().arg("version").checked()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(v) = parse_version(&text)
            && v < MIN_VERSION
        {
            return Err(hint(
                format!(
                    "colima {} is too old: git-vmoat needs {} or newer (for --port-forwarder=none)",
                    show_version(v),
                    show_version(MIN_VERSION)
                ),
                "upgrade Colima (`brew upgrade colima`, or see https://colima.run)",
            ));
        }
        // Colima runs the limactl on PATH; when it is not there Colima says so itself.
        if exec::on_path("limactl") {
            let out = Cmd::new("limactl").arg("--version").output()?;
            if let Some(v) = parse_version(&String::from_utf8_lossy(&out.stdout))
                && v < MIN_LIMA_VERSION
            {
                return Err(hint(
                    format!(
                        "Lima {} is too old: Colima's --port-forwarder=none needs Lima {} or newer",
                        show_version(v),
                        show_version(MIN_LIMA_VERSION)
                    ),
                    "upgrade Lima (`brew upgrade lima`)",
                ));
            }
        }
        Ok(())
    }

    /// Lima's instance dir of a profile: its existence is what "the VM exists" means to Lima.
    fn instance_dir(vm: &str) -> Result<PathBuf> {
        let base = Self::base_dir().context("cannot find Colima's directory (is HOME set?)")?;
        Ok(base.join("_lima").join(format!("colima-{vm}")))
    }

    /// Runs colima with its messages passed through live, keeping the last lines for the error.
    fn run_streamed(&self, cmd: Cmd, what: &str) -> Result<()> {
        let display = cmd.display();
        let mut child = cmd.spawn_piped_stderr()?;
        let mut tail: Vec<String> = vec![];
        if let Some(err) = child.stderr.take() {
            for line in BufReader::new(err).lines() {
                let line = line.unwrap_or_default();
                if !output::quiet() {
                    crate::output::indented(&line);
                }
                tail.push(line);
                if tail.len() > 20 {
                    tail.remove(0);
                }
            }
        }
        let status = child.wait()?;
        if !status.success() {
            return Err(hint(
                format!(
                    "{what} failed: `{display}` exited with {}:\n{}",
                    exec::status_code(status),
                    tail.join("\n")
                ),
                "see Colima's messages above; `colima list` shows the VM, `colima delete <name>` removes a broken one",
            ));
        }
        Ok(())
    }
}

/// The mount path to give Colima: the real path (Lima does not resolve symlinks, so the VM
/// would see the worktree elsewhere), without what Colima would split or expand.
fn mount_arg(mount: &Path) -> Result<String> {
    let real = std::fs::canonicalize(mount).map_err(|e| {
        hint(
            format!(
                "vm.mount (VM_MOUNT) {} cannot be used: {e}",
                mount.display()
            ),
            "set vm.mount to an existing dir that holds the worktree",
        )
    })?;
    let path = real.to_string_lossy().into_owned();
    // `:` separates Colima's HOST:GUEST:w and `$` is expanded (os.ExpandEnv); a comma splits
    // the flag's list and a space is rejected.
    if let Some(c) = path.chars().find(|c| [':', '$', ',', ' '].contains(c)) {
        let shown = if c == ' ' {
            "a space".to_string()
        } else {
            format!("`{c}`")
        };
        return Err(hint(
            format!("Colima cannot mount {path}: its path has {shown}, which Colima would misread"),
            "move the worktrees under a dir without `:`, `$`, `,` or spaces, or set vm.mount (VM_MOUNT) to such a parent dir that holds the worktree",
        ));
    }
    Ok(path)
}

/// The `--vm-type` value to pass: Colima has the flag only on macOS 13 or newer
/// (`macos` = the OS version, None off macOS). Err = the configured type must be dropped,
/// with the reason.
pub fn vm_type_flag(
    configured: Option<&str>,
    macos: Option<(u64, u64)>,
) -> std::result::Result<Option<&str>, String> {
    let Some(t) = configured else {
        return Ok(None);
    };
    match macos {
        Some(v) if v >= VM_TYPE_MIN_MACOS => Ok(Some(t)),
        Some((major, minor)) => Err(format!(
            "vm.type = {t} is ignored: Colima has --vm-type only on macOS 13 or newer, and this is macOS {major}.{minor}"
        )),
        None => Err(format!(
            "vm.type = {t} is ignored: Colima has --vm-type only on macOS"
        )),
    }
}

/// This Mac's version (`sw_vers`), once per process; None off macOS.
fn macos_version() -> Option<(u64, u64)> {
    static V: std::sync::OnceLock<Option<(u64, u64)>> = std::sync::OnceLock::new();
    *V.get_or_init(|| {
        if !cfg!(target_os = "macos") {
            return None;
        }
        let out = Cmd::new("sw_vers").arg("-productVersion").output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.trim().split('.').map(|p| p.parse::<u64>().ok());
        // Unreadable: assume a current macOS, where the flag exists.
        Some(match (it.next().flatten(), it.next().flatten()) {
            (Some(a), b) => (a, b.unwrap_or(0)),
            _ => VM_TYPE_MIN_MACOS,
        })
    })
}

impl Backend for Colima {
    fn unwrapped(&self) -> &dyn Backend {
        self
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Colima
    }

    fn ensure_installed(&self) -> Result<()> {
        if exec::on_path("colima") {
            return Ok(());
        }
        Err(hint(
            "colima is not installed (it runs each worktree's VM)",
            if cfg!(target_os = "macos") {
                "install it with `brew install colima docker`, then retry"
            } else {
                "install Colima and Lima (see https://colima.run/docs/installation/), then retry"
            },
        ))
    }

    fn max_name_len(&self) -> Result<usize> {
        // Lima's socket `<LIMA_HOME>/colima-<name>/ssh.sock.1234567890123456` must stay under
        // UNIX_PATH_MAX (104 on macOS, 108 on Linux), measured on the real path.
        let base = Self::base_dir().context("cannot find Colima's directory (is HOME set?)")?;
        let base = std::fs::canonicalize(&base).unwrap_or(base);
        let lima_home = base.join("_lima");
        let unix_max = if cfg!(target_os = "macos") { 104 } else { 108 };
        let room = (unix_max - 1usize).saturating_sub(
            lima_home.as_os_str().len() + "/colima-".len() + "/ssh.sock.1234567890123456".len(),
        );
        // Also: Lima's 76-char instance limit and the 63-char hostname `colima-<name>`.
        Ok(room.min(63 - "colima-".len()))
    }

    fn info(&self, vm: &str) -> Result<VmInfo> {
        let cmd = self.colima().args(["list", vm, "--json"]);
        let display = cmd.display();
        let out = cmd.output()?;
        // Lima exits 1 for a profile it does not know (contract §3, list), but also for one it
        // cannot load: only a missing instance dir makes that "no such VM" (Lima's own test).
        if !out.status.success() {
            let dir = Self::instance_dir(vm)?;
            if !dir.exists() {
                return Ok(VmInfo::missing());
            }
            return Err(hint(
                format!(
                    "cannot tell the state of VM {vm}: `{display}` failed (exit {}), yet its Lima instance {} exists:\n{}",
                    exec::status_code(out.status),
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                format!(
                    "see `colima list` and `limactl list`; `colima stop --force {vm}` may recover it, `colima delete --force --data {vm}` removes it"
                ),
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(e) = pick_entry(&text, vm)? else {
            return Ok(VmInfo::missing());
        };
        Ok(VmInfo {
            state: VmState::from_lima(&e.status),
            cpus: e.cpus,
            memory_bytes: e.memory,
            disk_bytes: e.disk,
        })
    }

    fn preflight(&self, spec: &StartSpec<'_>) -> Result<()> {
        self.check_version()?;
        mount_arg(spec.mount)?;
        // Colima's docker runtime calls the host's docker CLI; without it every start fails.
        if !exec::on_path("docker") {
            return Err(hint(
                "the docker CLI is not installed: Colima's docker runtime needs it on the host",
                if cfg!(target_os = "macos") {
                    "install it with `brew install docker`, then retry"
                } else {
                    "install the docker CLI (docker-ce-cli or docker.io), then retry"
                },
            ));
        }
        if let Err(why) = vm_type_flag(spec.vm_type, macos_version()) {
            output::warn(format!("{why} (remove vm.type on this machine)"));
        }
        Ok(())
    }

    fn start(&self, vm: &str, spec: &StartSpec<'_>, current: &VmState) -> Result<()> {
        self.forget_ssh_config(vm);
        let mount = mount_arg(spec.mount)?;
        let _global = self.state.lock_colima()?;
        if *current == VmState::Broken {
            self.colima().args(["stop", vm, "--force"]).checked()?;
        }
        let mut cmd = self
            .colima()
            .args(["start", vm, "--runtime", "docker"])
            .args(["--cpus", &spec.cpus.to_string()])
            .args(["--memory", &spec.memory_gib.to_string()])
            .args(["--disk", &spec.disk_gib.to_string()])
            .args(["--mount", &format!("{mount}:w")]);
        if let Ok(Some(t)) = vm_type_flag(spec.vm_type, macos_version()) {
            cmd = cmd.args(["--vm-type", t]);
        }
        if let Some(t) = spec.mount_type {
            cmd = cmd.args(["--mount-type", t]);
        }
        // Never touch the user's docker context, Colima templates or ~/.ssh/config, and keep
        // host ports for our own tunnels.
        cmd = cmd.args([
            "--activate=false",
            "--template=false",
            "--ssh-config=false",
            "--port-forwarder=none",
        ]);
        let what = if *current == VmState::Missing {
            "creating the VM"
        } else {
            "starting the VM"
        };
        self.run_streamed(cmd, what)?;
        let after = self.info(vm)?.state;
        if after != VmState::Running {
            bail!("colima start returned, but VM {vm} is {after}, not Running");
        }
        Ok(())
    }

    fn resume(&self, vm: &str) -> Result<()> {
        self.forget_ssh_config(vm);
        // No size or mount flags: Colima starts the profile from its saved config.
        let _global = self.state.lock_colima()?;
        let cmd = self.colima().args([
            "start",
            vm,
            "--activate=false",
            "--template=false",
            "--ssh-config=false",
            "--port-forwarder=none",
        ]);
        self.run_streamed(cmd, "starting the sibling VM")
    }

    fn stop(&self, vm: &str) -> Result<()> {
        self.forget_ssh_config(vm);
        let _global = self.state.lock_colima()?;
        self.run_streamed(self.colima().args(["stop", vm]), "stopping the VM")
    }

    /// A stopped Colima VM holds nothing on the host but its disk.
    fn stopped_holds_host_state(&self) -> bool {
        false
    }

    fn live_usage(&self, vm: &str) -> super::Usage {
        self.measure(vm)
    }

    fn disk_bytes(&self, vm: &str) -> Option<u64> {
        self.disk(vm)
    }

    fn cpu_ns(&self, vm: &str) -> Option<u64> {
        self.vm_cpu_ns(vm)
    }

    fn disk_need(&self) -> Option<super::DiskNeed> {
        Self::new_vm_disk()
    }

    fn delete(&self, vm: &str) -> Result<()> {
        self.forget_ssh_config(vm);
        let _global = self.state.lock_colima()?;
        // --data: without it Colima keeps the data disk and hands it to the next VM of this name.
        self.run_streamed(
            self.colima().args(["delete", vm, "--force", "--data"]),
            "deleting the VM",
        )
    }

    fn exec(&self, vm: &str, cwd: &Path, script: Option<&str>, io: Io) -> Result<ExecOut> {
        let cfg = self.ssh_config(vm)?;
        let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
        let remote = match script {
            Some(s) => format!("bash -lc {}", shell::quote(&shell::in_dir(cwd, s))),
            None => shell::in_dir(cwd, "exec \"${SHELL:-bash}\" -l"),
        };
        let mut cmd = Cmd::new("ssh")
            .arg("-F")
            .arg(&cfg)
            .args(["-o", "LogLevel=ERROR"]);
        cmd = match io {
            Io::Capture | Io::Log => cmd.args(["-T", "-n"]),
            Io::Inherit if terminal => cmd.arg("-t"),
            Io::Inherit => cmd.arg("-T"),
        };
        super::run_io(cmd.arg(format!("colima-{vm}")).arg(remote), io)
    }

    fn docker(&self, vm: &str) -> Result<Cmd> {
        // Colima forwards each profile's daemon socket to `<base>/<profile>/docker.sock`;
        // DOCKER_HOST beats any context, so the user's current context is never touched.
        let base = Self::base_dir().context("cannot find Colima's directory (is HOME set?)")?;
        let sock = base.join(vm).join("docker.sock");
        Ok(Cmd::new("docker")
            .env("DOCKER_HOST", format!("unix://{}", sock.display()))
            .env_remove("DOCKER_CONTEXT"))
    }

    fn owner_mark(&self, vm: &str) -> Option<String> {
        std::fs::read_to_string(Self::instance_dir(vm).ok()?.join(OWNER_MARK)).ok()
    }

    fn set_owner_mark(&self, vm: &str, mark: &str) -> Result<()> {
        // In Lima's instance dir: it exists exactly as long as the VM (Colima deletes it).
        let dir = Self::instance_dir(vm)?;
        if !dir.is_dir() {
            return Ok(());
        }
        let path = dir.join(OWNER_MARK);
        let tmp = dir.join(format!(".{OWNER_MARK}.tmp"));
        std::fs::write(&tmp, mark)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("writing {}", path.display()))
    }

    fn list_vms(&self) -> Result<Vec<String>> {
        let out = self.colima().args(["list", "--json"]).checked()?;
        let entries = parse_list(&String::from_utf8_lossy(&out.stdout))?;
        Ok(entries.into_iter().map(|e| e.name).collect())
    }

    fn checks(&self, scope: &crate::check::Scope<'_>) -> Vec<crate::check::Check> {
        super::colima_checks::checks(scope)
    }

    fn forwarder_marker(&self, vm: &str) -> String {
        // Every forward runs `ssh -F <this file>`; the file is per VM and per state dir.
        self.state
            .vm_dir_path(vm)
            .join(SSH_CONFIG)
            .display()
            .to_string()
    }

    fn forward(&self, vm: &str, host: u16, guest: u16) -> Result<Cmd> {
        // Our own forwarder: it outlives the VM (a suspend stops it) and wakes it on connect.
        let marker = self.forwarder_marker(vm);
        super::forwarder(&self.state, BackendKind::Colima, vm, &marker, (host, guest))
    }
}

impl Colima {
    /// Fetches the VM's current ssh config for the tunnel forwarder into a file of its own
    /// (written whole, then renamed: a connection never reads half of it); returns the file and
    /// the host to name with `ssh -F FILE … HOST`. Its port changes on every start.
    pub fn tunnel_ssh(&self, vm: &str) -> Result<(PathBuf, String)> {
        let out = self
            .colima()
            .arg("ssh-config")
            .arg(vm)
            .checked()
            .map_err(|e| e.context(format!("reading the ssh config of VM {vm}")))?;
        let dir = self.state.vm_dir(vm)?;
        let path = dir.join(TUNNEL_SSH_CONFIG);
        let tmp = dir.join(format!(".{TUNNEL_SSH_CONFIG}.tmp"));
        std::fs::write(&tmp, &out.stdout)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok((path, format!("colima-{vm}")))
    }
}

impl Cmd {
    /// Spawns with stdout discarded and stderr piped, for streaming.
    fn spawn_piped_stderr(self) -> Result<std::process::Child> {
        self.spawn_with(Stdio::null(), Stdio::piped())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_type_only_on_macos_13_or_newer() {
        assert_eq!(vm_type_flag(Some("vz"), Some((14, 5))), Ok(Some("vz")));
        assert_eq!(vm_type_flag(Some("qemu"), Some((13, 0))), Ok(Some("qemu")));
        let old = vm_type_flag(Some("vz"), Some((12, 7))).unwrap_err();
        assert!(old.contains("macOS 13") && old.contains("12.7"), "{old}");
        assert!(vm_type_flag(Some("qemu"), None).is_err());
        assert_eq!(vm_type_flag(None, Some((12, 0))), Ok(None));
        assert_eq!(vm_type_flag(None, None), Ok(None));
    }

    #[test]
    fn mount_paths_are_real_and_unambiguous() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(
            mount_arg(&link).unwrap(),
            std::fs::canonicalize(&real).unwrap().to_string_lossy()
        );
        for bad in ["a:b", "a$HOME", "a,b", "a b"] {
            let d = tmp.path().join(bad);
            std::fs::create_dir(&d).unwrap();
            let e = mount_arg(&d).unwrap_err();
            assert!(crate::error::find_hint(&e).is_some(), "{bad}: {e}");
        }
    }
}
