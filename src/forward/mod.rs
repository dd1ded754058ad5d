//! The tunnel forwarder (`git-vmoat __forward`): one process per VM and guest port, listening
//! on the host's 127.0.0.1 only. Each connection wakes a suspended VM first, then is bridged
//! into the VM: from inside its network namespace (netns) or over `ssh -W` (Colima), so the
//! forwarder outlives a VM that is stopped and started again.

mod copy;
#[cfg(target_os = "linux")]
mod event;
mod netns;
#[cfg(target_os = "linux")]
mod published;
#[cfg(target_os = "linux")]
mod relay;
#[cfg(target_os = "linux")]
mod rootless;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::backend::colima::Colima;
use crate::backend::netns::Netns;
use crate::backend::rootless::Rootless;
use crate::backend::{Backend, BackendKind, suspend};
use crate::exec::Cmd;
use crate::state::State;
use copy::Upstream;
use netns::Follow;

/// How often at most a connection's traffic is noted for the idle rule.
const MARK_EVERY_SECS: u64 = 5;

/// The host and guest ports of a `127.0.0.1:H:127.0.0.1:G` spec.
pub fn parse_spec(spec: &str) -> Result<(u16, u16)> {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        ["127.0.0.1", h, "127.0.0.1", g] => match (h.parse(), g.parse()) {
            (Ok(h), Ok(g)) => Ok((h, g)),
            _ => bail!("bad forward spec {spec:?}; expected 127.0.0.1:HOST:127.0.0.1:GUEST"),
        },
        _ => bail!("bad forward spec {spec:?}; expected 127.0.0.1:HOST:127.0.0.1:GUEST"),
    }
}

/// What a forwarder is told on its command line.
pub struct Args<'a> {
    pub state: &'a Path,
    pub vm: &'a str,
    pub kind: BackendKind,
    /// The backend's forwarder marker: for netns the namespace to connect in.
    pub marker: &'a str,
    pub spec: &'a str,
}

/// How connections reach the guest port.
enum Route {
    /// From inside the VM's network namespace, which this process has entered.
    Netns,
    /// `ssh -F <config> -W 127.0.0.1:G <host>`, riding the VM's multiplexed master; the
    /// config is fetched again (None) after a wake or when ssh could not reach the VM.
    Ssh {
        colima: Colima,
        target: Mutex<Option<(PathBuf, String)>>,
    },
}

struct Forwarder {
    state: State,
    vm: String,
    kind: BackendKind,
    guest: u16,
    route: Route,
    started: Instant,
    /// Seconds after `started` (plus one) of the last activity mark; 0 = none yet.
    marked: AtomicU64,
    /// Connections open now: an open connection (a websocket, a keep-alive, a slow download)
    /// keeps the VM from counting as idle even while no byte moves.
    open: std::sync::atomic::AtomicUsize,
    /// Netns and rootless: whether the guest port is published by the VM's dockerd.
    #[cfg(target_os = "linux")]
    published: Option<Arc<published::Published>>,
}

/// The VM's docker socket, for a forwarder that connects from inside its namespace.
#[cfg(target_os = "linux")]
fn docker_socket(kind: BackendKind, marker: &Path) -> Option<PathBuf> {
    match kind {
        BackendKind::Netns => Netns::docker_socket_of(marker),
        BackendKind::Rootless => Some(Rootless::docker_socket_of(marker)),
        BackendKind::Colima | BackendKind::Auto => None,
    }
}

/// Serialises wakes in this process: connections that arrive during a wake wait for it.
static WAKING: Mutex<()> = Mutex::new(());

