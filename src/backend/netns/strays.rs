//! Strays: netns objects (namespaces, processes, cgroups, runtime dirs, mounts, legacy rules)
//! whose VM record is gone, found machine-wide by id for `gc` to reclaim.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::daemon::{mountinfo, mounts_at_or_under, signal};
use super::net::{legacy_rules, remove_legacy_uplink, rule_comment_id};
use super::{Netns, OWNER, RUN_ROOT, cgroup};
use crate::exec::Cmd;
use crate::output;

/// A netns VM left on this machine after its record went (a deleted HOME, state dir or temp
/// dir): whatever of it remains, found by its machine-wide id.
#[derive(Serialize, Debug)]
pub struct Stray {
    pub id: String,
    /// The VM's data dir in the state dir that is gone, when anything recorded it.
    pub data_dir: Option<PathBuf>,
    /// What is left of it: namespace, processes, cgroups, runtime dir, mounts, veth, rules.
    pub objects: Vec<String>,
    pub reclaimed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A process as far as stray hunting cares: its argv and its network namespace.
struct Proc {
    pid: u32,
    args: Vec<String>,
    net_ns: Option<u64>,
}

fn processes() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let raw = std::fs::read(e.path().join("cmdline")).ok()?;
            let args = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            // `net:[4026532000]`: the namespace's inode, as stat of its /run/netns file gives.
            let net_ns = std::fs::read_link(e.path().join("ns/net"))
                .ok()
                .and_then(|l| {
                    l.to_str()?
                        .strip_prefix("net:[")?
                        .strip_suffix(']')?
                        .parse()
                        .ok()
                });
            Some(Proc { pid, args, net_ns })
        })
        .collect()
}

/// The value of `--flag value` or `--flag=value`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(name)?.strip_prefix('=')
        }
    })
}

/// A netns VM's dockerd: its id (from the exec root) and the VM's data dir (from the data root).
fn dockerd_of(p: &Proc) -> Option<(String, PathBuf)> {
    if Path::new(p.args.first()?).file_name()? != "dockerd" {
        return None;
    }
    let id = Path::new(flag(&p.args, "--exec-root")?)
        .strip_prefix(RUN_ROOT)
        .ok()?
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .to_string();
    let data = Path::new(flag(&p.args, "--data-root")?).parent()?;
    Some((id, data.to_path_buf()))
}

