//! The Colima backend: one Colima profile per worktree, driven as colima-contract.md says
//! (list --json for state; start with our own flags; commands and tunnels over plain ssh).

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::{Backend, ExecOut, Io, StartSpec, VmInfo, VmState};
use crate::error::hint;
use crate::exec::{self, Cmd};
use crate::output;
use crate::shell;
use crate::state::State;

/// The VM's ssh config, in its runtime dir.
const SSH_CONFIG: &str = "ssh_config";

/// Oldest Colima with `--port-forwarder` and `delete --data` (the contract's version gate).
pub const MIN_VERSION: (u64, u64, u64) = (0, 9, 0);

pub struct Colima {
    state: State,
    /// ssh configs fetched in this process: one `colima ssh-config` per VM, not one per command.
    ssh_configs: std::sync::Mutex<std::collections::HashMap<String, PathBuf>>,
}

/// One line of `colima list --json`; Colima omits every empty field.
#[derive(Deserialize, Default)]
struct ListEntry {
    #[serde(default)]
    status: String,
    #[serde(default)]
    cpus: Option<u64>,
    #[serde(default)]
    memory: Option<u64>,
    #[serde(default)]
    disk: Option<u64>,
}

impl Colima {
    pub fn new(state: State) -> Self {
        Self {
            state,
            ssh_configs: Default::default(),
        }
    }

    /// A `colima` command with Lima/Colima variables that would redirect it scrubbed.
    fn colima(&self) -> Cmd {
        Cmd::new("colima")
            .env_remove("LIMA_HOME")
            .env_remove("LIMA_INSTANCE")
            .env_remove("LIMA_WORKDIR")
            .env_remove("COLIMA_PROFILE")
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
                    "colima {}.{}.{} is too old: git-vmoat needs 0.9.0 or newer",
                    v.0, v.1, v.2
                ),
                "upgrade Colima (`brew upgrade colima`, or see https://colima.run)",
            ));
        }
        Ok(())
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
                    eprintln!("  {line}");
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

fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let v = text
        .lines()
        .next()?
        .split_whitespace()
        .last()?
        .trim_start_matches('v');
    let mut it = v.split(['.', '-', '+']).map(|p| p.parse::<u64>().ok());
    Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
}

impl Backend for Colima {
    fn kind(&self) -> &'static str {
        "colima"
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
        let out = self.colima().args(["list", vm, "--json"]).output()?;
        // Lima exits 1 for a profile it does not know (contract §3, list).
        if !out.status.success() {
            return Ok(VmInfo::missing());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().find(|l| !l.trim().is_empty()) else {
            return Ok(VmInfo::missing());
        };
        let e: ListEntry = serde_json::from_str(line)
            .with_context(|| format!("unexpected `colima list` output: {line}"))?;
        let state = match e.status.as_str() {
            "Running" => VmState::Running,
            "Stopped" => VmState::Stopped,
            "" => VmState::Other("Unknown".into()),
            s => VmState::Other(s.into()),
        };
        Ok(VmInfo {
            state,
            cpus: e.cpus,
            memory_bytes: e.memory,
            disk_bytes: e.disk,
        })
    }

    fn preflight(&self, spec: &StartSpec<'_>) -> Result<()> {
        self.check_version()?;
        let mount = spec.mount.to_string_lossy();
        // Colima rejects mount paths with spaces and splits them at commas.
        if mount.contains([' ', ',']) {
            return Err(hint(
                format!("Colima cannot mount {mount}: its path has a space or a comma"),
                "set vm.mount (VM_MOUNT) to a parent dir without spaces or commas that holds the worktree",
            ));
        }
        if spec.vm_type.is_some() && !cfg!(target_os = "macos") {
            return Err(hint(
                "vm.type (VM_TYPE) is set, but Colima has --vm-type only on macOS",
                "remove vm.type from the config on this machine",
            ));
        }
        Ok(())
    }

    fn start(&self, vm: &str, spec: &StartSpec<'_>, current: &VmState) -> Result<()> {
        self.forget_ssh_config(vm);
        let mount = spec.mount.to_string_lossy();
        let _global = self.state.lock("colima")?;
        if matches!(current, VmState::Other(s) if s == "Broken") {
            self.colima().args(["stop", vm, "--force"]).checked()?;
        }
        let mut cmd = self
            .colima()
            .args(["start", vm, "--runtime", "docker"])
            .args(["--cpus", &spec.cpus.to_string()])
            .args(["--memory", &spec.memory_gib.to_string()])
            .args(["--disk", &spec.disk_gib.to_string()])
            .args(["--mount", &format!("{mount}:w")]);
        if let Some(t) = spec.vm_type {
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
        let _global = self.state.lock("colima")?;
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
        let _global = self.state.lock("colima")?;
        self.run_streamed(self.colima().args(["stop", vm]), "stopping the VM")
    }

    fn delete(&self, vm: &str) -> Result<()> {
        self.forget_ssh_config(vm);
        let _global = self.state.lock("colima")?;
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

    fn forwarder_marker(&self, vm: &str) -> String {
        // Every forward runs `ssh -F <this file>`; the file is per VM and per state dir.
        self.state
            .vm_dir_path(vm)
            .join(SSH_CONFIG)
            .display()
            .to_string()
    }

    fn forward(&self, vm: &str, host: u16, guest: u16) -> Result<Cmd> {
        let cfg = self.ssh_config(vm)?;
        // Its own connection: riding Colima's multiplexed master makes the client exit at once
        // and leaves the forward owned by the master, out of our reach.
        Ok(Cmd::new("ssh").arg("-F").arg(cfg).args([
            "-NT",
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "ServerAliveInterval=30",
            "-o",
            "LogLevel=ERROR",
            "-L",
            &format!("127.0.0.1:{host}:127.0.0.1:{guest}"),
            &format!("colima-{vm}"),
        ]))
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
    fn versions_parse() {
        assert_eq!(
            parse_version("colima version v0.10.3\ngit commit: x"),
            Some((0, 10, 3))
        );
        assert_eq!(parse_version("colima version 0.8.1"), Some((0, 8, 1)));
        assert_eq!(parse_version("colima version HEAD-abc"), None);
        assert!(parse_version("colima version v0.8.4").unwrap() < MIN_VERSION);
    }
}
