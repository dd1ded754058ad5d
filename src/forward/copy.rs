//! Moving a tunnel connection's bytes: zero-copy splice(2) through a pipe on Linux, a plain
//! large-buffer copy elsewhere; both directions at once, with TCP's half-close kept.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::{Child, ChildStdin, ChildStdout};

/// Bytes moved per step: what one pipe holds once enlarged.
pub(super) const CHUNK: usize = 1 << 20;

/// What the client's connection is bridged to.
pub enum Upstream {
    /// A TCP connection made in the VM's network (netns).
    Tcp(TcpStream),
    /// A child whose stdin/stdout are the connection (`ssh -W`, Colima).
    Child(Child),
}

/// Copies `from` to `to` until `from` ends; `tick` runs after each step (activity marks).
pub fn copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>, tick: &dyn Fn()) -> io::Result<u64> {
    #[cfg(target_os = "linux")]
    {
        splice_copy(from, to, tick)
    }
    #[cfg(not(target_os = "linux"))]
    {
        buffer_copy(from, to, tick)
    }
}

/// Zero-copy: the kernel moves pages socket → pipe → socket; nothing passes through our memory.
#[cfg(target_os = "linux")]
fn splice_copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>, tick: &dyn Fn()) -> io::Result<u64> {
    use rustix::pipe::{PipeFlags, SpliceFlags, fcntl_setpipe_size, pipe_with, splice};
    let (r, w) = pipe_with(PipeFlags::CLOEXEC)?;
    // A bigger pipe means fewer steps for bulk data; the default 64 KiB is kept if refused.
    let room = fcntl_setpipe_size(&w, CHUNK).unwrap_or(64 * 1024);
    let mut total = 0u64;
    loop {
        let n = retry(|| splice(from, None, &w, None, room, SpliceFlags::MOVE))?;
        if n == 0 {
            return Ok(total);
        }
        let mut left = n;
        while left > 0 {
            // No SPLICE_F_MORE: it would hold back small replies (latency) like MSG_MORE.
            let m = retry(|| splice(&r, None, to, None, left, SpliceFlags::MOVE))?;
            if m == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            left -= m;
        }
        total += n as u64;
        tick();
    }
}

/// The portable copy: read into a large buffer, write it all out.
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn buffer_copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>, tick: &dyn Fn()) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = retry(|| rustix::io::read(from, &mut buf))?;
        if n == 0 {
            return Ok(total);
        }
        let mut done = 0;
        while done < n {
            let m = retry(|| rustix::io::write(to, &buf[done..n]))?;
            if m == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            done += m;
        }
        total += n as u64;
        tick();
    }
}

/// Runs a syscall again when a signal interrupted it.
fn retry(mut f: impl FnMut() -> rustix::io::Result<usize>) -> io::Result<usize> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => {}
            r => return r.map_err(io::Error::from),
        }
    }
}

/// Moves bytes both ways between `client` and `up` until both directions have ended. When one
/// side ends its writing the other is told (shutdown of writes, or the child's stdin closed);
/// an error in either direction closes both sides. True when a child upstream failed without
/// a byte of answer (ssh could not reach the VM: its config may be stale).
pub fn bridge(client: TcpStream, up: Upstream, tick: &(dyn Fn() + Sync)) -> bool {
    let _ = client.set_nodelay(true);
    match up {
        Upstream::Tcp(up) => {
            let _ = up.set_nodelay(true);
            #[cfg(target_os = "linux")]
            super::relay::relay(&client, &up, tick);
            #[cfg(not(target_os = "linux"))]
            std::thread::scope(|s| {
                s.spawn(|| one_way(&client, &up, tick));
                one_way(&up, &client, tick);
            });
            false
        }
        Upstream::Child(child) => bridge_child(&client, child, tick),
    }
}

