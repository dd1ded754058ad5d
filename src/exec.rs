//! The one wrapper through which every child process is spawned: argv shown with -v,
//! stdin closed unless asked, failures turned into errors that name the command and its stderr.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};

use anyhow::{Context, Result};

use crate::error::hint;
use crate::output;

/// A child process to run.
pub struct Cmd {
    inner: Command,
    argv: Vec<OsString>,
    stdin_inherit: bool,
    stdin_piped: bool,
    stdout_to_stderr: bool,
    stdin_from: Option<Stdio>,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            inner: Command::new(program.as_ref()),
            argv: vec![program.as_ref().to_os_string()],
            stdin_inherit: false,
            stdin_piped: false,
            stdout_to_stderr: false,
            stdin_from: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.inner.arg(arg.as_ref());
        self.argv.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> Self {
        self.inner.env(key, val);
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.inner.env_remove(key);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.inner.current_dir(dir);
        self
    }

    /// Lets the child read the user's stdin (interactive commands, piped input).
    pub fn stdin_inherit(mut self) -> Self {
        self.stdin_inherit = true;
        self
    }

    /// Gives the child a pipe as stdin, for streaming into it.
    pub fn stdin_piped(mut self) -> Self {
        self.stdin_piped = true;
        self
    }

    /// Starts the child in a process group of its own: Ctrl-C at our terminal does not reach it.
    pub fn own_process_group(mut self) -> Self {
        use std::os::unix::process::CommandExt;
        self.inner.process_group(0);
        self
    }

    /// Gives the child `fd` (a socket, a file) as its stdin.
    pub fn stdin_from(mut self, fd: std::os::fd::OwnedFd) -> Self {
        self.stdin_from = Some(Stdio::from(fd));
        self
    }

    /// Sends the child's stdout to our stderr: its output is a message, not our data.
    pub fn stdout_to_stderr(mut self) -> Self {
        self.stdout_to_stderr = true;
        self
    }

    /// The program name (first argv element) for messages.
    pub fn program(&self) -> String {
        self.argv[0].to_string_lossy().into_owned()
    }

    /// The command line as a shell would show it, for messages and -v.
    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| crate::shell::quote_if_needed(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn prepare(&mut self) {
        output::trace(self.display());
        self.inner.stdin(if let Some(fd) = self.stdin_from.take() {
            fd
        } else if self.stdin_piped {
            Stdio::piped()
        } else if self.stdin_inherit {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    }

    fn spawn_error(&self, err: std::io::Error) -> anyhow::Error {
        if err.kind() == std::io::ErrorKind::NotFound {
            hint(
                format!("`{}` was not found on PATH", self.program()),
                format!("install {} or add it to PATH", self.program()),
            )
        } else {
            anyhow::Error::new(err).context(format!("could not run `{}`", self.display()))
        }
    }

    /// Runs to completion capturing stdout and stderr, whatever the exit status.
    pub fn output(mut self) -> Result<Output> {
        self.prepare();
        self.inner.output().map_err(|e| self.spawn_error(e))
    }

    /// Runs capturing output; a non-zero exit is an error showing the command and its stderr.
    pub fn checked(self) -> Result<Output> {
        let display = self.display();
        let out = self.output()?;
        if !out.status.success() {
            return Err(CommandFailed {
                command: display,
                status: status_code(out.status),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }
            .into());
        }
        Ok(out)
    }

    /// Runs with stdout and stderr going to the user's terminal; returns the exit status.
    pub fn status(mut self) -> Result<ExitStatus> {
        use std::os::fd::AsFd;
        self.prepare();
        let stdout = if self.stdout_to_stderr {
            Stdio::from(std::io::stderr().as_fd().try_clone_to_owned()?)
        } else {
            Stdio::inherit()
        };
        self.inner
            .stdout(stdout)
            .stderr(Stdio::inherit())
            .status()
            .map_err(|e| self.spawn_error(e))
    }

    /// Spawns with the given stdout and stderr (stdin per `stdin_inherit`).
    pub fn spawn_with(mut self, stdout: Stdio, stderr: Stdio) -> Result<std::process::Child> {
        self.prepare();
        self.inner.stdout(stdout).stderr(stderr);
        self.inner.spawn().map_err(|e| self.spawn_error(e))
    }

    /// Starts the process in its own process group, detached from our terminal, with its
    /// output appended to `log`; the caller keeps the handle to watch it start up.
    pub fn spawn_detached(mut self, log: &Path) -> Result<std::process::Child> {
        use std::os::unix::process::CommandExt;
        self.prepare();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening log {}", log.display()))?;
        let err = file.try_clone()?;
        self.inner.stdout(file).stderr(err).process_group(0);
        self.inner.spawn().map_err(|e| self.spawn_error(e))
    }
}

/// A command exited non-zero.
#[derive(Debug)]
pub struct CommandFailed {
    pub command: String,
    pub status: i32,
    pub stderr: String,
}

impl std::fmt::Display for CommandFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` failed (exit {})", self.command, self.status)?;
        if !self.stderr.is_empty() {
            write!(f, ":\n{}", self.stderr)?;
        }
        Ok(())
    }
}

impl std::error::Error for CommandFailed {}

/// The shell-style status code: the exit code, or 128 + signal number.
pub fn status_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Whether `program` is an executable on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program)))
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether a process exists and has not exited (a zombie waiting to be reaped has).
pub fn process_alive(pid: u32) -> bool {
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    if rustix::process::test_kill_process(p).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => true,
    }
}

/// Every process with its argv (Linux: /proc; elsewhere: `ps`, whose output joins the argv
/// with spaces, so it comes back as one element).
pub fn processes() -> Vec<(u32, Vec<String>)> {
    if let Ok(dir) = std::fs::read_dir("/proc") {
        return dir
            .filter_map(|e| {
                let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
                let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let argv = raw
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                Some((pid, argv))
            })
            .collect();
    }
    let Ok(out) = Cmd::new("ps")
        .args(["-axww", "-o", "pid=,command="])
        .output()
    else {
        return vec![];
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (pid, cmd) = l.trim_start().split_once(' ')?;
            Some((pid.parse().ok()?, vec![cmd.to_string()]))
        })
        .collect()
}

/// Whether an argv (from `processes`) has `arg` as one of its arguments.
pub fn has_arg(argv: &[String], arg: &str) -> bool {
    match argv {
        [joined] if !joined.contains('\0') && argv.len() == 1 && joined.len() > arg.len() => {
            // `ps` form: the argument surrounded by spaces (or at an end).
            let padded = format!(" {joined} ");
            padded.contains(&format!(" {arg} "))
        }
        _ => argv.iter().any(|a| a == arg),
    }
}