/// Runs the forwarder until it is killed.
pub fn run(a: &Args<'_>) -> Result<()> {
    #[cfg(target_os = "linux")]
    let worker = rootless::worker_spec();
    #[cfg(not(target_os = "linux"))]
    let worker: Option<String> = None;
    let (host, guest) = parse_spec(worker.as_deref().unwrap_or(a.spec))?;
    let listener = match &worker {
        #[cfg(target_os = "linux")]
        Some(_) => rootless::inherited_listener()?,
        // Loopback only: a tunnel is for this machine, never for its network.
        _ => TcpListener::bind((Ipv4Addr::LOCALHOST, host))
            .with_context(|| format!("cannot listen on 127.0.0.1:{host}"))?,
    };
    let state = State::from_root(a.state.to_path_buf());
    // The listening socket, bound before, stays in the host's network; every connection made
    // from now on reaches the namespace's own loopback.
    let (route, ns) = match a.kind {
        BackendKind::Netns => (Route::Netns, Some(Follow::enter(Path::new(a.marker))?)),
        #[cfg(target_os = "linux")]
        BackendKind::Rootless if worker.is_none() => {
            return rootless::supervise(&listener, Path::new(a.marker), a.spec);
        }
        BackendKind::Rootless => {
            // Its network namespace belongs to its user namespace (linked beside the marker):
            // only from inside that may this process enter it.
            netns::enter_userns(&Path::new(a.marker).with_file_name("user"))?;
            (Route::Netns, Some(Follow::enter(Path::new(a.marker))?))
        }
        BackendKind::Colima => {
            let colima = Colima::new(state.clone());
            // Fetched now, while the VM is known to run; a failure is retried per connection.
            let target = colima.tunnel_ssh(a.vm).ok();
            let target = Mutex::new(target);
            (Route::Ssh { colima, target }, None)
        }
        BackendKind::Auto => bail!("a forwarder needs a concrete backend (netns or colima)"),
    };
    let fwd = Arc::new(Forwarder {
        state,
        vm: a.vm.to_string(),
        kind: a.kind,
        guest,
        route,
        started: Instant::now(),
        marked: AtomicU64::new(0),
        open: std::sync::atomic::AtomicUsize::new(0),
        #[cfg(target_os = "linux")]
        published: docker_socket(a.kind, Path::new(a.marker))
            .map(|socket| published::Published::watch(socket, guest)),
    });
    let ticker = Arc::clone(&fwd);
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(MARK_EVERY_SECS));
            if ticker.open.load(Ordering::Relaxed) > 0 {
                ticker.mark();
            }
        }
    });
    #[cfg(target_os = "linux")]
    if let Some(ns) = ns {
        return event::run(listener, fwd, ns);
    }
    for conn in listener.incoming() {
        let Ok(client) = conn else { continue };
        let fwd = Arc::clone(&fwd);
        // Threads made after entering a namespace start in it too.
        std::thread::spawn(move || fwd.serve(client, None));
    }
    Ok(())
}

