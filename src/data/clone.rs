//! Copying volumes from a sibling worktree's VM: the sibling's containers that mount them are
//! paused for the copy (a crash-consistent image, which databases recover from) and unpaused
//! whatever happens; the new volumes appear whole or not at all.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{Volume, copy};
use crate::backend::copy_guard as guard;
use crate::backend::{self, Backend, VmState};
use crate::context::Ctx;
use crate::error::hint;
use crate::output;

pub use crate::cli::Via;

/// One volume copied.
pub struct Copied {
    pub source: String,
    pub target: String,
    pub bytes: u64,
}

/// What a copy did.
pub struct Report {
    pub from: String,
    pub copied: Vec<Copied>,
    pub how: &'static str,
    pub seconds: f64,
    /// How long the sibling's containers were paused, and how many.
    pub paused: Duration,
    pub paused_containers: usize,
    /// Asked for, but the sibling has no such volume.
    pub missing: Vec<String>,
}

impl Report {
    pub fn bytes(&self) -> u64 {
        self.copied.iter().map(|c| c.bytes).sum()
    }

    pub fn line(&self) -> String {
        let n = self.copied.len();
        let names: Vec<String> = self
            .copied
            .iter()
            .map(|c| {
                if c.source == c.target {
                    c.target.clone()
                } else {
                    format!("{} (from {})", c.target, c.source)
                }
            })
            .collect();
        let paused = match self.paused_containers {
            0 => "no container used them".to_string(),
            c => format!(
                "its container{} paused {:.1}s ({c})",
                if c == 1 { "" } else { "s" },
                self.paused.as_secs_f64()
            ),
        };
        format!(
            "copied {n} volume{} ({}) from {} in {:.1}s ({}), {paused}: {}",
            if n == 1 { "" } else { "s" },
            super::size(self.bytes()),
            self.from,
            self.seconds,
            self.how,
            names.join(", ")
        )
    }
}

/// What to copy, from where, and how.
pub struct Request<'a> {
    /// Volume names or compose keys; `["all"]`: every volume the sibling's containers mount.
    pub keys: &'a [String],
    pub from: Option<&'a str>,
    /// Copy over volumes the VM has (their containers stopped meanwhile, started again).
    pub replace: bool,
    pub via: Via,
}

/// `up`'s step: the `warm.volumes` the new VM lacks, from the first sibling that has them.
pub fn warm(ctx: &Ctx, vm: &str) -> Result<Option<Report>> {
    let req = Request {
        keys: &ctx.cfg.warm_volumes,
        from: None,
        replace: false,
        via: Via::Auto,
    };
    clone(ctx, vm, &req)
}

/// What one sibling could give.
enum Found {
    Copied(Report),
    /// The VM has everything asked for already.
    Nothing,
    /// The sibling has none of it.
    None,
}

/// Copies the volumes from the first sibling (main worktree's first, or `req.from`) that has
/// any; a stopped one is started for the copy and stopped again, a suspended one is woken.
pub fn clone(ctx: &Ctx, vm: &str, req: &Request<'_>) -> Result<Option<Report>> {
    if !req.replace && has_them(ctx, vm, req.keys)? {
        // Checked before any sibling is woken or started only to find nothing to copy.
        return Ok(None);
    }
    let names = crate::registry::load(&ctx.state)?;
    let siblings = crate::warm::siblings(&names, &ctx.wt_now(), vm, req.from)?;
    for name in siblings {
        let Some(owner) = names.get(&name) else {
            continue;
        };
        let b = backend::select(owner.backend, &ctx.state)?;
        let was = b.info(&name)?.state;
        let _lock = match was {
            VmState::Running => None,
            VmState::Suspended => {
                output::info(format!(
                    "copying volumes from the suspended sibling {name} wakes it"
                ));
                None
            }
            VmState::Stopped => Some(ctx.state.lock_vm(&name)?),
            _ => continue,
        };
        if was == VmState::Stopped {
            output::info(format!(
                "starting the stopped sibling {name} to copy volumes from it"
            ));
            if let Err(e) = b.resume(&name) {
                output::warn(format!("could not start {name}: {e:#}"));
                continue;
            }
        }
        let found = from_sibling(ctx, vm, &name, b.as_ref(), req);
        if was == VmState::Stopped {
            b.stop_containers(&name, Duration::from_secs(ctx.cfg.stop_timeout));
            if let Err(e) = b.stop(&name) {
                output::warn(format!("could not stop {name} again: {e:#}"));
            }
        }
        match found? {
            Found::Copied(r) => return Ok(Some(r)),
            Found::Nothing => return Ok(None),
            Found::None => {}
        }
    }
    output::info(format!(
        "no sibling VM has the volumes {}{}",
        req.keys.join(", "),
        if req.replace {
            ""
        } else {
            "; they start empty"
        }
    ));
    Ok(None)
}

