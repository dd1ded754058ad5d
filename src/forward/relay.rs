//! Both directions of a TCP-to-TCP connection in one thread (Linux): non-blocking splice(2)
//! through a pipe per direction, poll(2) for readiness. One thread per connection instead of a
//! pair: one wake-up fewer on a request's path, which counts on a busy machine.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::OwnedFd;

use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags, fcntl_setpipe_size, pipe_with, splice};

/// One direction: bytes read from `from` wait in the pipe until `to` takes them.
struct Way<'a> {
    from: &'a TcpStream,
    to: &'a TcpStream,
    r: OwnedFd,
    w: OwnedFd,
    room: usize,
    /// Bytes in the pipe.
    held: usize,
    /// `from` has ended.
    eof: bool,
    /// `to`'s writing was shut after the end: this direction is over.
    done: bool,
}

/// What a direction waits for before it can go on.
enum Wait {
    Read,
    Write,
    Nothing,
}

impl<'a> Way<'a> {
    fn new(from: &'a TcpStream, to: &'a TcpStream) -> io::Result<Self> {
        let (r, w) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        let room = fcntl_setpipe_size(&w, super::copy::CHUNK).unwrap_or(64 * 1024);
        Ok(Self {
            from,
            to,
            r,
            w,
            room,
            held: 0,
            eof: false,
            done: false,
        })
    }

    /// Moves what can be moved now; says what to wait for next.
    fn step(&mut self, tick: &dyn Fn()) -> io::Result<Wait> {
        let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
        loop {
            if self.done {
                return Ok(Wait::Nothing);
            }
            if self.held > 0 {
                match splice(&self.r, None, self.to, None, self.held, flags) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(m) => self.held -= m,
                    Err(Errno::AGAIN) => return Ok(Wait::Write),
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            } else if self.eof {
                // Half-close: the other side learns that no more is coming.
                let _ = self.to.shutdown(Shutdown::Write);
                self.done = true;
            } else {
                match splice(self.from, None, &self.w, None, self.room, flags) {
                    Ok(0) => self.eof = true,
                    Ok(n) => {
                        self.held = n;
                        tick();
                    }
                    Err(Errno::AGAIN) => return Ok(Wait::Read),
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// Relays `a` ⇄ `b` until both directions ended; an error closes both sockets.
pub fn relay(a: &TcpStream, b: &TcpStream, tick: &dyn Fn()) {
    if run(a, b, tick).is_err() {
        let _ = a.shutdown(Shutdown::Both);
        let _ = b.shutdown(Shutdown::Both);
    }
}

fn run(a: &TcpStream, b: &TcpStream, tick: &dyn Fn()) -> io::Result<()> {
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    let mut ways = [Way::new(a, b)?, Way::new(b, a)?];
    loop {
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(2);
        for way in &mut ways {
            match way.step(tick)? {
                Wait::Read => fds.push(PollFd::new(way.from, PollFlags::IN)),
                Wait::Write => fds.push(PollFd::new(way.to, PollFlags::OUT)),
                Wait::Nothing => {}
            }
        }
        if fds.is_empty() {
            return Ok(());
        }
        match poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
