//! Volumes copied from a sibling worktree's VM (`warm.volumes`, `data clone`) and snapshots, on
//! the netns backend: a real PostgreSQL copied while a client writes to it, siblings that lack
//! the volume or are stopped or suspended, a copy killed halfway, a disk too small for it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::*;

/// A PostgreSQL server image's root filesystem (tests/support/postgres-rootfs), built once and
/// kept in the temp dir for later runs, under a name that changes with the script.
fn postgres_tar() -> PathBuf {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        use sha2::Digest;
        let script = support_dir().join("postgres-rootfs");
        let h = sha2::Sha256::digest(std::fs::read(&script).unwrap());
        let hex: String = h.iter().take(6).map(|b| format!("{b:02x}")).collect();
        let tar = std::env::temp_dir().join(format!("vmoat-pg-{hex}.tar"));
        if !tar.exists() {
            // Built aside and renamed: a concurrent run never sees half an archive.
            let part = tar.with_extension(format!("part-{}", std::process::id()));
            let ok = std::process::Command::new(&script)
                .arg(&part)
                .status()
                .unwrap()
                .success();
            assert!(ok, "building the PostgreSQL image");
            std::fs::rename(&part, &tar).unwrap();
        }
        tar
    })
    .clone()
}

fn vmoat_toml(up: &str, volumes: &str) -> String {
    format!(
        "backend = \"netns\"\n[commands]\nup = {}\n[warm]\nvolumes = {volumes}\n",
        toml_str(up)
    )
}

/// `bb_worktree` on the Colima backend (the stand-in).
fn on_colima(wt: PathBuf) -> PathBuf {
    let toml = wt.join("vmoat.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text.replace("\"netns\"", "\"colima\"")).unwrap();
    wt
}

fn toml_str(s: &str) -> String {
    format!("{s:?}")
}

/// A worktree whose stack is PostgreSQL with its data in volume `pgdata`.
fn pg_worktree(env: &Env, repo: &Path, name: &str) -> PathBuf {
    let up = format!(
        "docker image inspect pg >/dev/null 2>&1 || docker import -c 'USER postgres' -c 'CMD [\"/pg\"]' {} pg >/dev/null; \
         docker rm -f db >/dev/null 2>&1; docker run -d --name db -p 5432:5432 -v pgdata:/data pg >/dev/null; {}",
        postgres_tar().display(),
        WAIT_PG
    );
    let wt = env.worktree(repo, &env.home.join("src").join(name), name);
    env.write(&wt.join("vmoat.toml"), &vmoat_toml(&up, "[\"pgdata\"]"));
    wt
}

const WAIT_PG: &str = "for i in $(seq 120); do psql -h 127.0.0.1 -U postgres -c 'select 1' >/dev/null 2>&1 && exit 0; sleep 0.5; done; docker logs db; exit 1";

fn sql(env: &Env, wt: &Path, q: &str) -> String {
    let r = env.vmoat(
        wt,
        &[
            "ssh",
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-tAc",
            q,
        ],
    );
    assert_eq!(r.code, 0, "{q}: {r:?}");
    r.stdout.trim().to_string()
}

