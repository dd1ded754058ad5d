//! The rootless backend, end to end as a normal user the test makes: `auto` picks it, two
//! stacks serve on 8080 at once, each through its own tunnel (the second warmed from the
//! first); a prune stays in its VM; exit codes come back exactly; health gates `up`; suspend,
//! down and up keep everything; a killed daemon's leftovers are cleared; what `up` runs cannot
//! read /etc/shadow nor write outside the user's files; the host's firewall and sysctls stay as
//! they were; destroy leaves no process, dir or socket; `gc` reclaims a VM whose state dir went.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;

/// A test user and the env it runs git-vmoat in.
struct As {
    env: Env,
    user: TempUser,
}

impl As {
    fn vmoat(&self, wt: &Path, args: &[&str]) -> Run {
        self.user.vmoat(&self.env, wt, args)
    }

    fn tunnel_port(&self, wt: &Path) -> u16 {
        let r = self.vmoat(wt, &["tunnel"]).ok();
        let line = r.stdout.lines().next().unwrap_or_default().to_string();
        line.rsplit(':').next().unwrap().parse().expect("a URL")
    }
}

/// A worktree whose stack is busybox httpd on 8080 in the VM serving its own `www/`; `up`
/// first tries to read /etc/shadow and to write beside git-vmoat's binary, noting what worked.
fn worktree(env: &Env, repo: &Path, name: &str, serve: &str, timeout: u64) -> PathBuf {
    let fs = busybox_rootfs(env);
    let wt = env.worktree(repo, &env.home.join("src").join(name), name);
    env.write(&wt.join("www/index.html"), &format!("{name}'s own page\n"));
    let up = format!(
        "if cat /etc/shadow >/dev/null 2>&1; then echo read > shadow-was-read; fi; \
         if touch /usr/local/vmoat-was-here 2>/dev/null; then echo wrote > host-was-written; fi; \
         id -u > uid-inside; touch made-by-up; \
         docker image inspect bb >/dev/null 2>&1 || {{ tar -C {} -c . | docker import - bb >/dev/null && echo import\"\"ed-image; }}; \
         docker rm -f web >/dev/null 2>&1; \
         docker run -d --name web --pull never -p 8080:80 -v \"$PWD/www:/www\" bb sh -c '{serve}' >/dev/null",
        fs.display()
    );
    env.write(
        &wt.join("vmoat.toml"),
        &format!(
            "[vm]\ncpus = 1\nmemory = 1\n[commands]\nup = {up:?}\ntest = \"exit\"\n[health]\nurl = \"http://127.0.0.1:8080/\"\ntimeout = {timeout}\n[warm]\nimages = [\"bb\"]\n"
        ),
    );
    wt
}

/// The host's firewall rules and the network sysctls a container runtime might turn.
fn host_network() -> Vec<String> {
    let mut out = vec![];
    for table in ["filter", "nat"] {
        if let Ok(o) = std::process::Command::new("iptables")
            .args(["-t", table, "-S"])
            .output()
        {
            out.extend(
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    // Other tests' netns VMs of earlier versions tag theirs; none are ours.
                    .filter(|l| !l.contains("git-vmoat:"))
                    .map(|l| format!("{table}: {l}")),
            );
        }
    }
    for k in [
        "net/ipv4/ip_forward",
        "net/ipv4/conf/all/route_localnet",
        "net/ipv4/ip_unprivileged_port_start",
        "net/ipv4/ping_group_range",
    ] {
        let v = std::fs::read_to_string(Path::new("/proc/sys").join(k)).unwrap_or_default();
        out.push(format!("{k} = {}", v.trim()));
    }
    out
}

/// The user's processes that are alive (zombies waiting for a reaper are not).
fn live_processes(uid: u32) -> Vec<String> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(st) = std::fs::metadata(e.path()) else {
            continue;
        };
        use std::os::unix::fs::MetadataExt;
        if st.uid() != uid || e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
        {
            continue;
        }
        out.push(stat);
    }
    out
}

