//! The netns backend and the host around it: a stack is reachable only through its tunnel (not
//! from a LAN neighbour, not by routing to the namespace), the host's forwarding and firewall are
//! left as they were, objects whose state dir was deleted are reclaimed by `gc`, and the last
//! destroy leaves no empty parent cgroup.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// A worktree whose stack is busybox httpd published by docker on 0.0.0.0:8080 in the VM.
fn stack(env: &Env, name: &str) -> PathBuf {
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src").join(name), name);
    env.write(&wt.join("www/index.html"), "the stack's page\n");
    let up = httpd_up(env);
    env.write(
        &wt.join("vmoat.toml"),
        &format!(
            "backend = \"netns\"\n[commands]\nup = {up:?}\n[health]\nurl = \"http://127.0.0.1:8080/\"\ntimeout = 60\n"
        ),
    );
    wt
}

fn sh(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program).args(args).output().unwrap()
}

fn ip_forward() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap()
}

/// The host's filter and nat rules, without those of other git-vmoat VMs that may come and go
/// on this machine meanwhile (other state dirs, older builds).
fn host_rules() -> Vec<String> {
    let mut out = vec![];
    for table in ["filter", "nat"] {
        let o = sh("iptables", &["-t", table, "-S"]);
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.contains("git-vmoat:"))
                .map(|l| format!("{table}: {l}")),
        );
    }
    out
}

