//! Docker networking inside a netns VM, as on a docker host: containers reach out through the
//! uplink, except from an internal network; containers of one network reach each other, and two
//! networks stay apart.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// A worktree whose up command makes docker networks `front`, `back` and the internal `inner`,
/// and runs busybox httpd as `web` on `front`, published on 8080. (Names that are no hex
/// prefix: `docker network inspect` takes a prefix of an id too.)
fn two_network_stack(env: &Env) -> PathBuf {
    let fs = busybox_rootfs(env);
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src").join("nets"), "nets");
    env.write(&wt.join("www/index.html"), "the stack's page\n");
    let up = format!(
        "docker image inspect bb >/dev/null 2>&1 || tar -C {} -c . | docker import - bb >/dev/null; \
         for n in front back; do docker network inspect $n >/dev/null 2>&1 || docker network create $n >/dev/null; done; \
         docker network inspect inner >/dev/null 2>&1 || docker network create --internal inner >/dev/null; \
         docker rm -f web >/dev/null 2>&1; \
         docker run -d --name web --network front --pull never -p 8080:80 -v \"$PWD/www:/www\" bb httpd -f -p 80 -h /www >/dev/null",
        fs.display()
    );
    env.write(
        &wt.join("vmoat.toml"),
        &format!(
            "backend = \"netns\"\n[commands]\nup = {up:?}\n[health]\nurl = \"http://127.0.0.1:8080/\"\ntimeout = 60\n"
        ),
    );
    wt
}

/// An address of the host's own, on an interface of its own: a service there stands for the
/// internet. Removed on drop.
struct HostAddr {
    dev: String,
    ip: String,
}

impl HostAddr {
    fn new() -> Self {
        let tag = format!("{:06x}", std::process::id() & 0xff_ffff);
        let used = String::from_utf8_lossy(&sh("ip", &["-4", "-o", "addr"]).stdout).into_owned();
        let third = (0..=255u8)
            .find(|t| !used.contains(&format!(" 10.233.{t}.")))
            .expect("a free 10.233.x.1");
        let a = Self {
            dev: format!("vmd{tag}"),
            ip: format!("10.233.{third}.1"),
        };
        let peer = format!("vme{tag}");
        for args in [
            // A veth pair, both ends on the host: kernels without the dummy driver have it.
            vec!["link", "add", &a.dev, "type", "veth", "peer", "name", &peer],
            vec!["addr", "add", &format!("{}/32", a.ip), "dev", &a.dev],
            vec!["link", "set", &a.dev, "up"],
        ] {
            let o = sh("ip", &args);
            assert!(o.status.success(), "ip {args:?}: {o:?}");
        }
        a
    }
}

impl Drop for HostAddr {
    fn drop(&mut self) {
        let _ = sh("ip", &["link", "delete", &self.dev]);
    }
}

fn sh(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program).args(args).output().unwrap()
}

/// What a container on `network` gets for `GET /<path>` from `ip:port` (busybox nc, 3 s).
fn fetch_from_container(
    env: &Env,
    wt: &Path,
    network: &str,
    ip: &str,
    port: u16,
    path: &str,
) -> String {
    let script = format!(
        "docker run --rm --network {network} bb sh -c \"printf 'GET /{path} HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 {ip} {port}\""
    );
    env.vmoat(wt, &["ssh", "sh", "-c", &script]).stdout
}

/// Egress from containers on the default bridge and on a user network, none from an internal
/// one; a container reaches another of its network by address; a container of another network,
/// or of the default bridge, does not.
fn containers_reach_out_and_docker_networks_stay_apart() {
    let env = Env::new();
    let wt = two_network_stack(&env);
    env.vmoat(&wt, &["up"]).ok();

    let host = HostAddr::new();
    let served = env.tmp.path().join("served");
    env.write(&served.join("egress.txt"), "out and back\n");
    let port = free_port();
    let server = env
        .cmd("python3", &served)
        .args(["-m", "http.server", &port.to_string(), "--bind", &host.ip])
        .arg("--directory")
        .arg(&served)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    env.children.borrow_mut().push(server);
    for network in ["bridge", "front"] {
        let mut got = String::new();
        assert!(
            wait_until(Duration::from_secs(20), || {
                got = fetch_from_container(&env, &wt, network, &host.ip, port, "egress.txt");
                got.contains("out and back")
            }),
            "egress from a container on {network}: {got:?}"
        );
    }

    let inner = fetch_from_container(&env, &wt, "inner", &host.ip, port, "egress.txt");
    assert!(
        !inner.contains("out and back"),
        "a container of an internal network reached out"
    );

    let web_ip = env
        .vmoat(
            &wt,
            &[
                "ssh",
                "docker",
                "inspect",
                "-f",
                "{{.NetworkSettings.Networks.front.IPAddress}}",
                "web",
            ],
        )
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(web_ip.parse::<std::net::Ipv4Addr>().is_ok(), "{web_ip:?}");
    let same = fetch_from_container(&env, &wt, "front", &web_ip, 80, "");
    assert!(
        same.contains("the stack's page"),
        "a container of network front reaches web at {web_ip}: {same:?}"
    );
    for other in ["back", "bridge"] {
        let got = fetch_from_container(&env, &wt, other, &web_ip, 80, "");
        assert!(
            !got.contains("the stack's page"),
            "a container of {other} reached web on network front at {web_ip}"
        );
    }
    env.vmoat(&wt, &["destroy", "-f"]).ok();
}

crate::tests! {
    containers_reach_out_and_docker_networks_stay_apart: NetnsFull;
}
