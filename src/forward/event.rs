//! The event loop of a forwarder into a network namespace (Linux): one thread accepts, connects
//! and relays every connection with edge-triggered epoll and splice(2), so a request costs no
//! thread start and no hand-over between threads; emptied pipes are kept for the next ones. A
//! connection to a suspended VM goes to a thread of its own, which waits for the wake.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Result;
use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, CreateFlags, Event, EventData, EventFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
use std::os::fd::OwnedFd;

use super::Forwarder;
use super::netns::Follow;
use super::relay::{Pipe, Wait, Way};

/// The listening socket's token; a connection's sockets are 2i (client) and 2i+1 (VM side).
const LISTENER: u64 = u64::MAX;
/// Connections taken per wake-up of the listening socket.
const ACCEPT_BATCH: usize = 16;
/// Empty pipes kept for reuse: enough for a burst of connections, bounded in memory.
const POOL: usize = 64;

/// A connection: its two sockets ([client, VM side]) and its two directions (client → VM,
/// VM → client), what each direction waits for, and what each socket is watched for.
struct Conn {
    socks: [TcpStream; 2],
    /// Connected to the namespace's own address: refused there (the port is no longer
    /// published by docker), it is tried once more on the namespace's loopback.
    retry: bool,
    ways: [Way; 2],
    waits: [Wait; 2],
    armed: [EventFlags; 2],
}

/// What socket `s` must be watched for: readable when the direction from it waits to read,
/// writable when the direction to it waits to write. Only that, as poll(2) would: a direction
/// held up by a full receiver is not woken for every segment that arrives meanwhile.
fn interest(waits: &[Wait; 2], s: usize) -> EventFlags {
    let mut f = EventFlags::ET;
    if matches!(waits[s], Wait::Read) {
        f |= EventFlags::IN | EventFlags::RDHUP;
    }
    if matches!(waits[1 - s], Wait::Write) {
        f |= EventFlags::OUT;
    }
    f
}

struct Loop {
    ep: OwnedFd,
    fwd: Arc<Forwarder>,
    ns: Follow,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    pool: Vec<Pipe>,
}

