//! RAM admission: before a VM is created or started, what the running VMs hold plus the new
//! one must fit the budget; over it, git-vmoat refuses (saying what frees room) or, with
//! `vm.evict`, suspends the least recently active idle VM.

use std::time::{Duration, SystemTime};

use anyhow::Result;

use crate::backend::{self, Backend, VmState, suspend};
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
pub(crate) fn budget(ctx: &Ctx) -> Option<u64> {
    if ctx.cfg.budget > 0 {
        return Some(ctx.cfg.budget * GIB);
    }
    let host = super::provision::host_ram_bytes()?;
    Some(host.saturating_sub(ctx.cfg.reserve * GIB))
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

/// Admits `vm` (about to be created or started) or says why not; evicts idle VMs when
/// `vm.evict` is on; `force` proceeds over budget with a warning.
pub(crate) fn admit(ctx: &Ctx, vm: &str, force: bool) -> Result<()> {
    let Some(budget) = budget(ctx) else {
        return Ok(());
    };
    let names = crate::registry::load(&ctx.state)?;
    let owner_repo = names.get(vm).map(|o| o.repo.as_str());
    loop {
        let others = holders(&ctx.state, vm)?;
        let need = need(ctx, owner_repo, &others);
        let total: u64 = others.iter().map(|h| h.held).sum();
        if total + need <= budget {
            return Ok(());
        }
        if force {
            output::warn(format!(
                "over the memory budget ({} held + {} for {vm} > {}): going on as --force asks",
                gib(total),
                gib(need),
                gib(budget)
            ));
            return Ok(());
        }
        // Evict only when suspending every idle VM would make the room: never for nothing.
        let reclaimable: u64 = idle(&others).map(|h| h.held.saturating_sub(h.after)).sum();
        if ctx.cfg.evict
            && total.saturating_sub(reclaimable) + need <= budget
            && let Some(victim) = pick_idle(&others)
        {
            let b = backend::select(victim.owner.backend, &ctx.state)?;
            output::info(format!(
                "over the memory budget: suspending {} ({}, idle {}) to make room for {vm}",
                victim.vm,
                gib(victim.held),
                idle_text(victim.last_active)
            ));
            suspend::suspend(&ctx.state, b.as_ref(), &victim.vm, "evicted")?;
            continue;
        }
        return Err(refusal(vm, budget, total, need, &others, ctx.cfg.evict));
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

fn refusal(
    vm: &str,
    budget: u64,
    total: u64,
    need: u64,
    others: &[Holder],
    evict: bool,
) -> anyhow::Error {
    let mut msg = format!(
        "starting {vm} would exceed the memory budget: {} held by running VMs + {} for {vm} > {} (vm.budget)",
        gib(total),
        gib(need),
        gib(budget)
    );
    let mut rows: Vec<&Holder> = others.iter().filter(|h| h.held > 0).collect();
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
    let evict_note = if others.is_empty() {
        "this VM alone is over it: lower vm.memory or raise vm.budget; "
    } else if evict {
        "suspending the idle VMs would not make the room; "
    } else {
        ""
    };
    hint(
        msg,
        format!(
            "{evict_note}free room with `git vmoat suspend` or `git vmoat down` in one of those worktrees,{} raise vm.budget, or pass --force",
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
        let text = crate::output::error_text(&refusal("wt-b", 2 * GIB, GIB, 2 * GIB, &vms, false));
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
