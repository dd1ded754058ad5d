//! Tunnels through git-vmoat's own forwarder on a container stack: bulk data arrives byte-exact,
//! and a connection to a suspended VM's tunnel wakes the VM (netns: thawed; Colima: started
//! again through the stand-in) and is served, by the same forwarder process; a netns tunnel
//! follows the namespace `up` makes again after the VM's dockerd crashed; it reaches a port
//! docker publishes past docker's userland proxy, and any other port on the VM's loopback.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;

/// A worktree whose `up` runs busybox httpd serving its `www` on the VM's port 8080.
fn stack(env: &Env, name: &str, backend: &str) -> PathBuf {
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src").join(name), name);
    env.write(&wt.join("www/index.html"), "the stack's page\n");
    let up = httpd_up(env);
    env.write(
        &wt.join("vmoat.toml"),
        &format!(
            "backend = {backend:?}\n[commands]\nup = {up:?}\n[health]\nurl = \"http://127.0.0.1:8080/\"\ntimeout = 60\n"
        ),
    );
    wt
}

/// `GET path` over HTTP/1.0; the body of a 200 answer. Patient: a wake may come first.
fn fetch(port: u16, path: &str) -> Option<Vec<u8>> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut buf = vec![];
    s.read_to_end(&mut buf).ok()?;
    let at = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..at]);
    assert!(
        head.starts_with("HTTP/1.") && head[8..].starts_with(" 200"),
        "not a 200 answer: {head}"
    );
    Some(buf[at + 4..].to_vec())
}

fn page(port: u16) -> Option<String> {
    fetch(port, "/").map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn tunnel(env: &Env, wt: &Path) -> u16 {
    let r = env.vmoat(wt, &["tunnel"]).ok();
    r.stdout
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{r:?}"))
}

fn status(env: &Env, wt: &Path) -> serde_json::Value {
    serde_json::from_str(&env.vmoat(wt, &["status", "--json"]).ok().stdout).unwrap()
}

fn digest(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

/// Suspends the VM, then checks that a connection to its tunnel wakes it and is served (several
/// at once, all arriving during the wake), by the forwarder that was already running.
fn suspend_then_connect_wakes_the_vm(env: &Env, wt: &Path, vm: &str, port: u16) {
    let before = status(env, wt);
    let pid = before["tunnels"][0]["pid"].as_i64().unwrap();
    env.vmoat(wt, &["suspend"]).ok();
    assert_eq!(status(env, wt)["state"], "Suspended");
    let clients: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || page(port)))
        .collect();
    let log = env.state_dir().join("vms").join(vm).join("tunnel-8080.log");
    for c in clients {
        assert_eq!(
            c.join().unwrap().as_deref(),
            Some("the stack's page\n"),
            "a connection made while the VM was suspended was not served; the forwarder's log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let after = status(env, wt);
    assert_eq!(after["state"], "Running", "{after}");
    assert_eq!(
        after["tunnels"][0]["pid"].as_i64(),
        Some(pid),
        "the tunnel was opened again instead of waking the VM: {after}"
    );
    assert_eq!(after["tunnels"][0]["alive"], true, "{after}");
}

fn a_netns_tunnel_moves_bulk_data_exactly_and_wakes_a_suspended_vm() {
    let env = Env::new();
    let wt = stack(&env, "bulk", "netns");
    // 48 MiB that no run of zeros or repeated block could fake.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..48 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(wt.join("www/big.bin"), &data).unwrap();
    env.vmoat(&wt, &["up"]).ok();
    let port = tunnel(&env, &wt);
    let got = fetch(port, "/big.bin").expect("the bulk download failed");
    assert_eq!(got.len(), data.len());
    assert!(
        digest(&got) == digest(&data),
        "the bytes through the tunnel differ"
    );
    suspend_then_connect_wakes_the_vm(&env, &wt, "wt-bulk", port);
}

/// The processes on this machine whose command line has every one of `words`.
fn processes_with(words: &[&str]) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            words
                .iter()
                .all(|w| argv.iter().any(|a| a == w))
                .then_some(pid)
        })
        .collect()
}

fn a_colima_tunnel_rides_ssh_survives_a_suspend_and_starts_the_vm_again() {
    let env = Env::new();
    let wt = stack(&env, "cw", "colima");
    env.vmoat(&wt, &["up"]).ok();
    let port = tunnel(&env, &wt);
    assert_eq!(page(port).as_deref(), Some("the stack's page\n"));

    // An open connection is an `ssh -W` to the guest port, with the forwarder's own config.
    let config = env.state_dir().join("vms/wt-cw/tunnel_ssh_config");
    let config = config.to_str().unwrap();
    let held = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || !processes_with(&[
            "ssh",
            "-W",
            "127.0.0.1:8080",
            config
        ])
        .is_empty()),
        "no ssh -W carries the connection"
    );
    drop(held);

    env.clear_calls();
    let forwarder = status(&env, &wt)["tunnels"][0]["pid"].as_i64().unwrap();
    env.vmoat(&wt, &["suspend"]).ok();
    assert!(
        env.call_lines().iter().any(|l| l.contains("stop wt-cw")),
        "suspend stops the Colima VM: {:?}",
        env.call_lines()
    );
    assert!(
        processes_with(&["__forward"]).contains(&(forwarder as u32)),
        "the forwarder died with the VM"
    );
    env.clear_calls();
    suspend_then_connect_wakes_the_vm(&env, &wt, "wt-cw", port);
    assert!(
        env.call_lines().iter().any(|l| l.contains("start wt-cw")),
        "the connection started the VM again: {:?}",
        env.call_lines()
    );
}

