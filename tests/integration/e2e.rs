//! End to end, for real, on both backends: two worktrees each run a container stack on port
//! 8080 in their own VM (a netns with its own dockerd, or the colima stand-in's isolated VM),
//! tunnelled to the host, pruned, health-gated, stopped, resumed and destroyed without a trace.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

fn rootfs(env: &Env) -> PathBuf {
    busybox_rootfs(env)
}

/// The stack: a busybox httpd container on 8080 serving the worktree's own `www/`.
fn stack_config(backend: &str, rootfs: &Path, serve: &str, health_timeout: u64) -> String {
    let up = format!(
        "docker image inspect bb >/dev/null 2>&1 || {{ tar -C {} -c . | docker import - bb >/dev/null && echo import\"\"ed-image; }}; \
         docker rm -f web >/dev/null 2>&1; \
         docker run -d --name web --pull never -p 8080:80 -v \"$PWD/www:/www\" bb sh -c '{serve}' >/dev/null",
        rootfs.display()
    );
    format!(
        "backend = {backend:?}\n[vm]\nmemory = 2\n[commands]\nup = {}\ntest = \"curl -sf -o /dev/null http://127.0.0.1:8080/ && exit\"\n[health]\nurl = \"http://127.0.0.1:8080/\"\ntimeout = {health_timeout}\n",
        toml_str(&up)
    )
}

fn toml_str(s: &str) -> String {
    format!("{s:?}")
}

const SERVE: &str = "exec httpd -f -p 80 -h /www";

fn worktree(
    env: &Env,
    repo: &Path,
    name: &str,
    backend: &str,
    rootfs: &Path,
    serve: &str,
    timeout: u64,
) -> PathBuf {
    // The netns and Colima runs go at the same time: different VM names give them different
    // fallback host ports, so neither takes a port the other expects back.
    let dir = format!("{name}-{backend}");
    let wt = env.worktree(repo, &env.home.join("src").join(&dir), &dir);
    env.write(
        &wt.join("www/index.html"),
        &format!("{name}'s own checkout\n"),
    );
    env.write(
        &wt.join("vmoat.toml"),
        &stack_config(backend, rootfs, serve, timeout),
    );
    wt
}

fn tunnel_port(env: &Env, wt: &Path) -> u16 {
    let r = env.vmoat(wt, &["tunnel"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{r:?}");
    lines[0].rsplit(':').next().unwrap().parse().unwrap()
}

/// Everything on this machine that mentions `needle`: processes, mounts, namespaces.
fn traces(needle: &str) -> Vec<String> {
    let mut found = vec![];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.parse::<u32>().is_err() {
                continue;
            }
            if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                let zombie = std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                });
                if c.contains(needle) && !zombie {
                    found.push(format!("process {name}: {c}"));
                }
            }
        }
    }
    for l in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
    {
        if l.contains(needle) {
            found.push(format!("mount: {l}"));
        }
    }
    found
}

/// Whether a tunnel forwarder of this test's state dir still runs. Tests running at the same
/// time open tunnels on the same host ports (each state dir hands out its own, and the netns
/// and Colima runs serve the same pages), so "closed" is told by the process, not the port.
fn forwarders(env: &Env) -> usize {
    let needle = format!("__forward\0--state\0{}\0", env.state_dir().display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(&needle))
        .count()
}

fn run(backend: &str) {
    let env = Env::new();
    let repo = env.repo("proj");
    let fs = rootfs(&env);
    let a = worktree(&env, &repo, "alpha", backend, &fs, SERVE, 60);
    let b = worktree(&env, &repo, "beta", backend, &fs, SERVE, 60);
    let (pa, pb) = two_stacks_side_by_side(&env, backend, &a, &b);
    if backend == "netns" {
        limits_hold(&env, &repo, &fs, &a, &b, pb);
    }

    // 2. `test` hits the stack inside the VM; its exit status comes back exactly.
    assert_eq!(env.vmoat(&a, &["test", "0"]).code, 0);
    assert_eq!(env.vmoat(&a, &["test", "5"]).code, 5);

    a_prune_leaves_the_other_serving(&env, &a, &b, pb);
    let (slow, never) = health_gating(&env, &repo, backend, &fs);
    down_then_up_resumes(&env, &b, pb);
    // 6. destroy leaves nothing behind.
    for wt in [&a, &b, &slow, &never] {
        let vm = vm_name(&env, wt);
        env.vmoat(wt, &["destroy", "-f"]).ok();
        assert!(wt.join("www/index.html").exists(), "worktree files stay");
        let leftovers = match backend {
            "netns" => netns_leftovers(&env, &vm),
            _ => colima_leftovers(&env, &vm),
        };
        assert!(leftovers.is_empty(), "{vm} left: {leftovers:#?}");
    }
    let _ = (pa, pb);
    assert!(wait_until(Duration::from_secs(5), || forwarders(&env) == 0));
}