/// Whether the VM has every volume asked for (for `all`: any volume of its stack at all).
fn has_them(ctx: &Ctx, vm: &str, keys: &[String]) -> Result<bool> {
    let mine = super::volumes(ctx.backend.as_ref(), vm)?;
    Ok(if keys == ["all"] {
        !super::snap::stack(&mine).is_empty()
    } else {
        keys.iter().all(|k| super::find(&mine, k).is_some())
    })
}

/// A volume to copy: the sibling's, and the name and labels of the copy.
struct Item {
    src: Volume,
    target: String,
    labels: BTreeMap<String, String>,
    bytes: u64,
}

/// What of `req` the sibling has and the VM still needs.
fn plan(
    ctx: &Ctx,
    vm: &str,
    sibling: &str,
    b: &dyn Backend,
    req: &Request<'_>,
) -> Result<(Vec<Item>, Vec<String>, usize)> {
    let have = super::volumes(b, sibling)?;
    let keys = if req.keys == ["all"] {
        super::mounted(b, sibling)?
    } else {
        req.keys.to_vec()
    };
    let mine = super::volumes(ctx.backend.as_ref(), vm)?;
    let project = compose_project(ctx, vm);
    let mut items = vec![];
    let mut missing: Vec<String> = vec![];
    // A volume named twice (or by two names) is copied once.
    let mut seen = std::collections::HashSet::new();
    let keys: Vec<String> = keys
        .into_iter()
        .filter(|k| seen.insert(k.clone()))
        .collect();
    let asked = keys.len();
    for k in keys {
        let Some(src) = super::find(&have, &k) else {
            if !missing.contains(&k) {
                missing.push(k);
            }
            continue;
        };
        let (target, labels) = super::target_of(src, project.as_deref());
        if items.iter().any(|i: &Item| i.target == target) {
            continue;
        }
        if !req.replace && mine.iter().any(|v| v.name == target) {
            // Never overwritten by `up`: the VM's own data wins.
            continue;
        }
        items.push(Item {
            src: src.clone(),
            target,
            labels,
            bytes: 0,
        });
    }
    let dirs: Vec<String> = items.iter().map(|i| i.src.mountpoint.clone()).collect();
    for (i, n) in items.iter_mut().zip(copy::sizes(b, sibling, &dirs)) {
        i.bytes = n;
    }
    Ok((items, missing, asked))
}

fn from_sibling(
    ctx: &Ctx,
    vm: &str,
    sibling: &str,
    b: &dyn Backend,
    req: &Request<'_>,
) -> Result<Found> {
    let (items, missing, asked) = plan(ctx, vm, sibling, b, req)?;
    if items.is_empty() {
        return Ok(if asked == 0 || missing.len() == asked {
            Found::None
        } else {
            Found::Nothing
        });
    }
    let direct = direct(ctx.backend.as_ref(), b, req.via)?;
    check_space(
        ctx,
        vm,
        items.iter().map(|i| i.bytes).sum(),
        "nothing was copied",
    )?;
    let started = Instant::now();
    let targets: Vec<String> = items.iter().map(|i| i.target.clone()).collect();
    let stopped = if req.replace {
        stop_users(ctx, vm, &targets)?
    } else {
        vec![]
    };
    let copied = copy_all(ctx, vm, sibling, b, &items, direct);
    start_again(ctx, vm, &stopped);
    let (copied, paused, paused_containers) = copied.map_err(|e| disk_full(e, vm))?;
    for c in &copied {
        let origin = super::Origin {
            from: sibling.to_string(),
            volume: c.source.clone(),
            at: crate::backend::suspend::now_secs(),
            bytes: c.bytes,
        };
        if let Err(e) = super::note_origin(&ctx.state, vm, &c.target, origin) {
            output::warn(format!(
                "could not record where {} came from: {e:#}",
                c.target
            ));
        }
    }
    Ok(Found::Copied(Report {
        from: sibling.to_string(),
        copied,
        how: if direct { "direct" } else { "stream" },
        seconds: started.elapsed().as_secs_f64(),
        paused,
        paused_containers,
        missing,
    }))
}

