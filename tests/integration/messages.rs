//! Messages that must not mislead: the health wait's live line and what the URL answered, the
//! container stop in `down`, the background job's log, tunnels to nothing, netns wording.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

/// A netns worktree `feat` with `config` as its vmoat.toml.
fn netns_worktree(env: &Env, config: &str) -> PathBuf {
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    env.write(
        &wt.join("vmoat.toml"),
        &format!("backend = \"netns\"\n{config}"),
    );
    wt
}

fn dead_port() -> u16 {
    free_port()
}

fn the_health_wait_is_a_live_line_on_a_terminal() {
    let env = Env::new();
    let port = dead_port();
    let wt = netns_worktree(
        &env,
        &format!(
            "[commands]\nup = \"true\"\n[health]\nurl = \"http://127.0.0.1:{port}/\"\ntimeout = 4\n"
        ),
    );
    let r =
        super::ux::on_tty(&env, &wt, "up", "", &[("TERM", "xterm")]).expect("util-linux `script`");
    assert_eq!(r.code, 1, "{r:?}");
    // `script` puts the terminal's output on stdout: the line rewrites itself in place.
    let rewrites = r.stdout.matches("\r\u{1b}[K").count();
    assert!(rewrites >= 3, "a live line, updated as time passes: {r:?}");
    assert!(
        r.stdout
            .contains(&format!("waiting for http://127.0.0.1:{port}/: "))
            && r.stdout.contains("of 4.0s, last answer: curl: (7)"),
        "elapsed time and the last answer: {r:?}"
    );
    assert!(
        !r.stdout.contains("still waiting"),
        "no new lines on a terminal: {r:?}"
    );
}

fn the_health_timeout_says_what_the_url_answered_and_names_fitting_commands() {
    let env = Env::new();
    let port = free_port();
    let wt = netns_worktree(&env, "");
    // A server that answers, but 404 at the health URL.
    env.write(
        &wt.join("vmoat.local.toml"),
        &format!(
            "[commands]\nup = \"(exec python3 -m http.server {port} --bind 127.0.0.1 --directory {dir}) </dev/null >/dev/null 2>&1 &\"\n[health]\nurl = \"http://127.0.0.1:{port}/missing\"\ntimeout = 3\n",
            dir = wt.display()
        ),
    );
    let r = env.vmoat(&wt, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "http://127.0.0.1:{port}/missing did not become healthy within 3.0s (polled inside VM wt-feat); its last answer: HTTP 404"
        )),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("no container exists in VM wt-feat") && !r.stderr.contains("compose"),
        "no compose commands for a stack without compose: {r:?}"
    );
    assert_eq!(r.stderr.matches("error:").count(), 1, "{r:?}");

    // Nothing listening: the connection error; a compose project gets compose commands.
    let dead = dead_port();
    env.write(&wt.join("compose.yaml"), "services: {}\n");
    env.write(
        &wt.join("vmoat.local.toml"),
        &format!(
            "[commands]\nup = \"true\"\n[health]\nurl = \"http://127.0.0.1:{dead}/\"\ntimeout = 2\n"
        ),
    );
    let r = env.vmoat(&wt, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("its last answer: curl: (7)"),
        "the connection error: {r:?}"
    );
    assert!(
        r.stderr.contains("`git vmoat ssh docker compose logs`"),
        "{r:?}"
    );
}

fn down_shows_the_container_stop_and_keeps_it_short() {
    let env = Env::new();
    let wt = netns_worktree(&env, "[vm]\nstop-timeout = 1\n");
    let fs = busybox_rootfs(&env);
    // `sleep` as a container's PID 1 ignores SIGTERM: only the kill after the timeout ends it.
    let up = format!(
        "tar -C {} -c . | docker import - bb >/dev/null && docker run -d --name stubborn bb sleep 600 >/dev/null",
        fs.display()
    );
    env.write(
        &wt.join("vmoat.local.toml"),
        &format!("[commands]\nup = {up:?}\n"),
    );
    env.vmoat(&wt, &["up"]).ok();
    let t = Instant::now();
    let r = env.vmoat(&wt, &["down"]).ok();
    let took = t.elapsed();
    assert!(
        r.stderr.contains("stopping 1 container (up to 1s)…"),
        "the step is shown: {r:?}"
    );
    assert!(
        took < Duration::from_secs(7),
        "vm.stop-timeout = 1 bounds the wait (docker's own default is 10 s): {took:?} {r:?}"
    );
    let cfg = env.vmoat(&wt, &["config"]).ok();
    assert!(cfg.stdout.contains("vm.stop-timeout"), "{cfg:?}");
}

