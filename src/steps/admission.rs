//! RAM admission: before a VM is created or started, what the running VMs hold plus the new
//! one must fit the budget; over it, git-vmoat refuses (saying what frees room) or, with
//! `vm.evict`, suspends the least recently active idle VM.

use std::time::{Duration, SystemTime};

use anyhow::Result;

use crate::backend::suspend::{self, Waker};
use crate::backend::{self, Backend, VmState};
use crate::config::Config;
use crate::context::Ctx;
use crate::error::hint;
use crate::output;
use crate::registry::Owner;
use crate::state::State;

const GIB: u64 = 1 << 30;

/// A VM that holds memory now.
#[derive(Clone, Debug)]
pub(crate) struct Holder {
    pub vm: String,
    pub owner: Owner,
    pub state: VmState,
    pub held: u64,
    /// Its whole usage (page cache included), for estimating a sibling.
    pub used: u64,
    /// What it would still hold once suspended.
    pub after: u64,
    pub last_active: Option<SystemTime>,
    pub busy: bool,
}

/// What a VM holds: a real VM its configured memory while it runs and nothing stopped; a
/// netns worktree what its cgroup uses, and once frozen only its anonymous memory (the kernel
/// may drop a frozen worktree's page cache whenever it needs the room).
fn held(b: &dyn Backend, vm: &str) -> Option<(VmState, u64, u64, u64)> {
    let info = b.info(vm).ok()?;
    let usage = b.live_usage(vm);
    let used = usage.memory_used.unwrap_or(0);
    let frozen = if b.reserves_memory() {
        0
    } else {
        usage.memory_anon.unwrap_or(used)
    };
    let held = match (info.state, b.reserves_memory()) {
        (VmState::Running, true) => info.memory_bytes.unwrap_or(0),
        (VmState::Running, false) => used,
        (VmState::Suspended, false) => frozen,
        _ => 0,
    };
    Some((info.state, held, used, frozen))
}

/// Every VM of this state dir that holds memory, but `except`.
pub(crate) fn holders(state: &State, except: &str) -> Result<Vec<Holder>> {
    let names = crate::registry::load(state)?;
    let mut out = vec![];
    for (vm, owner) in names {
        if vm == except {
            continue;
        }
        let Ok(b) = backend::select(owner.backend, state) else {
            continue;
        };
        let Some((st, held, used, after)) = held(b.as_ref(), &vm) else {
            continue;
        };
        if held == 0 && used == 0 {
            continue;
        }
        out.push(Holder {
            last_active: suspend::last_active(state, &vm),
            busy: suspend::leased(state, &vm),
            vm,
            owner,
            state: st,
            held,
            used,
            after,
        });
    }
    Ok(out)
}

/// The memory budget in bytes: `vm.budget`, else this machine's RAM minus `vm.reserve`.
pub(crate) fn budget(cfg: &Config) -> Option<u64> {
    if cfg.budget > 0 {
        return Some(cfg.budget * GIB);
    }
    let host = super::provision::host_ram_bytes()?;
    Some(host.saturating_sub(cfg.reserve * GIB))
}

/// What the new VM will hold: its memory when the backend reserves it; a netns worktree what
/// its biggest sibling of the same repository uses (the same stack), else its cap.
fn need(ctx: &Ctx, owner_repo: Option<&str>, others: &[Holder]) -> u64 {
    let cap = ctx.cfg.memory * GIB;
    if ctx.backend.reserves_memory() {
        return cap;
    }
    others
        .iter()
        .filter(|h| {
            Some(h.owner.repo.as_str()) == owner_repo && h.owner.backend == ctx.backend.kind()
        })
        .map(|h| h.used)
        .max()
        // A first netns worktree: a cap is no reservation; a small stack's daemons and
        // containers fit in a GiB.
        .map_or(cap.min(GIB), |u| u.min(cap))
}

/// Where `vm` would leave the memory budget if it started.
struct Over {
    budget: u64,
    total: u64,
    need: u64,
    others: Vec<Holder>,
}

impl Over {
    /// `held + need > budget`, for messages.
    fn sum(&self, vm: &str) -> String {
        format!(
            "{} held + {} for {vm} > {}",
            gib(self.total),
            gib(self.need),
            gib(self.budget)
        )
    }
}