/// The identity (device, inode) of the namespace a name in /run/netns stands for now.
fn netns_inode(id: &str) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(format!("/run/netns/{id}")).unwrap();
    (m.dev(), m.ino())
}

/// After the VM's dockerd crashes, `up` makes a new network namespace under the same name: the
/// forwarder already running must follow it, not keep connecting in the old, empty one.
fn a_netns_tunnel_follows_the_namespace_up_made_again_after_a_crash() {
    let env = Env::new();
    let wt = stack(&env, "crash", "netns");
    env.vmoat(&wt, &["up"]).ok();
    let port = tunnel(&env, &wt);
    assert_eq!(page(port).as_deref(), Some("the stack's page\n"));
    let forwarder = status(&env, &wt)["tunnels"][0]["pid"].as_i64().unwrap();
    let id = netns_id(&env, "wt-crash");
    let before = netns_inode(&id);
    let pid = kill_dockerd(&env, "wt-crash");
    assert!(
        wait_until(Duration::from_secs(10), || {
            // Gone, or a zombie nobody reaped yet.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        }),
        "dockerd did not die"
    );
    env.vmoat(&wt, &["up"]).ok();
    assert_ne!(
        netns_inode(&id),
        before,
        "up did not make the namespace again, so this test shows nothing"
    );
    let log = env.state_dir().join("vms/wt-crash/tunnel-8080.log");
    assert_eq!(
        page(port).as_deref(),
        Some("the stack's page\n"),
        "the tunnel still leads into the old namespace; the forwarder's log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        status(&env, &wt)["tunnels"][0]["pid"].as_i64(),
        Some(forwarder),
        "the same forwarder serves on"
    );
}

/// Pids of the processes named `comm` in the network namespace `id`.
fn in_netns(id: &str, comm: &str) -> Vec<i32> {
    let out = std::process::Command::new("ip")
        .args(["netns", "pids", id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

fn a_netns_tunnel_reaches_a_published_port_past_dockers_proxy() {
    let env = Env::new();
    let wt = stack(&env, "nat", "netns");
    env.vmoat(&wt, &["up"]).ok();
    let port = tunnel(&env, &wt);
    assert_eq!(page(port).as_deref(), Some("the stack's page\n"));
    let id = netns_id(&env, "wt-nat");
    let proxies = in_netns(&id, "docker-proxy");
    assert!(
        !proxies.is_empty(),
        "no docker-proxy in the VM: this test shows nothing"
    );
    for p in proxies {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(p).unwrap(),
            rustix::process::Signal::KILL,
        );
    }
    let inside = std::process::Command::new("ip")
        .args(["netns", "exec", &id, "busybox", "wget", "-q", "-O-"])
        .arg("http://127.0.0.1:8080/")
        .output()
        .unwrap();
    assert!(
        !inside.status.success(),
        "the VM's own 127.0.0.1:8080 still answers without docker's proxy: this test shows nothing"
    );
    assert!(
        wait_until(Duration::from_secs(10), || page(port).as_deref()
            == Some("the stack's page\n")),
        "the tunnel needs docker's userland proxy; the forwarder's log:\n{}",
        std::fs::read_to_string(env.state_dir().join("vms/wt-nat/tunnel-8080.log"))
            .unwrap_or_default()
    );
}

/// Kills the process when the test ends, passed or not.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn a_netns_tunnel_to_a_server_of_the_vm_itself_keeps_a_loopback_client() {
    let env = Env::new();
    let wt = stack(&env, "own", "netns");
    env.vmoat(&wt, &["up"]).ok();
    let id = netns_id(&env, "wt-own");
    let guest = free_port();
    // Not a container: a server in the VM on every address, answering with its client's.
    let server = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('0.0.0.0',{guest}))\ns.listen()\nwhile True:\n c,a=s.accept()\n c.recv(4096)\n \
         c.sendall(b'HTTP/1.0 200 OK\\r\\n\\r\\n'+a[0].encode())\n c.close()\n"
    );
    let _server = Reap(
        std::process::Command::new("ip")
            .args(["netns", "exec", &id, "python3", "-c", &server])
            .spawn()
            .unwrap(),
    );
    let r = env.vmoat(&wt, &["tunnel", &guest.to_string()]).ok();
    let host: u16 = r.stdout.trim().rsplit(':').next().unwrap().parse().unwrap();
    let mut seen = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            seen = fetch(host, "/").map(|b| String::from_utf8_lossy(&b).into_owned());
            seen.is_some()
        }),
        "no answer through the tunnel"
    );
    assert_eq!(
        seen.as_deref(),
        Some("127.0.0.1"),
        "the server's client address changed"
    );
}

crate::tests! {
    a_netns_tunnel_moves_bulk_data_exactly_and_wakes_a_suspended_vm: StackNetns;
    a_colima_tunnel_rides_ssh_survives_a_suspend_and_starts_the_vm_again: StackColima;
    a_netns_tunnel_follows_the_namespace_up_made_again_after_a_crash: StackNetns;
    a_netns_tunnel_reaches_a_published_port_past_dockers_proxy: StackNetns;
    a_netns_tunnel_to_a_server_of_the_vm_itself_keeps_a_loopback_client: StackNetns;
}
