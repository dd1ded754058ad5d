//! Pure parsers of Colima's and Lima's output (contract §3): `colima list --json` lines and the
//! version lines of `colima version` and `limactl --version`.

use anyhow::{Context, Result};
use serde::Deserialize;

/// One line of `colima list --json`; Colima omits every empty field.
#[derive(Deserialize, Default)]
pub(super) struct ListEntry {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub cpus: Option<u64>,
    #[serde(default)]
    pub memory: Option<u64>,
    #[serde(default)]
    pub disk: Option<u64>,
}

/// Every profile of `colima list --json` (JSON Lines; nothing at all when there are none).
pub(super) fn parse_list(text: &str) -> Result<Vec<ListEntry>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .with_context(|| format!("unexpected `colima list` output: {line}"))
        })
        .collect()
}

pub fn show_version(v: (u64, u64, u64)) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

/// The `list --json` line of profile `vm`. Before Colima 0.9.0 the profile argument is ignored
/// and every profile is listed, so the line is picked by name, never by position.
pub(super) fn pick_entry(text: &str, vm: &str) -> Result<Option<ListEntry>> {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let e: ListEntry = serde_json::from_str(line)
            .with_context(|| format!("unexpected `colima list` output: {line}"))?;
        if e.name == vm {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// The `x.y.z` of a version line: `colima version v0.10.3`, `limactl version 1.0.0`.
pub(super) fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let v = text
        .lines()
        .next()?
        .split_whitespace()
        .last()?
        .trim_start_matches('v');
    let mut it = v.split(['.', '-', '+']).map(|p| p.parse::<u64>().ok());
    Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::super::{MIN_LIMA_VERSION, MIN_VERSION};
    use super::*;
    use crate::backend::VmState;

    #[test]
    fn versions_parse() {
        assert_eq!(
            parse_version("colima version v0.10.3\ngit commit: x"),
            Some((0, 10, 3))
        );
        assert_eq!(parse_version("colima version 0.8.1"), Some((0, 8, 1)));
        assert_eq!(parse_version("colima version HEAD-abc"), None);
        assert!(parse_version("colima version v0.8.4").unwrap() < MIN_VERSION);
        // 0.9.x rejects --port-forwarder=none.
        assert!(parse_version("colima version v0.9.1").unwrap() < MIN_VERSION);
        assert!(parse_version("colima version v0.10.0").unwrap() >= MIN_VERSION);
        assert!(parse_version("limactl version 0.23.2").unwrap() < MIN_LIMA_VERSION);
        assert!(parse_version("limactl version 1.0.0").unwrap() >= MIN_LIMA_VERSION);
    }

    #[test]
    fn list_lines_are_picked_by_name() {
        // Colima < 0.9 lists every profile whatever the argument.
        let all = "{\"name\":\"default\",\"status\":\"Running\",\"cpus\":8}\n\
                   {\"name\":\"wt-a\",\"status\":\"Stopped\",\"cpus\":2}\n";
        let e = pick_entry(all, "wt-a").unwrap().unwrap();
        assert_eq!((e.status.as_str(), e.cpus), ("Stopped", Some(2)));
        assert!(pick_entry(all, "wt-b").unwrap().is_none());
        assert!(pick_entry("", "wt-a").unwrap().is_none());
        assert!(pick_entry("not json\n", "wt-a").is_err());
    }

    /// `colima list --json` as contract §3 gives it: JSON Lines, every field `omitempty`
    /// (a stopped profile has no address, a broken one may lack the runtime).
    const LIST: &str = r#"{"name":"default","status":"Running","arch":"aarch64","cpus":2,"memory":2147483648,"disk":107374182400,"address":"192.168.106.2","runtime":"docker"}
{"name":"wt-feat","status":"Stopped","arch":"aarch64","cpus":4,"memory":8589934592,"disk":64424509440,"runtime":"docker"}
{"name":"wt-odd","status":"Broken","arch":"x86_64"}
{"name":"wt-new"}
"#;

    #[test]
    fn a_full_list_parses_with_omitted_fields() {
        let all = parse_list(LIST).unwrap();
        let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["default", "wt-feat", "wt-odd", "wt-new"]);
        let feat = &all[1];
        assert_eq!(
            (feat.cpus, feat.memory, feat.disk),
            (Some(4), Some(8 << 30), Some(60 << 30))
        );
        let states: Vec<VmState> = all.iter().map(|e| VmState::from_lima(&e.status)).collect();
        assert_eq!(
            states,
            [
                VmState::Running,
                VmState::Stopped,
                VmState::Broken,
                VmState::Unknown
            ]
        );
        assert_eq!(all[3].cpus, None);
        // No profiles: the JSON form prints nothing at all.
        assert!(parse_list("").unwrap().is_empty());
        assert!(
            parse_list("NAME STATUS\n").is_err(),
            "the table form is not JSON"
        );
    }

    #[test]
    fn version_outputs_of_both_tools_parse() {
        // `colima version` with the profile running: the runtime block follows.
        let colima = "colima version v0.10.3\ngit commit: 1b0a4d0\n\nruntime: docker\narch: aarch64\nclient: v28.3.2\nserver: v28.3.2\n";
        assert_eq!(parse_version(colima), Some((0, 10, 3)));
        assert_eq!(parse_version("limactl version 2.2.0\n"), Some((2, 2, 0)));
        // Development builds: `limactl version 1.1.0-alpha.0-12-gabc`.
        assert_eq!(
            parse_version("limactl version 1.1.0-alpha.0-12-gabc"),
            Some((1, 1, 0))
        );
        assert_eq!(parse_version(""), None);
        assert_eq!(show_version((0, 10, 0)), "0.10.0");
    }
}
