//! `provision` and `up`: create or start the VM, install packages, run the provision script,
//! seed files, start the stack and wait for it to be healthy.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::backend::{Io, StartSpec, VmState};
use crate::context::Ctx;
use crate::error::hint;
use crate::output;
use crate::shell;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `provision`: run every step.
    Always,
    /// `up`: skip packages and script when this VM already had them with the same config.
    IfNeeded,
}

/// Brings the VM to a provisioned, running state; returns its name.
pub fn provision(ctx: &Ctx, mode: Mode) -> Result<String> {
    ctx.backend.ensure_installed()?;
    if !ctx.backend.shares_host_fs() {
        check_mount(ctx)?;
    }
    let spec = StartSpec {
        cpus: ctx.cfg.cpus,
        memory_gib: ctx.cfg.memory,
        disk_gib: ctx.cfg.disk,
        vm_type: ctx.cfg.vm_type.as_deref(),
        mount_type: ctx.cfg.mount_type.as_deref(),
        mount: &ctx.cfg.mount,
    };
    // Everything that can be checked is checked before anything is recorded or started.
    ctx.backend.preflight(&spec)?;
    let vm = ctx.claim_vm_name()?;
    // One provisioning per VM at a time: a second `up` waits here, then finds it done.
    let _vm_lock = ctx.state.lock(&format!("vm-{vm}"))?;
    let stamp_path = ctx.state.vm_dir(&vm)?.join("provisioned");
    let info = ctx.backend.info(&vm)?;
    let state = info.state;
    let started = Instant::now();
    match &state {
        VmState::Running => {
            output::info(format!("VM {vm} is running"));
            if let Some(note) = size_change_note(info.cpus, info.memory_bytes, &spec) {
                output::warn(note);
            }
        }
        VmState::Missing => {
            if ctx.backend.reserves_memory() {
                ram_warning(ctx.cfg.memory);
            }
            let _ = std::fs::remove_file(&stamp_path);
            output::info(format!(
                "creating {}…",
                ctx.backend.describe_new(&vm, &spec)
            ));
            if let Err(e) = ctx.backend.start(&vm, &spec, &state) {
                // Nothing was made: give the name back, leave no trace.
                if ctx
                    .backend
                    .info(&vm)
                    .is_ok_and(|i| i.state == VmState::Missing)
                {
                    let _ = ctx.give_back(&vm);
                }
                return Err(e);
            }
            output::info(format!(
                "VM {vm} created in {}",
                output::duration(started.elapsed())
            ));
        }
        other => {
            output::info(format!("starting VM {vm} ({other})…"));
            ctx.backend.start(&vm, &spec, &state)?;
            output::info(format!(
                "VM {vm} started in {}",
                output::duration(started.elapsed())
            ));
        }
    }
    ctx.mark_owner(&vm);
    let stamp = provision_stamp(ctx);
    let done = std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp);
    if mode == Mode::IfNeeded && done {
        output::info("packages and provision script: already done for this config");
    } else {
        install_packages(ctx, &vm)?;
        run_script(ctx, &vm)?;
        std::fs::write(&stamp_path, &stamp).context("recording the provisioning")?;
    }
    seed_files(ctx)?;
    Ok(vm)
}

/// What to tell the user when a running VM's size differs from the config: a running VM keeps
/// its size (Colima saves new values but applies them only at the next start).
fn size_change_note(
    cpus: Option<u64>,
    memory_bytes: Option<u64>,
    spec: &StartSpec<'_>,
) -> Option<String> {
    let cpus_differ = cpus.is_some_and(|c| c != spec.cpus);
    let memory_differs = memory_bytes.is_some_and(|m| m != spec.memory_gib << 30);
    if !cpus_differ && !memory_differs {
        return None;
    }
    let now = format!(
        "{} CPU, {} GiB RAM",
        cpus.map_or("?".into(), |c| c.to_string()),
        memory_bytes.map_or("?".into(), |m| format!(
            "{:.3}",
            m as f64 / (1u64 << 30) as f64
        )
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string())
    );
    Some(format!(
        "the VM runs with {now}, but the config asks for {} CPU, {} GiB RAM; a running VM keeps its size: run `git vmoat down && git vmoat up` to apply it",
        spec.cpus, spec.memory_gib
    ))
}

