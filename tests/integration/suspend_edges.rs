//! A suspended VM at the edges: `down` of a frozen netns VM stops its containers as on a running
//! one, a `down` interrupted by Ctrl-C is finished by the next, and waking a suspended Colima VM
//! (by a command or a tunnel connection) is admitted against the memory budget; the idle rule
//! sees file changes without walking the worktree every pass.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::Signal;

use crate::common::*;

/// A netns worktree whose only container is `sleep` as PID 1, which ignores SIGTERM: only the
/// kill after the stop timeout (`timeout` seconds) ends it.
fn stubborn(env: &Env, name: &str, timeout: u64) -> PathBuf {
    let fs = busybox_rootfs(env);
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src").join(name), name);
    let up = format!(
        "docker image inspect bb >/dev/null 2>&1 || tar -C {} -c . | docker import - bb >/dev/null; docker rm -f stubborn >/dev/null 2>&1; docker run -d --name stubborn bb sleep 600 >/dev/null",
        fs.display()
    );
    env.write(
        &wt.join("vmoat.toml"),
        &format!("backend = \"netns\"\n[vm]\nstop-timeout = {timeout}\n[commands]\nup = {up:?}\n"),
    );
    wt
}

fn down_of_a_suspended_vm_stops_its_containers_within_the_stop_timeout() {
    let env = Env::new();
    let wt = stubborn(&env, "frozen", 1);
    env.vmoat(&wt, &["up"]).ok();
    env.vmoat(&wt, &["suspend"]).ok();
    assert_eq!(vm_state(&env, &wt), "Suspended");
    let r = env.vmoat(&wt, &["down"]).ok();
    assert!(
        r.stderr.contains("stopping 1 container (up to 1s)…"),
        "thawed and stopped with vm.stop-timeout, as a running VM is: {r:?}"
    );
    assert_eq!(vm_state(&env, &wt), "Stopped");
    let id = netns_id(&env, &vm_name(&env, &wt));
    assert!(!Path::new("/run/netns").join(&id).exists());
}

/// A VM running a git-vmoat command (an agent's tests, a shell) is not suspended by hand
/// unless forced: that would stop the command midway.
fn suspend_refuses_a_vm_running_a_command_unless_forced() {
    let env = Env::new();
    let wt = stubborn(&env, "busy", 1);
    env.vmoat(&wt, &["up"]).ok();
    let shell = env
        .cmd(bin(), &wt)
        .args(["ssh", "sleep", "30"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = shell.id().to_string();
    env.children.borrow_mut().push(shell);
    let busy = env
        .state_dir()
        .join("vms")
        .join(vm_name(&env, &wt))
        .join("busy");
    assert!(wait_until(Duration::from_secs(30), || busy
        .join(&pid)
        .exists()));
    let r = env.vmoat(&wt, &["suspend"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("suspending would stop it midway; nothing was changed")
            && r.stderr.contains("--force"),
        "{r:?}"
    );
    assert_eq!(vm_state(&env, &wt), "Running");
    let r = env.vmoat(&wt, &["suspend", "--force"]).ok();
    assert!(
        r.stderr.contains("it waits until the VM is resumed"),
        "{r:?}"
    );
    assert_eq!(vm_state(&env, &wt), "Suspended");
    env.vmoat(&wt, &["resume"]).ok();
    assert_eq!(vm_state(&env, &wt), "Running");
}

/// Ctrl-C (`sig` INT) reaches every process of the terminal's foreground group: `down` and its
/// children; KILL is sent to them all the same. The path of their stderr's log comes back.
fn interrupt_when(env: &Env, wt: &Path, args: &[&str], line: &str, sig: Signal) -> PathBuf {
    let log = env
        .tmp
        .path()
        .join(format!("interrupted-{}.log", free_port()));
    let mut child = env
        .cmd(bin(), wt)
        .args(args)
        .stderr(std::fs::File::create(&log).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(60), || text().contains(line)),
        "{}",
        text()
    );
    let _ = rustix::process::kill_process_group(rustix::process::Pid::from_child(&child), sig);
    child.wait().unwrap();
    log
}

fn an_interrupted_down_of_a_suspended_vm_is_finished_by_the_next_down() {
    let env = Env::new();
    let wt = stubborn(&env, "cut", 1);
    env.vmoat(&wt, &["up"]).ok();
    let id = netns_id(&env, &vm_name(&env, &wt));
    env.vmoat(&wt, &["suspend"]).ok();
    // Interrupted once its daemon was told to stop, the daemon goes on stopping by itself and
    // leaves the VM `Stopped` with its namespace; interrupted just before, the VM runs on.
    let log = interrupt_when(&env, &wt, &["down"], "stopping VM", Signal::INT);
    wait_until(Duration::from_secs(30), || vm_state(&env, &wt) == "Stopped");
    let r = env.vmoat(&wt, &["down"]).ok();
    assert!(
        !Path::new("/run/netns").join(&id).exists(),
        "the next down leaves no namespace behind: {}\n{r:?}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(!Path::new("/run/git-vmoat").join(&id).exists(), "{r:?}");
    assert_eq!(vm_state(&env, &wt), "Stopped");
    // And it starts again as usual.
    env.vmoat(&wt, &["up"]).ok();
    assert_eq!(vm_state(&env, &wt), "Running");
}

/// The pids of the guards that finish the stop of an interrupted `down` in this test's state dir.
fn stop_guards(env: &Env) -> Vec<i32> {
    let state = env.state_dir().to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv = String::from_utf8_lossy(&argv);
            argv.contains("__stop-guard") && argv.contains(&state)
        })
        .collect()
}

/// Kills (-9) the one stop guard of this test's `down`, as a crash of its session would.
fn kill_the_stop_guard(env: &Env) {
    let guards = stop_guards(env);
    assert_eq!(guards.len(), 1, "{guards:?}");
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(guards[0]).unwrap(),
        Signal::KILL,
    );
}