/// Everything running for `id`: its cgroup, its dockerd, and whatever is in its namespace
/// (a tunnel's forwarder is there without being in the cgroup).
fn pids_of(id: &str, procs: &[Proc]) -> Vec<u32> {
    let ns = rustix::fs::stat(Netns::netns_path(id))
        .ok()
        .map(|s| s.st_ino);
    let mut pids = cgroup::pids(id);
    pids.extend(procs.iter().filter_map(|p| {
        let mine = dockerd_of(p).is_some_and(|(d, _)| d == id)
            || (ns.is_some() && p.net_ns == ns && p.pid != std::process::id());
        mine.then_some(p.pid)
    }));
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Whether `path` is absent or older than a start takes: an earlier version's start makes the
/// runtime dir and namespace before anything that names the owner.
fn settled(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .map_or(true, |t| {
            t.elapsed().unwrap_or_default() > Duration::from_secs(120)
        })
}

/// The mount points under `dir`.
fn mounts_under(dir: &Path) -> usize {
    mounts_at_or_under(&mountinfo(), dir)
        .iter()
        .filter(|p| *p != dir)
        .count()
}

/// git-vmoat's netns objects on this machine whose VM record (`vm.json` in its state dir) no
/// longer exists. Ids come from runtime dirs, cgroups, dockerd command lines and the firewall
/// rules of earlier versions; the owner from the runtime dir's owner file or dockerd's data
/// root. With no owner known (left by an earlier version), only a namespace or runtime dir that
/// runs nothing and is older than a start, or firewall rules alone, count: a VM being made is
/// never taken, and one of a live state dir loses only what its next `up` makes again.
pub fn strays() -> Vec<Stray> {
    let procs = processes();
    let cgroups = cgroup::all();
    let dockerds: Vec<(String, PathBuf)> = procs.iter().filter_map(dockerd_of).collect();
    let rules = legacy_rules();
    let mut ids: std::collections::BTreeSet<String> = std::fs::read_dir(RUN_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.extend(cgroups.keys().cloned());
    ids.extend(dockerds.iter().map(|(id, _)| id.clone()));
    ids.extend(
        rules
            .iter()
            .filter_map(|(_, _, r)| rule_comment_id(r).map(String::from)),
    );
    let mut out = vec![];
    for id in ids {
        let run = Netns::run_dir(&id);
        let data = std::fs::read(run.join(OWNER))
            .ok()
            .map(|b| PathBuf::from(String::from_utf8_lossy(&b).trim()))
            .or_else(|| {
                dockerds
                    .iter()
                    .find(|(d, _)| *d == id)
                    .map(|(_, p)| p.clone())
            });
        let ns = Netns::netns_path(&id);
        let pids = pids_of(&id, &procs);
        let n_rules = rules
            .iter()
            .filter(|(_, _, r)| rule_comment_id(r) == Some(id.as_str()))
            .count();
        let stray = match &data {
            Some(d) => !d.join(crate::state::files::NETNS_META).exists(),
            // A lone empty cgroup is an earlier version's stopped VM: not taken.
            None => {
                pids.is_empty()
                    && if ns.exists() || run.exists() {
                        settled(&ns) && settled(&run)
                    } else {
                        n_rules > 0
                    }
            }
        };
        if !stray {
            continue;
        }
        let objects = objects_of(&id, &pids, cgroups.get(&id), data.as_deref(), n_rules);
        out.push(Stray {
            id,
            data_dir: data,
            objects,
            reclaimed: false,
            error: None,
        });
    }
    out
}

/// What is left of the netns VM `id`, for people: namespace, processes, cgroups, runtime dir,
/// mounts, legacy veth and firewall rules.
fn objects_of(
    id: &str,
    pids: &[u32],
    cgroup_dirs: Option<&Vec<PathBuf>>,
    data: Option<&Path>,
    n_rules: usize,
) -> Vec<String> {
    let run = Netns::run_dir(id);
    let ns = Netns::netns_path(id);
    let mut objects = vec![];
    if ns.exists() {
        objects.push(format!("namespace {}", ns.display()));
    }
    if !pids.is_empty() {
        let names: Vec<String> = pids
            .iter()
            .map(|pid| {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                format!("{} {pid}", comm.trim())
            })
            .collect();
        objects.push(format!("processes: {}", names.join(", ")));
    }
    if let Some(dirs) = cgroup_dirs {
        objects.push(format!(
            "cgroup {}/{id} ({} hierarchies)",
            cgroup::ROOT,
            dirs.len()
        ));
    }
    if run.exists() {
        objects.push(format!("runtime dir {}", run.display()));
    }
    let mounts = mounts_under(&run) + data.map_or(0, mounts_under);
    if mounts > 0 {
        objects.push(format!("{mounts} mounts"));
    }
    let veth = format!("vmo{}", crate::naming::short_hash(id, 8));
    if Path::new("/sys/class/net").join(&veth).exists() {
        objects.push(format!("veth {veth}"));
    }
    if n_rules > 0 {
        objects.push(format!("{n_rules} firewall rules"));
    }
    objects
}

/// Removes everything of a stray: its processes, mounts, namespace, runtime dir, cgroups,
/// legacy veth and rules, and what is left of its data dir.
pub fn reclaim(s: &Stray) -> Result<()> {
    let id = s.id.as_str();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = pids_of(id, &processes());
        if pids.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("processes {pids:?} of {id} would not die");
        }
        for pid in pids {
            signal(pid, rustix::process::Signal::KILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Netns::unmount_under(&Netns::run_dir(id))?;
    if let Some(d) = &s.data_dir {
        Netns::unmount_under(d)?;
    }
    remove_legacy_uplink(id);
    if Netns::netns_path(id).exists() {
        Cmd::new("ip").args(["netns", "delete", id]).checked()?;
    }
    let run = Netns::run_dir(id);
    if run.exists() {
        std::fs::remove_dir_all(&run).with_context(|| format!("removing {}", run.display()))?;
    }
    cgroup::remove(id);
    // Only a dir shaped like a VM's data dir (`…/netns/<vm>`, with `<vm>-<hash>` the id).
    if let Some(d) = &s.data_dir
        && d.parent().and_then(Path::file_name) == Some(crate::state::files::NETNS_DIR.as_ref())
        && d.file_name()
            .and_then(|v| v.to_str())
            .is_some_and(|v| id.strip_prefix(v).is_some_and(|h| h.starts_with('-')))
        && d.exists()
    {
        std::fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
    }
    Ok(())
}

/// `gc`'s part for this backend: lists the strays (root with the netns backend usable only),
/// reclaims them unless `dry_run`, and returns them for `--json`.
pub fn gc_strays(dry_run: bool) -> Vec<Stray> {
    if Netns::unusable().is_some() {
        return vec![];
    }
    let mut list = strays();
    if !list.is_empty() {
        output::info("strays (netns objects whose state dir is gone):");
    }
    for s in &mut list {
        let what = format!(
            "{} ({}): {}",
            s.id,
            s.data_dir
                .as_deref()
                .map_or("owner unknown".into(), |d| d.display().to_string()),
            s.objects.join("; ")
        );
        if dry_run {
            output::info(format!("  would reclaim {what}"));
            continue;
        }
        match reclaim(s) {
            Ok(()) => {
                s.reclaimed = true;
                output::info(format!("  reclaimed {what}"));
            }
            Err(e) => {
                output::warn(format!("could not reclaim {what}: {e:#}"));
                s.error = Some(format!("{e:#}"));
            }
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dockerd_command_line_gives_its_id_and_data_dir() {
        let p = Proc {
            pid: 1,
            args: [
                "/usr/sbin/dockerd",
                "--data-root",
                "/home/u/.local/state/git-vmoat/netns/wt-a/docker",
                "--exec-root=/run/git-vmoat/wt-a-1f2e/exec",
            ]
            .map(String::from)
            .to_vec(),
            net_ns: None,
        };
        assert_eq!(
            dockerd_of(&p),
            Some((
                "wt-a-1f2e".into(),
                PathBuf::from("/home/u/.local/state/git-vmoat/netns/wt-a")
            ))
        );
        let other = Proc {
            args: ["dockerd", "--exec-root", "/run/fake-colima/x/exec"]
                .map(String::from)
                .to_vec(),
            ..p
        };
        assert_eq!(dockerd_of(&other), None, "not ours");
    }
}