/// Returns the host ports of alpha and beta.
fn two_stacks_side_by_side(env: &Env, backend: &str, a: &Path, b: &Path) -> (u16, u16) {
    // 1. Two stacks on 8080 at once, each in its own VM, each tunnelled to its own host port.
    let t = Instant::now();
    let ra = env.vmoat(a, &["up"]).ok();
    eprintln!("[{backend}] fresh up of alpha: {:?}", t.elapsed());
    assert!(
        ra.stderr.contains("imported-image") && ra.stderr.contains("healthy"),
        "{ra:?}"
    );
    env.vmoat(b, &["up"]).ok();
    let t = Instant::now();
    let (pa, pb) = (tunnel_port(env, a), tunnel_port(env, b));
    eprintln!(
        "[{backend}] tunnel (reuse check + discovery): {:?}",
        t.elapsed()
    );
    assert_ne!(pa, pb);
    assert_eq!(http_get(pa).as_deref(), Some("alpha's own checkout\n"));
    assert_eq!(http_get(pb).as_deref(), Some("beta's own checkout\n"));
    (pa, pb)
}

fn a_prune_leaves_the_other_serving(env: &Env, a: &Path, b: &Path, pb: u16) {
    // 3. A full prune in alpha leaves beta serving, with its image.
    env.vmoat(
        a,
        &[
            "ssh",
            "sh",
            "-c",
            "docker rm -f web >/dev/null && docker system prune -af --volumes >/dev/null",
        ],
    )
    .ok();
    assert_ne!(
        env.vmoat(a, &["ssh", "docker", "image", "inspect", "bb"])
            .code,
        0,
        "alpha's image is gone"
    );
    assert_eq!(
        env.vmoat(b, &["ssh", "docker", "image", "inspect", "bb"])
            .code,
        0,
        "beta's image is not"
    );
    assert_eq!(http_get(pb).as_deref(), Some("beta's own checkout\n"));
    assert_eq!(env.vmoat(b, &["test", "0"]).code, 0);
}

/// Returns the two worktrees it made.
fn health_gating(env: &Env, repo: &Path, backend: &str, fs: &Path) -> (PathBuf, PathBuf) {
    // 4. Health gating: healthy after a few seconds passes; never healthy fails on time.
    let slow = worktree(
        env,
        repo,
        "slow",
        backend,
        fs,
        "sleep 3; exec httpd -f -p 80 -h /www",
        60,
    );
    let r = env.vmoat(&slow, &["up"]).ok();
    assert!(
        r.stderr.contains("healthy: http://127.0.0.1:8080/"),
        "{r:?}"
    );
    let never = worktree(env, repo, "never", backend, fs, "exec sleep 600", 3);
    let r = env.vmoat(&never, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("http://127.0.0.1:8080/ did not become healthy within 3.0s"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("its last answer: curl: (")
            && r.stderr.contains("`git vmoat ssh docker logs web`")
            && !r.stderr.contains("compose"),
        "what the URL answered, and the stack's own container: {r:?}"
    );
    (slow, never)
}

fn down_then_up_resumes(env: &Env, b: &Path, pb: u16) {
    // 5. down then up resumes with the data kept.
    let before = forwarders(env);
    env.vmoat(b, &["down"]).ok();
    assert!(wait_until(Duration::from_secs(5), || forwarders(env) < before));
    let s: serde_json::Value =
        serde_json::from_str(&env.vmoat(b, &["status", "--json"]).ok().stdout).unwrap();
    assert_eq!(s["state"], "Stopped");
    let r = env.vmoat(b, &["up"]).ok();
    assert!(
        !r.stderr.contains("imported-image"),
        "the image survived down: {r:?}"
    );
    assert_eq!(tunnel_port(env, b), pb, "same host port after resume");
    assert_eq!(http_get(pb).as_deref(), Some("beta's own checkout\n"));
}

/// What a destroyed netns VM left behind (this state dir's only).
fn netns_leftovers(env: &Env, vm: &str) -> Vec<String> {
    let id = netns_id(env, vm);
    let mut l = traces(&format!("/run/git-vmoat/{id}/"));
    // This state dir's only: other tests' VMs of the same name may be running.
    l.extend(traces(&format!(
        "{}/",
        env.state_dir().join("netns").join(vm).display()
    )));
    if Path::new("/run/netns").join(&id).exists() {
        l.push(format!("namespace {vm}"));
    }
    if let Ok(m) = std::fs::read_to_string("/proc/self/mounts") {
        for line in m.lines().filter(|l| l.contains("cgroup")) {
            let dir = Path::new(line.split_whitespace().nth(1).unwrap())
                .join("git-vmoat")
                .join(&id);
            if dir.exists() {
                l.push(format!("cgroup {}", dir.display()));
            }
        }
    }
    let veth = format!("vmo{}", sha_prefix(&id));
    if std::process::Command::new("ip")
        .args(["link", "show", &veth])
        .output()
        .unwrap()
        .status
        .success()
    {
        l.push(format!("veth {veth}"));
    }
    if env.state_dir().join("netns").join(vm).exists() {
        l.push("data dir".into());
    }
    l
}

/// What a destroyed Colima VM left behind.
fn colima_leftovers(env: &Env, vm: &str) -> Vec<String> {
    let mut l = traces(&format!(
        "{}/",
        env.colima_state().join("disks").join(vm).display()
    ));
    if env.profile(vm).is_some() {
        l.push(format!("profile {vm}"));
    }
    if env.colima_state().join("disks").join(vm).exists() {
        l.push("data disk".into());
    }
    l
}

fn sha_prefix(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..8]
        .to_string()
}