/// Killed (-9) with the `docker stop` it ran, while a container that ignores SIGTERM held it
/// after the thaw, a `down` of a suspended VM is finished by its guard: the VM is not left
/// running, and the guard says so on the `down`'s stderr.
fn a_killed_down_of_a_suspended_vm_is_finished_by_its_guard() {
    let env = Env::new();
    let wt = stubborn(&env, "killed", 20);
    env.vmoat(&wt, &["up"]).ok();
    let vm = vm_name(&env, &wt);
    let id = netns_id(&env, &vm);
    env.vmoat(&wt, &["suspend"]).ok();
    let log = interrupt_when(
        &env,
        &wt,
        &["down"],
        "stopping 1 container (up to 20s)…",
        Signal::KILL,
    );
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(120), || !Path::new("/run/netns")
            .join(&id)
            .exists()),
        "the thawed VM was left running: {}",
        text()
    );
    assert!(
        wait_until(Duration::from_secs(30), || text()
            .contains(&format!("stopped {vm}"))),
        "{}",
        text()
    );
    assert!(
        text().contains(&format!("a `down` of VM {vm} begun")),
        "{}",
        text()
    );
    assert!(stop_guards(&env).is_empty(), "the guard is done");
    let record = env.state_dir().join("vms").join(&vm).join("stopping.json");
    assert!(!record.exists());
    assert_eq!(vm_state(&env, &wt), "Stopped");
    // An uninterrupted `down` leaves no guard behind.
    env.vmoat(&wt, &["up"]).ok();
    env.vmoat(&wt, &["suspend"]).ok();
    env.vmoat(&wt, &["down"]).ok();
    assert!(stop_guards(&env).is_empty() && !record.exists());
    assert_eq!(vm_state(&env, &wt), "Stopped");
}

/// A `down` killed with its guard leaves its record: the watcher finishes the stop.
fn a_down_killed_with_its_guard_is_finished_by_the_watcher() {
    let env = Env::new();
    let wt = stubborn(&env, "orphan", 8);
    env.vmoat(&wt, &["up"]).ok();
    let vm = vm_name(&env, &wt);
    let id = netns_id(&env, &vm);
    env.vmoat(&wt, &["suspend"]).ok();
    interrupt_when(
        &env,
        &wt,
        &["down"],
        "stopping 1 container (up to 8s)…",
        Signal::KILL,
    );
    kill_the_stop_guard(&env);
    let record = env.state_dir().join("vms").join(&vm).join("stopping.json");
    assert!(record.exists(), "the stop is still to finish");
    let w = Watcher::start(&env, &wt, &["--interval", "1"]);
    assert!(
        wait_until(Duration::from_secs(60), || !Path::new("/run/netns")
            .join(&id)
            .exists()),
        "the thawed VM was left running: {}",
        w.log()
    );
    assert!(
        wait_until(Duration::from_secs(30), || !record.exists()),
        "{}",
        w.log()
    );
    assert!(
        w.log().contains(&format!("a `down` of VM {vm} begun")),
        "{}",
        w.log()
    );
    assert_eq!(vm_state(&env, &wt), "Stopped");
}