/// Makes room for `vm` in `budget`, suspending idle VMs when `evict` allows; what stays over
/// it when that is not enough (None: it fits).
fn make_room(
    state: &State,
    vm: &str,
    budget: u64,
    evict: bool,
    need: impl Fn(&[Holder]) -> u64,
) -> Result<Option<Over>> {
    loop {
        let others = holders(state, vm)?;
        let need = need(&others);
        let total: u64 = others.iter().map(|h| h.held).sum();
        if total + need <= budget {
            return Ok(None);
        }
        // Evict only when suspending every idle VM would make the room: never for nothing.
        let reclaimable: u64 = idle(&others).map(|h| h.held.saturating_sub(h.after)).sum();
        if evict
            && total.saturating_sub(reclaimable) + need <= budget
            && let Some(victim) = pick_idle(&others)
        {
            let b = backend::select(victim.owner.backend, state)?;
            output::info(format!(
                "over the memory budget: suspending {} ({}, idle {}) to make room for {vm}",
                victim.vm,
                gib(victim.held),
                idle_text(victim.last_active)
            ));
            suspend::suspend(state, b.as_ref(), &victim.vm, "evicted")?;
            continue;
        }
        return Ok(Some(Over {
            budget,
            total,
            need,
            others,
        }));
    }
}

/// Admits `vm` (about to be created or started) or says why not; evicts idle VMs when
/// `vm.evict` is on; `force` proceeds over budget with a warning.
pub(crate) fn admit(ctx: &Ctx, vm: &str, force: bool) -> Result<()> {
    let Some(budget) = budget(&ctx.cfg) else {
        return Ok(());
    };
    let names = crate::registry::load(&ctx.state)?;
    let owner_repo = names.get(vm).map(|o| o.repo.as_str());
    let evict = ctx.cfg.evict && !force;
    let Some(over) = make_room(&ctx.state, vm, budget, evict, |o| need(ctx, owner_repo, o))? else {
        return Ok(());
    };
    if force {
        output::warn(format!(
            "over the memory budget ({}): going on as --force asks",
            over.sum(vm)
        ));
        return Ok(());
    }
    Err(refusal(vm, &over, ctx.cfg.evict, Verb::Start))
}

