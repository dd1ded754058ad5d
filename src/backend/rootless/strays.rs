//! Rootless strays: this user's VMs left running after their state dir was deleted (a removed
//! HOME or temp dir), found by rootlesskit's command line, which names both the VM's runtime
//! dir and its data root, for `gc` to reclaim.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{DIR, daemon, procs};
use crate::backend::netns::Stray;
use crate::output;

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

/// A VM's rootlesskit (parent) command line: (its runtime dir, its data dir).
fn dirs_of(args: &[String]) -> Option<(PathBuf, PathBuf)> {
    if Path::new(args.first()?).file_name()? != "rootlesskit" {
        return None;
    }
    let run = Path::new(flag(args, "--state-dir")?)
        .parent()?
        .to_path_buf();
    let data = Path::new(flag(args, "--data-root")?)
        .parent()?
        .to_path_buf();
    // Only what this backend starts: a data dir `…/rootless/<vm>`.
    (data.parent()?.file_name()? == DIR).then_some((run, data))
}

fn owned_by_me(pid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}"))
        .is_ok_and(|m| m.uid() == rustix::process::geteuid().as_raw())
}

/// This user's rootless VMs whose record (`vm.json` in the data dir) is gone.
fn strays() -> Vec<(u32, PathBuf, Stray)> {
    let mut out = vec![];
    for (pid, args) in crate::exec::processes() {
        let Some((run, data)) = dirs_of(&args) else {
            continue;
        };
        if !owned_by_me(pid) || data.join(crate::state::files::NETNS_META).exists() {
            continue;
        }
        let pids = procs::members(Some(pid), None, &run);
        let mut objects = vec![format!("{} processes", pids.len())];
        if run.exists() {
            objects.push(format!("runtime dir {}", run.display()));
        }
        let id = run
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        out.push((
            pid,
            run,
            Stray {
                id,
                data_dir: Some(data),
                objects,
                reclaimed: false,
                error: None,
            },
        ));
    }
    out
}

fn reclaim(parent: u32, run: &Path, s: &Stray) -> Result<()> {
    // Its tunnels' forwarders go too: their VM is gone.
    let all = || {
        let mut p = procs::members(Some(parent), None, run);
        p.extend(procs::naming(run));
        p
    };
    if !procs::kill_until_gone(all) {
        anyhow::bail!("processes of {} would not die", s.id);
    }
    daemon::remove_as_user(run)?;
    match &s.data_dir {
        Some(d) => daemon::remove_as_user(d),
        None => Ok(()),
    }
}

/// `gc`'s part for this backend: lists this user's strays, reclaims them unless `dry_run`.
pub fn gc_strays(dry_run: bool) -> Vec<Stray> {
    if super::unusable().is_some() {
        return vec![];
    }
    let found = strays();
    if !found.is_empty() {
        output::info("strays (rootless VMs whose state dir is gone):");
    }
    let mut list = vec![];
    for (parent, run, mut s) in found {
        let what = format!(
            "{} ({}): {}",
            s.id,
            s.data_dir.as_deref().unwrap_or(Path::new("")).display(),
            s.objects.join("; ")
        );
        if dry_run {
            output::info(format!("  would reclaim {what}"));
        } else {
            match reclaim(parent, &run, &s) {
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
        list.push(s);
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rootlesskit_command_line_gives_its_runtime_and_data_dirs() {
        let args: Vec<String> = [
            "rootlesskit",
            "--net=slirp4netns",
            "--state-dir=/run/user/1000/git-vmoat/0123456789ab/rk",
            "sh",
            "-c",
            "exec \"$@\"",
            "sh",
            "/usr/sbin/dockerd",
            "--data-root",
            "/home/u/.local/state/git-vmoat/rootless/wt-a/docker",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            dirs_of(&args),
            Some((
                PathBuf::from("/run/user/1000/git-vmoat/0123456789ab"),
                PathBuf::from("/home/u/.local/state/git-vmoat/rootless/wt-a")
            ))
        );
        let mut other = args.clone();
        other[9] = "/home/u/.local/share/docker".into();
        assert_eq!(dirs_of(&other), None, "not one of ours");
    }
}