impl Forwarder {
    /// Serves one connection on this thread; `ns`: this thread's namespace (netns), looked at
    /// again after a wake, which may have started the VM in a new one.
    fn serve(&self, client: TcpStream, ns: Option<Follow>) {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.serve_one(client, ns);
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    fn serve_one(&self, client: TcpStream, ns: Option<Follow>) {
        self.mark();
        let woke = self.wake_if_suspended();
        let woke = woke.and_then(|()| ns.map_or(Ok(()), |mut ns| ns.refresh()));
        if let Err(e) = woke {
            crate::output::warn(format!("{e:#}"));
            return;
        }
        match self.connect() {
            Ok(up) => {
                if copy::bridge(client, up, &|| self.mark()) {
                    self.forget_ssh_target();
                }
            }
            Err(e) => crate::output::warn(format!("{e:#}")),
        }
    }

    /// Whether the VM is suspended now (one failed open when it is not).
    fn suspended(&self) -> bool {
        suspend::record(&self.state, &self.vm).is_some()
    }

    /// A suspended VM is woken before the connection goes in: the first request is slower
    /// but never fails.
    fn wake_if_suspended(&self) -> Result<()> {
        if !self.suspended() {
            return Ok(());
        }
        let _one = WAKING.lock().unwrap_or_else(|e| e.into_inner());
        if suspend::record(&self.state, &self.vm).is_none() {
            return Ok(());
        }
        // The backend itself, not the waking wrapper commands get: wake uses it to start the
        // containers again, and the wrapper would wait for the wake lock held here.
        let backend: Box<dyn Backend> = match self.kind {
            BackendKind::Netns => Box::new(Netns::new(self.state.clone())),
            BackendKind::Rootless => Box::new(Rootless::new(self.state.clone())),
            _ => Box::new(Colima::new(self.state.clone())),
        };
        let woke = suspend::wake(&self.state, backend.as_ref(), &self.vm);
        // A started VM has a new ssh port.
        self.forget_ssh_target();
        woke.map(|_| ())
    }

    fn forget_ssh_target(&self) {
        if let Route::Ssh { target, .. } = &self.route {
            *target.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// The ssh config and host for a connection, fetched again when forgotten.
    fn ssh_target(
        &self,
        colima: &Colima,
        target: &Mutex<Option<(PathBuf, String)>>,
    ) -> Result<(PathBuf, String)> {
        let mut t = target.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = t.as_ref() {
            return Ok(t.clone());
        }
        let fresh = colima.tunnel_ssh(&self.vm)?;
        *t = Some(fresh.clone());
        Ok(fresh)
    }

    fn connect(&self) -> Result<Upstream> {
        match &self.route {
            Route::Netns => {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.guest));
                let up = TcpStream::connect(addr)
                    .with_context(|| format!("connecting to port {} in the VM", self.guest))?;
                Ok(Upstream::Tcp(up))
            }
            Route::Ssh { colima, target } => {
                let (config, host) = self.ssh_target(colima, target)?;
                let child = Cmd::new("ssh")
                    .arg("-F")
                    .arg(&config)
                    .args(["-o", "LogLevel=ERROR", "-W"])
                    .arg(format!("127.0.0.1:{}", self.guest))
                    .arg(&host)
                    .stdin_piped()
                    .spawn_with(std::process::Stdio::piped(), std::process::Stdio::inherit())
                    .context("starting ssh for a tunnel connection")?;
                Ok(Upstream::Child(child))
            }
        }
    }

    /// Notes traffic for the idle rule, at most once per `MARK_EVERY_SECS`.
    fn mark(&self) {
        let now = self.started.elapsed().as_secs() + 1;
        let last = self.marked.load(Ordering::Relaxed);
        if last != 0 && now < last + MARK_EVERY_SECS {
            return;
        }
        if self
            .marked
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            suspend::mark_active(&self.state, &self.vm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_parsed_and_bad_ones_refused() {
        assert_eq!(
            parse_spec("127.0.0.1:8080:127.0.0.1:80").unwrap(),
            (8080, 80)
        );
        for bad in [
            "",
            "127.0.0.1:8080",
            "0.0.0.0:8080:127.0.0.1:80",
            "127.0.0.1:x:127.0.0.1:80",
            "127.0.0.1:8080:127.0.0.1:70000",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn activity_is_marked_at_most_once_per_interval() {
        let tmp = tempfile::tempdir().unwrap();
        let state = State::at(tmp.path().to_path_buf());
        let fwd = Forwarder {
            state: state.clone(),
            vm: "wt-a".into(),
            kind: BackendKind::Netns,
            guest: 80,
            route: Route::Netns,
            started: Instant::now(),
            marked: AtomicU64::new(0),
            open: std::sync::atomic::AtomicUsize::new(0),
            #[cfg(target_os = "linux")]
            published: None,
        };
        std::fs::create_dir_all(state.vm_dir_path("wt-a")).unwrap();
        let traffic = state.vm_dir_path("wt-a").join(crate::state::files::TRAFFIC);
        fwd.mark();
        assert!(traffic.exists(), "the first connection is noted");
        std::fs::remove_file(&traffic).unwrap();
        fwd.mark();
        assert!(
            !traffic.exists(),
            "a second mark within the interval writes nothing"
        );
    }
}