fn the_jobs_log_reports_an_error_once_and_no_next_step() {
    let env = Env::new();
    let repo = env.home.join("src/proj");
    std::fs::create_dir_all(&repo).unwrap();
    env.git(&repo, &["init", "-q", "-b", "main"]);
    let dead = dead_port();
    env.write(
        &repo.join("vmoat.toml"),
        &format!("backend = \"netns\"\n[commands]\nup = \"true\"\n[health]\nurl = \"http://127.0.0.1:{dead}/\"\ntimeout = 1\n"),
    );
    env.git(&repo, &["add", "."]);
    env.git(&repo, &["commit", "-q", "-m", "init"]);
    env.vmoat(&repo, &["hooks", "install", "--up"]).ok();
    let job_end = |wt: &Path| {
        let mut state = None;
        wait_until(Duration::from_secs(60), || {
            state = serde_json::from_str::<serde_json::Value>(
                &env.vmoat(wt, &["status", "--json"]).stdout,
            )
            .ok()
            .and_then(|j| j["job"]["state"].as_str().map(String::from));
            matches!(state.as_deref(), Some("ok" | "failed" | "needs-approval"))
        });
        (state, env.vmoat(wt, &["logs"]).ok().stdout)
    };
    let bad = env.home.join("src/bad");
    env.git(
        &repo,
        &["worktree", "add", "-q", "-b", "bad", bad.to_str().unwrap()],
    );
    let (state, log) = job_end(&bad);
    assert_eq!(state.as_deref(), Some("failed"), "{log}");
    assert_eq!(log.matches("error:").count(), 1, "{log}");
    assert_eq!(log.matches("hint:").count(), 1, "{log}");

    // Healthy: the job opens what it can itself, so its log suggests no `tunnel`.
    env.write(
        &repo.join("vmoat.toml"),
        "backend = \"netns\"\n[commands]\nup = \"true\"\n",
    );
    env.git(&repo, &["commit", "-q", "-am", "no health"]);
    let good = env.home.join("src/good");
    env.git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "good",
            good.to_str().unwrap(),
        ],
    );
    let (state, log) = job_end(&good);
    assert_eq!(state.as_deref(), Some("ok"), "{log}");
    assert!(log.contains("is up") && !log.contains("next:"), "{log}");
}

fn a_tunnel_to_a_port_nothing_listens_on_says_so() {
    let env = Env::new();
    let wt = netns_worktree(&env, "[commands]\nup = \"true\"\n");
    env.vmoat(&wt, &["up"]).ok();
    let guest = free_port();
    let r = env.vmoat(&wt, &["tunnel", &guest.to_string()]).ok();
    assert_eq!(
        r.stdout.trim(),
        format!("http://localhost:{guest}"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains(&format!("nothing listens on port {guest} in wt-feat yet")),
        "{r:?}"
    );
    let s = env.vmoat(&wt, &["status"]).ok();
    assert!(
        s.stdout.contains(&format!(
            "http://localhost:{guest} -> {guest}  nothing listening yet"
        )),
        "{s:?}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&env.vmoat(&wt, &["status", "--json"]).ok().stdout).unwrap();
    assert_eq!(j["tunnels"][0]["listening"], false, "{j}");
    let j: serde_json::Value = serde_json::from_str(
        &env.vmoat(&wt, &["tunnel", &guest.to_string(), "--json"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(j["tunnels"][0]["listening"], false, "{j}");

    // Once a server starts there, the same tunnel works and nothing is marked.
    env.write(&wt.join("www/index.html"), "late\n");
    serve_in_vm(&env, &wt, &wt.join("www"), guest);
    assert_eq!(http_get(guest).as_deref(), Some("late\n"));
    let s = env.vmoat(&wt, &["status"]).ok();
    assert!(!s.stdout.contains("nothing listening"), "{s:?}");
    let j: serde_json::Value =
        serde_json::from_str(&env.vmoat(&wt, &["status", "--json"]).ok().stdout).unwrap();
    assert_eq!(j["tunnels"][0]["listening"], true, "{j}");
}

fn a_netns_vm_has_its_own_hostname_and_no_disk_in_messages() {
    let env = Env::new();
    let wt = netns_worktree(&env, "[commands]\nup = \"true\"\n");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let r = env.vmoat(&wt, &["up"]).ok();
    assert!(
        r.stderr
            .contains("creating netns VM wt-feat (cap 4 CPU, 8 GiB RAM)…")
            && !r.stderr.contains("disk"),
        "{r:?}"
    );
    let r = env
        .vmoat(&wt, &["ssh", "cat", "/proc/sys/kernel/hostname"])
        .ok();
    assert_eq!(r.stdout.trim(), "wt-feat", "{r:?}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host,
        "the host keeps its name"
    );
}

crate::tests! {
    the_health_wait_is_a_live_line_on_a_terminal: StackNetns, Script;
    the_health_timeout_says_what_the_url_answered_and_names_fitting_commands: StackNetns;
    down_shows_the_container_stop_and_keeps_it_short: StackNetns;
    the_jobs_log_reports_an_error_once_and_no_next_step: StackNetns;
    a_tunnel_to_a_port_nothing_listens_on_says_so: StackNetns;
    a_netns_vm_has_its_own_hostname_and_no_disk_in_messages: StackNetns;
}
