//! Warm start: before a VM's first `up`, copy the images its stack needs from a sibling
//! worktree's VM (`docker save` there streamed into `docker load` here, through the host, no
//! temp file), so only the first worktree of a project pays for building and pulling.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::backend::{self, BackendKind, Io, VmState};
use crate::context::{Ctx, Names};
use crate::output;

/// What a warm start copied.
pub struct Report {
    pub images: Vec<String>,
    pub bytes: u64,
    pub from: String,
    pub seconds: f64,
}

impl Report {
    pub fn line(&self) -> String {
        format!(
            "warmed {} image{} ({:.1} MiB) from {} in {:.1}s: {}",
            self.images.len(),
            if self.images.len() == 1 { "" } else { "s" },
            self.bytes as f64 / 1048576.0,
            self.from,
            self.seconds,
            self.images.join(", ")
        )
    }
}

/// The images the stack needs: `warm.images`, else what `docker compose config --images` lists.
fn wanted(ctx: &Ctx, vm: &str) -> Result<Vec<String>> {
    if !ctx.cfg.warm_images.is_empty() {
        return Ok(ctx.cfg.warm_images.clone());
    }
    if !crate::detect::COMPOSE_FILES
        .iter()
        .any(|f| ctx.wt.root.join(f).is_file())
    {
        return Ok(vec![]);
    }
    let out = ctx.backend.exec(
        vm,
        &ctx.wt.root,
        Some("docker compose config --images"),
        Io::Capture,
    )?;
    if out.code != 0 {
        bail!(
            "`docker compose config --images` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out
        .stdout_text()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

fn has_image(docker: Result<crate::exec::Cmd>, image: &str) -> bool {
    docker.is_ok_and(|d| {
        d.args(["image", "inspect", "--format", "{{.Id}}", image])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Copies the images `vm` lacks from the first running sibling that has them (the main
/// worktree's VM first, or the one named by `from`). Ok(None) when there is nothing to do.
pub fn warm(ctx: &Ctx, vm: &str, from: Option<&str>) -> Result<Option<Report>> {
    let names: Names = crate::registry::load(&ctx.state)?;
    let siblings = siblings(&names, &ctx.wt_now(), vm, from)?;
    let images = wanted(ctx, vm)?;
    let missing: Vec<String> = images
        .into_iter()
        .filter(|i| !has_image(ctx.backend.docker(vm), i))
        .collect();
    if missing.is_empty() {
        return Ok(None);
    }
    let open = |k| backend::select(k, &ctx.state);
    for (name, b, is_running) in sources(siblings, &names, &open)? {
        let _lock = if is_running {
            None
        } else {
            Some(ctx.state.lock_vm(&name)?)
        };
        if !is_running {
            output::info(format!(
                "warm start: starting the stopped sibling {name} to copy from it"
            ));
            if let Err(e) = b.resume(&name) {
                output::warn(format!("warm start: could not start {name}: {e:#}"));
                continue;
            }
        }
        let copied = copy_from(ctx, vm, &name, b.as_ref(), &missing);
        if !is_running {
            b.stop_containers(&name, Duration::from_secs(ctx.cfg.stop_timeout));
        }
        if !is_running && let Err(e) = b.stop(&name) {
            output::warn(format!("warm start: could not stop {name} again: {e:#}"));
        }
        if let Some(report) = copied? {
            return Ok(Some(report));
        }
    }
    output::info(format!(
        "warm start: no sibling VM has {}; starting cold",
        missing.join(", ")
    ));
    Ok(None)
}

/// The repository's other VMs that may be copied from: the main worktree's first (the one most
/// likely to have everything), then by name; only the one `from` names (a VM name or worktree
/// path) when given.
pub(crate) fn siblings(
    names: &Names,
    wt: &crate::repo::Worktree,
    vm: &str,
    from: Option<&str>,
) -> Result<Vec<String>> {
    let mut siblings: Vec<(String, bool, std::path::PathBuf)> = crate::registry::of_repo(names, wt)
        .into_iter()
        .filter(|(name, _)| name != vm)
        .map(|(name, o)| (name, o.is_main(), o.root))
        .collect();
    siblings.sort_by_key(|(name, is_main, _)| (!is_main, name.clone()));
    if let Some(f) = from {
        let want = std::fs::canonicalize(f).ok();
        siblings.retain(|(name, _, root)| name == f || want.as_ref() == Some(root));
        if siblings.is_empty() {
            bail!(
                "no VM of this repository matches `{f}` (a worktree path or VM name; see `git vmoat status --all`)"
            );
        }
    }
    Ok(siblings.into_iter().map(|(n, _, _)| n).collect())
}

/// A VM to copy from, its backend, and whether it was running already.
type Source = (String, Box<dyn backend::Backend>, bool);

/// The siblings to try, in order: running ones first, then stopped ones (started briefly and
/// stopped again); absent or broken ones are skipped. `open` gives a VM's recorded backend.
fn sources(
    siblings: Vec<String>,
    names: &Names,
    open: &dyn Fn(BackendKind) -> Result<Box<dyn backend::Backend>>,
) -> Result<Vec<Source>> {
    let mut running = vec![];
    let mut stopped = vec![];
    for name in siblings {
        let Some(owner) = names.get(&name) else {
            continue;
        };
        let b = open(owner.backend)?;
        match b.info(&name)?.state {
            VmState::Running => running.push((name, b, true)),
            VmState::Stopped => stopped.push((name, b, false)),
            _ => {}
        }
    }
    Ok(running.into_iter().chain(stopped).collect())
}

/// Copies what `sibling` has of `missing`; None when it has none of them.
fn copy_from(
    ctx: &Ctx,
    vm: &str,
    sibling: &str,
    b: &dyn backend::Backend,
    missing: &[String],
) -> Result<Option<Report>> {
    let have: Vec<String> = missing
        .iter()
        .filter(|i| has_image(b.docker(sibling), i))
        .cloned()
        .collect();
    if have.is_empty() {
        return Ok(None);
    }
    let started = Instant::now();
    let bytes = stream(b.docker(sibling)?, ctx.backend.docker(vm)?, &have)
        .with_context(|| format!("copying images from {sibling}"))?;
    Ok(Some(Report {
        images: have,
        bytes,
        from: sibling.to_string(),
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// `docker save` on one daemon piped into `docker load` on the other; returns the bytes moved.
/// `docker load` only registers an image once its whole archive arrived, so a broken stream
/// leaves no half image behind.
fn stream(from: crate::exec::Cmd, to: crate::exec::Cmd, images: &[String]) -> Result<u64> {
    let mut save = from
        .arg("save")
        .args(images)
        .spawn_with(Stdio::piped(), Stdio::piped())?;
    let mut load = to
        .arg("load")
        .arg("-q")
        .stdin_piped()
        .spawn_with(Stdio::null(), Stdio::piped())?;
    let mut src = save.stdout.take().context("docker save has no stdout")?;
    let mut dst = load.stdin.take().context("docker load has no stdin")?;
    let copied = std::io::copy(&mut src, &mut dst);
    drop(dst);
    let save_out = save.wait_with_output()?;
    let load_out = load.wait_with_output()?;
    let total = copied.context("streaming the images")?;
    if !save_out.status.success() {
        bail!(
            "docker save failed: {}",
            String::from_utf8_lossy(&save_out.stderr).trim()
        );
    }
    if !load_out.status.success() {
        bail!(
            "docker load failed: {}",
            String::from_utf8_lossy(&load_out.stderr).trim()
        );
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fake::Fake;

    fn names(json: &str) -> Names {
        serde_json::from_str(json).unwrap()
    }

    const REPO: &str = "0123456789abcdef0123456789abcdef";

    fn registry() -> Names {
        let rec = |wt: &str, backend: &str| {
            format!(
                r#"{{"repo": "{REPO}", "worktree": "{wt}", "root": "/src/{wt}", "common": "/src/main/.git", "backend": "{backend}"}}"#
            )
        };
        names(&format!(
            r#"{{"wt-main": {}, "wt-a": {}, "wt-b": {}, "wt-c": {}, "wt-me": {}, "wt-other-repo": {}}}"#,
            rec("main", "colima"),
            rec("a", "colima"),
            rec("b", "netns"),
            rec("c", "colima"),
            rec("me", "colima"),
            rec("x", "colima").replace(REPO, &"f".repeat(32)),
        ))
    }

    fn me() -> crate::repo::Worktree {
        crate::repo::Worktree {
            root: "/src/me".into(),
            main_root: Some("/src/main".into()),
            common_dir: "/src/main/.git".into(),
            id: Some("me".into()),
            repo_id: Some(REPO.into()),
        }
    }

    #[test]
    fn siblings_are_this_repositorys_other_vms_main_first() {
        let n = registry();
        assert_eq!(
            siblings(&n, &me(), "wt-me", None).unwrap(),
            ["wt-main", "wt-a", "wt-b", "wt-c"]
        );
        assert_eq!(
            siblings(&n, &me(), "wt-me", Some("wt-b")).unwrap(),
            ["wt-b"]
        );
        assert!(siblings(&n, &me(), "wt-me", Some("wt-nope")).is_err());
    }

    #[test]
    fn running_siblings_come_first_and_unusable_ones_are_skipped() {
        let colima = Fake::new(BackendKind::Colima)
            .with_vm("wt-main", VmState::Stopped)
            .with_vm("wt-a", VmState::Broken)
            .with_vm("wt-c", VmState::Running);
        let netns = Fake::new(BackendKind::Netns).with_vm("wt-b", VmState::Running);
        let open = |k: BackendKind| -> Result<Box<dyn backend::Backend>> {
            Ok(match k {
                BackendKind::Netns => Box::new(netns.clone()),
                _ => Box::new(colima.clone()),
            })
        };
        let n = registry();
        let order = siblings(&n, &me(), "wt-me", None).unwrap();
        let got: Vec<(String, BackendKind, bool)> = sources(order, &n, &open)
            .unwrap()
            .into_iter()
            .map(|(name, b, running)| (name, b.kind(), running))
            .collect();
        assert_eq!(
            got,
            [
                ("wt-b".into(), BackendKind::Netns, true),
                ("wt-c".into(), BackendKind::Colima, true),
                ("wt-main".into(), BackendKind::Colima, false),
            ],
            "each on the backend it was made with; the broken one is never used"
        );
        assert!(
            colima.calls().iter().all(|c| c.starts_with("info")),
            "choosing starts nothing: {:?}",
            colima.calls()
        );
    }
}