fn last(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A worktree B made while A's database takes inserts gets every row A committed before the
/// copy, its server recovers cleanly; the two databases are apart from then on; A goes on.
/// Then: a re-copy by stream, a snapshot restored after a destructive change, `ls`, `destroy`.
fn a_new_worktree_gets_a_consistent_copy_of_its_siblings_database() {
    let env = Env::new();
    let repo = env.repo("proj");
    let a = pg_worktree(&env, &repo, "first");
    env.vmoat(&a, &["up"]).ok();
    sql(&env, &a, "create table t (id int primary key)");
    let file = env.tmp.path().join("last");
    let loop_sql = format!(
        "i=0; while :; do i=$((i+1)); psql -h 127.0.0.1 -U postgres -qc \"insert into t values ($i)\" >/dev/null 2>&1 && echo $i > {}; done",
        file.display()
    );
    let writer = env
        .cmd(bin(), &a)
        .args(["ssh", "sh", "-c", &loop_sql])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    env.children.borrow_mut().push(writer);
    assert!(wait_until(Duration::from_secs(30), || last(&file) >= 30));
    let before = last(&file);

    let b = pg_worktree(&env, &repo, "second");
    let r = env.vmoat(&b, &["up"]).ok();
    assert!(
        r.stderr.contains("copied 1 volume") && r.stderr.contains("from wt-first"),
        "{r:?}"
    );
    assert!(r.stderr.contains("its container paused"), "{r:?}");
    let after = last(&file);
    let logs = env.vmoat(&b, &["ssh", "docker", "logs", "db"]);
    let logs = format!("{}{}", logs.stdout, logs.stderr);
    assert!(
        !logs.contains("PANIC") && logs.contains("ready to accept connections"),
        "{logs}"
    );
    let q = format!("select count(*) from t where id <= {before}");
    assert_eq!(
        sql(&env, &b, &q),
        sql(&env, &a, &q),
        "rows committed before the copy"
    );
    assert_ne!(sql(&env, &b, &q), "0");
    sql(&env, &b, "insert into t values (-1)");
    assert_eq!(sql(&env, &a, "select count(*) from t where id = -1"), "0");
    env.vmoat(&b, &["up"]).ok();
    assert_eq!(
        sql(&env, &b, "select count(*) from t where id = -1"),
        "1",
        "a volume the VM has is never overwritten by up"
    );
    assert!(
        wait_until(Duration::from_secs(30), || last(&file) > after + 5),
        "A's inserts go on after the copy"
    );

    recopy_snapshot_list_destroy(&env, &b);
}

/// B copied again by stream, over its own data; a snapshot restored after a destructive
/// change; `data ls`; `destroy` says what goes.
fn recopy_snapshot_list_destroy(env: &Env, b: &Path) {
    // Again by stream, over B's own (its -1 row goes), the database restarted for it.
    let r = env
        .vmoat(b, &["data", "clone", "--via", "stream", "--yes"])
        .ok();
    assert!(r.stderr.contains("(stream)"), "{r:?}");
    env.vmoat(b, &["ssh", "sh", "-c", WAIT_PG]).ok();
    assert_eq!(sql(env, b, "select count(*) from t where id = -1"), "0");

    let rows = sql(env, b, "select count(*) from t");
    env.vmoat(b, &["data", "snapshot", "before-drop"]).ok();
    sql(env, b, "drop table t");
    env.vmoat(b, &["data", "restore", "before-drop"]).ok();
    env.vmoat(b, &["ssh", "sh", "-c", WAIT_PG]).ok();
    assert_eq!(sql(env, b, "select count(*) from t"), rows);

    let ls: serde_json::Value =
        serde_json::from_str(&env.vmoat(b, &["data", "ls", "--json"]).ok().stdout).unwrap();
    assert_eq!(ls["volumes"][0]["name"], "pgdata", "{ls}");
    assert_eq!(
        ls["volumes"][0]["from"]["from"], "snapshot before-drop",
        "{ls}"
    );
    assert_eq!(ls["snapshots"][0]["name"], "before-drop", "{ls}");
    let all: serde_json::Value =
        serde_json::from_str(&env.vmoat(b, &["data", "ls", "--all", "--json"]).ok().stdout)
            .unwrap();
    let vms: Vec<&str> = all["vms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["volumes"][0]["name"] == "pgdata")
        .filter_map(|v| v["vm"].as_str())
        .collect();
    assert_eq!(vms, ["wt-first", "wt-second"], "{all}");
    let table = env.vmoat(b, &["data", "ls"]).ok().stdout;
    assert!(
        table
            .lines()
            .any(|l| l.contains("snapshot before-drop") && l.contains("copy of pgdata")),
        "{table}"
    );
    let r = env.vmoat(b, &["destroy", "-f"]).ok();
    assert!(
        r.stderr.contains("2 volumes (") && r.stderr.contains("go with VM"),
        "{r:?}"
    );
}

/// A busybox stack whose container writes its worktree's name into volume `appdata` once;
/// with `big`, also that many MiB into volume `big`.
pub(super) fn bb_worktree(
    env: &Env,
    repo: &Path,
    name: &str,
    volumes: &str,
    big: Option<u32>,
) -> PathBuf {
    let fs = env.tmp.path().join("rootfs");
    if !fs.exists() {
        busybox_rootfs(env);
    }
    let (mount, fill) = match big {
        Some(mib) => (
            "-v big:/big -v sparse:/sparse",
            // `sparse` holds a file of that size with no blocks: it takes no room until a
            // stream (a tar) writes it out whole.
            format!(
                "[ -f /big/blob ] || busybox dd if=/dev/zero of=/big/blob bs=1M count={mib} 2>/dev/null; \
                 [ -f /sparse/blob ] || busybox dd if=/dev/zero of=/sparse/blob bs=1M seek={mib} count=0 2>/dev/null;"
            ),
        ),
        None => ("", String::new()),
    };
    let up = format!(
        "docker image inspect bb >/dev/null 2>&1 || tar -C {} -c . | docker import - bb >/dev/null; \
         docker rm -f app >/dev/null 2>&1; docker run -d --name app -v appdata:/d {mount} bb sh -c '[ -f /d/origin ] || echo {name} > /d/origin; {fill} exec sleep 1d' >/dev/null",
        fs.display()
    );
    let wt = env.worktree(repo, &env.home.join("src").join(name), name);
    env.write(&wt.join("vmoat.toml"), &vmoat_toml(&up, volumes));
    wt
}

fn origin(env: &Env, wt: &Path) -> String {
    env.vmoat(wt, &["ssh", "docker", "exec", "app", "cat", "/d/origin"])
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// A volume the sibling lacks is said and starts empty; a suspended sibling is woken to copy
/// from, a stopped one started and stopped again.
fn siblings_that_lack_the_volume_or_sleep_still_give_theirs() {
    let env = Env::new();
    let repo = env.repo("proj");
    let want = "[\"appdata\", \"nope\"]";
    let a = bb_worktree(&env, &repo, "first", want, None);
    env.vmoat(&a, &["up"]).ok();
    let b = bb_worktree(&env, &repo, "second", want, None);
    let r = env.vmoat(&b, &["up"]).ok();
    assert!(r.stderr.contains("has no volume nope"), "{r:?}");
    assert_eq!(
        origin(&env, &b),
        "first",
        "the copy came with the sibling's file"
    );
    // Asked for by name, a volume no sibling has is an error that changes nothing.
    let r = env.vmoat(&b, &["data", "clone", "--yes", "nope"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("no sibling worktree's VM has nope; nothing was copied"),
        "{r:?}"
    );
    assert_eq!(origin(&env, &b), "first");
    // Named twice: copied once.
    env.vmoat(&b, &["data", "clone", "--yes", "appdata", "appdata"])
        .ok();
    assert_eq!(origin(&env, &b), "first");
    // A swap that died between its two renames (files aside as `_data.old`): the next copy
    // puts them back first instead of failing on the missing `_data`.
    let mount = env
        .vmoat(
            &b,
            &[
                "ssh",
                "docker",
                "volume",
                "inspect",
                "-f",
                "{{.Mountpoint}}",
                "appdata",
            ],
        )
        .ok()
        .stdout
        .trim()
        .to_string();
    std::fs::rename(&mount, format!("{mount}.old")).unwrap();
    env.vmoat(&b, &["data", "clone", "--yes", "appdata"]).ok();
    assert!(Path::new(&mount).is_dir() && !Path::new(&format!("{mount}.old")).exists());
    env.vmoat(&b, &["up"]).ok();
    assert_eq!(origin(&env, &b), "first");

    env.vmoat(&a, &["suspend"]).ok();
    env.vmoat(&b, &["down"]).ok();
    let c = bb_worktree(&env, &repo, "third", want, None);
    let r = env.vmoat(&c, &["up"]).ok();
    assert!(
        r.stderr.contains("suspended sibling wt-first wakes it"),
        "{r:?}"
    );
    assert_eq!(origin(&env, &c), "first");
    assert_eq!(vm_state(&env, &a), "Running", "woken, in use");

    for wt in [&a, &c] {
        env.vmoat(wt, &["down"]).ok();
    }
    let d = bb_worktree(&env, &repo, "fourth", want, None);
    let r = env.vmoat(&d, &["up"]).ok();
    assert!(
        r.stderr.contains("starting the stopped sibling wt-first"),
        "{r:?}"
    );
    assert_eq!(origin(&env, &d), "first");
    assert_eq!(vm_state(&env, &a), "Stopped", "left as it was");
}

/// Between two Colima VMs the files stream through the host; snapshots work there too.
fn volumes_stream_between_colima_vms_and_snapshot_there() {
    let env = Env::new();
    let repo = env.repo("proj");
    let want = "\"all\"";
    let a = on_colima(bb_worktree(&env, &repo, "first", want, None));
    env.vmoat(&a, &["up"]).ok();
    let b = on_colima(bb_worktree(&env, &repo, "second", want, None));
    let r = env.vmoat(&b, &["up"]).ok();
    assert!(
        r.stderr.contains("(stream)") && r.stderr.contains("appdata"),
        "{r:?}"
    );
    assert_eq!(origin(&env, &b), "first");
    env.vmoat(&b, &["data", "snapshot", "s1"]).ok();
    env.vmoat(
        &b,
        &[
            "ssh",
            "docker",
            "exec",
            "app",
            "sh",
            "-c",
            "echo changed > /d/origin",
        ],
    )
    .ok();
    env.vmoat(&b, &["data", "restore", "s1"]).ok();
    assert_eq!(origin(&env, &b), "first", "restored");
}

pub(super) fn docker_in(env: &Env, vm: &str, args: &[&str]) -> String {
    let sock = format!("unix:///run/git-vmoat/{}/docker.sock", netns_id(env, vm));
    let out = std::process::Command::new("docker")
        .env("DOCKER_HOST", sock)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A sibling with a big volume, and a second worktree up without any copy.
pub(super) fn big_pair(env: &Env, mib: u32) -> (PathBuf, PathBuf) {
    let repo = env.repo("proj");
    let a = bb_worktree(env, &repo, "first", "[]", Some(mib));
    env.vmoat(&a, &["up"]).ok();
    let size = (u64::from(mib) << 20).to_string();
    let stat = ["exec", "app", "busybox", "stat", "-c", "%s", "/big/blob"];
    assert!(wait_until(Duration::from_secs(60), || docker_in(
        env, "wt-first", &stat
    ) == size));
    let b = bb_worktree(env, &repo, "second", "[]", None);
    env.vmoat(&b, &["up"]).ok();
    (a, b)
}

fn has_volume(env: &Env, wt: &Path, name: &str) -> bool {
    let ls: serde_json::Value =
        serde_json::from_str(&env.vmoat(wt, &["data", "ls", "--json"]).ok().stdout).unwrap();
    ls["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["name"] == name)
}

/// Starts `data clone` of `big` in `b` and kills it (with its children) mid-copy, while the
/// sibling is paused.
fn kill_mid_copy(env: &Env, b: &Path) {
    use std::os::unix::process::CommandExt;
    let mut copy = env
        .cmd(bin(), b)
        .args(["data", "clone", "--via", "stream", "--yes", "big"])
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let vms = env.state_dir().join("vms");
    assert!(wait_until(Duration::from_secs(60), || {
        vms.join("wt-first/data-paused.json").exists()
            && vms.join("wt-second/data-partial.json").exists()
    }));
    std::thread::sleep(Duration::from_millis(500));
    let pgid = rustix::process::Pid::from_raw(copy.id() as i32).unwrap();
    rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL).unwrap();
    copy.wait().unwrap();
    assert_eq!(
        docker_in(env, "wt-first", &PAUSED),
        "true",
        "killed while the sibling was paused"
    );
}

pub(super) const PAUSED: [&str; 4] = ["inspect", "-f", "{{.State.Paused}}", "app"];

/// Nothing of a dead copy is left in either VM (records, half volume, copy containers).
fn nothing_left(env: &Env) -> bool {
    let vms = env.state_dir().join("vms");
    docker_in(env, "wt-first", &PAUSED) == "false"
        && !vms.join("wt-first/data-paused.json").exists()
        && !vms.join("wt-second/data-partial.json").exists()
        && !docker_in(env, "wt-second", &["volume", "ls", "-q"])
            .lines()
            .any(|v| v == "big")
        && docker_in(
            env,
            "wt-second",
            &["ps", "-aq", "--filter", "label=git-vmoat.copy"],
        )
        .is_empty()
}

/// git-vmoat killed in the middle of a copy: the next command touching the sibling unpauses
/// it, the next touching the new VM removes the half volume; or the watcher does both.
fn a_copy_killed_halfway_leaves_nothing_paused_or_half_made() {
    let env = Env::new();
    let (a, b) = big_pair(&env, 600);
    kill_mid_copy(&env, &b);
    let r = env.vmoat(
        &a,
        &["ssh", "docker"]
            .iter()
            .chain(&PAUSED)
            .copied()
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        r.ok().stdout.trim(),
        "false",
        "unpaused by the next command"
    );
    assert!(!has_volume(&env, &b, "big"), "the half volume was removed");
    assert!(nothing_left(&env));

    kill_mid_copy(&env, &b);
    let _watcher = Watcher::start(&env, &a, &["--interval", "1"]);
    assert!(
        wait_until(Duration::from_secs(30), || nothing_left(&env)),
        "the watcher undoes it too"
    );
}

/// A copy that cannot fit is refused before anything is made or paused; one that fills the
/// disk anyway is undone whole.
fn a_disk_too_small_for_the_copy_is_refused_whole() {
    let env = Env::new();
    let (a, b) = big_pair(&env, 64);
    // The new VM's volumes dir on a 16 MiB filesystem (its daemon makes new volumes there).
    let vols = env.state_dir().join("netns/wt-second/docker/volumes");
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&vols)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mounting a small tmpfs");
    let r = env.vmoat(&b, &["data", "clone", "--yes", "big"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("too little") && r.stderr.contains("nothing was copied"),
        "{r:?}"
    );
    assert!(!has_volume(&env, &b, "big"));
    assert_eq!(
        docker_in(
            &env,
            "wt-first",
            &["inspect", "-f", "{{.State.Paused}}", "app"]
        ),
        "false"
    );
    assert!(has_volume(&env, &a, "big"));

    // One that looks small enough (sparse) but fills the disk while streaming: the error says
    // so, the sibling is unpaused, the half copy is gone.
    let r = env.vmoat(&b, &["data", "clone", "--yes", "--via", "stream", "sparse"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("ran out of disk space") && r.stderr.contains("half copy was removed"),
        "{r:?}"
    );
    assert!(!has_volume(&env, &b, "sparse"));
    let paused = ["inspect", "-f", "{{.State.Paused}}", "app"];
    assert_eq!(docker_in(&env, "wt-first", &paused), "false");
}

crate::tests! {
    a_new_worktree_gets_a_consistent_copy_of_its_siblings_database: StackNetns, Postgres;
    siblings_that_lack_the_volume_or_sleep_still_give_theirs: StackNetns;
    a_copy_killed_halfway_leaves_nothing_paused_or_half_made: StackNetns;
    a_disk_too_small_for_the_copy_is_refused_whole: StackNetns, Root;
    volumes_stream_between_colima_vms_and_snapshot_there: StackColima;
}