/// The netns backend's limits: the worktree's dockerd and containers sit in its cgroup, and a
/// memory hog in one worktree is killed there while the others keep serving.
fn limits_hold(env: &Env, repo: &Path, fs: &Path, a: &Path, b: &Path, pb: u16) {
    let vm = vm_name(env, a);
    let pid = env
        .vmoat(
            a,
            &["ssh", "docker", "inspect", "-f", "{{.State.Pid}}", "web"],
        )
        .ok()
        .stdout
        .trim()
        .to_string();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.lines()
            .any(|l| l.contains(&format!("git-vmoat/{}/", netns_id(env, &vm)))),
        "the container is in the worktree's cgroup: {cg}"
    );
    let hog = worktree(env, repo, "hog", "netns", fs, SERVE, 60);
    env.write(&hog.join("vmoat.local.toml"), "[vm]\nmemory = 1\n");
    env.vmoat(&hog, &["up"]).ok();
    let r = env.vmoat(
        &hog,
        &[
            "ssh",
            "python3",
            "-c",
            "b = b'x' * (3 << 30); print('survived')",
        ],
    );
    assert_eq!(
        r.code, 137,
        "the hog is OOM-killed inside its own 1 GiB: {r:?}"
    );
    assert_eq!(
        http_get(pb).as_deref(),
        Some("beta's own checkout\n"),
        "beta is untouched"
    );
    assert_eq!(env.vmoat(b, &["test", "0"]).code, 0);
    assert_eq!(
        env.vmoat(&hog, &["test", "0"]).code,
        0,
        "the hog's own stack survived its OOM too"
    );
    env.vmoat(&hog, &["destroy", "-f"]).ok();
}

fn end_to_end_on_netns() {
    run("netns");
}

fn end_to_end_on_colima() {
    run("colima");
}

