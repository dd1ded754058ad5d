//! The key table: every configuration key once, with its legacy name, type, default, doc line,
//! example and value check. Parsing, defaults, `init`, `config --json` and the README's key
//! table all derive from it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The value type of a key.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Bool,
    Str,
    UInt { min: u64, max: u64 },
    StrList,
    PortList,
}

/// What a key is worth when no file sets it.
#[derive(Clone, Copy, Debug)]
pub enum KeyDefault {
    /// No value.
    Unset,
    /// No value; `load` infers one from the project's files (the up command).
    Detected,
    Bool(bool),
    UInt(u64),
    Str(&'static str),
    /// An empty list of the key's kind.
    Empty,
    /// The user's home directory.
    Home,
    /// A value on macOS only (Colima's fast path there); elsewhere Colima decides.
    MacOs(&'static str),
}

/// A check on the merged value, beyond its type; its message follows "`key` ".
#[derive(Clone, Copy, Debug)]
pub enum Check {
    None,
    /// One of these words (an empty string means unset and passes).
    OneOf(&'static [&'static str]),
    /// A usable VM name prefix.
    Prefix,
    /// An absolute path once `~` is expanded.
    AbsPath,
    /// Every item an apt package name.
    AptNames,
    /// An http(s) URL.
    HttpUrl,
    /// A duration (`90s`, `30m`, `2h`, `1d`) or `never`.
    Duration,
}

/// One configuration key.
pub struct KeyDef {
    /// Its TOML path, `section.leaf` or a top-level name.
    pub key: &'static str,
    /// Its variable name in the legacy shell file.
    pub legacy: &'static str,
    pub kind: Kind,
    pub default: KeyDefault,
    /// One line for `init`'s template, converted files and `config --json`.
    pub doc: &'static str,
    /// A TOML value shown (commented out) in `init`'s template.
    pub example: &'static str,
    pub check: Check,
}

/// `vm.stop-timeout` unless configured: short, since `down` keeps the disk and a stack that
/// ignores SIGTERM would otherwise hold it for docker's 10 s per container.
pub const DEFAULT_STOP_TIMEOUT: u64 = 5;

const fn key(key: &'static str, legacy: &'static str, kind: Kind) -> KeyDef {
    KeyDef {
        key,
        legacy,
        kind,
        default: KeyDefault::Unset,
        doc: "",
        example: "",
        check: Check::None,
    }
}

// Builder steps, so each table row reads as one sentence.
impl KeyDef {
    const fn default(self, default: KeyDefault) -> Self {
        Self { default, ..self }
    }
    const fn doc(self, doc: &'static str, example: &'static str) -> Self {
        Self {
            doc,
            example,
            ..self
        }
    }
    const fn check(self, check: Check) -> Self {
        Self { check, ..self }
    }
}

const fn uint(min: u64, max: u64) -> Kind {
    Kind::UInt { min, max }
}

/// Every key, in the order `config` and `init` show them; a section's keys stay together.
pub const KEYS: &[KeyDef] = &[
    key("backend", "VM_BACKEND", Kind::Str)
        .default(KeyDefault::Str("auto"))
        .doc(
            "VM backend: auto, colima or netns (Linux, root)",
            "\"auto\"",
        )
        .check(Check::OneOf(&crate::backend::KINDS)),
    key("vm.prefix", "VM_PREFIX", Kind::Str)
        .default(KeyDefault::Str("wt-"))
        .doc("VM name prefix", "\"wt-\"")
        .check(Check::Prefix),
    key("vm.cpus", "VM_CPU", uint(1, 1024))
        .default(KeyDefault::UInt(4))
        .doc("CPU cores of a new VM", "4"),
    key("vm.memory", "VM_MEMORY", uint(1, 4096))
        .default(KeyDefault::UInt(8))
        .doc("GiB of RAM of a new VM", "8"),
    key("vm.disk", "VM_DISK", uint(1, 65536))
        .default(KeyDefault::UInt(60))
        .doc("GiB of disk of a new VM", "60"),
    key("vm.type", "VM_TYPE", Kind::Str)
        .default(KeyDefault::MacOs("vz"))
        .doc("Colima VM type: vz, qemu or krunkit (macOS only)", "\"vz\"")
        .check(Check::OneOf(&["vz", "qemu", "krunkit"])),
    key("vm.mount-type", "MOUNT_TYPE", Kind::Str)
        .default(KeyDefault::MacOs("virtiofs"))
        .doc("Colima mount type: virtiofs, sshfs or 9p", "\"virtiofs\"")
        .check(Check::OneOf(&["virtiofs", "sshfs", "9p"])),
    key("vm.mount", "VM_MOUNT", Kind::Str)
        .default(KeyDefault::Home)
        .doc(
            "host dir mounted writable in the VM; must hold the worktree",
            "\"~\"",
        )
        .check(Check::AbsPath),
    key("vm.stop-timeout", "VM_STOP_TIMEOUT", uint(0, 3600))
        .default(KeyDefault::UInt(DEFAULT_STOP_TIMEOUT))
        .doc(
            "seconds `down` gives running containers to stop before killing them",
            "5",
        ),
    key("vm.suspend-after", "VM_SUSPEND_AFTER", Kind::Str)
        .default(KeyDefault::Str("30m"))
        .doc(
            "idle time (no CPU use, command, tunnel traffic or file change) after which the watcher suspends the VM: 90s, 30m, 2h; \"never\"",
            "\"30m\"",
        )
        .check(Check::Duration),
    key("vm.budget", "VM_BUDGET", uint(0, 65536))
        .default(KeyDefault::UInt(0))
        .doc(
            "GiB of RAM all running VMs together may hold; 0: this machine's RAM minus vm.reserve",
            "16",
        ),
    key("vm.reserve", "VM_RESERVE", uint(0, 65536))
        .default(KeyDefault::UInt(2))
        .doc(
            "GiB of RAM kept for the host when vm.budget is 0",
            "4",
        ),
    key("vm.evict", "VM_EVICT", Kind::Bool)
        .default(KeyDefault::Bool(false))
        .doc(
            "over budget, suspend the least recently active idle VM instead of refusing",
            "true",
        ),
    key("provision.apt", "PROVISION_APT", Kind::StrList)
        .default(KeyDefault::Empty)
        .doc(
            "apt packages installed in the VM",
            "[\"postgresql-client\"]",
        )
        .check(Check::AptNames),
    key("provision.script", "PROVISION_SCRIPT", Kind::Str)
        .doc("shell run in the VM after apt", "\"./scripts/setup-vm.sh\""),
    key("provision.seed", "PROVISION_SEED", Kind::StrList)
        .default(KeyDefault::Empty)
        .doc(
            "gitignored paths copied from the main checkout",
            "[\".env.keys\"]",
        ),
    key("commands.up", "CMD_UP", Kind::Str)
        .default(KeyDefault::Detected)
        .doc(
            "starts the stack (run in the VM, in the worktree)",
            "\"docker compose up -d\"",
        ),
    key("commands.test", "CMD_TEST", Kind::Str).doc(
        "runs the tests; `test` appends its arguments",
        "\"npm test\"",
    ),
    key("health.url", "HEALTH_URL", Kind::Str)
        .doc(
            "polled inside the VM after up until it answers 2xx",
            "\"http://localhost:8080/health\"",
        )
        .check(Check::HttpUrl),
    key("health.timeout", "HEALTH_TIMEOUT", uint(1, 604_800))
        .default(KeyDefault::UInt(1800))
        .doc("seconds to wait for health", "1800"),
    key("tunnel.ports", "EXPOSE_PORTS", Kind::PortList)
        .default(KeyDefault::Empty)
        .doc("guest ports `tunnel` forwards", "[8080]"),
    key("warm.enabled", "VM_WARM", Kind::Bool)
        .default(KeyDefault::Bool(true))
        .doc(
            "copy the stack's images from a sibling worktree's VM before up",
            "true",
        ),
    key("warm.images", "WARM_IMAGES", Kind::StrList)
        .default(KeyDefault::Empty)
        .doc(
            "images to copy (default: `docker compose config --images`)",
            "[\"myapp-web\", \"postgres:16\"]",
        ),
];

pub fn key_def(key: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|d| d.key == key)
}

