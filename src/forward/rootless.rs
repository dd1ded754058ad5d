//! A rootless VM's forwarder: the VM's network namespace belongs to the VM's own user
//! namespace, which a process can enter only once and only while it has one thread, never
//! leaving it for another. So the forwarder stays outside and serves through a worker (itself
//! again) that enters them; when the VM is made again after a crash, in new namespaces, the
//! worker ends and a new one enters those, on the same listening socket.

use std::net::TcpListener;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::exec::Cmd;

/// A worker's exit code when the VM it serves was made again: its supervisor starts another.
pub const MADE_AGAIN: i32 = 75;

/// Set for a worker: the spec it serves (its command line has none, so teardown, which finds
/// forwarders by their spec, counts each tunnel once), and its supervisor's pid.
const WORKER_SPEC: &str = "GIT_VMOAT_FORWARD_WORKER";
const SUPERVISOR: &str = "GIT_VMOAT_FORWARD_SUPERVISOR";

/// The spec this process serves as a worker, or None for the supervisor.
pub fn worker_spec() -> Option<String> {
    std::env::var(WORKER_SPEC).ok()
}

/// A worker's listening socket: its stdin, bound by the supervisor. The worker dies with it.
pub fn inherited_listener() -> Result<TcpListener> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    // The supervisor may have died before the line above: its worker must not serve on alone.
    let parent = rustix::process::getppid().map(|p| p.as_raw_nonzero().get().to_string());
    if parent != std::env::var(SUPERVISOR).ok() {
        anyhow::bail!("the tunnel's forwarder is gone");
    }
    let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
    Ok(TcpListener::from(fd))
}

/// What the marker (a link to the namespace of the VM's current process) points to now.
fn target(marker: &Path) -> Option<PathBuf> {
    std::fs::read_link(marker).ok()
}

/// The supervisor: keeps `listener` and a worker serving it, until a worker fails while the VM
/// stays the one it was started for (its exit code is then this process's).
pub fn supervise(listener: &TcpListener, marker: &Path, spec: &str) -> Result<()> {
    let me = std::env::current_exe().context("finding git-vmoat's own path")?;
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // The spec is the last argument (`__forward … MARKER SPEC`): the worker gets it apart.
    args.pop();
    loop {
        let serving = target(marker);
        let worker = Cmd::new(&me)
            .args(&args)
            .arg("-")
            .env(WORKER_SPEC, spec)
            .env(SUPERVISOR, std::process::id().to_string())
            .stdin_from(listener.as_fd().try_clone_to_owned()?)
            .spawn_with(
                std::process::Stdio::inherit(),
                std::process::Stdio::inherit(),
            )?;
        let code = crate::exec::status_code(wait(worker)?);
        if code == MADE_AGAIN {
            continue;
        }
        // A worker that found the VM halfway made (its link not yet there) is started again
        // once the link has changed; any other failure ends the tunnel, as it did the worker.
        std::thread::sleep(Duration::from_millis(200));
        if target(marker) == serving {
            std::process::exit(code);
        }
    }
}

fn wait(mut child: std::process::Child) -> Result<std::process::ExitStatus> {
    child.wait().context("waiting for the tunnel's worker")
}