/// Serves `listener` until the process is killed; this thread is in the namespace `ns`.
pub(super) fn run(listener: TcpListener, fwd: Arc<Forwarder>, ns: Follow) -> Result<()> {
    listener.set_nonblocking(true)?;
    let ep = epoll::create(CreateFlags::CLOEXEC)?;
    // Level-triggered: connections left waiting after a batch are reported again.
    epoll::add(&ep, &listener, EventData::new_u64(LISTENER), EventFlags::IN)?;
    let mut lp = Loop {
        ep,
        fwd,
        ns,
        conns: vec![],
        free: vec![],
        pool: vec![],
    };
    let mut events: Vec<Event> = Vec::with_capacity(256);
    loop {
        events.clear();
        match epoll::wait(&lp.ep, spare_capacity(&mut events), None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        for ev in &events {
            let (token, flags) = (ev.data.u64(), ev.flags);
            if token == LISTENER {
                lp.accept_all(&listener);
            } else {
                lp.handle((token / 2) as usize, (token % 2) as usize, flags);
            }
        }
    }
}

/// A non-blocking connect to the guest port, in this thread's namespace.
fn connect(to: SocketAddrV4) -> std::io::Result<TcpStream> {
    let fd = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    match rustix::net::connect(&fd, &to) {
        // In progress: its end (or refusal) shows as an event on the socket.
        Ok(()) | Err(Errno::INPROGRESS) | Err(Errno::INTR) => {}
        Err(e) => return Err(e.into()),
    }
    // Small replies go out at once instead of waiting for the client's acknowledgement.
    let _ = sockopt::set_tcp_nodelay(&fd, true);
    Ok(TcpStream::from(fd))
}

impl Loop {
    /// Takes the waiting connections, a batch at most: a client that connects again as fast as
    /// it is answered must not keep the loop from the others' events (their ends, at least).
    fn accept_all(&mut self, listener: &TcpListener) {
        // The connections wait in the listening socket for the worker that can reach the VM.
        if self.ns.replaced() {
            crate::output::info("the VM was made again: serving it from its new namespaces");
            std::process::exit(super::rootless::MADE_AGAIN);
        }
        for _ in 0..ACCEPT_BATCH {
            let fd = match rustix::net::accept_with(
                listener,
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            ) {
                Ok(fd) => fd,
                Err(Errno::AGAIN) => return,
                Err(Errno::INTR | Errno::CONNABORTED) => continue,
                Err(e) => {
                    // Out of descriptors or memory: the waiting connections are taken at the
                    // next one's arrival.
                    crate::output::warn(format!("accepting a tunnel connection: {e}"));
                    return;
                }
            };
            let _ = sockopt::set_tcp_nodelay(&fd, true);
            self.start(TcpStream::from(fd));
        }
    }

    fn start(&mut self, client: TcpStream) {
        self.fwd.mark();
        if self.fwd.suspended() {
            let (fwd, ns) = (Arc::clone(&self.fwd), self.ns.clone());
            let _ = client.set_nonblocking(false);
            std::thread::spawn(move || fwd.serve(client, Some(ns)));
            return;
        }
        if let Err(e) = self.ns.refresh() {
            crate::output::warn(format!("{e:#}"));
        }
        let guest = self.fwd.guest;
        let published = self.fwd.published.as_ref().is_some_and(|p| p.now());
        let to = self.ns.target(guest, published);
        let retry = *to.ip() != Ipv4Addr::LOCALHOST;
        let up = match connect(to).or_else(|e| {
            if retry {
                connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, guest))
            } else {
                Err(e)
            }
        }) {
            Ok(up) => up,
            Err(e) => {
                crate::output::warn(format!("connecting to port {guest} in the VM: {e}"));
                return;
            }
        };
        let mut pipe = || self.pool.pop().map_or_else(Pipe::new, Ok);
        let ways = match (pipe(), pipe()) {
            (Ok(a), Ok(b)) => [Way::new(a), Way::new(b)],
            (Err(e), _) | (_, Err(e)) => {
                crate::output::warn(format!("making a pipe for a tunnel connection: {e}"));
                return;
            }
        };
        let i = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let armed = interest(&[Wait::Read, Wait::Read], 0);
        let added = epoll::add(&self.ep, &client, EventData::new_u64(2 * i as u64), armed)
            .and_then(|()| epoll::add(&self.ep, &up, EventData::new_u64(2 * i as u64 + 1), armed));
        self.conns[i] = Some(Conn {
            socks: [client, up],
            retry,
            ways,
            waits: [Wait::Read, Wait::Read],
            armed: [armed; 2],
        });
        self.fwd.open.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = added {
            crate::output::warn(format!("watching a tunnel connection: {e}"));
            self.close(i);
            return;
        }
        // The request is often there already: it goes on now, not after one more wake-up.
        self.step(i, [true, true]);
    }

    /// Moves what an event on socket `side` of connection `i` allows: readable → the direction
    /// from it, writable → the direction to it.
    fn handle(&mut self, i: usize, side: usize, flags: EventFlags) {
        if flags.contains(EventFlags::ERR) {
            // Reset or refused: over at once, even while the other side is silent and no
            // direction would touch this socket again.
            self.fail(i, side);
            return;
        }
        let broken = EventFlags::HUP;
        let mut run = [false; 2];
        if flags.intersects(EventFlags::IN | EventFlags::RDHUP | broken) {
            run[side] = true;
        }
        if flags.intersects(EventFlags::OUT | broken) {
            run[1 - side] = true;
        }
        self.step(i, run);
    }

    /// Steps the directions `run` of connection `i`, then watches its sockets for what they
    /// wait for; closes the connection when both directions have ended or one failed.
    fn step(&mut self, i: usize, run: [bool; 2]) {
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        let fwd = &self.fwd;
        let tick = || fwd.mark();
        for w in (0..2).filter(|w| run[*w]) {
            let [a, b] = &c.socks;
            let (from, to) = if w == 0 { (a, b) } else { (b, a) };
            match c.ways[w].step(from, to, &tick) {
                Ok(wait) => c.waits[w] = wait,
                Err(e) => {
                    if e.raw_os_error() == Some(Errno::CONNREFUSED.raw_os_error()) {
                        if self.on_loopback(i) {
                            return;
                        }
                        let guest = self.fwd.guest;
                        crate::output::warn(format!("connecting to port {guest} in the VM: {e}"));
                    }
                    self.close_broken(i);
                    return;
                }
            }
        }
        if c.ways.iter().all(Way::done) {
            self.close(i);
            return;
        }
        for s in 0..2 {
            let want = interest(&c.waits, s);
            if want != c.armed[s] {
                let data = EventData::new_u64(2 * i as u64 + s as u64);
                if epoll::modify(&self.ep, &c.socks[s], data, want).is_err() {
                    self.close_broken(i);
                    return;
                }
                c.armed[s] = want;
            }
        }
    }

    /// Closes connection `i`; its pipes go back to the pool.
    fn close(&mut self, i: usize) {
        let Some(c) = self.conns.get_mut(i).and_then(Option::take) else {
            return;
        };
        for way in c.ways {
            if let Some(p) = way.into_pipe()
                && self.pool.len() < POOL
            {
                self.pool.push(p);
            }
        }
        self.free.push(i);
        self.fwd.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Ends connection `i` after an error on its socket `side`; a refused connection in the
    /// VM is worth a line in the forwarder's log.
    fn fail(&mut self, i: usize, side: usize) {
        let Some(Some(c)) = self.conns.get(i) else {
            return;
        };
        if side == 1 && sockopt::socket_error(&c.socks[1]).ok() == Some(Err(Errno::CONNREFUSED)) {
            if self.on_loopback(i) {
                return;
            }
            let guest = self.fwd.guest;
            crate::output::warn(format!(
                "connecting to port {guest} in the VM: {}",
                std::io::Error::from(Errno::CONNREFUSED)
            ));
        }
        self.close_broken(i);
    }

    /// Connection `i`, refused at the namespace's own address, connects again on its loopback;
    /// what the client sent meanwhile waits in its pipe. False when that is not to be tried.
    fn on_loopback(&mut self, i: usize) -> bool {
        let guest = self.fwd.guest;
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return false;
        };
        if !std::mem::take(&mut c.retry) || c.ways[0].done() {
            return false;
        }
        let Ok(up) = connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, guest)) else {
            return false;
        };
        let want = interest(&c.waits, 1);
        if epoll::add(&self.ep, &up, EventData::new_u64(2 * i as u64 + 1), want).is_err() {
            return false;
        }
        // The refused socket leaves the epoll set as it is closed here.
        c.socks[1] = up;
        c.armed[1] = want;
        self.step(i, [true, true]);
        true
    }

    fn close_broken(&mut self, i: usize) {
        if let Some(Some(c)) = self.conns.get(i) {
            for s in &c.socks {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        self.close(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::Shutdown;

    /// A server that answers each connection with its request reversed, after the half-close.
    fn reversing_server() -> u16 {
        crate::forward::copy::tests::echo_server(|mut req| {
            req.reverse();
            req
        })
    }

    /// An event loop forwarding to `guest` (in this namespace); its port and its forwarder.
    fn forwarder(guest: u16) -> (u16, Arc<Forwarder>, tempfile::TempDir) {
        forwarder_at(guest, None)
    }

    /// The same, taking `own` for the namespace's own address and the port as published.
    fn forwarder_at(guest: u16, own: Option<Ipv4Addr>) -> (u16, Arc<Forwarder>, tempfile::TempDir) {
        let tmp = tempfile::tempdir().unwrap();
        let fwd = Arc::new(Forwarder {
            state: crate::state::State::at(tmp.path().to_path_buf()),
            vm: "wt-a".into(),
            kind: crate::backend::BackendKind::Netns,
            guest,
            route: super::super::Route::Netns,
            started: std::time::Instant::now(),
            marked: std::sync::atomic::AtomicU64::new(0),
            open: std::sync::atomic::AtomicUsize::new(0),
            published: own.map(|_| crate::forward::published::Published::fixed(true)),
        });
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let f = Arc::clone(&fwd);
        std::thread::spawn(move || run(l, f, Follow::here().with_own(own)));
        (port, fwd, tmp)
    }

    /// Whether the forwarder's count of open connections reaches `n` within 2 s.
    fn open_becomes(fwd: &Forwarder, n: usize) -> bool {
        (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            fwd.open.load(Ordering::Relaxed) == n
        })
    }

    #[test]
    fn refused_at_the_own_address_a_connection_goes_on_at_the_loopback() {
        // Served on 127.0.0.1 only: 127.0.0.2 (standing for the namespace's own address) refuses.
        let guest = reversing_server();
        let (port, fwd, _tmp) = forwarder_at(guest, Some(Ipv4Addr::new(127, 0, 0, 2)));
        for _ in 0..3 {
            assert_eq!(exchange(port, b"abc"), b"cba".to_vec());
        }
        assert!(open_becomes(&fwd, 0));
    }

    fn exchange(port: u16, data: &[u8]) -> Vec<u8> {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut w = c.try_clone().unwrap();
        let sent = data.to_vec();
        // Written from another thread: the reply may only come after the whole request.
        let t = std::thread::spawn(move || {
            w.write_all(&sent).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = vec![];
        c.read_to_end(&mut got).unwrap();
        t.join().unwrap();
        got
    }

    #[test]
    fn bulk_and_many_small_connections_arrive_exactly_and_all_are_closed() {
        let (port, fwd, _tmp) = forwarder(reversing_server());
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut want = data.clone();
        want.reverse();
        assert!(exchange(port, &data) == want, "bulk bytes differ");
        // More connections than the pipe pool holds, one after another and some at once.
        for n in 0..150u32 {
            let msg = format!("request {n}");
            let back: String = msg.chars().rev().collect();
            assert_eq!(exchange(port, msg.as_bytes()), back.as_bytes());
        }
        let at_once: Vec<_> = (0..20)
            .map(|n| std::thread::spawn(move || exchange(port, &vec![n as u8; 300_000])))
            .collect();
        for (n, t) in at_once.into_iter().enumerate() {
            assert_eq!(t.join().unwrap(), vec![n as u8; 300_000]);
        }
        let closed = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            fwd.open.load(Ordering::Relaxed) == 0
        });
        assert!(
            closed,
            "connections left open: {}",
            fwd.open.load(Ordering::Relaxed)
        );
    }

    #[test]
    fn a_refused_connection_in_the_vm_closes_the_clients() {
        let nobody = TcpListener::bind("127.0.0.1:0").unwrap();
        let guest = nobody.local_addr().unwrap().port();
        drop(nobody);
        let (port, fwd, _tmp) = forwarder(guest);
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 16];
        let got = c.read(&mut buf);
        assert!(
            matches!(&got, Ok(0))
                || matches!(&got, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "the client's connection stays open: {got:?}"
        );
        assert!(open_becomes(&fwd, 0));
    }

    #[test]
    fn a_client_that_resets_ends_its_connection_while_the_vm_side_is_silent() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let guest = l.local_addr().unwrap().port();
        let (port, fwd, _tmp) = forwarder(guest);
        let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut held, _) = l.accept().unwrap();
        // The request is complete (half-close passed on); the VM side has not answered yet.
        c.shutdown(Shutdown::Write).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(held.read(&mut buf).unwrap(), 0);
        assert!(open_becomes(&fwd, 1));
        // Closing with a zero linger sends a reset: the client is gone for good.
        sockopt::set_socket_linger(&c, Some(std::time::Duration::ZERO)).unwrap();
        drop(c);
        assert!(
            open_becomes(&fwd, 0),
            "the connection of a client that is gone stays open"
        );
    }
}