/// The TOML tables, in table order.
pub fn sections() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = vec![];
    for d in KEYS {
        if let Some((sec, _)) = d.key.split_once('.')
            && !out.contains(&sec)
        {
            out.push(sec);
        }
    }
    out
}

/// The last part of a key: its name inside its table.
pub fn leaf(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// A configured value.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Val {
    Bool(bool),
    Str(String),
    UInt(u64),
    List(Vec<String>),
    Ports(Vec<u16>),
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v: toml::Value = match self {
            Val::Bool(b) => toml::Value::Boolean(*b),
            Val::Str(s) => toml::Value::String(s.clone()),
            Val::UInt(n) => toml::Value::Integer(*n as i64),
            Val::List(l) => {
                toml::Value::Array(l.iter().cloned().map(toml::Value::String).collect())
            }
            Val::Ports(p) => toml::Value::Array(
                p.iter()
                    .map(|n| toml::Value::Integer(i64::from(*n)))
                    .collect(),
            ),
        };
        write!(f, "{v}")
    }
}

impl KeyDef {
    /// The value this key has when no file sets it, on this machine.
    pub fn default_value(&self, home: &Path) -> Option<Val> {
        match self.default {
            KeyDefault::Unset | KeyDefault::Detected => None,
            KeyDefault::Bool(b) => Some(Val::Bool(b)),
            KeyDefault::UInt(n) => Some(Val::UInt(n)),
            KeyDefault::Str(s) => Some(Val::Str(s.into())),
            KeyDefault::Empty => Some(match self.kind {
                Kind::PortList => Val::Ports(vec![]),
                _ => Val::List(vec![]),
            }),
            KeyDefault::Home => Some(Val::Str(home.to_string_lossy().into_owned())),
            KeyDefault::MacOs(s) => cfg!(target_os = "macos").then(|| Val::Str(s.into())),
        }
    }

