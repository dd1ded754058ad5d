//! Snapshots: copies of a worktree's volumes kept in its own VM beside them (say, before a
//! risky migration), restored over them later. A snapshot volume is `git-vmoat-snap.<name>.<volume>`,
//! labelled with both, so it is never mistaken for the stack's.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;

use super::{Volume, copy};
use crate::backend::copy_guard as guard;
use crate::context::Ctx;
use crate::error::hint;

const PREFIX: &str = "git-vmoat-snap.";
/// The snapshot a volume belongs to.
const SNAP: &str = "git-vmoat.snapshot";
/// The volume it is a copy of.
const OF: &str = "git-vmoat.volume";
/// That volume's own labels (JSON), to make it again if it was removed since.
const LABELS: &str = "git-vmoat.labels";

/// A snapshot's volumes: the name of the volume each copies, and the copy.
pub type Snapshot = Vec<(String, Volume)>;
/// A VM's snapshots by name.
pub type Snapshots = BTreeMap<String, Snapshot>;

/// The snapshots among a VM's volumes.
pub fn of(volumes: &[Volume]) -> Snapshots {
    let mut out = Snapshots::new();
    for v in volumes {
        if let (Some(s), Some(of)) = (v.labels.get(SNAP), v.labels.get(OF)) {
            out.entry(s.clone())
                .or_default()
                .push((of.clone(), v.clone()));
        }
    }
    out
}

/// The stack's own volumes (named ones, not git-vmoat's).
pub fn stack(volumes: &[Volume]) -> Vec<Volume> {
    volumes
        .iter()
        .filter(|v| !v.is_ours() && !v.is_anonymous())
        .cloned()
        .collect()
}

/// Refuses a snapshot name that could not be a volume name part.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        return Ok(());
    }
    Err(hint(
        format!("`{name}` is not a valid snapshot name"),
        "use letters, digits, - and _ (up to 64, starting with a letter or digit), e.g. before-migration",
    ))
}

/// Copies every stack volume of the VM into snapshot `name`, its users paused meanwhile.
/// Returns the volumes copied, their size and how long the containers were paused.
pub fn snapshot(ctx: &Ctx, vm: &str, name: &str) -> Result<(Vec<String>, u64, Duration)> {
    check_name(name)?;
    let b = ctx.backend.as_ref();
    let all = super::volumes(b, vm)?;
    if of(&all).contains_key(name) {
        return Err(hint(
            format!("snapshot {name} exists already; nothing was copied"),
            format!("pick another name, or remove it first: `git vmoat data rm {name}`"),
        ));
    }
    let vols = stack(&all);
    if vols.is_empty() {
        return Err(hint(
            format!("VM {vm} has no volumes to snapshot"),
            "start the stack first (`git vmoat up`); see `git vmoat data ls`",
        ));
    }
    let names: Vec<String> = vols.iter().map(|v| v.name.clone()).collect();
    let dirs: Vec<String> = vols.iter().map(|v| v.mountpoint.clone()).collect();
    let bytes = copy::sizes(b, vm, &dirs).iter().sum();
    super::clone::check_space(ctx, vm, bytes, "no snapshot was made")?;
    let mut making = guard::making(&ctx.state, b, vm)?;
    let copies: Vec<String> = vols
        .iter()
        .map(|v| format!("{PREFIX}{name}.{}", v.name))
        .collect();
    // All or nothing: every copy is recorded as half made until the last one is whole, so an
    // error, Ctrl-C or kill midway leaves no snapshot that looks complete.
    for snap in &copies {
        making.start(snap)?;
    }
    let paused = guard::pause(&ctx.state, b, vm, &names)?;
    for (v, snap) in vols.iter().zip(&copies) {
        let mut labels = BTreeMap::new();
        labels.insert(SNAP.to_string(), name.to_string());
        labels.insert(OF.to_string(), v.name.clone());
        labels.insert(
            LABELS.to_string(),
            serde_json::to_string(&v.stack_labels())?,
        );
        let copy = super::create(b, vm, snap, &labels)?;
        copy::replace_in_vm(b, vm, &v.mountpoint, &copy.mountpoint)
            .map_err(|e| super::clone::disk_full(e, vm))?;
    }
    making.finish_all(&copies)?;
    Ok((names, bytes, paused.release()))
}

/// The snapshot `name`, or an error listing the ones there are.
fn find(ctx: &Ctx, vm: &str, name: &str) -> Result<(Vec<Volume>, Snapshot)> {
    check_name(name)?;
    let all = super::volumes(ctx.backend.as_ref(), vm)?;
    let mut snaps = of(&all);
    match snaps.remove(name) {
        Some(s) => Ok((all, s)),
        None => Err(hint(
            format!("VM {vm} has no snapshot {name}; nothing was changed"),
            if snaps.is_empty() {
                "make one with `git vmoat data snapshot NAME`".to_string()
            } else {
                format!(
                    "its snapshots: {} (`git vmoat data ls`)",
                    snaps.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            },
        )),
    }
}

/// Puts snapshot `name` back over the volumes it copied: their containers are stopped for it
/// and started again. Each volume's files are replaced whole (copied beside, then renamed).
pub fn restore(ctx: &Ctx, vm: &str, name: &str) -> Result<Vec<String>> {
    let (all, snap) = find(ctx, vm, name)?;
    let b = ctx.backend.as_ref();
    let targets: Vec<String> = snap.iter().map(|(of, _)| of.clone()).collect();
    let stopped = super::clone::stop_users(ctx, vm, &targets)?;
    let restored = (|| -> Result<()> {
        let mut making = guard::making(&ctx.state, b, vm)?;
        for (of, copy) in &snap {
            let target = match all.iter().find(|v| &v.name == of) {
                Some(t) => t.clone(),
                None => {
                    let labels: BTreeMap<String, String> = copy
                        .labels
                        .get(LABELS)
                        .and_then(|l| serde_json::from_str(l).ok())
                        .unwrap_or_default();
                    making.start(of)?;
                    super::create(b, vm, of, &labels)?
                }
            };
            copy::replace_in_vm(b, vm, &copy.mountpoint, &target.mountpoint)?;
            making.finish(of)?;
        }
        Ok(())
    })();
    super::clone::start_again(ctx, vm, &stopped);
    restored?;
    for of in &targets {
        let origin = super::Origin {
            from: format!("snapshot {name}"),
            volume: format!("{PREFIX}{name}.{of}"),
            at: crate::backend::suspend::now_secs(),
            bytes: 0,
        };
        let _ = super::note_origin(&ctx.state, vm, of, origin);
    }
    Ok(targets)
}

/// Deletes snapshot `name`.
pub fn remove(ctx: &Ctx, vm: &str, name: &str) -> Result<usize> {
    let (_, snap) = find(ctx, vm, name)?;
    for (_, v) in &snap {
        super::remove(ctx.backend.as_ref(), vm, &v.name)?;
    }
    Ok(snap.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_are_checked() {
        assert!(check_name("before-migration_2").is_ok());
        for bad in ["", "-x", "a.b", "a b", "ä", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn snapshots_are_grouped_and_never_stack_volumes() {
        let v = |name: &str, labels: &[(&str, &str)]| Volume {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            mountpoint: String::new(),
        };
        let all = [
            v("pgdata", &[]),
            v(&"a".repeat(64), &[]),
            v("git-vmoat-snap.s1.pgdata", &[(SNAP, "s1"), (OF, "pgdata")]),
        ];
        let snaps = of(&all);
        assert_eq!(snaps["s1"][0].0, "pgdata");
        let names: Vec<String> = stack(&all).into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["pgdata"]);
    }
}