/// The TCP ports `uid` listens on in the host's network (/proc/net/tcp{,6}: state 0A is
/// LISTEN, the uid column owns the socket).
fn host_listening_ports(uid: u32) -> Vec<u16> {
    let mut out = vec![];
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for l in std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let c: Vec<&str> = l.split_whitespace().collect();
            if c.len() > 7 && c[3] == "0A" && c[7] == uid.to_string() {
                let port = c[1].rsplit(':').next().unwrap();
                out.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn vm_state(a: &As, wt: &Path) -> String {
    let r = a.vmoat(wt, &["status", "--json"]).ok();
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    j["state"].as_str().unwrap_or_default().to_string()
}

/// Everything of the list in one run: each `up` costs a VM start.
fn rootless_vms_isolate_contain_and_leave_nothing() {
    let env = Env::new();
    let user = TempUser::create(&env).expect("a test user");
    let repo = env.repo("proj");
    let a_wt = worktree(&env, &repo, "alpha", "exec httpd -f -p 80 -h /www", 60);
    let b_wt = worktree(&env, &repo, "beta", "exec httpd -f -p 80 -h /www", 60);
    let never = worktree(&env, &repo, "never", "exec sleep 600", 2);
    user.own_home(&env);
    let a = As { env, user };
    let before = host_network();

    // Two stacks on 8080 at once, with `auto` picking rootless for this user.
    let r = a.vmoat(&a_wt, &["up"]).ok();
    assert!(
        r.stderr.contains("rootless VM") && r.stderr.contains("imported-image"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("vm.cpus and vm.memory are not enforced for"),
        "up says the limits are not enforced, and why: {r:?}"
    );
    // The second VM's image is copied from the first (warm), not imported again.
    let r = a.vmoat(&b_wt, &["up"]).ok();
    assert!(
        r.stderr.contains("warmed 1 image") && !r.stderr.contains("imported-image"),
        "{r:?}"
    );
    let (pa, pb) = (a.tunnel_port(&a_wt), a.tunnel_port(&b_wt));
    assert_ne!(pa, pb);
    assert_eq!(http_get(pa).as_deref(), Some("alpha's own page\n"));
    assert_eq!(http_get(pb).as_deref(), Some("beta's own page\n"));
    // What the stacks publish on 0.0.0.0:8080 stays in their namespaces: on the host the user
    // listens only where the tunnels are.
    let mut tunnels = vec![pa, pb];
    tunnels.sort_unstable();
    assert_eq!(host_listening_ports(a.user.uid), tunnels);

    a_boundary_holds(&a, &a_wt);

    // Exact exit codes, from `test` and `ssh`.
    assert_eq!(a.vmoat(&a_wt, &["test", "0"]).code, 0);
    assert_eq!(a.vmoat(&a_wt, &["test", "5"]).code, 5);
    assert_eq!(a.vmoat(&a_wt, &["ssh", "sh", "-c", "exit 7"]).code, 7);

    // A prune in alpha stays in alpha.
    a.vmoat(
        &a_wt,
        &[
            "ssh",
            "sh",
            "-c",
            "docker rm -f web >/dev/null && docker system prune -af --volumes >/dev/null",
        ],
    )
    .ok();
    assert_ne!(
        a.vmoat(&a_wt, &["ssh", "docker", "image", "inspect", "bb"])
            .code,
        0
    );
    assert_eq!(
        a.vmoat(&b_wt, &["ssh", "docker", "image", "inspect", "bb"])
            .code,
        0
    );
    assert_eq!(http_get(pb).as_deref(), Some("beta's own page\n"));

    // Health gates `up`.
    let r = a.vmoat(&never, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("did not become healthy within"), "{r:?}");

    suspend_down_up_keep_data(&a, &b_wt, pb);
    a_dead_daemons_leftovers_are_cleared(&a, &never);

    assert_eq!(host_network(), before, "the host's network is as it was");
    destroy_leaves_nothing(&a, &[&a_wt, &b_wt, &never], &[pa, pb]);
}

/// Root inside, the user outside: what `up` made is the user's, and it could neither read
/// /etc/shadow nor write a system dir.
fn a_boundary_holds(a: &As, a_wt: &Path) {
    assert_eq!(
        std::fs::read_to_string(a_wt.join("uid-inside"))
            .unwrap()
            .trim(),
        "0"
    );
    use std::os::unix::fs::MetadataExt;
    let made = std::fs::metadata(a_wt.join("made-by-up")).unwrap();
    assert_eq!(
        made.uid(),
        a.user.uid,
        "files made inside belong to the user"
    );
    assert!(
        !a_wt.join("shadow-was-read").exists(),
        "up read /etc/shadow"
    );
    assert!(!a_wt.join("host-was-written").exists());
    assert!(!Path::new("/usr/local/vmoat-was-here").exists());
}

/// Suspend freezes and resume thaws; a volume's data survives down and up.
fn suspend_down_up_keep_data(a: &As, b_wt: &Path, pb: u16) {
    a.vmoat(
        b_wt,
        &[
            "ssh",
            "sh",
            "-c",
            "docker run --rm -v keep:/d bb sh -c 'echo kept > /d/x'",
        ],
    )
    .ok();
    a.vmoat(b_wt, &["suspend"]).ok();
    assert_eq!(vm_state(a, b_wt), "Suspended");
    // Frozen for real: its daemon is stopped, the other VMs' are not.
    let dockerds: Vec<String> = live_processes(a.user.uid)
        .into_iter()
        .filter(|s| s.contains("(dockerd)"))
        .collect();
    let stopped = dockerds
        .iter()
        .filter(|s| s.rsplit(')').next().unwrap().trim_start().starts_with('T'))
        .count();
    assert!(dockerds.len() >= 2 && stopped == 1, "{dockerds:#?}");
    // A connection to its tunnel wakes it (the forwarder enters its user namespace too).
    assert_eq!(http_get(pb).as_deref(), Some("beta's own page\n"));
    assert_eq!(vm_state(a, b_wt), "Running", "the tunnel woke it");
    a.vmoat(b_wt, &["suspend"]).ok();
    let r = a.vmoat(b_wt, &["ssh", "docker", "ps", "-q"]).ok();
    assert!(!r.stdout.trim().is_empty(), "its container ran on: {r:?}");
    assert_eq!(vm_state(a, b_wt), "Running", "a command woke it");

    a.vmoat(b_wt, &["down"]).ok();
    assert_eq!(vm_state(a, b_wt), "Stopped");
    assert!(wait_until(Duration::from_secs(5), || http_get(pb).is_none()));
    let r = a.vmoat(b_wt, &["up"]).ok();
    assert!(!r.stderr.contains("imported-image"), "image kept: {r:?}");
    let r = a
        .vmoat(
            b_wt,
            &[
                "ssh", "docker", "run", "--rm", "-v", "keep:/d", "bb", "cat", "/d/x",
            ],
        )
        .ok();
    assert_eq!(r.stdout, "kept\n", "{r:?}");
}

/// The user's live processes named `comm` whose command line holds `needle`.
fn processes_with(a: &As, comm: &str, needle: &str) -> Vec<u32> {
    live_processes(a.user.uid)
        .iter()
        .filter(|s| s.contains(&format!("({comm})")))
        .map(|s| s.split_whitespace().next().unwrap().parse().unwrap())
        .filter(|pid: &u32| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

/// Kills the worktree's VM's dockerd (a crash) and waits until its VM counts as stopped.
fn kill_dockerd_of(a: &As, wt: &Path) {
    let vm = a.vmoat(wt, &["name"]).ok().stdout.trim().to_string();
    let dockerd = processes_with(a, "dockerd", &format!("rootless/{vm}/docker"));
    assert_eq!(dockerd.len(), 1, "{dockerd:?}");
    let st = std::process::Command::new("kill")
        .args(["-KILL", &dockerd[0].to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    // (status may fail while the VM is halfway down: asked again until it says Stopped.)
    let stopped = || {
        let r = a.vmoat(wt, &["status", "--json"]);
        r.code == 0
            && serde_json::from_str::<serde_json::Value>(&r.stdout)
                .is_ok_and(|j| j["state"] == "Stopped")
    };
    assert!(wait_until(Duration::from_secs(5), stopped));
}

/// A killed dockerd leaves its containers running (their shims outlive it): the next `up`
/// clears them before starting afresh.
fn a_dead_daemons_leftovers_are_cleared(a: &As, wt: &Path) {
    let with = |comm: &str, needle: &str| processes_with(a, comm, needle);
    // The stack of that worktree is `sleep 600` in a container: the only sleep of this user.
    assert_eq!(with("sleep", "600").len(), 1);
    kill_dockerd_of(a, wt);
    let r = a.vmoat(wt, &["up"]);
    assert!(r.stderr.contains("docker daemon had died"), "{r:?}");
    assert_eq!(
        with("sleep", "600").len(),
        1,
        "the old container is gone, the new one runs"
    );
}

fn destroy_leaves_nothing(a: &As, wts: &[&Path], ports: &[u16]) {
    for wt in wts {
        a.vmoat(wt, &["destroy", "-f"]).ok();
        assert!(wt.join("www/index.html").exists(), "worktree files stay");
    }
    assert!(wait_until(Duration::from_secs(5), || ports
        .iter()
        .all(|p| http_get(*p).is_none())));
    assert!(
        wait_until(Duration::from_secs(5), || live_processes(a.user.uid)
            .is_empty()),
        "processes left: {:#?}",
        live_processes(a.user.uid)
    );
    let state = a.env.state_dir();
    let left: Vec<_> = ["rootless", "run"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(state.join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "data or runtime dirs left: {left:?}");
    let tmp = PathBuf::from(format!("/tmp/git-vmoat-{}", a.user.uid));
    assert!(!tmp.exists(), "{} left", tmp.display());
}

/// doctor says what the rootless backend needs and that the limits are not enforced here, and
/// why, before any VM exists.
fn doctor_checks_the_rootless_backend() {
    let env = Env::new();
    let user = TempUser::create(&env).expect("a test user");
    let repo = env.repo("proj");
    user.own_home(&env);
    let r = user.vmoat(&env, &repo, &["doctor", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    let checks = j["checks"].as_array().unwrap();
    let find = |name: &str| checks.iter().find(|c| c["name"] == name).cloned();
    assert_eq!(j["ok"], true, "nothing blocks up: {j}");
    assert_eq!(
        find("netns backend").map(|c| c["status"].clone()),
        Some("ok".into()),
        "netns is only not used here"
    );
    let backend = find("rootless backend").expect("a rootless line");
    assert_eq!(backend["status"], "ok", "{backend}");
    let limits = find("rootless limits").expect("a limits line");
    let unified = std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/cgroup") && l.contains("cgroup2"));
    if !unified {
        assert_eq!(limits["status"], "warn", "{limits}");
        let detail = limits["detail"].as_str().unwrap();
        assert!(
            detail.contains("not enforced") && detail.contains("cgroup v1"),
            "{limits}"
        );
    }
    // Without subordinate ids the gap is named, with its fix.
    user.without_subordinate_ids();
    let r = user.vmoat(&env, &repo, &["doctor", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let gap = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rootless backend" && c["status"] == "warn")
        .cloned()
        .unwrap_or_else(|| panic!("no rootless gap: {j}"));
    assert!(
        gap["detail"].as_str().unwrap().contains("/etc/subuid")
            && gap["fix"]
                .as_str()
                .unwrap()
                .contains("usermod --add-subuids"),
        "{gap}"
    );
}

/// Root asking for rootless gets why not and where to look, and nothing is made.
fn rootless_as_root_is_refused_with_a_hint() {
    let env = Env::new();
    let repo = env.repo("proj");
    env.write(
        &repo.join("vmoat.toml"),
        "backend = \"rootless\"\n[commands]\nup = \"true\"\n",
    );
    let r = env.vmoat_without_colima(&repo, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("the rootless backend is for normal users")
            && r.stderr.contains("hint: `git vmoat doctor`"),
        "{r:?}"
    );
    assert!(!env.state_dir().join("rootless").exists(), "nothing made");
}

/// A VM whose state dir was deleted while it ran (a removed HOME) is found by `gc` by its
/// rootlesskit's command line and reclaimed whole, its tunnel's forwarder too.
fn gc_reclaims_a_rootless_vm_whose_state_dir_is_gone() {
    let env = Env::new();
    let user = TempUser::create(&env).expect("a test user");
    let repo = env.repo("proj");
    let wt = worktree(&env, &repo, "gone", "exec httpd -f -p 80 -h /www", 60);
    user.own_home(&env);
    let a = As { env, user };
    a.vmoat(&wt, &["up"]).ok();
    let port = a.tunnel_port(&wt);
    assert_eq!(http_get(port).as_deref(), Some("gone's own page\n"));
    let state = a.env.state_dir();
    std::fs::remove_dir_all(&state).unwrap();
    let r = a.vmoat(&wt, &["gc", "--all", "--json"]).ok();
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let strays = j["strays"].as_array().expect("strays");
    assert_eq!(strays.len(), 1, "{j}");
    assert_eq!(strays[0]["reclaimed"], true, "{j}");
    assert_eq!(
        strays[0]["data_dir"].as_str(),
        Some(state.join("rootless/wt-gone").to_str().unwrap())
    );
    assert!(
        wait_until(Duration::from_secs(5), || live_processes(a.user.uid)
            .is_empty()),
        "processes left: {:#?}",
        live_processes(a.user.uid)
    );
    assert!(http_get(port).is_none(), "the forwarder is gone");
}

/// The identity (device, inode) of the namespace a forwarder's marker stands for now.
fn ns_identity(marker: &str) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(marker).unwrap();
    (m.dev(), m.ino())
}

/// After the VM's dockerd crashes, `up` makes the VM again in new user and network namespaces:
/// the forwarder already running must follow them, not keep connecting in the old, empty ones.
fn a_rootless_tunnel_follows_the_vm_up_made_again_after_a_crash() {
    let env = Env::new();
    let user = TempUser::create(&env).expect("a test user");
    let repo = env.repo("proj");
    let wt = worktree(&env, &repo, "crash", "exec httpd -f -p 80 -h /www", 60);
    user.own_home(&env);
    let a = As { env, user };
    a.vmoat(&wt, &["up"]).ok();
    let port = a.tunnel_port(&wt);
    assert_eq!(http_get(port).as_deref(), Some("crash's own page\n"));
    let r = a.vmoat(&wt, &["status", "--json"]).ok();
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let forwarder = j["tunnels"][0]["pid"].as_i64().expect("a forwarder");
    let argv = std::fs::read(format!("/proc/{forwarder}/cmdline")).unwrap();
    let marker = String::from_utf8_lossy(&argv)
        .split('\0')
        .find(|s| s.ends_with("/net"))
        .expect("the forwarder's namespace")
        .to_string();
    let before = ns_identity(&marker);
    kill_dockerd_of(&a, &wt);
    a.vmoat(&wt, &["up"]).ok();
    assert_ne!(
        ns_identity(&marker),
        before,
        "up did not make the namespace again, so this test shows nothing"
    );
    let log = a.env.state_dir().join("vms/wt-crash/tunnel-8080.log");
    assert_eq!(
        http_get(port).as_deref(),
        Some("crash's own page\n"),
        "the tunnel still leads into the old namespace; the forwarder's log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let r = a.vmoat(&wt, &["status", "--json"]).ok();
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        j["tunnels"][0]["pid"].as_i64(),
        Some(forwarder),
        "the same forwarder serves on"
    );
}

crate::tests! {
    a_rootless_tunnel_follows_the_vm_up_made_again_after_a_crash: Rootless;
    rootless_vms_isolate_contain_and_leave_nothing: Rootless;
    doctor_checks_the_rootless_backend: Rootless;
    rootless_as_root_is_refused_with_a_hint: Root;
    gc_reclaims_a_rootless_vm_whose_state_dir_is_gone: Rootless;
}
