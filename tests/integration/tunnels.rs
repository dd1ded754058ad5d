//! Tunnels over real ssh into the stand-in's isolated VMs: URLs, stable host ports, reuse,
//! dead-tunnel repair, untunnel.

use std::time::Duration;

use crate::common::*;

fn port_of(url: &str) -> u16 {
    url.trim().rsplit(':').next().unwrap().parse().unwrap()
}

fn up(env: &Env, name: &str) -> std::path::PathBuf {
    let repo = env.home.join("src/proj");
    if !repo.exists() {
        env.repo("proj");
    }
    let wt = env.worktree(&repo, &env.home.join("src").join(name), name);
    env.write(
        &wt.join("vmoat.toml"),
        "backend = \"colima\"\n[commands]\nup = \"true\"\n",
    );
    env.vmoat(&wt, &["up"]).ok();
    wt
}

fn tunnel_forwards_a_guest_port_and_is_reused_and_repaired() {
    let env = Env::new();
    let wt = up(&env, "feat");
    env.write(&wt.join("www/index.html"), "feat's own page\n");
    let guest = free_port();
    serve_in_vm(&env, &wt, &wt.join("www"), guest);

    let r = env.vmoat(&wt, &["tunnel", &guest.to_string()]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines,
        vec![format!("http://localhost:{guest}")],
        "one URL per line on stdout, the guest port when free: {r:?}"
    );
    let host = guest;
    assert_eq!(http_get(host).as_deref(), Some("feat's own page\n"));

    // Asking again reuses the open tunnel.
    let j: serde_json::Value = serde_json::from_str(
        &env.vmoat(&wt, &["tunnel", &guest.to_string(), "--json"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(j["version"], 1);
    assert_eq!(j["tunnels"][0]["host"], host);
    assert_eq!(j["tunnels"][0]["reused"], true);
    let pid = j["tunnels"][0]["pid"].as_i64().unwrap() as i32;

    // The forward is bound to loopback only.
    let listen = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let hex = format!(":{host:04X}");
    let rows: Vec<&str> = listen
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| a.ends_with(&hex))
                && l.split_whitespace().nth(3) == Some("0A")
        })
        .collect();
    assert!(
        !rows.is_empty()
            && rows
                .iter()
                .all(|l| l.split_whitespace().nth(1).unwrap().starts_with("0100007F")),
        "{rows:?}"
    );

    // Kill the tunnel: status marks it dead, tunnel replaces it on the same host port.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(5), || http_get(host).is_none()));
    let s = env.vmoat(&wt, &["status"]).ok();
    assert!(s.stdout.contains("DEAD"), "{s:?}");
    let s: serde_json::Value =
        serde_json::from_str(&env.vmoat(&wt, &["status", "--json"]).ok().stdout).unwrap();
    assert_eq!(s["tunnels"][0]["alive"], false);
    let r = env.vmoat(&wt, &["tunnel", &guest.to_string()]).ok();
    assert_eq!(port_of(&r.stdout), host, "same host port again");
    assert!(r.stderr.contains("had died"), "{r:?}");
    assert_eq!(http_get(host).as_deref(), Some("feat's own page\n"));

    // untunnel closes it; a later tunnel gets the same port back.
    env.vmoat(&wt, &["untunnel"]).ok();
    assert!(wait_until(Duration::from_secs(5), || http_get(host).is_none()));
    assert!(!env.vmoat(&wt, &["status"]).ok().stdout.contains("tunnels:"));
    let r = env.vmoat(&wt, &["tunnel", &guest.to_string()]).ok();
    assert_eq!(port_of(&r.stdout), host);

    // down closes tunnels too.
    env.vmoat(&wt, &["down"]).ok();
    assert!(wait_until(Duration::from_secs(5), || http_get(host).is_none()));
}

fn two_worktrees_never_share_a_host_port_and_ports_come_from_config() {
    let env = Env::new();
    let a = up(&env, "a");
    let b = up(&env, "b");
    let guest = free_port();
    for (wt, text) in [(&a, "A\n"), (&b, "B\n")] {
        env.write(&wt.join("www/index.html"), text);
        serve_in_vm(&env, wt, &wt.join("www"), guest);
        env.write(
            &wt.join("vmoat.local.toml"),
            &format!("[tunnel]\nports = [{guest}]\n"),
        );
    }
    let ha = port_of(&env.vmoat(&a, &["tunnel"]).ok().stdout);
    let hb = port_of(&env.vmoat(&b, &["tunnel"]).ok().stdout);
    assert_eq!(ha, guest);
    assert!(
        (9000..=9999).contains(&hb),
        "the second worktree gets a stable fallback port: {hb}"
    );
    assert_eq!(http_get(ha).as_deref(), Some("A\n"));
    assert_eq!(http_get(hb).as_deref(), Some("B\n"));
    // destroy closes the tunnel and frees the port for others.
    env.vmoat(&a, &["destroy", "-f"]).ok();
    assert!(wait_until(Duration::from_secs(5), || http_get(ha).is_none()));
    let reg = std::fs::read_to_string(env.state_dir().join("ports.json")).unwrap();
    assert!(!reg.contains("wt-a"), "{reg}");
    assert!(reg.contains("wt-b"), "{reg}");
}