/// One direction (a thread each where no single-thread relay exists): on a clean end `to`'s writing is shut; on an error both sockets are closed
/// (so the other direction's copy ends too).
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn one_way(from: &TcpStream, to: &TcpStream, tick: &dyn Fn()) {
    if copy(from.as_fd(), to.as_fd(), tick).is_err() {
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
        return;
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn bridge_child(client: &TcpStream, mut child: Child, tick: &(dyn Fn() + Sync)) -> bool {
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return false;
    };
    let pid = child.id();
    let mut answered = false;
    std::thread::scope(|s| {
        s.spawn(|| {
            let stdin: ChildStdin = stdin;
            if copy(client.as_fd(), stdin.as_fd(), tick).is_err() {
                let _ = client.shutdown(Shutdown::Both);
                end_child(pid);
            }
            // Dropping stdin is the child's end of input (ssh passes the half-close on).
        });
        let stdout: ChildStdout = stdout;
        let got = copy(stdout.as_fd(), client.as_fd(), tick);
        if let Ok(n) = got {
            answered = n > 0;
            let _ = client.shutdown(Shutdown::Write);
        } else {
            answered = true;
            let _ = client.shutdown(Shutdown::Both);
            end_child(pid);
        }
    });
    // ssh exits 255 for its own errors (no route, refused, auth), anything else is the
    // connection's own end.
    !answered && child.wait().ok().and_then(|s| s.code()) == Some(255)
}

fn end_child(pid: u32) {
    if let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A server that answers each connection with `reply(request)` after the client half-closes.
    pub(in crate::forward) fn echo_server(reply: fn(Vec<u8>) -> Vec<u8>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let mut c = c.unwrap();
                std::thread::spawn(move || {
                    let mut req = vec![];
                    c.read_to_end(&mut req).unwrap();
                    c.write_all(&reply(req)).unwrap();
                });
            }
        });
        port
    }

    /// A forwarder in-process: each connection to the returned port is bridged to `target`.
    fn forwarder(target: u16) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let c = c.unwrap();
                std::thread::spawn(move || {
                    let up = TcpStream::connect(("127.0.0.1", target)).unwrap();
                    bridge(c, Upstream::Tcp(up), &|| {});
                });
            }
        });
        port
    }

    #[test]
    fn bytes_arrive_exactly_and_a_half_close_still_gets_the_reply() {
        let server = echo_server(|mut v| {
            v.reverse();
            v
        });
        let port = forwarder(server);
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let sent = data.clone();
        let mut w = c.try_clone().unwrap();
        let t = std::thread::spawn(move || {
            w.write_all(&sent).unwrap();
            // The request ends with a half-close; the reply must still come back.
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = vec![];
        c.read_to_end(&mut got).unwrap();
        t.join().unwrap();
        let mut want = data;
        want.reverse();
        assert!(
            got == want,
            "{} bytes back, {} expected",
            got.len(),
            want.len()
        );
    }

    #[test]
    fn a_child_upstream_sees_the_input_end_and_its_output_comes_back() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (c, _) = l.accept().unwrap();
            let child = std::process::Command::new("sh")
                .args(["-c", "wc -c; echo done"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            bridge(c, Upstream::Child(child), &|| {});
        });
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(&vec![b'x'; 200_000]).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert_eq!(
            out.split_whitespace().collect::<Vec<_>>(),
            ["200000", "done"]
        );
    }

    #[test]
    fn the_portable_copy_moves_everything() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (c, mut d) = std::os::unix::net::UnixStream::pair().unwrap();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let sent = data.clone();
        let t = std::thread::spawn(move || {
            let mut a = a;
            a.write_all(&sent).unwrap();
        });
        let r = std::thread::spawn(move || {
            let mut got = vec![];
            d.read_to_end(&mut got).unwrap();
            got
        });
        let n = buffer_copy(b.as_fd(), c.as_fd(), &|| {}).unwrap();
        drop(c);
        t.join().unwrap();
        assert_eq!(n, data.len() as u64);
        assert!(r.join().unwrap() == data);
    }
}
