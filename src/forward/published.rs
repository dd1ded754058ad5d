//! Whether the guest port is one the VM's dockerd publishes on all addresses: then a tunnel
//! connection goes to the VM's own address, where the kernel's NAT hands it straight to the
//! container, instead of 127.0.0.1, where docker's userland proxy copies every byte once more
//! (that proxy cost a 200 MB download about as much CPU as the rest of the path together).
//! Other ports (a dev server in the VM, a port published on 127.0.0.1 only) keep 127.0.0.1,
//! so their servers still see a loopback client; so does a connection while the answer is old
//! (after a quiet spell the port may have passed from a container to such a server).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How often at most the daemon is asked again, and only while connections come.
const EVERY: Duration = Duration::from_secs(2);
/// A daemon that does not answer in this time (frozen, busy) leaves the answer as it was.
const TIMEOUT: Duration = Duration::from_millis(500);

/// An answer older than this is not used (127.0.0.1 then): the asking thread renews it within
/// [`EVERY`] of a connection, so it is this old only after a quiet spell, when the first
/// connection wakes that thread to ask at once.
const FRESH_FOR: Duration = Duration::from_secs(4);

/// The last answer, kept fresh by a thread of its own so a connection never waits for it.
pub(super) struct Published {
    yes: AtomicBool,
    wanted: AtomicBool,
    /// Milliseconds after `epoch` (plus one) of the last answer; 0 = none yet.
    answered: AtomicU64,
    epoch: Instant,
    asker: OnceLock<std::thread::Thread>,
}

impl Published {
    /// Starts asking the dockerd at `socket` about `guest`: once now, then every [`EVERY`]
    /// while [`Published::wanted`] is called. Until the first answer: no (127.0.0.1).
    pub(super) fn watch(socket: PathBuf, guest: u16) -> Arc<Self> {
        let me = Arc::new(Self {
            yes: AtomicBool::new(false),
            wanted: AtomicBool::new(true),
            answered: AtomicU64::new(0),
            epoch: Instant::now(),
            asker: OnceLock::new(),
        });
        let asker = Arc::clone(&me);
        let thread = std::thread::spawn(move || {
            loop {
                if asker.wanted.swap(false, Ordering::Relaxed)
                    && let Some(yes) = ask(&socket, guest)
                {
                    asker.answer(yes);
                }
                // Woken early only by a connection that found the answer old.
                std::thread::park_timeout(EVERY);
            }
        });
        let _ = me.asker.set(thread.thread().clone());
        me
    }

    /// A fixed answer, for tests of what a connection does with it.
    #[cfg(test)]
    pub(super) fn fixed(yes: bool) -> Arc<Self> {
        let me = Arc::new(Self {
            yes: AtomicBool::new(false),
            wanted: AtomicBool::new(false),
            answered: AtomicU64::new(0),
            epoch: Instant::now(),
            asker: OnceLock::new(),
        });
        me.answer(yes);
        me
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
    }

    fn answer(&self, yes: bool) {
        self.yes.store(yes, Ordering::Relaxed);
        self.answered.store(self.millis(), Ordering::Relaxed);
    }

    /// The answer for this connection (no while it is old or not there yet); asks for a
    /// fresh one for the next.
    pub(super) fn now(&self) -> bool {
        self.wanted.store(true, Ordering::Relaxed);
        let at = self.answered.load(Ordering::Relaxed);
        let fresh = at != 0 && self.millis().saturating_sub(at) <= FRESH_FOR.as_millis() as u64;
        if !fresh && let Some(t) = self.asker.get() {
            t.unpark();
        }
        fresh && self.yes.load(Ordering::Relaxed)
    }
}

/// Asks the daemon for its running containers; None when it does not answer.
fn ask(socket: &std::path::Path, guest: u16) -> Option<bool> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(TIMEOUT)).ok()?;
    s.set_write_timeout(Some(TIMEOUT)).ok()?;
    // HTTP/1.0: the daemon closes the connection after the whole body, no chunks to undo.
    s.write_all(b"GET /containers/json HTTP/1.0\r\nHost: docker\r\n\r\n")
        .ok()?;
    let mut reply = Vec::new();
    s.take(16 << 20).read_to_end(&mut reply).ok()?;
    let text = String::from_utf8_lossy(&reply);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if head.split(' ').nth(1) != Some("200") {
        return None;
    }
    Some(published_on_all(body, guest))
}

/// Whether a container of the `/containers/json` answer `body` publishes TCP `port` on all
/// IPv4 addresses (where the daemon's NAT rule catches the VM's own address too).
fn published_on_all(body: &str, port: u16) -> bool {
    let Ok(serde_json::Value::Array(containers)) = serde_json::from_str(body) else {
        return false;
    };
    containers
        .iter()
        .filter_map(|c| c["Ports"].as_array())
        .flatten()
        .any(|p| {
            p["PublicPort"].as_u64() == Some(u64::from(port))
                && p["Type"].as_str() == Some("tcp")
                && matches!(p["IP"].as_str(), Some("0.0.0.0") | Some("") | None)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_answer_is_not_used() {
        let p = Published::fixed(true);
        assert!(p.now(), "a fresh yes");
        // Answered at the start of an epoch longer ago than FRESH_FOR: a quiet spell.
        let quiet = Published {
            yes: AtomicBool::new(true),
            wanted: AtomicBool::new(false),
            answered: AtomicU64::new(1),
            epoch: Instant::now() - FRESH_FOR - Duration::from_secs(1),
            asker: OnceLock::new(),
        };
        assert!(!quiet.now(), "an old yes goes to the loopback");
        assert!(
            quiet.wanted.load(Ordering::Relaxed),
            "and asks for a fresh one"
        );
    }

    #[test]
    fn only_a_tcp_port_published_on_every_address_counts() {
        let body = r#"[{"Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
            {"IP":"::","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
            {"IP":"127.0.0.1","PrivatePort":5432,"PublicPort":5432,"Type":"tcp"},
            {"IP":"0.0.0.0","PrivatePort":53,"PublicPort":53,"Type":"udp"},
            {"PrivatePort":9000,"Type":"tcp"}]},{"Ports":[]},{}]"#;
        assert!(published_on_all(body, 8080));
        assert!(
            !published_on_all(body, 5432),
            "loopback only: no NAT rule for the VM's address"
        );
        assert!(!published_on_all(body, 53), "udp");
        assert!(!published_on_all(body, 9000), "exposed, not published");
        assert!(
            !published_on_all(body, 80),
            "the container's port, not the VM's"
        );
        assert!(!published_on_all("not json", 8080));
        assert!(!published_on_all("[]", 8080));
    }
}