/// Before a suspended VM is woken: a wake that takes memory (a stopped Colima VM started
/// again; a frozen worktree still holds its memory) is admitted as `up` admits a start, idle
/// VMs evicted when its `vm.evict` is on. What cannot be known (its owner, its config) lets
/// the wake go on: a VM is never kept asleep on a guess.
pub(crate) fn admit_wake(state: &State, b: &dyn Backend, vm: &str, waker: Waker) -> Result<()> {
    if !b.reserves_memory() || b.freezes_processes() {
        return Ok(());
    }
    let Some(owner) = crate::registry::load(state)
        .ok()
        .and_then(|n| n.get(vm).cloned())
    else {
        return Ok(());
    };
    let cfg = match Config::load(&owner.root, state) {
        Ok(cfg) => cfg,
        Err(e) => {
            output::detail(format!(
                "waking {vm}: its config is not readable, so no budget check: {e:#}"
            ));
            return Ok(());
        }
    };
    let Some(budget) = budget(&cfg) else {
        return Ok(());
    };
    let need = b
        .info(vm)
        .ok()
        .and_then(|i| i.memory_bytes)
        .unwrap_or(cfg.memory * GIB);
    let force = waker == Waker::Command { force: true };
    let over = match make_room(state, vm, budget, cfg.evict && !force, |_| need) {
        Ok(None) => return Ok(()),
        Ok(Some(over)) => over,
        // A failed eviction fails a command, never a connection.
        Err(e) if waker == Waker::Tunnel => {
            output::warn(format!("making room for {vm}: {e:#}"));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let sum = over.sum(vm);
    match waker {
        Waker::Command { force: false } => Err(refusal(vm, &over, cfg.evict, Verb::Resume)),
        Waker::Command { force: true } => {
            output::warn(format!(
                "over the memory budget ({sum}): resuming {vm} as --force asks"
            ));
            Ok(())
        }
        Waker::Tunnel => {
            output::warn(format!(
                "resuming {vm} for a tunnel connection over the memory budget ({sum}): a connection is never refused; free room with `git vmoat suspend` or `git vmoat down` in another worktree{}",
                if cfg.evict {
                    ""
                } else {
                    ", or set vm.evict = true to suspend idle VMs by itself"
                }
            ));
            Ok(())
        }
    }
}

/// A VM unused for this long, running no git-vmoat command, may be evicted.
const EVICT_IDLE: Duration = Duration::from_secs(60);

/// The running VMs that may be evicted: no git-vmoat command runs in them and nothing used
/// them (tunnel traffic or open connections, commands) for `EVICT_IDLE`.
fn idle(others: &[Holder]) -> impl Iterator<Item = &Holder> {
    others.iter().filter(|h| {
        h.state == VmState::Running
            && !h.busy
            && h.last_active
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_none_or(|d| d >= EVICT_IDLE)
    })
}

/// The least recently active of the idle VMs.
fn pick_idle(others: &[Holder]) -> Option<&Holder> {
    idle(others).min_by_key(|h| h.last_active.unwrap_or(SystemTime::UNIX_EPOCH))
}

/// What was refused, for the refusal's words.
#[derive(Clone, Copy)]
enum Verb {
    /// `up` or `provision` of a new or stopped VM.
    Start,
    /// A command waking a suspended VM.
    Resume,
}

fn refusal(vm: &str, over: &Over, evict: bool, verb: Verb) -> anyhow::Error {
    let (doing, force) = match verb {
        Verb::Start => ("starting", "pass --force"),
        Verb::Resume => (
            "resuming",
            "resume it anyway with `git vmoat resume --force`",
        ),
    };
    let mut msg = format!(
        "{doing} {vm} would exceed the memory budget: {} held by running VMs + {} for {vm} > {} (vm.budget)",
        gib(over.total),
        gib(over.need),
        gib(over.budget)
    );
    let mut rows: Vec<&Holder> = over.others.iter().filter(|h| h.held > 0).collect();
    rows.sort_by_key(|h| std::cmp::Reverse(h.held));
    for h in rows {
        msg.push_str(&format!(
            "\n  {:<24} {:>9}  {:<9}  idle {:<8}  {}",
            h.vm,
            gib(h.held),
            h.state.to_string(),
            if h.busy {
                "no (busy)".to_string()
            } else {
                idle_text(h.last_active)
            },
            h.owner.root.display()
        ));
    }
    let evict_note = if over.others.is_empty() {
        "this VM alone is over it: lower vm.memory or raise vm.budget; "
    } else if evict {
        "suspending the idle VMs would not make the room; "
    } else {
        ""
    };
    hint(
        msg,
        format!(
            "{evict_note}free room with `git vmoat suspend` or `git vmoat down` in one of those worktrees,{} raise vm.budget, or {force}",
            if evict {
                ""
            } else {
                " set vm.evict = true (in your own config) to suspend idle ones by itself,"
            }
        ),
    )
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB as f64)
}

fn idle_text(last: Option<SystemTime>) -> String {
    match last.and_then(|t| SystemTime::now().duration_since(t).ok()) {
        Some(d) => output::duration(Duration::from_secs(d.as_secs())),
        None => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(vm: &str, state: VmState, busy: bool, ago: Option<u64>) -> Holder {
        Holder {
            vm: vm.into(),
            owner: serde_json::from_str(r#"{"repo":"r","worktree":"w","root":"/r","common":"/r/.git","backend":"netns","prefix":"wt-","created":0}"#).unwrap(),
            state,
            held: GIB,
            used: GIB,
            after: 0,
            last_active: ago.map(|s| SystemTime::now() - Duration::from_secs(s)),
            busy,
        }
    }

    #[test]
    fn the_least_recently_active_idle_running_vm_is_evicted() {
        let vms = [
            holder("busy", VmState::Running, true, Some(9999)),
            holder("recent", VmState::Running, false, Some(10)),
            holder("a_minute_ago", VmState::Running, false, Some(59)),
            holder("old", VmState::Running, false, Some(600)),
            holder("asleep", VmState::Suspended, false, Some(99999)),
        ];
        assert_eq!(pick_idle(&vms).unwrap().vm, "old");
        assert!(pick_idle(&vms[..1]).is_none(), "a busy VM is never evicted");
    }

    #[test]
    fn the_refusal_lists_the_vms_and_what_frees_room() {
        let vms = [holder("wt-a", VmState::Running, false, Some(120))];
        let over = Over {
            budget: 2 * GIB,
            total: GIB,
            need: 2 * GIB,
            others: vms.to_vec(),
        };
        let text = crate::output::error_text(&refusal("wt-b", &over, false, Verb::Start));
        for want in [
            "wt-a",
            "1.0 GiB",
            "2.0 GiB",
            "idle 2m00s",
            "git vmoat suspend",
            "--force",
        ] {
            assert!(text.contains(want), "{want} missing in {text}");
        }
    }
}