fn tunnel_without_ports_explains_where_ports_come_from() {
    let env = Env::new();
    let wt = up(&env, "feat");
    // No args, no config, and no container publishes a port.
    let r = env.vmoat(&wt, &["tunnel"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.contains("no ports to tunnel") && r.stderr.contains("tunnel.ports"),
        "{r:?}"
    );
}

fn tunnel_needs_a_running_vm() {
    let env = Env::new();
    let repo = env.repo("proj");
    env.write(&repo.join("vmoat.toml"), "backend = \"colima\"\n");
    let r = env.vmoat(&repo, &["tunnel", "8080"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not running"), "{r:?}");
}

/// The forwarder processes of a VM of this test (by the VM's ssh config on their command line).
fn forwarders(env: &Env, vm: &str) -> Vec<u32> {
    let marker = env.state_dir().join("vms").join(vm).join("ssh_config");
    let marker = marker.to_str().unwrap();
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
            (argv.iter().any(|a| a == marker) && argv.iter().any(|a| a == "__forward"))
                .then_some(pid)
        })
        .collect()
}

fn destroy_stops_forwarders_whose_record_is_damaged() {
    let env = Env::new();
    let wt = up(&env, "feat");
    env.write(&wt.join("www/index.html"), "page\n");
    let guest = free_port();
    serve_in_vm(&env, &wt, &wt.join("www"), guest);
    let url = env.vmoat(&wt, &["tunnel", &guest.to_string()]).ok().stdout;
    let host = port_of(&url);
    assert!(http_get(host).is_some());
    assert_eq!(forwarders(&env, "wt-feat").len(), 1);
    // The record is damaged (a power cut): teardown finds the forwarder by its command line.
    let rec = env.state_dir().join("vms/wt-feat/tunnels.json");
    std::fs::write(&rec, "{not json").unwrap();
    let r = env.vmoat(&wt, &["destroy", "-f"]).ok();
    assert!(
        r.stderr.contains("corrupt"),
        "the damage is reported: {r:?}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || forwarders(&env, "wt-feat")
            .is_empty()),
        "a forwarder outlived its VM"
    );
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", host)).is_ok(),
        "the host port is free again"
    );
}

fn a_tunnel_that_cannot_be_recorded_is_closed_again() {
    let env = Env::new();
    let wt = up(&env, "feat");
    env.write(&wt.join("www/index.html"), "page\n");
    let guest = free_port();
    serve_in_vm(&env, &wt, &wt.join("www"), guest);
    // The VM's runtime dir moves onto a tiny filesystem, then that fills up.
    let vm_dir = env.state_dir().join("vms/wt-feat");
    let saved = env.home.join("saved-vm-dir");
    std::fs::rename(&vm_dir, &saved).unwrap();
    std::fs::create_dir(&vm_dir).unwrap();
    let m = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&vm_dir)
        .status()
        .unwrap();
    assert!(m.success());
    for f in std::fs::read_dir(&saved).unwrap().flatten() {
        // Files only: a lease dir (`busy`) is made again when needed.
        if f.path().is_file() {
            std::fs::copy(f.path(), vm_dir.join(f.file_name())).unwrap();
        }
    }
    let mut n = 0;
    while std::fs::write(vm_dir.join(format!("fill{n}")), vec![0u8; 4096]).is_ok() {
        n += 1;
    }
    let r = env.vmoat(&wt, &["tunnel", &guest.to_string()]);
    let _ = std::process::Command::new("umount").arg(&vm_dir).status();
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("could not be recorded"), "{r:?}");
    assert!(
        forwarders(&env, "wt-feat").is_empty(),
        "an unrecorded forwarder was left running"
    );
}

crate::tests! {
    tunnel_forwards_a_guest_port_and_is_reused_and_repaired: Isolation;
    two_worktrees_never_share_a_host_port_and_ports_come_from_config: Isolation;
    tunnel_without_ports_explains_where_ports_come_from: Isolation;
    tunnel_needs_a_running_vm;
    destroy_stops_forwarders_whose_record_is_damaged: Isolation;
    a_tunnel_that_cannot_be_recorded_is_closed_again: Isolation, Root;
}
