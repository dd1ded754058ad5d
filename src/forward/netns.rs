//! The forwarder's place in a VM's network namespace (netns, rootless): entered once at start,
//! and again whenever the name now stands for another namespace (`up` made it anew after the
//! VM's dockerd crashed), so a running forwarder never relays into a namespace that is gone.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The namespace a thread is in, by its name and its identity (device, inode) when entered.
/// Namespaces are per thread: each thread that connects keeps its own `Follow`.
#[derive(Clone)]
pub struct Follow {
    path: PathBuf,
    id: (u64, u64),
    /// Where the name linked to when entered (rootless: the VM's process); None: no link.
    link: Option<PathBuf>,
    /// The namespace's own (non-loopback) IPv4 address, where docker's NAT rules apply.
    own: Option<Ipv4Addr>,
}

impl Follow {
    /// Moves the calling thread (and threads it starts later) into the namespace at `path`.
    pub fn enter(path: &Path) -> Result<Self> {
        let mut f = Self {
            path: path.to_path_buf(),
            id: (0, 0),
            link: std::fs::read_link(path).ok(),
            own: None,
        };
        f.enter_now()?;
        Ok(f)
    }

    fn enter_now(&mut self) -> Result<()> {
        let ns = std::fs::File::open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        let meta = ns.metadata()?;
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .with_context(|| format!("entering {}", self.path.display()))?;
        self.id = (meta.dev(), meta.ino());
        self.own = own_address();
        Ok(())
    }

    /// Where a connection to `guest` goes: the namespace's own address when the port is one
    /// its dockerd publishes on every address (see `published`), else its loopback.
    pub fn target(&self, guest: u16, published: bool) -> SocketAddrV4 {
        let ip = match self.own {
            Some(own) if published => own,
            _ => Ipv4Addr::LOCALHOST,
        };
        SocketAddrV4::new(ip, guest)
    }

    /// Enters the namespace the name stands for now, if that is another one; one stat when not.
    /// A missing name (the VM is stopped) keeps the old one: its connections fail as they would.
    pub fn refresh(&mut self) -> Result<()> {
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) != self.id => self.enter_now(),
            _ => Ok(()),
        }
    }

    /// Whether the name, a link, now leads elsewhere: a rootless VM made again, in a new user
    /// namespace this process cannot enter (one readlink).
    pub fn replaced(&self) -> bool {
        self.link.is_some() && std::fs::read_link(&self.path).ok() != self.link
    }
}

/// The address this thread's namespace would send from on its default route: a connected UDP
/// socket's name (connecting a UDP socket sends nothing). None without such a route.
fn own_address() -> Option<Ipv4Addr> {
    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    // TEST-NET-1: never a real peer, only a destination for the route lookup.
    s.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    match s.local_addr().ok()? {
        std::net::SocketAddr::V4(a) if !a.ip().is_loopback() && !a.ip().is_unspecified() => {
            Some(*a.ip())
        }
        _ => None,
    }
}

/// Moves this (still single-threaded) process into a rootless VM's user namespace, where it
/// is root over the VM's namespaces and, outside them, the user it was.
pub fn enter_userns(userns: &Path) -> Result<()> {
    let ns =
        std::fs::File::open(userns).with_context(|| format!("opening {}", userns.display()))?;
    rustix::thread::move_into_link_name_space(
        ns.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::User),
    )
    .with_context(|| format!("entering {}", userns.display()))
}

#[cfg(test)]
impl Follow {
    /// The namespace this thread is in already, by a name that always stands for it.
    pub fn here() -> Self {
        let path = PathBuf::from("/proc/thread-self/ns/net");
        let m = std::fs::metadata(&path).unwrap();
        Self {
            id: (m.dev(), m.ino()),
            path,
            link: None,
            own: None,
        }
    }

    /// The same, with `own` as the namespace's own address.
    pub fn with_own(mut self, own: Option<Ipv4Addr>) -> Self {
        self.own = own;
        self
    }
}
