//! `up`'s steps, shared by the `up` command and the background job: provision, warm, run the
//! up command, wait until the health URL answers.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::backend::Io;
use crate::context::Ctx;
use crate::error::hint;
use crate::output;
use crate::shell;

use super::provision::{Mode, provision};

pub(crate) fn up(ctx: &Ctx, force: bool) -> Result<()> {
    super::committed::warn_if_config_uncommitted(&ctx.wt);
    let Some(up_cmd) = ctx.cfg.up.clone() else {
        return Err(no_up_command());
    };
    // One `up` per worktree at a time, start to healthy: the hook's job and a manual `up` (or
    // two agents) would otherwise run the up command twice at once and trip over each other.
    let key = ctx.wt.location_key();
    let _up_lock = ctx.state.lock_up(
        &key,
        "another `git vmoat up` is running for this worktree; waiting for it to finish…",
    )?;
    let started = Instant::now();
    let vm = provision(ctx, Mode::IfNeeded, force)?;
    if ctx.cfg.warm {
        // Never slower than cold: a failed copy is reported and up goes on.
        match crate::warm::warm(ctx, &vm, None) {
            Ok(Some(r)) => output::info(r.line()),
            Ok(None) => {}
            Err(e) => output::warn(format!("warm start failed, starting cold: {e:#}")),
        }
    }
    if ctx.cfg.warm && !ctx.cfg.warm_volumes.is_empty() {
        warm_volumes(ctx, &vm);
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

/// Copies `warm.volumes` from a sibling; a failure is reported and up goes on with empty ones.
fn warm_volumes(ctx: &Ctx, vm: &str) {
    match crate::data::warm(ctx, vm) {
        Ok(Some(r)) => {
            output::info(r.line());
            if !r.missing.is_empty() {
                output::warn(format!(
                    "{} has no volume {}; {} start empty",
                    r.from,
                    r.missing.join(", "),
                    if r.missing.len() == 1 { "it" } else { "they" }
                ));
            }
        }
        Ok(None) => {}
        Err(e) => output::warn(format!(
            "copying volumes from a sibling failed, they start empty: {e:#}"
        )),
    }
}

pub(crate) fn no_up_command() -> anyhow::Error {
    hint(
        "no up command: nothing says how to start this project's stack",
        "add a compose.yaml, a Makefile `up:` target or a package.json `dev` script, or set commands.up (run `git vmoat init`)",
    )
}

/// The probe run inside the VM: exit 0 when the URL answers 2xx. It prints what the URL
/// answered (`http_code=NNN`, or a status line) and any error of the client, for
/// [`probe_answer`].
pub(crate) fn health_probe(url: &str) -> String {
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
pub(crate) fn probe_answer(out: &str) -> String {
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
/// How often the health URL is polled once the stack has been slow for a while; the first
/// polls come quicker (from `FIRST_POLL`, doubling up to `QUICK_POLL` for `QUICK_FOR`), as most
/// stacks answer within seconds: a wait doubled up to seconds would overshoot the moment the
/// stack answers by up to as much, which on a busy machine is the moment it answers late.
const POLL_EVERY: Duration = Duration::from_secs(2);
const FIRST_POLL: Duration = Duration::from_millis(100);
const QUICK_POLL: Duration = Duration::from_millis(250);
const QUICK_FOR: Duration = Duration::from_secs(10);

/// The pause after one taking `pause`, `elapsed` into the wait.
fn next_poll(pause: Duration, elapsed: Duration) -> Duration {
    let cap = if elapsed < QUICK_FOR {
        QUICK_POLL
    } else {
        POLL_EVERY
    };
    (pause * 2).min(cap)
}

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
    let mut next_pause = FIRST_POLL;
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
        let pause = next_pause.min(timeout - elapsed);
        next_pause = next_poll(next_pause, elapsed);
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
    fn health_polls_stay_quick_for_a_while_then_slow_down() {
        let ms = Duration::from_millis;
        let mut pause = FIRST_POLL;
        let mut elapsed = Duration::ZERO;
        let mut pauses = vec![];
        while elapsed < Duration::from_secs(20) {
            pauses.push(pause);
            elapsed += pause;
            pause = next_poll(pause, elapsed);
        }
        assert_eq!(pauses[..4], [ms(100), ms(200), ms(250), ms(250)]);
        let quick = pauses.iter().take_while(|p| **p <= QUICK_POLL).count();
        assert!(quick > 30, "{pauses:?}");
        assert_eq!(pauses.last(), Some(&POLL_EVERY), "{pauses:?}");
    }

    #[test]
    fn a_project_without_an_up_command_is_told_how_to_add_one() {
        insta::assert_snapshot!(crate::output::error_text(&no_up_command()));
    }
}