fn rules_mentioning(needle: &str) -> Vec<String> {
    ["filter", "nat"]
        .iter()
        .flat_map(|t| {
            String::from_utf8_lossy(&sh("iptables", &["-t", t, "-S"]).stdout)
                .lines()
                .filter(|l| l.contains(needle))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The namespace's own IPv4 addresses (loopback aside).
fn ns_addrs(id: &str) -> Vec<String> {
    let o = sh("ip", &["-n", id, "-4", "-o", "addr", "show"]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|a| a.split('/').next())
        .filter(|a| !a.starts_with("127."))
        .map(String::from)
        .collect()
}

fn hex8() -> String {
    use sha2::Digest;
    let seed = format!(
        "{}-{:?}-{:?}",
        std::process::id(),
        std::time::SystemTime::now(),
        std::thread::current().id()
    );
    sha2::Sha256::digest(seed.as_bytes())
        .iter()
        .take(3)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A LAN neighbour: another namespace joined to the host by a veth, routing whatever it is
/// told via the host, as a machine on the host's LAN would. Removed on drop.
struct Neighbour {
    ns: String,
    host_if: String,
    host_ip: String,
}

impl Neighbour {
    fn new() -> Self {
        let tag = hex8();
        let used = String::from_utf8_lossy(&sh("ip", &["-4", "-o", "addr"]).stdout).into_owned();
        let third = (0..=255u8)
            .map(|i| u8::from_str_radix(&tag[..2], 16).unwrap().wrapping_add(i))
            .find(|t| !used.contains(&format!(" 10.231.{t}.")))
            .expect("a free 10.231.x.0/30");
        let n = Self {
            ns: format!("vmtlan{tag}"),
            host_if: format!("vtl{tag}"),
            host_ip: format!("10.231.{third}.1"),
        };
        let peer = format!("vtn{tag}");
        let lan_ip = format!("10.231.{third}.2");
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), n.ns.clone()],
            vec![
                "link".into(),
                "add".into(),
                n.host_if.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                peer.clone(),
                "netns".into(),
                n.ns.clone(),
            ],
            vec![
                "addr".into(),
                "add".into(),
                format!("{}/30", n.host_ip),
                "dev".into(),
                n.host_if.clone(),
            ],
            vec!["link".into(), "set".into(), n.host_if.clone(), "up".into()],
            vec![
                "-n".into(),
                n.ns.clone(),
                "addr".into(),
                "add".into(),
                format!("{lan_ip}/30"),
                "dev".into(),
                peer.clone(),
            ],
            vec![
                "-n".into(),
                n.ns.clone(),
                "link".into(),
                "set".into(),
                peer,
                "up".into(),
            ],
            vec![
                "-n".into(),
                n.ns.clone(),
                "link".into(),
                "set".into(),
                "lo".into(),
                "up".into(),
            ],
        ];
        for s in steps {
            let o = Command::new("ip").args(&s).output().unwrap();
            assert!(
                o.status.success(),
                "ip {s:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        n
    }

    /// Routes `dest` (an address or a subnet) from the neighbour via the host.
    fn route_via_host(&self, dest: &str) {
        let o = sh(
            "ip",
            &["-n", &self.ns, "route", "add", dest, "via", &self.host_ip],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// What the neighbour gets from `http://addr:port/` (empty when nothing answers).
    fn fetch(&self, addr: &str, port: u16) -> String {
        curl(&["ip", "netns", "exec", &self.ns], addr, port)
    }
}

/// The body `curl` gets from `http://addr:port/`, run behind `prefix`. Compared by content: the
/// network beyond the host may answer anything for any address.
fn curl(prefix: &[&str], addr: &str, port: u16) -> String {
    let url = format!("http://{addr}:{port}/");
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.extend(["curl", "-s", "--max-time", "3", &url]);
    let o = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        let _ = sh("ip", &["link", "delete", &self.host_if]);
        let _ = sh("ip", &["netns", "delete", &self.ns]);
    }
}

fn tunnel_port(env: &Env, wt: &Path) -> u16 {
    let r = env.vmoat(wt, &["tunnel"]).ok();
    r.stdout
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{r:?}"))
}

/// The stack serves on 0.0.0.0 inside its namespace, yet a LAN neighbour routing to the
/// namespace via the host, and the host itself, cannot reach it: only the tunnel on 127.0.0.1
/// can. Egress still works, and the host's forwarding switch and firewall are left as found.
fn a_netns_stack_is_reachable_only_through_its_tunnel() {
    let forward_before = ip_forward();
    let rules_before = host_rules();
    let env = Env::new();
    let wt = stack(&env, "lan");
    env.vmoat(&wt, &["up"]).ok();
    let id = netns_id(&env, &vm_name(&env, &wt));
    let port = tunnel_port(&env, &wt);
    assert_eq!(http_get(port).as_deref(), Some("the stack's page\n"));

    let lan = Neighbour::new();
    lan.route_via_host("10.240.0.0/12");
    let addrs = ns_addrs(&id);
    for a in &addrs {
        if !a.starts_with("10.240.") {
            lan.route_via_host(&format!("{a}/32"));
        }
    }
    assert!(!addrs.is_empty());
    for a in &addrs {
        assert_ne!(
            lan.fetch(a, 8080),
            "the stack's page\n",
            "a LAN neighbour fetched the stack's page at {a}:8080"
        );
        assert_ne!(
            curl(&[], a, 8080),
            "the stack's page\n",
            "the host reached the stack at {a}:8080 past the tunnel"
        );
    }
    assert_eq!(
        http_get(port).as_deref(),
        Some("the stack's page\n"),
        "the tunnel still works"
    );
    assert_eq!(ip_forward(), forward_before, "ip_forward untouched by up");
    let ours = rules_mentioning(&id);
    assert!(ours.is_empty(), "up added host firewall rules: {ours:#?}");

    // Egress: a service on one of the host's addresses is reachable from inside.
    let served = env.tmp.path().join("served");
    env.write(&served.join("egress.txt"), "out and back\n");
    let sport = free_port();
    let server = env
        .cmd("python3", &served)
        .args(["-m", "http.server", &sport.to_string(), "--bind"])
        .arg(&lan.host_ip)
        .arg("--directory")
        .arg(&served)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    env.children.borrow_mut().push(server);
    let url = format!("http://{}:{sport}/egress.txt", lan.host_ip);
    let mut got = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            got = env
                .vmoat(&wt, &["ssh", "curl", "-s", "--max-time", "3", &url])
                .stdout;
            got == "out and back\n"
        }),
        "egress from the namespace to {url}: {got:?}"
    );

    env.vmoat(&wt, &["destroy", "-f"]).ok();
    drop(lan);
    assert_eq!(ip_forward(), forward_before, "ip_forward as found");
    assert_eq!(host_rules(), rules_before, "host firewall as found");
}

/// Every cgroup dir of `id` (one per hierarchy), existing or not.
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    cgroup_parents().into_iter().map(|p| p.join(id)).collect()
}

/// git-vmoat's parent cgroup in every mounted hierarchy.
fn cgroup_parents() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && (f[2] == "cgroup" || f[2] == "cgroup2"))
                .then(|| Path::new(f[1]).join("git-vmoat"))
        })
        .collect()
}

fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| {
            let c = std::fs::read(e.path().join("cmdline")).ok()?;
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            let zombie = std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            });
            (c.contains(needle) && !zombie).then_some(c)
        })
        .collect()
}