/// A digest of the provisioning inputs: a change re-runs packages and script on the next `up`.
fn provision_stamp(ctx: &Ctx) -> String {
    let mut h = Sha256::new();
    h.update(ctx.cfg.apt.join("\n"));
    h.update("\0");
    h.update(ctx.cfg.script.as_deref().unwrap_or(""));
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn check_mount(ctx: &Ctx) -> Result<()> {
    let mount = &ctx.cfg.mount;
    let real = std::fs::canonicalize(mount).map_err(|e| {
        hint(
            format!(
                "vm.mount (VM_MOUNT) {} cannot be used: {e}",
                mount.display()
            ),
            "set vm.mount to an existing dir that holds the worktree",
        )
    })?;
    if !ctx.wt.root.starts_with(&real) {
        return Err(hint(
            format!(
                "the worktree {} is outside vm.mount (VM_MOUNT) {}, so the VM could not see it",
                ctx.wt.root.display(),
                real.display()
            ),
            "set vm.mount in vmoat.local.toml to a dir that contains the worktree",
        ));
    }
    Ok(())
}

/// The host's RAM in GiB (Linux /proc/meminfo, macOS sysctl).
pub fn host_ram_gib() -> Option<u64> {
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
        let kb: u64 = text
            .lines()
            .find(|l| l.starts_with("MemTotal:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        return Some(kb / 1024 / 1024);
    }
    let out = crate::exec::Cmd::new("sysctl")
        .args(["-n", "hw.memsize"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<u64>()
        .ok()
        .map(|b| b >> 30)
}

fn ram_warning(memory_gib: u64) {
    if let Some(host) = host_ram_gib()
        && memory_gib >= host
    {
        output::warn(format!(
            "vm.memory is {memory_gib} GiB but this machine has {host} GiB: the VM may swap or fail to start (lower vm.memory in vmoat.local.toml)"
        ));
    }
}

fn install_packages(ctx: &Ctx, vm: &str) -> Result<()> {
    if ctx.cfg.apt.is_empty() {
        return Ok(());
    }
    let pkgs = shell::join(&ctx.cfg.apt);
    // Only what dpkg does not already have; one update + install, as root.
    let script = format!(
        "missing=''; for p in {pkgs}; do dpkg -s \"$p\" >/dev/null 2>&1 || missing=\"$missing $p\"; done; \
         if [ -z \"$missing\" ]; then exit 0; fi; echo \"installing:$missing\"; \
         if [ \"$(id -u)\" -eq 0 ]; then s=''; else s=sudo; fi; \
         $s env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
         $s env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing"
    );
    output::info(format!("checking apt packages: {}", ctx.cfg.apt.join(" ")));
    let out = ctx.backend.exec(vm, &ctx.wt.root, Some(&script), Io::Log)?;
    if out.code != 0 {
        return Err(hint(
            format!(
                "installing apt packages in VM {vm} failed (exit {})",
                out.code
            ),
            "check provision.apt (PROVISION_APT) names; apt's output is above",
        ));
    }
    Ok(())
}

fn run_script(ctx: &Ctx, vm: &str) -> Result<()> {
    let Some(script) = &ctx.cfg.script else {
        return Ok(());
    };
    output::info("running the provision script in the VM…");
    let out = ctx.backend.exec(vm, &ctx.wt.root, Some(script), Io::Log)?;
    if out.code != 0 {
        return Err(hint(
            format!("the provision script failed in VM {vm} (exit {})", out.code),
            "its output is above; fix provision.script (PROVISION_SCRIPT) and run `git vmoat provision`",
        ));
    }
    Ok(())
}

fn seed_files(ctx: &Ctx) -> Result<()> {
    if ctx.wt.is_main() {
        return Ok(());
    }
    super::git_side::seed_worktree(ctx, false).map(drop)
}

/// `git vmoat up` typed by a user: `up`, then what to do next.
pub fn up_cmd(ctx: &Ctx) -> Result<()> {
    up(ctx)?;
    output::info(
        "next: `git vmoat tunnel` (ports to localhost), `git vmoat test`, `git vmoat ssh`, `git vmoat down` / `destroy`",
    );
    Ok(())
}

pub fn up(ctx: &Ctx) -> Result<()> {
    let Some(up_cmd) = ctx.cfg.up.clone() else {
        return Err(hint(
            "no up command: nothing says how to start this project's stack",
            "add a compose.yaml, a Makefile `up:` target or a package.json `dev` script, or set commands.up (run `git vmoat init`)",
        ));
    };
    // One `up` per worktree at a time, start to healthy: the hook's job and a manual `up` (or
    // two agents) would otherwise run the up command twice at once and trip over each other.
    let key = ctx.wt.location_key();
    let _up_lock = ctx.state.lock_waiting(
        &format!("up-{}", crate::naming::short_hash(&key, 16)),
        "another `git vmoat up` is running for this worktree; waiting for it to finish…",
    )?;
    let started = Instant::now();
    let vm = provision(ctx, Mode::IfNeeded)?;
    if ctx.cfg.warm {
        // Never slower than cold: a failed copy is reported and up goes on.
        match crate::warm::warm(ctx, &vm, None) {
            Ok(Some(r)) => output::info(r.line()),
            Ok(None) => {}
            Err(e) => output::warn(format!("warm start failed, starting cold: {e:#}")),
        }
    }
    output::info(format!("running `{up_cmd}` in {vm}…"));
    let out = ctx
        .backend
        .exec(&vm, &ctx.wt.root, Some(&up_cmd), Io::Log)?;
    if out.code != 0 {
        return Err(hint(
            format!(
                "the up command `{up_cmd}` failed in VM {vm} (exit {})",
                out.code
            ),
            "its output is above; fix it and run `git vmoat up` again (some stacks need a second try on a fresh database)",
        ));
    }
    if let Some(url) = &ctx.cfg.health_url {
        wait_healthy(ctx, &vm, url, Duration::from_secs(ctx.cfg.health_timeout))?;
    }
    output::info(format!(
        "{vm} is up ({})",
        output::duration(started.elapsed())
    ));
    Ok(())
}

/// The probe run inside the VM: exit 0 when the URL answers 2xx. It prints what the URL
/// answered (`http_code=NNN`, or a status line) and any error of the client, for
/// [`probe_answer`].
pub fn health_probe(url: &str) -> String {
    let u = shell::quote(url);
    format!(
        "if command -v curl >/dev/null 2>&1; then \
           o=$(curl -sS -o /dev/null -w '\nhttp_code=%{{http_code}}\n' --max-time 5 {u} 2>&1); printf '%s\n' \"$o\"; \
           case $o in *http_code=2[0-9][0-9]*) exit 0;; *) exit 1;; esac; \
         elif command -v wget >/dev/null 2>&1; then \
           o=$(wget -S -O /dev/null -T 5 {u} 2>&1); r=$?; printf '%s\n' \"$o\"; exit $r; \
         else echo 'neither curl nor wget is installed in the VM'; exit 1; fi"
    )
}

/// What the health URL last answered, from the probe's output: `HTTP 503`, or the client's
/// error (connection refused, timeout, no such host).
pub fn probe_answer(out: &str) -> String {
    let mut code = None;
    let mut other = None;
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(c) = line.strip_prefix("http_code=") {
            // curl's 000: no HTTP answer at all; its error line says why.
            if c != "000" {
                code = Some(c.to_string());
            }
        } else if line.starts_with("HTTP/") {
            code = line.split_whitespace().nth(1).map(String::from);
        } else {
            other = Some(line.to_string());
        }
    }
    match (code, other) {
        (Some(c), _) => format!("HTTP {c}"),
        (None, Some(e)) => e,
        (None, None) => "no answer".into(),
    }
}

/// How often the health wait says it is still waiting when it cannot rewrite a live line.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);
/// How often the health URL is polled.
const POLL_EVERY: Duration = Duration::from_secs(2);

fn wait_healthy(ctx: &Ctx, vm: &str, url: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let mut last_line = start;
    output::info(format!(
        "waiting for {url} to answer (up to {})…",
        output::duration(timeout)
    ));
    let probe = health_probe(url);
    let live = output::live_progress();
    let line = |answer: &str| {
        format!(
            "waiting for {url}: {} of {}, last answer: {answer}",
            output::duration(start.elapsed()),
            output::duration(timeout)
        )
    };
    loop {
        let out = ctx
            .backend
            .exec(vm, &ctx.wt.root, Some(&probe), Io::Capture)?;
        if out.code == 0 {
            output::info(format!(
                "healthy: {url} after {}",
                output::duration(start.elapsed())
            ));
            return Ok(());
        }
        let mut text = out.stdout_text();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let answer = probe_answer(&text);
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(hint(
                format!(
                    "{url} did not become healthy within {} (polled inside VM {vm}); its last answer: {answer}",
                    output::duration(timeout)
                ),
                format!(
                    "{}; raise health.timeout (HEALTH_TIMEOUT) if it only needs longer",
                    stack_hint(ctx, vm)
                ),
            ));
        }
        let pause = POLL_EVERY.min(timeout - elapsed);
        if live {
            // The elapsed time ticks every second between polls.
            let until = Instant::now() + pause;
            loop {
                output::progress(line(&answer));
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_secs(1)));
            }
        } else {
            if last_line.elapsed() >= PROGRESS_EVERY {
                output::info(format!("still {}", line(&answer)));
                last_line = Instant::now();
            }
            std::thread::sleep(pause);
        }
    }
}

