//! One direction of a TCP-to-TCP connection (Linux): non-blocking splice(2) through a pipe, so
//! the bytes never pass through our memory. `relay` runs both directions of one connection on
//! its own thread with poll(2) (a connection that waited for a wake); the event loop runs all
//! others.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::OwnedFd;

use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags, fcntl_setpipe_size, pipe_with, splice};

/// A non-blocking pipe, enlarged so bulk data moves in few steps; kept for reuse when empty.
pub(super) struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    room: usize,
}

impl Pipe {
    pub(super) fn new() -> io::Result<Self> {
        let (r, w) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // The default 64 KiB is kept if the larger size is refused.
        let room = fcntl_setpipe_size(&w, super::copy::CHUNK).unwrap_or(64 * 1024);
        Ok(Self { r, w, room })
    }
}

/// One direction: bytes read from `from` wait in the pipe until `to` takes them.
pub(super) struct Way {
    pipe: Pipe,
    /// Bytes in the pipe.
    held: usize,
    /// `from` has ended.
    eof: bool,
    /// `to`'s writing was shut after the end: this direction is over.
    done: bool,
}

/// What a direction waits for before it can go on.
pub(super) enum Wait {
    Read,
    Write,
    Nothing,
}

impl Way {
    pub(super) fn new(pipe: Pipe) -> Self {
        Self {
            pipe,
            held: 0,
            eof: false,
            done: false,
        }
    }

    pub(super) fn done(&self) -> bool {
        self.done
    }

    /// The pipe back, when nothing is left in it.
    pub(super) fn into_pipe(self) -> Option<Pipe> {
        (self.held == 0).then_some(self.pipe)
    }

    /// Moves what can be moved now, until a socket would block; says what to wait for next.
    /// Safe to call at any time: with nothing to do it costs one splice that says so.
    pub(super) fn step(
        &mut self,
        from: &TcpStream,
        to: &TcpStream,
        tick: &dyn Fn(),
    ) -> io::Result<Wait> {
        let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
        loop {
            if self.done {
                return Ok(Wait::Nothing);
            }
            if self.held > 0 {
                match splice(&self.pipe.r, None, to, None, self.held, flags) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(m) => self.held -= m,
                    Err(Errno::AGAIN) => return Ok(Wait::Write),
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            } else if self.eof {
                // Half-close: the other side learns that no more is coming.
                let _ = to.shutdown(Shutdown::Write);
                self.done = true;
            } else {
                match splice(from, None, &self.pipe.w, None, self.pipe.room, flags) {
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
    let mut ways = [Way::new(Pipe::new()?), Way::new(Pipe::new()?)];
    loop {
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(2);
        for (i, way) in ways.iter_mut().enumerate() {
            let (from, to) = if i == 0 { (a, b) } else { (b, a) };
            match way.step(from, to, tick)? {
                Wait::Read => fds.push(PollFd::new(from, PollFlags::IN)),
                Wait::Write => fds.push(PollFd::new(to, PollFlags::OUT)),
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