/// A new worktree's first `up` copies the image from its sibling's VM instead of building it.
fn warm_start(backend: &str) {
    let env = Env::new();
    let repo = env.repo("proj");
    let fs = rootfs(&env);
    let config = |warm: bool| {
        let up = format!(
            "docker image inspect app >/dev/null 2>&1 || {{ echo BUI\"\"LT-IMAGE; tar -C {} -c . | docker import - app >/dev/null; }}; \
             docker rm -f web >/dev/null 2>&1; docker run -d --name web --pull never -p 8080:80 -v \"$PWD/www:/www\" app httpd -f -p 80 -h /www >/dev/null",
            fs.display()
        );
        format!(
            "backend = {backend:?}\n[vm]\nmemory = 2\n[commands]\nup = {}\n[health]\nurl = \"http://127.0.0.1:8080/\"\ntimeout = 60\n[warm]\nenabled = {warm}\nimages = [\"app\"]\n",
            toml_str(&up)
        )
    };
    let make = |name: &str, warm: bool| {
        let wt = env.worktree(&repo, &env.home.join("src").join(name), name);
        env.write(&wt.join("www/index.html"), &format!("{name}\n"));
        env.write(&wt.join("vmoat.toml"), &config(warm));
        wt
    };
    let a = make("first", true);
    let r = env.vmoat(&a, &["up"]).ok();
    assert!(
        r.stderr.contains("BUILT-IMAGE") && r.stderr.contains("no sibling VM has app"),
        "{r:?}"
    );
    let b = make("second", true);
    let r = env.vmoat(&b, &["up"]).ok();
    assert!(
        !r.stderr.contains("BUILT-IMAGE"),
        "the image came from the sibling: {r:?}"
    );
    assert!(
        r.stderr.contains("warmed 1 image") && r.stderr.contains("from wt-first"),
        "{r:?}"
    );
    assert_eq!(
        env.vmoat(&b, &["ssh", "curl", "-sf", "http://127.0.0.1:8080/"])
            .ok()
            .stdout,
        "second\n"
    );
    let c = make("cold", false);
    let r = env.vmoat(&c, &["up"]).ok();
    assert!(
        r.stderr.contains("BUILT-IMAGE") && !r.stderr.contains("warmed"),
        "warm = false: {r:?}"
    );
    // A stopped sibling is started to copy from, and stopped again.
    for wt in [&a, &b, &c] {
        env.vmoat(wt, &["down"]).ok();
    }
    let d = make("fourth", true);
    let r = env.vmoat(&d, &["up"]).ok();
    assert!(
        !r.stderr.contains("BUILT-IMAGE") && r.stderr.contains("warmed 1 image"),
        "{r:?}"
    );
    assert!(r.stderr.contains("starting the stopped sibling"), "{r:?}");
    for wt in [&a, &b, &c] {
        let s: serde_json::Value =
            serde_json::from_str(&env.vmoat(wt, &["status", "--json"]).ok().stdout).unwrap();
        assert_eq!(s["state"], "Stopped", "the sibling is left as it was");
    }
    // By hand, naming the sibling; nothing left to copy is not an error.
    let r = env.vmoat(&d, &["warm", "--from", a.to_str().unwrap()]).ok();
    assert!(r.stderr.contains("already has every image"), "{r:?}");
    let r = env.vmoat(&d, &["warm", "--from", "nope"]);
    assert!(
        r.code == 1 && r.stderr.contains("no VM of this repository matches `nope`"),
        "{r:?}"
    );
}

fn warm_start_on_netns() {
    warm_start("netns");
}

fn warm_start_on_colima() {
    warm_start("colima");
}

/// The bar: `git worktree add` alone leaves an isolated, healthy, tunnelled stack behind.
fn worktree_add_alone_gives_a_healthy_tunnelled_stack() {
    let env = Env::new();
    let fs = rootfs(&env);
    let repo = env.home.join("src/proj");
    std::fs::create_dir_all(&repo).unwrap();
    env.git(&repo, &["init", "-q", "-b", "main"]);
    env.write(
        &repo.join("vmoat.toml"),
        &stack_config("netns", &fs, SERVE, 60),
    );
    env.write(&repo.join("www/index.html"), "served by the hook's job\n");
    env.git(&repo, &["add", "."]);
    env.git(&repo, &["commit", "-q", "-m", "init"]);
    env.vmoat(&repo, &["hooks", "install", "--up"]).ok();
    let wt = env.home.join("src/auto");
    env.git(
        &repo,
        &["worktree", "add", "-q", "-b", "auto", wt.to_str().unwrap()],
    );
    let done = wait_until(Duration::from_secs(90), || {
        serde_json::from_str::<serde_json::Value>(&env.vmoat(&wt, &["status", "--json"]).stdout)
            .is_ok_and(|j| j["job"]["state"] == "ok" || j["job"]["state"] == "failed")
    });
    let log = env.vmoat(&wt, &["logs"]).ok().stdout;
    assert!(done, "the job did not finish: {log}");
    let url = log
        .lines()
        .find(|l| l.starts_with("http://localhost:"))
        .unwrap_or_else(|| panic!("no URL in the job log: {log}"));
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(
        http_get(port).as_deref(),
        Some("served by the hook's job\n"),
        "{log}"
    );
    let s: serde_json::Value =
        serde_json::from_str(&env.vmoat(&wt, &["status", "--json"]).ok().stdout).unwrap();
    assert_eq!(
        (s["state"].as_str(), s["health"]["ok"].as_bool()),
        (Some("Running"), Some(true))
    );
    assert_eq!(s["tunnels"][0]["alive"], true);
}

crate::tests! {
    end_to_end_on_netns: StackNetns;
    end_to_end_on_colima: StackColima;
    warm_start_on_netns: StackNetns;
    warm_start_on_colima: StackColima;
    worktree_add_alone_gives_a_healthy_tunnelled_stack: StackNetns;
}