/// Where to look when the stack never became healthy, in the project's own terms: compose
/// commands for a compose stack, else its containers by name.
fn stack_hint(ctx: &Ctx, vm: &str) -> String {
    let compose = ctx
        .cfg
        .up
        .as_deref()
        .is_some_and(|u| u.contains("docker compose") || u.contains("docker-compose"))
        || crate::detect::COMPOSE_FILES
            .iter()
            .any(|f| ctx.wt.root.join(f).is_file());
    if compose {
        return "see `git vmoat ssh docker compose ps -a` and `git vmoat ssh docker compose logs`"
            .into();
    }
    let names = ctx
        .backend
        .exec(
            vm,
            &ctx.wt.root,
            Some("docker ps -a --format '{{.Names}}'"),
            Io::Capture,
        )
        .ok()
        .filter(|o| o.code == 0)
        .map(|o| {
            o.stdout_text()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        });
    match names.as_deref() {
        Some([]) => format!(
            "no container exists in VM {vm}; check what `{}` starts (`git vmoat ssh` opens a shell there)",
            ctx.cfg.up.as_deref().unwrap_or("the up command")
        ),
        Some([one]) => {
            format!("see `git vmoat ssh docker ps -a` and `git vmoat ssh docker logs {one}`")
        }
        Some(many) => format!(
            "see `git vmoat ssh docker ps -a` and `git vmoat ssh docker logs <container>` (containers: {})",
            many.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
        ),
        None => {
            "see `git vmoat ssh docker ps -a` and `git vmoat ssh docker logs <container>`".into()
        }
    }
}