fn up_or_resume_after_a_down_killed_with_its_guard_keeps_the_vm_running() {
    let env = Env::new();
    let wt = stubborn(&env, "again", 8);
    env.vmoat(&wt, &["up"]).ok();
    let vm = vm_name(&env, &wt);
    let record = env.state_dir().join("vms").join(&vm).join("stopping.json");
    for cmd in ["up", "resume"] {
        env.vmoat(&wt, &["suspend"]).ok();
        interrupt_when(
            &env,
            &wt,
            &["down"],
            "stopping 1 container (up to 8s)…",
            Signal::KILL,
        );
        kill_the_stop_guard(&env);
        assert!(
            record.exists(),
            "the stop is still to finish: this test shows nothing"
        );
        let r = env.vmoat(&wt, &[cmd]).ok();
        assert!(!record.exists(), "{cmd} left the dead down's record: {r:?}");
        // The next command must not finish that down on the VM the user just asked to run.
        assert_eq!(vm_state(&env, &wt), "Running", "after {cmd}");
        assert_eq!(vm_state(&env, &wt), "Running", "a second look, after {cmd}");
    }
}

/// The watcher's idle rule: files changing in the worktree keep an otherwise idle VM awake, yet
/// the worktree is walked for them only once the cheap signs say it is idle (not every pass).
fn file_changes_keep_a_vm_awake_and_the_worktree_is_walked_only_when_idle_otherwise() {
    let env = Env::new();
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src").join("edit"), "edit");
    env.write(
        &wt.join("vmoat.toml"),
        "backend = \"netns\"\n[vm]\nsuspend-after = \"4s\"\n[commands]\nup = \"true\"\n",
    );
    env.vmoat(&wt, &["up"]).ok();
    let vm = vm_name(&env, &wt);
    let w = Watcher::start(&env, &wt, &["--interval", "1"]);
    let mark = w.mark();
    // Someone edits a file every half second, twice as long as the idle time and then some.
    let file = wt.join("notes.txt");
    let since = |m: usize| w.log().get(m..).unwrap_or_default().to_string();
    for i in 0..20 {
        std::fs::write(&file, format!("{i}\n")).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    let edited = since(mark);
    assert!(!edited.contains(&format!("suspended {vm}")), "{edited}");
    let passes = edited.matches(" done").count();
    let walks = edited.matches("looking for file changes").count();
    assert!(
        walks >= 1 && walks < passes,
        "walked {walks} times in {passes} passes: {edited}"
    );
    // Once the edits stop, it is suspended.
    assert!(
        wait_until(Duration::from_secs(30), || since(mark)
            .contains(&format!("suspended {vm} (idle for"))),
        "{}",
        w.log()
    );
    assert_eq!(vm_state(&env, &wt), "Suspended");
}

/// A Colima worktree whose stack is busybox httpd on the VM's port 8080, in a 2 GiB VM under
/// a 3 GiB budget: two such VMs do not fit together.
fn colima_stack(env: &Env, repo: &Path, name: &str) -> PathBuf {
    let wt = env.worktree(repo, &env.home.join("src").join(name), name);
    env.write(&wt.join("www/index.html"), "page\n");
    let up = httpd_up(env);
    env.write(
        &wt.join("vmoat.toml"),
        &format!("backend = \"colima\"\n[vm]\nmemory = 2\nbudget = 3\n[commands]\nup = {up:?}\n[health]\nurl = \"http://127.0.0.1:8080/\"\ntimeout = 60\n"),
    );
    wt
}

fn tunnel_port(env: &Env, wt: &Path) -> u16 {
    let r = env.vmoat(wt, &["tunnel", "8080"]).ok();
    r.stdout
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("{r:?}"))
}