/// Makes the new volumes (and the containers a stream needs), then pauses the sibling's users
/// of the volumes only for the file copies themselves, and unpauses (also on failure).
fn copy_all(
    ctx: &Ctx,
    vm: &str,
    sibling: &str,
    b: &dyn Backend,
    items: &[Item],
    direct: bool,
) -> Result<(Vec<Copied>, Duration, usize)> {
    let mut making = guard::making(&ctx.state, ctx.backend.as_ref(), vm)?;
    let mut ready = vec![];
    for item in items {
        ready.push(prepare(ctx, vm, sibling, b, item, direct, &mut making)?);
    }
    let sources: Vec<String> = items.iter().map(|i| i.src.name.clone()).collect();
    let paused = guard::pause(&ctx.state, b, sibling, &sources)?;
    let count = paused.containers.len();
    for r in &ready {
        match &r.holders {
            Some((from, to)) => {
                copy::stream(from, to)?;
            }
            None => copy::replace_in_vm(
                ctx.backend.as_ref(),
                vm,
                &r.item.src.mountpoint,
                &r.dest.mountpoint,
            )?,
        }
    }
    let held = paused.release();
    let mut copied = vec![];
    for r in ready {
        let item = r.item;
        settle(ctx, vm, r, &mut making)?;
        copied.push(Copied {
            source: item.src.name.clone(),
            target: item.target.clone(),
            bytes: item.bytes,
        });
    }
    Ok((copied, held, count))
}

/// A new volume ready to receive a copy.
struct Ready<'a> {
    item: &'a Item,
    /// The new volume: the target's name, or (when the VM has that) one beside it.
    dest: Volume,
    existing: Option<Volume>,
    /// For a stream: containers mounting the source and the new volume.
    holders: Option<(copy::Holder<'a>, copy::Holder<'a>)>,
}

fn prepare<'a>(
    ctx: &'a Ctx,
    vm: &str,
    sibling: &str,
    b: &'a dyn Backend,
    item: &'a Item,
    direct: bool,
    making: &mut guard::Making<'_>,
) -> Result<Ready<'a>> {
    let mine = ctx.backend.as_ref();
    let existing = super::volumes(mine, vm)?
        .into_iter()
        .find(|v| v.name == item.target);
    let name = match &existing {
        Some(_) => format!("git-vmoat-incoming.{}", item.target),
        None => item.target.clone(),
    };
    let mut labels = item.labels.clone();
    if existing.is_some() {
        labels.insert("git-vmoat.incoming".into(), item.target.clone());
    }
    making.start(&name)?;
    let dest = super::create(mine, vm, &name, &labels)?;
    let holders = if direct {
        None
    } else {
        Some((
            copy::Holder::new(b, sibling, &item.src.name)?,
            copy::Holder::new(mine, vm, &name)?,
        ))
    };
    Ok(Ready {
        item,
        dest,
        existing,
        holders,
    })
}

/// Puts a finished copy in place (over the old files, when the VM had the volume).
fn settle(ctx: &Ctx, vm: &str, r: Ready<'_>, making: &mut guard::Making<'_>) -> Result<()> {
    let mine = ctx.backend.as_ref();
    drop(r.holders);
    if let Some(old) = &r.existing {
        copy::move_in_vm(mine, vm, &r.dest.mountpoint, &old.mountpoint)?;
        super::remove(mine, vm, &r.dest.name)?;
    }
    making.finish(&r.dest.name)
}