/// `warm [--from X]`: copy the stack's images from a sibling VM now.
pub fn warm_cmd(ctx: &Ctx, from: Option<&str>) -> Result<()> {
    let vm = super::running_vm(ctx)?;
    match crate::warm::warm(ctx, &vm, from)? {
        Some(r) => output::info(r.line()),
        None => output::info(format!(
            "{vm} already has every image its stack needs, or none is known (set warm.images)"
        )),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_output_says_what_the_url_answered() {
        let refused = "curl: (7) Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server\n\nhttp_code=000\n";
        assert_eq!(
            probe_answer(refused),
            "curl: (7) Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server"
        );
        assert_eq!(probe_answer("\nhttp_code=503\n"), "HTTP 503");
        // wget -S: the last status line, whatever follows it.
        let wget = "Connecting to x (x)\n  HTTP/1.1 404 Not Found\nwget: server returned error: HTTP/1.1 404 Not Found\n";
        assert_eq!(probe_answer(wget), "HTTP 404");
        assert_eq!(
            probe_answer("wget: can't connect to remote host (127.0.0.1): Connection refused\n"),
            "wget: can't connect to remote host (127.0.0.1): Connection refused"
        );
        assert_eq!(probe_answer(""), "no answer");
    }

    #[test]
    fn a_running_vm_of_another_size_gets_a_note() {
        let spec = StartSpec {
            cpus: 4,
            memory_gib: 8,
            disk_gib: 20,
            vm_type: None,
            mount_type: None,
            mount: std::path::Path::new("/"),
        };
        assert_eq!(size_change_note(Some(4), Some(8 << 30), &spec), None);
        assert_eq!(size_change_note(None, None, &spec), None);
        let n = size_change_note(Some(2), Some(8 << 30), &spec).unwrap();
        assert!(
            n.contains("2 CPU, 8 GiB") && n.contains("asks for 4 CPU, 8 GiB"),
            "{n}"
        );
        assert!(n.contains("git vmoat down && git vmoat up"), "{n}");
        let n = size_change_note(Some(4), Some(3 << 29), &spec).unwrap();
        assert!(n.contains("4 CPU, 1.5 GiB"), "{n}");
    }
}
