//! `doctor`'s checks: one finding each, with how to fix it. Backends answer their own checks
//! through `Backend::checks`, so doctor knows no backend by name.

use serde::Serialize;

use crate::exec::{self, Cmd};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    /// Blocks `up`: doctor exits 1.
    Fail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    #[serde(rename = "status")]
    pub level: Level,
    pub detail: String,
    /// Empty when there is nothing to fix.
    pub fix: String,
}

impl Check {
    pub fn new(
        name: &'static str,
        level: Level,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name,
            level,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    pub fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, Level::Ok, detail, "")
    }
}

/// What a backend's checks need to know from the rest of doctor.
pub struct Scope<'a> {
    /// The backend `up` would use here (from the config or --backend), when known; None: `auto`
    /// with nothing decided yet.
    pub chosen: Option<&'a str>,
}

/// The first line a tool prints for its version (None: not on PATH or it failed to run).
pub fn version_of(program: &str, args: &[&str]) -> Option<String> {
    if !exec::on_path(program) {
        return None;
    }
    let out = Cmd::new(program).args(args).output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines().next().map(|l| l.trim().to_string())
}

/// The first `x.y[.z]` in a version line.
pub fn parse_version(line: &str) -> Option<(u64, u64, u64)> {
    line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.contains('.'))
        .and_then(|w| {
            let mut it = w.split('.').map(|p| p.parse::<u64>().ok());
            Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_parse_from_tool_output() {
        assert_eq!(super::parse_version("git version 2.47.3"), Some((2, 47, 3)));
        assert_eq!(
            super::parse_version("colima version v0.10.3"),
            Some((0, 10, 3))
        );
        assert_eq!(
            super::parse_version("limactl version 2.2.0"),
            Some((2, 2, 0))
        );
        assert_eq!(super::parse_version("nothing"), None);
    }
}