/// The body of `GET /`, patient: the connection may start the VM first.
fn page(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// A Colima suspend interrupted before the VM stopped (its record written, the VM still
/// running) is no suspension: the next command sees the VM running, and it counts as such.
fn an_interrupted_colima_suspend_leaves_the_vm_running_and_counted() {
    let env = Env::new();
    let repo = env.repo("proj");
    let a = colima_stack(&env, &repo, "a");
    env.vmoat(&a, &["up"]).ok();
    let va = vm_name(&env, &a);
    let record = env.state_dir().join("vms").join(&va).join("suspended.json");
    env.write(
        &record,
        r#"{"since": 1, "reason": "suspend", "containers": []}"#,
    );
    assert_eq!(vm_state(&env, &a), "Running");
    assert!(!record.exists(), "the stale record was dropped");
    // Running, it holds its memory: a second 2 GiB VM does not fit a 3 GiB budget.
    let b = colima_stack(&env, &repo, "b");
    let r = env.vmoat(&b, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    env.vmoat(&a, &["suspend"]).ok();
    assert_eq!(vm_state(&env, &a), "Suspended");
}

/// A stopped Colima VM holds nothing on the host: a second `down` asks Colima for no stop (a
/// stopped netns VM's leftovers are cleared by it: see the interrupted `down` above).
fn down_of_a_stopped_colima_vm_stops_nothing() {
    let env = Env::new();
    let repo = env.repo("proj");
    let a = colima_stack(&env, &repo, "a");
    env.vmoat(&a, &["up"]).ok();
    env.vmoat(&a, &["down"]).ok();
    env.clear_calls();
    let r = env.vmoat(&a, &["down"]).ok();
    assert!(r.stderr.contains("is already stopped"), "{r:?}");
    assert!(
        !env.call_lines().iter().any(|l| l.starts_with("stop")),
        "{:?}",
        env.call_lines()
    );
}

fn waking_a_colima_vm_over_the_budget_is_refused_for_commands_and_warned_for_tunnels() {
    let env = Env::new();
    let repo = env.repo("proj");
    let a = colima_stack(&env, &repo, "a");
    let b = colima_stack(&env, &repo, "b");
    env.vmoat(&a, &["up"]).ok();
    let (va, vb) = (vm_name(&env, &a), vm_name(&env, &b));
    let port = tunnel_port(&env, &a);
    env.vmoat(&a, &["suspend"]).ok();
    // A suspended Colima VM holds no memory: b fits.
    env.vmoat(&b, &["up"]).ok();

    // A command that needs a refuses to start it over the budget, as `up` would.
    env.clear_calls();
    let r = env.vmoat(&a, &["ssh", "true"]);
    assert_eq!(r.code, 1, "{r:?}");
    for want in [
        format!("resuming {va} would exceed the memory budget"),
        vb.clone(),
        "git vmoat resume --force".into(),
    ] {
        assert!(r.stderr.contains(&want), "{want}: {r:?}");
    }
    assert_eq!(
        vm_state(&env, &a),
        "Suspended",
        "a refused wake starts nothing"
    );
    assert!(
        !env.call_lines().iter().any(|l| l.contains(" start ")),
        "{:?}",
        env.call_lines()
    );

    // A tunnel connection is never refused: it is served, with a warning in the tunnel's log.
    assert_eq!(page(port).as_deref(), Some("page\n"));
    assert_eq!(vm_state(&env, &a), "Running");
    let log = std::fs::read_to_string(
        env.state_dir()
            .join("vms")
            .join(&va)
            .join("tunnel-8080.log"),
    )
    .unwrap_or_default();
    assert!(log.contains("over the memory budget"), "{log}");

    // --force wakes it anyway, saying so.
    env.vmoat(&a, &["suspend"]).ok();
    let r = env.vmoat(&a, &["resume", "--force"]).ok();
    assert!(r.stderr.contains("as --force asks"), "{r:?}");
    assert_eq!(vm_state(&env, &a), "Running");

    // With vm.evict on (in the user's own file), the idle b is suspended to make room.
    env.vmoat(&a, &["suspend"]).ok();
    env.write(&a.join("vmoat.local.toml"), "[vm]\nevict = true\n");
    let r = env.vmoat(&a, &["ssh", "true"]).ok();
    assert!(r.stderr.contains(&format!("suspending {vb}")), "{r:?}");
    assert_eq!(vm_state(&env, &b), "Suspended");
    assert_eq!(vm_state(&env, &a), "Running");
}

crate::tests! {
    an_interrupted_colima_suspend_leaves_the_vm_running_and_counted: StackColima;
    suspend_refuses_a_vm_running_a_command_unless_forced: StackNetns;
    down_of_a_suspended_vm_stops_its_containers_within_the_stop_timeout: StackNetns;
    an_interrupted_down_of_a_suspended_vm_is_finished_by_the_next_down: StackNetns;
    a_killed_down_of_a_suspended_vm_is_finished_by_its_guard: StackNetns;
    a_down_killed_with_its_guard_is_finished_by_the_watcher: StackNetns;
    up_or_resume_after_a_down_killed_with_its_guard_keeps_the_vm_running: StackNetns;
    file_changes_keep_a_vm_awake_and_the_worktree_is_walked_only_when_idle_otherwise: Netns;
    waking_a_colima_vm_over_the_budget_is_refused_for_commands_and_warned_for_tunnels: StackColima;
    down_of_a_stopped_colima_vm_stops_nothing: StackColima;
}
