//! A worktree's data: the stack's named volumes, copied from a sibling worktree's VM before
//! `up` (its containers paused for a crash-consistent image), listed, copied again on demand,
//! and kept as snapshots beside the VM's own volumes.

pub mod clone;
pub mod copy;
pub mod snap;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::state::{State, files};

pub use clone::warm;

/// The compose label naming a volume's key in its compose file.
const COMPOSE_VOLUME: &str = "com.docker.compose.volume";
/// The compose label naming a volume's project.
const COMPOSE_PROJECT: &str = "com.docker.compose.project";

/// A volume as its daemon describes it.
#[derive(Clone, Debug)]
pub struct Volume {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Where its files are, in the VM.
    pub mountpoint: String,
}

impl Volume {
    /// Whether it is one of git-vmoat's own (a snapshot, or a copy on its way in).
    pub fn is_ours(&self) -> bool {
        self.labels.keys().any(|k| k.starts_with("git-vmoat."))
    }

    /// An unnamed volume (docker's 64-hex name): nothing could mount it by name in another VM.
    pub fn is_anonymous(&self) -> bool {
        self.name.len() == 64 && self.name.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// The labels without git-vmoat's own.
    pub fn stack_labels(&self) -> BTreeMap<String, String> {
        self.labels
            .iter()
            .filter(|(k, _)| !k.starts_with("git-vmoat."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Every volume of `vm`'s daemon.
pub fn volumes(b: &dyn Backend, vm: &str) -> Result<Vec<Volume>> {
    let out = b.docker(vm)?.args(["volume", "ls", "-q"]).checked()?;
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    if names.is_empty() {
        return Ok(vec![]);
    }
    let out = b
        .docker(vm)?
        .args(["volume", "inspect"])
        .args(&names)
        .checked()?;
    parse_inspect(&out.stdout).with_context(|| format!("reading the volumes of {vm}"))
}

fn parse_inspect(json: &[u8]) -> Result<Vec<Volume>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Raw {
        name: String,
        #[serde(default)]
        labels: Option<BTreeMap<String, String>>,
        #[serde(default)]
        mountpoint: String,
    }
    let raw: Vec<Raw> = serde_json::from_slice(json)?;
    Ok(raw
        .into_iter()
        .map(|r| Volume {
            name: r.name,
            labels: r.labels.unwrap_or_default(),
            mountpoint: r.mountpoint,
        })
        .collect())
}

/// Creates volume `name` with `labels`.
pub fn create(
    b: &dyn Backend,
    vm: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Volume> {
    let mut cmd = b.docker(vm)?.args(["volume", "create"]);
    for (k, v) in labels {
        cmd = cmd.arg("--label").arg(format!("{k}={v}"));
    }
    cmd.arg(name)
        .checked()
        .with_context(|| format!("creating volume {name} in {vm}"))?;
    let out = b.docker(vm)?.args(["volume", "inspect", name]).checked()?;
    parse_inspect(&out.stdout)?
        .pop()
        .with_context(|| format!("volume {name} vanished in {vm}"))
}

/// Removes volume `name` (it must be unused).
pub fn remove(b: &dyn Backend, vm: &str, name: &str) -> Result<()> {
    b.docker(vm)?
        .args(["volume", "rm", name])
        .checked()
        .with_context(|| format!("removing volume {name} in {vm}"))?;
    Ok(())
}

/// The named volumes `vm`'s containers mount (running or not), git-vmoat's own left out.
pub fn mounted(b: &dyn Backend, vm: &str) -> Result<Vec<String>> {
    let out = b.docker(vm)?.args(["ps", "-aq"]).checked()?;
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let out = b
        .docker(vm)?
        .args([
            "inspect",
            "--format",
            "{{if not (index .Config.Labels \"git-vmoat.copy\")}}{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}{{end}}",
        ])
        .args(&ids)
        .checked()?;
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|n| !(n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())))
        .map(String::from)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The volume of `have` that `key` names: the volume of that name, else the one compose made
/// for that key of its file (`<project>_<key>`).
pub fn find<'a>(have: &'a [Volume], key: &str) -> Option<&'a Volume> {
    let stack = || have.iter().filter(|v| !v.is_ours());
    if let Some(v) = stack().find(|v| v.name == key) {
        return Some(v);
    }
    let mut by_label =
        stack().filter(|v| v.labels.get(COMPOSE_VOLUME).map(String::as_str) == Some(key));
    let first = by_label.next()?;
    // Two projects with that key: which one is meant cannot be told.
    by_label.next().is_none().then_some(first)
}

/// The name and labels a copy of `src` gets in a VM whose compose project is `project`: a
/// compose volume is renamed to that project's (compose would make `<project>_<key>`),
/// anything else keeps its name.
pub fn target_of(src: &Volume, project: Option<&str>) -> (String, BTreeMap<String, String>) {
    let mut labels = src.stack_labels();
    if let (Some(p), Some(key), Some(old)) = (
        project,
        src.labels.get(COMPOSE_VOLUME),
        src.labels.get(COMPOSE_PROJECT),
    ) && src.name == format!("{old}_{key}")
    {
        let name = format!("{p}_{key}");
        labels.insert(COMPOSE_PROJECT.into(), p.to_string());
        return (name, labels);
    }
    (src.name.clone(), labels)
}

/// Where a volume came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Origin {
    /// The VM it was copied from, or `snapshot <name>`.
    pub from: String,
    /// The volume's name there.
    pub volume: String,
    /// When (seconds since the Unix epoch).
    pub at: u64,
    pub bytes: u64,
}

fn origins_rel(vm: &str) -> String {
    format!("{}/{vm}/{}", files::VMS_DIR, files::DATA_ORIGIN)
}

/// Where each of `vm`'s volumes came from (those it made itself are not listed).
pub fn origins(state: &State, vm: &str) -> BTreeMap<String, Origin> {
    state.read_json(&origins_rel(vm)).unwrap_or_default()
}

/// Records where `volume` of `vm` came from.
pub fn note_origin(state: &State, vm: &str, volume: &str, origin: Origin) -> Result<()> {
    state.update_json(&origins_rel(vm), |m: &mut BTreeMap<String, Origin>| {
        m.insert(volume.to_string(), origin);
        Ok(())
    })
}

/// The stack's volumes of a running VM and their total size: what goes when it is deleted.
pub fn holdings(b: &dyn Backend, vm: &str) -> Option<(usize, u64)> {
    let vols: Vec<Volume> = volumes(b, vm).ok()?;
    let dirs: Vec<String> = vols.iter().map(|v| v.mountpoint.clone()).collect();
    let total = copy::sizes(b, vm, &dirs).iter().sum();
    Some((vols.len(), total))
}

/// Bytes for people: 12.3 MiB.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(name: &str, labels: &[(&str, &str)]) -> Volume {
        Volume {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            mountpoint: format!("/d/{name}/_data"),
        }
    }

    #[test]
    fn a_key_finds_the_volume_of_that_name_else_the_compose_one() {
        let compose = [(COMPOSE_VOLUME, "pgdata"), (COMPOSE_PROJECT, "first")];
        let have = [
            vol("first_pgdata", &compose),
            vol("cache", &[]),
            vol("git-vmoat-snap.x.cache", &[("git-vmoat.snapshot", "x")]),
        ];
        assert_eq!(find(&have, "cache").unwrap().name, "cache");
        assert_eq!(find(&have, "pgdata").unwrap().name, "first_pgdata");
        assert!(find(&have, "nope").is_none());
        assert!(
            find(&have, "git-vmoat-snap.x.cache").is_none(),
            "never a snapshot"
        );
        let (name, labels) = target_of(&have[0], Some("second"));
        assert_eq!(name, "second_pgdata");
        assert_eq!(labels[COMPOSE_PROJECT], "second");
        assert_eq!(target_of(&have[1], Some("second")).0, "cache");
        assert_eq!(target_of(&have[0], None).0, "first_pgdata");
    }

    #[test]
    fn inspect_output_is_read_with_or_without_labels() {
        let json = br#"[{"Name":"a","Labels":null,"Mountpoint":"/x/a/_data"},{"Name":"b","Labels":{"k":"v"},"Mountpoint":"/x/b/_data"}]"#;
        let v = parse_inspect(json).unwrap();
        assert_eq!(v[0].name, "a");
        assert!(v[0].labels.is_empty());
        assert_eq!(v[1].labels["k"], "v");
        assert_eq!(v[1].mountpoint, "/x/b/_data");
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(1 << 30), "1.0 GiB");
    }
}