    /// The default as documented (README's table, `config --json`): the same on every machine.
    pub fn default_doc(&self) -> String {
        let lit = |s: &str| toml::Value::String(s.into()).to_string();
        match self.default {
            KeyDefault::Unset => "unset".into(),
            KeyDefault::Detected => "detected".into(),
            KeyDefault::Bool(b) => b.to_string(),
            KeyDefault::UInt(n) => n.to_string(),
            KeyDefault::Str(s) => lit(s),
            KeyDefault::Empty => "[]".into(),
            KeyDefault::Home => lit("~"),
            KeyDefault::MacOs(s) => format!("macOS {}, else unset", lit(s)),
        }
    }
}

impl Check {
    /// Ok, or why `value` is wrong, worded to follow "`key` ".
    pub fn run(self, value: &Val, home: &Path) -> Result<(), String> {
        match (self, value) {
            (Check::OneOf(words), Val::Str(s)) if !s.is_empty() && !words.contains(&s.as_str()) => {
                Err(format!("is `{s}`; use {}", one_of(words)))
            }
            (Check::Prefix, Val::Str(s)) => crate::naming::check_prefix(s),
            (Check::AbsPath, Val::Str(s))
                if !s.is_empty() && !expand_home(s, home).is_absolute() =>
            {
                Err(format!("is `{s}`; it must be an absolute path"))
            }
            (Check::AptNames, Val::List(l)) => match l.iter().find(|p| !is_apt_name(p)) {
                Some(bad) => Err(format!("has `{bad}`, which is not an apt package name")),
                None => Ok(()),
            },
            (Check::HttpUrl, Val::Str(u))
                if !(u.is_empty() || u.starts_with("http://") || u.starts_with("https://")) =>
            {
                Err(format!("is `{u}`; it must start with http:// or https://"))
            }
            (Check::Duration, Val::Str(d)) if parse_duration(d).is_none() => Err(format!(
                "is `{d}`; use a number with a unit (90s, 30m, 2h, 1d) or \"never\""
            )),
            _ => Ok(()),
        }
    }
}

/// `90s`, `30m`, `2h`, `1d` → Some(Some(d)); `never` or `0` → Some(None); else None.
pub fn parse_duration(s: &str) -> Option<Option<std::time::Duration>> {
    let s = s.trim();
    if s == "never" || s == "0" {
        return Some(None);
    }
    let unit = s.chars().last()?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        'd' => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0).then(|| Some(std::time::Duration::from_secs(secs)))
}

/// "a, b or c".
fn one_of(words: &[&str]) -> String {
    match words.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// `~` and `~/…` name the user's home; anything else is taken as written.
pub fn expand_home(p: &str, home: &Path) -> PathBuf {
    match p.strip_prefix('~') {
        Some("") => home.to_path_buf(),
        Some(rest) if rest.starts_with('/') => home.join(&rest[1..]),
        _ => PathBuf::from(p),
    }
}

fn is_apt_name(p: &str) -> bool {
    let mut chars = p.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.:=~".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_complete_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for d in KEYS {
            assert!(
                seen.insert(d.key) && seen.insert(d.legacy),
                "{} twice",
                d.key
            );
            assert!(!d.doc.is_empty() && !d.example.is_empty(), "{}", d.key);
        }
        // A section's keys stay together, so `init` writes each table once.
        let mut runs: Vec<&str> = KEYS
            .iter()
            .filter_map(|d| d.key.split_once('.').map(|(s, _)| s))
            .collect();
        runs.dedup();
        assert_eq!(runs, sections(), "a table's keys are split up");
    }

    #[test]
    fn every_example_and_default_is_a_valid_value_of_its_key() {
        let home = Path::new("/home/u");
        for d in KEYS {
            let doc = format!("{} = {}", leaf(d.key), d.example);
            let table: toml::Table = doc.parse().unwrap_or_else(|e| panic!("{doc}: {e}"));
            let v = super::super::toml::value_for_test(d.key, &table[leaf(d.key)])
                .unwrap_or_else(|e| panic!("{doc}: {e:#}"));
            d.check.run(&v, home).unwrap();
            if let Some(v) = d.default_value(home) {
                d.check.run(&v, home).unwrap();
            }
        }
    }

    #[test]
    fn checks_word_their_complaints() {
        let home = Path::new("/home/u");
        let str = |s: &str| Val::Str(s.into());
        assert_eq!(
            Check::OneOf(&["a", "b", "c"]).run(&str("d"), home),
            Err("is `d`; use a, b or c".into())
        );
        assert!(Check::OneOf(&["a"]).run(&str(""), home).is_ok());
        assert!(Check::AbsPath.run(&str("~/x"), home).is_ok());
        assert!(Check::AbsPath.run(&str("~x"), home).is_err());
        assert_eq!(expand_home("~/src", home), PathBuf::from("/home/u/src"));
        assert!(Check::HttpUrl.run(&str("https://x"), home).is_ok());
    }
}