/// What of `id` is still on the machine.
fn remains(id: &str, data: &Path) -> Vec<String> {
    let mut l = vec![];
    if Path::new("/run/netns").join(id).exists() {
        l.push("namespace".to_string());
    }
    if Path::new("/run/git-vmoat").join(id).exists() {
        l.push("runtime dir".to_string());
    }
    l.extend(
        processes_mentioning(&format!("/run/git-vmoat/{id}/"))
            .into_iter()
            .chain(processes_mentioning(&format!("/run/netns/{id}")))
            .chain(processes_mentioning(&data.display().to_string()))
            .map(|p| format!("process {p}")),
    );
    l.extend(
        cgroup_dirs(id)
            .into_iter()
            .filter(|d| d.exists())
            .map(|d| format!("cgroup {}", d.display())),
    );
    let veth = {
        use sha2::Digest;
        let h: String = sha2::Sha256::digest(id.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("vmo{}", &h[..8])
    };
    if sh("ip", &["link", "show", &veth]).status.success() {
        l.push(format!("veth {veth}"));
    }
    l.extend(
        rules_mentioning(&format!("git-vmoat:{id}"))
            .into_iter()
            .map(|r| format!("rule {r}")),
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    l.extend(
        mounts
            .lines()
            .filter(|m| {
                m.contains(&format!("/run/git-vmoat/{id}/"))
                    || m.contains(&data.display().to_string())
            })
            .map(|m| format!("mount {m}")),
    );
    l
}

/// A VM whose state dir was deleted while it ran (a removed HOME or temp dir) keeps a daemon,
/// a namespace, cgroups and mounts; `gc --dry-run` lists them and changes nothing, `gc`
/// reclaims every one.
fn gc_reclaims_the_netns_objects_of_a_deleted_state_dir() {
    let env = Env::new();
    let wt = stack(&env, "doomed");
    env.vmoat(&wt, &["up"]).ok();
    let id = netns_id(&env, &vm_name(&env, &wt));
    let data = env.state_dir().join("netns").join(vm_name(&env, &wt));
    let before = remains(&id, &data);
    assert!(
        before.iter().any(|r| r.starts_with("process")) && before.contains(&"namespace".into()),
        "{before:#?}"
    );

    // The state dir goes while the VM runs; mount points inside it cannot, the rest does.
    let _ = Command::new("rm")
        .arg("-rf")
        .arg(env.state_dir())
        .output()
        .unwrap();
    assert!(!data.join("vm.json").exists());

    let other = Env::new();
    let repo = other.repo("elsewhere");
    let listed: serde_json::Value = serde_json::from_str(
        &other
            .vmoat(&repo, &["gc", "--dry-run", "--json"])
            .ok()
            .stdout,
    )
    .unwrap();
    let strays = listed["strays"].as_array().expect("a strays array");
    let mine = strays
        .iter()
        .find(|s| s["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} is not listed: {listed:#}"));
    assert_eq!(mine["reclaimed"], false, "{mine}");
    let r = other.vmoat(&repo, &["gc", "--dry-run"]).ok();
    assert!(
        r.stderr.contains("strays") && r.stderr.contains(&id),
        "{r:?}"
    );
    assert_eq!(remains(&id, &data), before, "--dry-run changes nothing");

    let r = other.vmoat(&repo, &["gc", "--json"]).ok();
    let done: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let mine = done["strays"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} is not listed: {r:?}"));
    assert_eq!(mine["reclaimed"], true, "{r:?}");
    let left = remains(&id, &data);
    assert!(left.is_empty(), "gc left: {left:#?}");
    assert!(!data.exists(), "the VM's remnant data dir is gone too");
}

/// The parent cgroups are removed with the last VM (and kept while any other VM, of any state
/// dir, still has its cgroup under them).
fn the_last_destroy_removes_the_empty_parent_cgroups() {
    let env = Env::new();
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src/only"), "only");
    env.write(
        &wt.join("vmoat.toml"),
        "backend = \"netns\"\n[commands]\nup = \"true\"\n",
    );
    env.vmoat(&wt, &["up"]).ok();
    let id = netns_id(&env, &vm_name(&env, &wt));
    assert!(cgroup_dirs(&id).iter().any(|d| d.exists()));
    env.vmoat(&wt, &["destroy", "-f"]).ok();
    for parent in cgroup_parents() {
        let others: Vec<String> = std::fs::read_dir(&parent)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            !others.contains(&id),
            "{} still holds {id}",
            parent.display()
        );
        assert!(
            !parent.exists() || !others.is_empty(),
            "{} is left behind, empty",
            parent.display()
        );
    }
}

crate::tests! {
    a_netns_stack_is_reachable_only_through_its_tunnel: NetnsFull;
    gc_reclaims_the_netns_objects_of_a_deleted_state_dir: NetnsFull;
    the_last_destroy_removes_the_empty_parent_cgroups: NetnsFull;
}