/// Whether to copy directly: both VMs' files are on this machine's filesystem.
fn direct(mine: &dyn Backend, theirs: &dyn Backend, via: Via) -> Result<bool> {
    let possible = mine.shares_host_fs() && theirs.shares_host_fs();
    match via {
        Via::Auto => Ok(possible),
        Via::Stream => Ok(false),
        Via::Direct if possible => Ok(true),
        Via::Direct => Err(hint(
            "a direct copy needs both VMs' files on this machine (the netns backend)",
            "use --via stream (or auto)",
        )),
    }
}

/// Refuses before anything is made when the VM's disk cannot hold `need` bytes of copies.
pub(super) fn check_space(ctx: &Ctx, vm: &str, need: u64, unchanged: &str) -> Result<()> {
    let mine = ctx.backend.as_ref();
    let root = mine
        .docker(vm)?
        .args(["info", "--format", "{{.DockerRootDir}}"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|r| !r.is_empty());
    let Some(free) = root.and_then(|r| copy::free(mine, vm, &format!("{r}/volumes"))) else {
        return Ok(());
    };
    if need > free {
        return Err(hint(
            format!(
                "VM {vm} has {} free, too little for the volumes to copy ({}); {unchanged}",
                super::size(free),
                super::size(need)
            ),
            "free space in the VM (`git vmoat ssh docker system df`) or give it a bigger disk (vm.disk)",
        ));
    }
    Ok(())
}

pub(super) fn disk_full(e: anyhow::Error, vm: &str) -> anyhow::Error {
    if copy::is_disk_full(&e) {
        return hint(
            format!(
                "VM {vm} ran out of disk space while copying volumes; the half copy was removed"
            ),
            "free space in the VM (`git vmoat ssh docker system df`) or give it a bigger disk (vm.disk)",
        );
    }
    e
}

/// Stops the VM's running containers that use `volumes`; returns them, to start again.
pub(super) fn stop_users(ctx: &Ctx, vm: &str, volumes: &[String]) -> Result<Vec<String>> {
    let mine = ctx.backend.as_ref();
    let ids = guard::containers_using(mine, vm, volumes, true)?;
    if ids.is_empty() {
        return Ok(ids);
    }
    output::info(format!(
        "stopping {} container{} that use{} the volumes…",
        ids.len(),
        if ids.len() == 1 { "" } else { "s" },
        if ids.len() == 1 { "s" } else { "" }
    ));
    guard::record_stopped(&ctx.state, vm, &ids)?;
    mine.docker(vm)?
        .args(["stop", "-t", &ctx.cfg.stop_timeout.to_string()])
        .args(&ids)
        .checked()?;
    Ok(ids)
}

/// Starts containers `stop_users` stopped (best effort: said when it fails).
pub fn start_again(ctx: &Ctx, vm: &str, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let started = ctx
        .backend
        .docker(vm)
        .and_then(|d| d.arg("start").args(ids).checked());
    match started {
        Ok(_) => guard::clear_stopped(&ctx.state, vm),
        Err(e) => output::warn(format!("starting the containers of {vm} again: {e:#}")),
    }
}

/// The compose project of this worktree's stack, when it has a compose file.
fn compose_project(ctx: &Ctx, vm: &str) -> Option<String> {
    if !crate::detect::COMPOSE_FILES
        .iter()
        .any(|f| ctx.wt.root.join(f).is_file())
    {
        return None;
    }
    let out = ctx
        .backend
        .exec(
            vm,
            &ctx.wt.root,
            Some("docker compose config --format json"),
            crate::backend::Io::Capture,
        )
        .ok()
        .filter(|o| o.code == 0)?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["name"].as_str().map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_says_what_how_big_from_where_and_how_long_paused() {
        let r = Report {
            from: "wt-main".into(),
            copied: vec![Copied {
                source: "main_pgdata".into(),
                target: "feat_pgdata".into(),
                bytes: 3 << 20,
            }],
            how: "stream",
            seconds: 1.26,
            paused: Duration::from_millis(1100),
            paused_containers: 1,
            missing: vec![],
        };
        assert_eq!(
            r.line(),
            "copied 1 volume (3.0 MiB) from wt-main in 1.3s (stream), its container paused 1.1s (1): feat_pgdata (from main_pgdata)"
        );
    }
}
