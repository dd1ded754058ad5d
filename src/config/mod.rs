//! Project configuration: native `vmoat.toml` + `vmoat.local.toml`, and the original tool's
//! shell files `vmoat.conf` + `vmoat.local.conf` (run by bash in a child, only once trusted).
//! Each effective value remembers where it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::hint;
use crate::exec::Cmd;
use crate::state::State;

/// The value type of a key.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Bool,
    Str,
    UInt { min: u64, max: u64 },
    StrList,
    PortList,
}

/// One configuration key: its TOML path, its name in the legacy shell file, and its meaning.
pub struct KeyDef {
    pub key: &'static str,
    pub legacy: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
}

const fn def(key: &'static str, legacy: &'static str, kind: Kind, doc: &'static str) -> KeyDef {
    KeyDef {
        key,
        legacy,
        kind,
        doc,
    }
}

/// Every key, in the order `config` and `init` show them.
pub const KEYS: &[KeyDef] = &[
    def(
        "backend",
        "VM_BACKEND",
        Kind::Str,
        "VM backend: auto, colima or netns (Linux, root)",
    ),
    def("vm.prefix", "VM_PREFIX", Kind::Str, "VM name prefix"),
    def(
        "vm.cpus",
        "VM_CPU",
        Kind::UInt { min: 1, max: 1024 },
        "CPU cores of a new VM",
    ),
    def(
        "vm.memory",
        "VM_MEMORY",
        Kind::UInt { min: 1, max: 4096 },
        "GiB of RAM of a new VM",
    ),
    def(
        "vm.disk",
        "VM_DISK",
        Kind::UInt { min: 1, max: 65536 },
        "GiB of disk of a new VM",
    ),
    def(
        "vm.type",
        "VM_TYPE",
        Kind::Str,
        "Colima VM type: vz, qemu or krunkit (macOS only)",
    ),
    def(
        "vm.mount-type",
        "MOUNT_TYPE",
        Kind::Str,
        "Colima mount type: virtiofs, sshfs or 9p",
    ),
    def(
        "vm.mount",
        "VM_MOUNT",
        Kind::Str,
        "host dir mounted writable in the VM; must hold the worktree",
    ),
    def(
        "vm.stop-timeout",
        "VM_STOP_TIMEOUT",
        Kind::UInt { min: 0, max: 3600 },
        "seconds `down` gives running containers to stop before killing them",
    ),
    def(
        "provision.apt",
        "PROVISION_APT",
        Kind::StrList,
        "apt packages installed in the VM",
    ),
    def(
        "provision.script",
        "PROVISION_SCRIPT",
        Kind::Str,
        "shell run in the VM after apt",
    ),
    def(
        "provision.seed",
        "PROVISION_SEED",
        Kind::StrList,
        "gitignored paths copied from the main checkout",
    ),
    def(
        "commands.up",
        "CMD_UP",
        Kind::Str,
        "starts the stack (run in the VM, in the worktree)",
    ),
    def(
        "commands.test",
        "CMD_TEST",
        Kind::Str,
        "runs the tests; `test` appends its arguments",
    ),
    def(
        "health.url",
        "HEALTH_URL",
        Kind::Str,
        "polled inside the VM after up until it answers 2xx",
    ),
    def(
        "health.timeout",
        "HEALTH_TIMEOUT",
        Kind::UInt {
            min: 1,
            max: 604_800,
        },
        "seconds to wait for health",
    ),
    def(
        "tunnel.ports",
        "EXPOSE_PORTS",
        Kind::PortList,
        "guest ports `tunnel` forwards",
    ),
    def(
        "warm.enabled",
        "VM_WARM",
        Kind::Bool,
        "copy the stack's images from a sibling worktree's VM before up",
    ),
    def(
        "warm.images",
        "WARM_IMAGES",
        Kind::StrList,
        "images to copy (default: `docker compose config --images`)",
    ),
];

const SECTIONS: [&str; 6] = ["vm", "provision", "commands", "health", "tunnel", "warm"];

/// Config file names, lowest precedence first: local beats shared, TOML beats shell.
pub const LEGACY_FILES: [&str; 2] = ["vmoat.conf", "vmoat.local.conf"];
pub const TOML_FILE: &str = "vmoat.toml";
pub const TOML_LOCAL_FILE: &str = "vmoat.local.toml";

pub fn key_def(key: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|d| d.key == key)
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

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    /// Inferred from a project file (the up command).
    Detected(String),
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Detected(file) => write!(f, "detected from {file}"),
            Source::File(p) => {
                write!(f, "{}", p.file_name().unwrap_or_default().to_string_lossy())
            }
        }
    }
}

/// The effective configuration of a worktree.
#[derive(Clone, Debug)]
pub struct Config {
    pub backend: String,
    pub prefix: String,
    pub cpus: u64,
    pub memory: u64,
    pub disk: u64,
    pub vm_type: Option<String>,
    pub mount_type: Option<String>,
    pub mount: PathBuf,
    /// Seconds containers get to stop before they are killed (`down`).
    pub stop_timeout: u64,
    pub apt: Vec<String>,
    pub script: Option<String>,
    pub seed: Vec<String>,
    pub up: Option<String>,
    pub test: Option<String>,
    pub health_url: Option<String>,
    pub health_timeout: u64,
    pub ports: Vec<u16>,
    pub warm: bool,
    pub warm_images: Vec<String>,
    /// Every key that has a value, with its source.
    pub values: BTreeMap<&'static str, (Val, Source)>,
    /// The config files that were read.
    pub files: Vec<PathBuf>,
}

/// `vm.stop-timeout` unless configured: short, since `down` keeps the disk and a stack that
/// ignores SIGTERM would otherwise hold it for docker's 10 s per container.
pub const DEFAULT_STOP_TIMEOUT: u64 = 5;

type Layer = Vec<(&'static str, Val)>;

/// Every key that has a value, with its source.
pub type Values = BTreeMap<&'static str, (Val, Source)>;

/// Defaults, then the files' layers in precedence order, then the detected up command.
fn merge(root: &Path, home: &Path, mut layers: Vec<(PathBuf, Layer)>) -> (Values, Vec<PathBuf>) {
    let mut values = Values::new();
    for (k, v) in defaults(home) {
        values.insert(k, (v, Source::Default));
    }
    // Shared files before local ones; at the same level TOML after shell.
    layers.sort_by_key(|(p, _)| {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        match name.as_str() {
            "vmoat.conf" => 0,
            "vmoat.toml" => 1,
            "vmoat.local.conf" => 2,
            _ => 3,
        }
    });
    let mut files = vec![];
    for (path, layer) in layers {
        files.push(path.clone());
        for (k, v) in layer {
            values.insert(k, (v, Source::File(path.clone())));
        }
    }
    if !values.contains_key("commands.up")
        && let Some((cmd, file)) = crate::detect::up_command(root)
    {
        values.insert("commands.up", (Val::Str(cmd), Source::Detected(file)));
    }
    (values, files)
}

fn defaults(home: &Path) -> Layer {
    let mut l: Layer = vec![
        ("backend", Val::Str("auto".into())),
        ("vm.prefix", Val::Str("wt-".into())),
        ("vm.cpus", Val::UInt(4)),
        ("vm.memory", Val::UInt(8)),
        ("vm.disk", Val::UInt(60)),
        ("vm.mount", Val::Str(home.to_string_lossy().into_owned())),
        ("vm.stop-timeout", Val::UInt(DEFAULT_STOP_TIMEOUT)),
        ("provision.apt", Val::List(vec![])),
        ("provision.seed", Val::List(vec![])),
        ("health.timeout", Val::UInt(1800)),
        ("tunnel.ports", Val::Ports(vec![])),
        ("warm.enabled", Val::Bool(true)),
        ("warm.images", Val::List(vec![])),
    ];
    // Colima's fast path on macOS; elsewhere Colima decides (qemu, with KVM where present).
    if cfg!(target_os = "macos") {
        l.push(("vm.type", Val::Str("vz".into())));
        l.push(("vm.mount-type", Val::Str("virtiofs".into())));
    }
    l
}

impl Config {
    /// Loads the configuration of the worktree at `root`.
    pub fn load(root: &Path, state: &State) -> Result<Self> {
        let home = home_dir()?;
        let mut layers: Vec<(PathBuf, Layer)> = vec![];
        let legacy: Vec<PathBuf> = LEGACY_FILES
            .iter()
            .map(|f| root.join(f))
            .filter(|p| p.is_file())
            .collect();
        if !legacy.is_empty() {
            check_trusted(&legacy, &repo_key_at(root), state)?;
            layers.extend(eval_legacy(root, &legacy)?);
        }
        for name in [TOML_FILE, TOML_LOCAL_FILE] {
            let path = root.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => layers.push((path.clone(), toml_layer(&path, &text)?)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            }
        }
        let (values, files) = merge(root, &home, layers);
        warn_tracked_local(root, &files)?;
        let cfg = Self::from_values(values, files, &home)?;
        cfg.check_shared_mount(root, &home)?;
        Ok(cfg)
    }

    /// What `config` still shows when `load` fails: the defaults and every value that reads
    /// cleanly, with its source, so the keys are listed next to the error. A legacy file is
    /// evaluated only when trusted, as in `load`.
    pub fn readable(root: &Path, state: &State) -> (Values, Vec<PathBuf>) {
        let home = home_dir().unwrap_or_default();
        let mut layers: Vec<(PathBuf, Layer)> = vec![];
        let legacy: Vec<PathBuf> = LEGACY_FILES
            .iter()
            .map(|f| root.join(f))
            .filter(|p| p.is_file())
            .collect();
        if !legacy.is_empty()
            && check_trusted(&legacy, &repo_key_at(root), state).is_ok()
            && let Ok(l) = eval_legacy(root, &legacy)
        {
            layers.extend(l);
        }
        for name in [TOML_FILE, TOML_LOCAL_FILE] {
            let path = root.join(name);
            if let Ok(text) = std::fs::read_to_string(&path)
                && let Ok(entries) = toml_entries(&path, &text)
            {
                layers.push((path, entries.into_iter().flatten().collect()));
            }
        }
        merge(root, &home, layers)
    }

    /// A mount set by a committed file (any branch can change it) must hold the worktree and
    /// stay inside the user's home: wider mounts (`/`, `/etc`, other users' files) only from the
    /// user's own gitignored local file.
    fn check_shared_mount(&self, root: &Path, home: &Path) -> Result<()> {
        let Some((Val::Str(raw), Source::File(path))) = self.values.get("vm.mount") else {
            return Ok(());
        };
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        // A local file counts as the user's own only while git does not track it: a committed
        // one comes with the branch like any other.
        let committed_local = [TOML_LOCAL_FILE, LEGACY_FILES[1]].contains(&file.as_str())
            && crate::repo::is_tracked(root, &file)?;
        if ![TOML_FILE, LEGACY_FILES[0]].contains(&file.as_str()) && !committed_local {
            return Ok(());
        }
        let local = if [TOML_FILE, TOML_LOCAL_FILE].contains(&file.as_str()) {
            TOML_LOCAL_FILE
        } else {
            LEGACY_FILES[1]
        };
        // Real paths: `..` and symlinks must not widen what the text seems to say.
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let (mount, home, root) = (
            std::fs::canonicalize(&self.mount).ok(),
            real(home),
            real(root),
        );
        let why = match &mount {
            Some(m) if !m.starts_with(&home) => format!(
                "is `{raw}`, outside your home {}: a committed config may only mount a dir inside your home",
                home.display()
            ),
            Some(m) if !root.starts_with(m) => format!(
                "is `{raw}`, so the worktree {} is outside vm.mount: a committed config may only mount a dir that holds the worktree",
                root.display()
            ),
            Some(_) => return Ok(()),
            None => format!(
                "is `{raw}`, which does not exist, so it cannot hold the worktree {}",
                root.display()
            ),
        };
        if committed_local {
            return Err(hint(
                format!(
                    "{file}: `vm.mount` {why} ({file} is tracked by git, so it counts as committed)"
                ),
                format!(
                    "stop tracking it (`git rm --cached {file}`, then list it in .gitignore) to keep it as your own, or remove `vm.mount` from it"
                ),
            ));
        }
        Err(hint(
            format!("{file}: `vm.mount` {why}"),
            format!(
                "remove `vm.mount` from {file} (the default is your home); to mount something wider on this machine, set it in your own gitignored {local}"
            ),
        ))
    }

    fn from_values(
        values: BTreeMap<&'static str, (Val, Source)>,
        files: Vec<PathBuf>,
        home: &Path,
    ) -> Result<Self> {
        let err = |key: &str, msg: String| -> anyhow::Error {
            let src = values
                .get(key)
                .map(|(_, s)| s.to_string())
                .unwrap_or_default();
            hint(
                format!("{src}: `{key}` {msg}"),
                format!("fix `{key}` in {src}"),
            )
        };
        let s = |k: &str| match values.get(k) {
            Some((Val::Str(s), _)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        let n = |k: &str| match values.get(k) {
            Some((Val::UInt(n), _)) => *n,
            _ => 0,
        };
        let l = |k: &str| match values.get(k) {
            Some((Val::List(l), _)) => l.clone(),
            _ => vec![],
        };
        let backend = s("backend").unwrap_or_else(|| "auto".into());
        if !crate::backend::KINDS.contains(&backend.as_str()) {
            return Err(err(
                "backend",
                format!("is `{backend}`; use auto, colima or netns"),
            ));
        }
        let prefix = s("vm.prefix").unwrap_or_default();
        crate::naming::check_prefix(&prefix).map_err(|m| err("vm.prefix", m))?;
        let vm_type = s("vm.type");
        if let Some(t) = &vm_type
            && !["vz", "qemu", "krunkit"].contains(&t.as_str())
        {
            return Err(err("vm.type", format!("is `{t}`; use vz, qemu or krunkit")));
        }
        let mount_type = s("vm.mount-type");
        if let Some(t) = &mount_type
            && !["virtiofs", "sshfs", "9p"].contains(&t.as_str())
        {
            return Err(err(
                "vm.mount-type",
                format!("is `{t}`; use virtiofs, sshfs or 9p"),
            ));
        }
        let mount_raw = s("vm.mount").unwrap_or_else(|| home.to_string_lossy().into_owned());
        let mount = expand_home(&mount_raw, home);
        if !mount.is_absolute() {
            return Err(err(
                "vm.mount",
                format!("is `{mount_raw}`; it must be an absolute path"),
            ));
        }
        let apt = l("provision.apt");
        if let Some(bad) = apt.iter().find(|p| !is_apt_name(p)) {
            return Err(err(
                "provision.apt",
                format!("has `{bad}`, which is not an apt package name"),
            ));
        }
        let health_url = s("health.url");
        if let Some(u) = &health_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(err(
                "health.url",
                format!("is `{u}`; it must start with http:// or https://"),
            ));
        }
        let ports = match values.get("tunnel.ports") {
            Some((Val::Ports(p), _)) => p.clone(),
            _ => vec![],
        };
        Ok(Self {
            backend,
            prefix,
            cpus: n("vm.cpus"),
            memory: n("vm.memory"),
            disk: n("vm.disk"),
            vm_type,
            mount_type,
            mount,
            stop_timeout: n("vm.stop-timeout"),
            apt,
            script: s("provision.script"),
            seed: l("provision.seed"),
            up: s("commands.up"),
            test: s("commands.test"),
            health_url,
            health_timeout: n("health.timeout"),
            ports,
            warm: !matches!(values.get("warm.enabled"), Some((Val::Bool(false), _))),
            warm_images: l("warm.images"),
            values,
            files,
        })
    }

    /// The config as `config --json` prints it.
    pub fn to_json(&self) -> serde_json::Value {
        values_json(&self.values, &self.files)
    }
}

/// Values as `config --json` prints them.
pub fn values_json(values: &Values, files: &[PathBuf]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for d in KEYS {
        let (value, source) = match values.get(d.key) {
            Some((v, s)) => (serde_json::to_value(v).unwrap_or_default(), s.to_string()),
            None => (serde_json::Value::Null, "unset".to_string()),
        };
        map.insert(
            d.key.into(),
            serde_json::json!({"value": value, "source": source, "legacy": d.legacy}),
        );
    }
    serde_json::json!({
        "version": crate::output::JSON_VERSION,
        "files": files,
        "values": map,
    })
}

fn home_dir() -> Result<PathBuf> {
    directories::BaseDirs::new()
        .map(|b| b.home_dir().to_path_buf())
        .context("cannot find your home directory (is HOME set?)")
}

fn expand_home(p: &str, home: &Path) -> PathBuf {
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

/// Parses one TOML file into values, rejecting unknown keys and wrong types.
fn toml_layer(path: &Path, text: &str) -> Result<Layer> {
    toml_entries(path, text)?.into_iter().collect()
}

/// Each key of one TOML file, good or bad, so `config` can show what is readable around an
/// error; the outer error is a syntax error (nothing readable).
fn toml_entries(path: &Path, text: &str) -> Result<Vec<Result<(&'static str, Val)>>> {
    let file = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        hint(
            format!("{file} is not valid TOML: {}", e.to_string().trim_end()),
            format!("fix the syntax of {}", path.display()),
        )
    })?;
    let mut out = vec![];
    for (k, v) in &table {
        if k == "warm" && v.is_bool() {
            // `warm = false` is short for `[warm] enabled = false`.
            out.push(toml_value(&file, "warm.enabled", v));
        } else if SECTIONS.contains(&k.as_str()) {
            let Some(inner) = v.as_table() else {
                out.push(Err(hint(
                    format!("{file}: `{k}` must be a table ([{k}])"),
                    format!("write it as a [{k}] section"),
                )));
                continue;
            };
            for (k2, v2) in inner {
                out.push(toml_value(&file, &format!("{k}.{k2}"), v2));
            }
        } else if v.is_table() && key_def(k).is_none() {
            out.push(Err(unknown_table(&file, k)));
        } else {
            out.push(toml_value(&file, k, v));
        }
    }
    Ok(out)
}

/// A misspelt section gets the same help as a misspelt key.
fn unknown_table(file: &str, name: &str) -> anyhow::Error {
    let closest = SECTIONS
        .iter()
        .map(|s| (strsim::levenshtein(name, s), *s))
        .filter(|(d, _)| *d <= 2)
        .min();
    let all = SECTIONS.map(|s| format!("[{s}]")).join(", ");
    hint(
        format!("{file}: unknown table `[{name}]`"),
        match closest {
            Some((_, s)) => format!("did you mean `[{s}]`? (the tables are {all})"),
            None => format!("the tables are {all}; `git vmoat config` lists every key"),
        },
    )
}

fn toml_value(file: &str, key: &str, v: &toml::Value) -> Result<(&'static str, Val)> {
    let Some(d) = key_def(key) else {
        return Err(hint(
            format!("{file}: unknown key `{key}`"),
            match suggest(key) {
                Some(s) => format!("did you mean `{s}`? (`git vmoat config` lists every key)"),
                None => "`git vmoat config` lists every key".into(),
            },
        ));
    };
    let bad = |want: &str| {
        hint(
            format!("{file}: `{key}` must be {want}, got {}", describe(v)),
            format!("fix `{key}` in {file}"),
        )
    };
    let val = match d.kind {
        Kind::Bool => Val::Bool(v.as_bool().ok_or_else(|| bad("true or false"))?),
        Kind::Str => Val::Str(v.as_str().ok_or_else(|| bad("a string"))?.to_string()),
        Kind::UInt { min, max } => {
            let want = format!("a whole number from {min} to {max}");
            let n = v.as_integer().ok_or_else(|| bad(&want))?;
            if n < min as i64 || n > max as i64 {
                return Err(bad(&want));
            }
            Val::UInt(n as u64)
        }
        Kind::StrList => {
            let want = "a list of strings, e.g. [\"a\", \"b\"]";
            let arr = v.as_array().ok_or_else(|| bad(want))?;
            Val::List(
                arr.iter()
                    .map(|x| x.as_str().map(String::from).ok_or_else(|| bad(want)))
                    .collect::<Result<_>>()?,
            )
        }
        Kind::PortList => {
            let want = "a list of ports from 1 to 65535, e.g. [8080, 9229]";
            let arr = v.as_array().ok_or_else(|| bad(want))?;
            Val::Ports(
                arr.iter()
                    .map(|x| {
                        x.as_integer()
                            .and_then(|n| u16::try_from(n).ok())
                            .filter(|n| *n > 0)
                            .ok_or_else(|| bad(want))
                    })
                    .collect::<Result<_>>()?,
            )
        }
    };
    Ok((d.key, val))
}

fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("the string {s:?}"),
        other => format!("{} `{other}`", other.type_str()),
    }
}

/// The valid key closest to a misspelt one.
pub fn suggest(key: &str) -> Option<&'static str> {
    if let Some(d) = KEYS.iter().find(|d| d.legacy.eq_ignore_ascii_case(key)) {
        return Some(d.key);
    }
    let leaf = key.rsplit('.').next().unwrap_or(key);
    KEYS.iter()
        .map(|d| {
            let dist = strsim::levenshtein(key, d.key)
                .min(strsim::levenshtein(leaf, d.key.rsplit('.').next().unwrap_or(d.key)) + 1);
            (dist, d.key)
        })
        .filter(|(dist, _)| *dist <= 3)
        .min()
        .map(|(_, k)| k)
}

// ---------------------------------------------------------------------------------------------
// Legacy shell files.

/// A value as bash left it: a plain variable or an array.
#[derive(Clone, Debug, PartialEq)]
enum ShellVal {
    Scalar(String),
    Array(Vec<String>),
}

/// Dumps the known variables NUL-separated on fd 3 after each file is sourced, so the values
/// that each file set can be told apart. Everything the files print goes to stderr.
const DUMP_SCRIPT: &str = r#"
exec 3>&1 1>&2
for __vmoat_f in "$@"; do
  bash -n -- "$__vmoat_f" || { echo "syntax error in $__vmoat_f" >&2; exit 97; }
done
__vmoat_dump() {
  local __vmoat_k __vmoat_d
  for __vmoat_k in __KEYS__; do
    __vmoat_d=$(declare -p "$__vmoat_k" 2>/dev/null) || continue
    case $__vmoat_d in
      "declare -a"*|"declare -A"*)
        eval "__vmoat_v=(\"\${${__vmoat_k}[@]}\")"
        printf 'A\0%s\0%s\0' "$__vmoat_k" "${#__vmoat_v[@]}" >&3
        if [ "${#__vmoat_v[@]}" -gt 0 ]; then printf '%s\0' "${__vmoat_v[@]}" >&3; fi ;;
      *) printf 'S\0%s\0%s\0' "$__vmoat_k" "${!__vmoat_k}" >&3 ;;
    esac
  done
  printf 'E\0' >&3
}
for __vmoat_f in "$@"; do
  . "$__vmoat_f"
  __vmoat_dump
done
"#;

fn eval_legacy(root: &Path, files: &[PathBuf]) -> Result<Vec<(PathBuf, Layer)>> {
    let keys: Vec<&str> = KEYS.iter().map(|d| d.legacy).collect();
    let script = DUMP_SCRIPT.replace("__KEYS__", &keys.join(" "));
    let out = Cmd::new("bash")
        .arg("-c")
        .arg(script)
        .arg("vmoat.conf")
        .args(files)
        .current_dir(root)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.code() == Some(97) {
        return Err(hint(
            format!("a legacy config file has a syntax error:\n{stderr}"),
            "fix the shell syntax (check with `bash -n vmoat.conf`), or convert it: `git vmoat init --from-conf`",
        ));
    }
    let dumps = parse_dumps(&out.stdout).with_context(|| {
        format!(
            "evaluating {} with bash (stderr: {stderr})",
            files[0].display()
        )
    })?;
    if dumps.len() != files.len() {
        return Err(hint(
            format!(
                "evaluating the legacy config stopped early (bash exit {:?}):\n{stderr}",
                out.status.code()
            ),
            "a legacy config must only set variables; remove any `exit` or failing command",
        ));
    }
    if !stderr.is_empty() {
        crate::output::warn(format!("the legacy config printed:\n{stderr}"));
    }
    // A key belongs to the first file after which it has its final value.
    let mut layers = vec![];
    let mut before: BTreeMap<String, ShellVal> = BTreeMap::new();
    for (file, dump) in files.iter().zip(dumps) {
        let mut layer = vec![];
        for (k, v) in &dump {
            if before.get(k) != Some(v) {
                let name = file
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                layer.extend(legacy_value(&name, k, v)?);
            }
        }
        before = dump;
        layers.push((file.clone(), layer));
    }
    Ok(layers)
}

fn parse_dumps(bytes: &[u8]) -> Result<Vec<BTreeMap<String, ShellVal>>> {
    let text = String::from_utf8_lossy(bytes);
    let mut fields = text.split('\0');
    let mut dumps = vec![];
    let mut cur = BTreeMap::new();
    while let Some(tag) = fields.next() {
        match tag {
            "E" => dumps.push(std::mem::take(&mut cur)),
            "S" => {
                let k = fields.next().context("truncated dump")?;
                let v = fields.next().context("truncated dump")?;
                cur.insert(k.to_string(), ShellVal::Scalar(v.to_string()));
            }
            "A" => {
                let k = fields.next().context("truncated dump")?;
                let n: usize = fields.next().context("truncated dump")?.parse()?;
                let vals = (0..n)
                    .map(|_| fields.next().map(String::from).context("truncated dump"))
                    .collect::<Result<_>>()?;
                cur.insert(k.to_string(), ShellVal::Array(vals));
            }
            "" => {}
            other => bail!("unexpected dump field {other:?}"),
        }
    }
    Ok(dumps)
}

fn legacy_value(file: &str, name: &str, v: &ShellVal) -> Result<Option<(&'static str, Val)>> {
    let d = KEYS
        .iter()
        .find(|d| d.legacy == name)
        .context("unknown legacy key")?;
    let words: Vec<String> = match v {
        ShellVal::Scalar(s) => s.split_whitespace().map(String::from).collect(),
        ShellVal::Array(a) => a
            .iter()
            .flat_map(|s| s.split_whitespace())
            .map(String::from)
            .collect(),
    };
    let scalar = match v {
        ShellVal::Scalar(s) => s.clone(),
        ShellVal::Array(a) => a.first().cloned().unwrap_or_default(),
    };
    let bad = |want: &str, got: &str| {
        hint(
            format!("{file}: {name} must be {want}, got {got:?}"),
            format!("fix {name} in {file}"),
        )
    };
    let val = match d.kind {
        Kind::Bool if scalar.trim().is_empty() => return Ok(None),
        Kind::Bool => match scalar.trim() {
            "1" | "true" | "yes" | "on" => Val::Bool(true),
            "0" | "false" | "no" | "off" => Val::Bool(false),
            _ => return Err(bad("true or false", &scalar)),
        },
        Kind::Str if scalar.is_empty() => return Ok(None),
        Kind::Str => Val::Str(scalar),
        Kind::UInt { .. } if scalar.trim().is_empty() => return Ok(None),
        Kind::UInt { min, max } => {
            let want = format!("a whole number from {min} to {max}");
            let n: u64 = scalar.trim().parse().map_err(|_| bad(&want, &scalar))?;
            if n < min || n > max {
                return Err(bad(&want, &scalar));
            }
            Val::UInt(n)
        }
        Kind::StrList => Val::List(words),
        Kind::PortList => Val::Ports(
            words
                .iter()
                .map(|w| {
                    w.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| bad("ports from 1 to 65535", w))
                })
                .collect::<Result<_>>()?,
        ),
    };
    Ok(Some((d.key, val)))
}

// ---------------------------------------------------------------------------------------------
// Trust: a legacy file runs code on the host, so it is evaluated only after the user has
// reviewed it and recorded its hash with `git vmoat trust`.

const TRUST_FILE: &str = "trust.json";

/// Trusted legacy file hashes per repository (`consent::repo_key`), so every worktree of a
/// repository shares them: a new worktree with the same file content is already trusted.
#[derive(Default, Serialize, Deserialize)]
struct TrustStore {
    /// Earlier records, keyed by the file's path; still honoured so an upgrade asks nothing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    files: BTreeMap<PathBuf, String>,
    /// Repository key -> sha256 of a trusted file -> the file's name when it was trusted.
    #[serde(default)]
    repos: BTreeMap<String, BTreeMap<String, String>>,
}

impl TrustStore {
    fn trusts(&self, repo: &str, file: &Path, hash: &str) -> bool {
        self.repos.get(repo).is_some_and(|h| h.contains_key(hash))
            || std::fs::canonicalize(file)
                .ok()
                .and_then(|real| self.files.get(&real))
                .is_some_and(|h| h == hash)
    }
}

/// Warns (once per process) about a local config file that git tracks: it is meant to be the
/// user's own, yet every branch carries it.
fn warn_tracked_local(root: &Path, files: &[PathBuf]) -> Result<()> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let mut tracked = vec![];
    for name in [TOML_LOCAL_FILE, LEGACY_FILES[1]] {
        if files
            .iter()
            .any(|f| f.file_name().is_some_and(|n| n == name))
            && crate::repo::is_tracked(root, name)?
        {
            tracked.push(name);
        }
    }
    if !tracked.is_empty() {
        let (names, args) = (tracked.join(" and "), tracked.join(" "));
        let verb = if tracked.len() == 1 { "is" } else { "are" };
        WARNED.call_once(|| {
            crate::output::warn(format!(
                "{names} {verb} tracked by git, but a local config file is yours and should not be committed: any branch can change it, so it counts as committed (`git rm --cached {args}`, then list it in .gitignore)",
            ));
        });
    }
    Ok(())
}

/// The sha256 of a file's content, in hex.
pub fn file_hash(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The repository key of the worktree at `root`. Outside a repository (unit tests of this
/// module) the directory itself stands in.
fn repo_key_at(root: &Path) -> String {
    match crate::repo::discover(root) {
        Ok(wt) => crate::consent::repo_key(&wt),
        Err(_) => {
            crate::repo::read_repo_id(root).unwrap_or_else(|| format!("path:{}", root.display()))
        }
    }
}

/// The legacy config files present in the worktree, with their hashes.
pub fn legacy_files(root: &Path) -> Result<Vec<(PathBuf, String)>> {
    LEGACY_FILES
        .iter()
        .map(|f| root.join(f))
        .filter(|p| p.is_file())
        .map(|p| file_hash(&p).map(|h| (p, h)))
        .collect()
}

/// The legacy files of the worktree whose current content this repository has not trusted.
pub fn untrusted_legacy(root: &Path, repo: &str, state: &State) -> Result<Vec<PathBuf>> {
    let store: TrustStore = state.read_json(TRUST_FILE)?;
    Ok(legacy_files(root)?
        .into_iter()
        .filter(|(p, h)| !store.trusts(repo, p, h))
        .map(|(p, _)| p)
        .collect())
}

fn check_trusted(files: &[PathBuf], repo: &str, state: &State) -> Result<()> {
    let store: TrustStore = state.read_json(TRUST_FILE)?;
    for f in files {
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        if store.trusts(repo, f, &file_hash(f)?) {
            continue;
        }
        let known = store
            .repos
            .get(repo)
            .is_some_and(|h| h.values().any(|n| *n == name));
        return Err(if known {
            hint(
                format!(
                    "{name} changed since you trusted it, and it is shell code that runs on this machine"
                ),
                format!(
                    "review {}, then run `git vmoat trust` (or convert it to TOML: `git vmoat init --from-conf`)",
                    f.display()
                ),
            )
        } else {
            hint(
                format!(
                    "{name} is shell code that would run on this machine, and you have not trusted it"
                ),
                format!(
                    "review {}, then run `git vmoat trust` (or move to vmoat.toml: `git vmoat init --from-conf` after trusting)",
                    f.display()
                ),
            )
        });
    }
    Ok(())
}

/// Records the current content of the worktree's legacy config files as trusted for its whole
/// repository; returns them.
pub fn trust(wt: &crate::repo::Worktree, state: &State) -> Result<Vec<(PathBuf, String)>> {
    let files = legacy_files(&wt.root)?;
    let repo = crate::consent::repo_key_for_record(state, wt)?;
    state.update_json(TRUST_FILE, |store: &mut TrustStore| {
        let hashes = store.repos.entry(repo).or_default();
        for (f, h) in &files {
            let name = f.file_name().unwrap_or_default().to_string_lossy();
            hashes.insert(h.clone(), name.into_owned());
        }
        Ok(())
    })?;
    Ok(files)
}

/// The values set by one legacy file (for `init --from-conf`), trusted first.
pub fn legacy_values(root: &Path, state: &State) -> Result<Layer> {
    let conf = root.join(LEGACY_FILES[0]);
    check_trusted(std::slice::from_ref(&conf), &repo_key_at(root), state)?;
    Ok(eval_legacy(root, &[conf])?
        .pop()
        .map(|(_, l)| l)
        .unwrap_or_default())
}

/// Renders values as a `vmoat.toml`, grouped by section.
pub fn render_toml(values: &Layer) -> String {
    let mut out = String::new();
    for d in KEYS.iter().filter(|d| !d.key.contains('.')) {
        if let Some((_, v)) = values.iter().find(|(k, _)| *k == d.key) {
            out.push_str(&format!(
                "# {} (was {})\n{} = {v}\n",
                d.doc, d.legacy, d.key
            ));
        }
    }
    for section in SECTIONS {
        let keys: Vec<_> = KEYS
            .iter()
            .filter(|d| d.key.starts_with(&format!("{section}.")))
            .filter_map(|d| {
                values
                    .iter()
                    .find(|(k, _)| *k == d.key)
                    .map(|(_, v)| (d, v))
            })
            .collect();
        if keys.is_empty() {
            continue;
        }
        out.push_str(&format!("\n[{section}]\n"));
        for (d, v) in keys {
            out.push_str(&format!(
                "# {} (was {})\n{} = {v}\n",
                d.doc,
                d.legacy,
                leaf(d.key)
            ));
        }
    }
    out
}

/// Fuzzing entry: the TOML layer parser on arbitrary text.
#[cfg(test)]
pub(crate) fn parse_toml_for_test(text: &str) -> Result<usize> {
    toml_layer(Path::new("vmoat.toml"), text).map(|l| l.len())
}

/// Fuzzing entry: the legacy dump parser on arbitrary bytes.
#[cfg(test)]
pub(crate) fn parse_dumps_for_test(bytes: &[u8]) -> Result<usize> {
    parse_dumps(bytes).map(|d| d.len())
}

fn leaf(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[(&str, &str)]) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let st = State::at(dir.path().join("state"));
        let wt = dir.path().join("wt");
        std::fs::create_dir(&wt).unwrap();
        for (n, t) in files {
            std::fs::write(wt.join(n), t).unwrap();
        }
        trust(&fake_wt(&wt), &st).unwrap();
        Config::load(&wt, &st)
    }

    /// A directory outside any repository stands for its own repository here.
    fn fake_wt(root: &Path) -> crate::repo::Worktree {
        crate::repo::Worktree {
            root: root.to_path_buf(),
            main_root: Some(root.to_path_buf()),
            common_dir: root.to_path_buf(),
            id: None,
            repo_id: None,
        }
    }

    fn msg(r: Result<Config>) -> String {
        let e = r.unwrap_err();
        format!("{e:#} / {}", crate::error::find_hint(&e).unwrap_or(""))
    }

    #[test]
    fn defaults_apply_without_files() {
        let c = load(&[]).unwrap();
        assert_eq!(
            (c.cpus, c.memory, c.disk, c.health_timeout),
            (4, 8, 60, 1800)
        );
        assert_eq!(c.prefix, "wt-");
        assert_eq!(c.values["vm.cpus"].1, Source::Default);
        assert!(c.up.is_none());
    }

    #[test]
    fn toml_and_local_merge_with_provenance() {
        let c = load(&[
            (
                "vmoat.toml",
                "[vm]\ncpus = 2\nmemory = 4\n[commands]\nup = \"make up\"\n",
            ),
            (
                "vmoat.local.toml",
                "[vm]\ncpus = 6\n[tunnel]\nports = [8080, 9229]\n",
            ),
        ])
        .unwrap();
        assert_eq!((c.cpus, c.memory), (6, 4));
        assert_eq!(c.ports, vec![8080, 9229]);
        assert_eq!(c.values["vm.cpus"].1.to_string(), "vmoat.local.toml");
        assert_eq!(c.values["vm.memory"].1.to_string(), "vmoat.toml");
        assert_eq!(c.up.as_deref(), Some("make up"));
    }

    #[test]
    fn unknown_keys_name_the_file_and_the_closest_key() {
        let m = msg(load(&[("vmoat.toml", "[vm]\ncpu = 2\n")]));
        assert!(
            m.contains("vmoat.toml: unknown key `vm.cpu`") && m.contains("`vm.cpus`"),
            "{m}"
        );
        let m = msg(load(&[("vmoat.local.toml", "VM_MEMORY = 2\n")]));
        assert!(
            m.contains("vmoat.local.toml") && m.contains("`vm.memory`"),
            "{m}"
        );
        let m = msg(load(&[("vmoat.toml", "[health]\nurll = \"x\"\n")]));
        assert!(m.contains("`health.url`"), "{m}");
    }

    #[test]
    fn bad_types_and_ranges_are_rejected() {
        for (text, want) in [
            (
                "[vm]\ncpus = \"four\"",
                "`vm.cpus` must be a whole number from 1 to 1024",
            ),
            ("[vm]\ncpus = 0", "from 1 to 1024"),
            ("[vm]\nmemory = -3", "`vm.memory` must be"),
            (
                "[tunnel]\nports = [70000]",
                "`tunnel.ports` must be a list of ports",
            ),
            ("[tunnel]\nports = [0]", "`tunnel.ports`"),
            ("[tunnel]\nports = \"8080\"", "`tunnel.ports`"),
            ("[provision]\napt = \"git curl\"", "list of strings"),
            ("vm = 3", "`vm` must be a table"),
            ("[vm]\ntype = \"hyperv\"", "`vm.type` is `hyperv`"),
            (
                "backend = \"docker\"",
                "`backend` is `docker`; use auto, colima or netns",
            ),
            ("[vm]\nprefix = \"WT_\"", "not a usable VM name prefix"),
            ("[vm]\nmount = \"relative/dir\"", "must be an absolute path"),
            ("[health]\nurl = \"localhost:8080\"", "must start with http"),
            (
                "[provision]\napt = [\"ok\", \"rm -rf\"]",
                "not an apt package name",
            ),
        ] {
            let m = msg(load(&[("vmoat.toml", text)]));
            assert!(m.contains(want) && m.contains("vmoat.toml"), "{text}: {m}");
        }
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let m = msg(load(&[("vmoat.toml", "[vm]\ncpus = 2\nmemory = = 3\n")]));
        assert!(m.contains("not valid TOML") && m.contains("line 3"), "{m}");
    }

    #[test]
    fn legacy_files_are_evaluated_with_arrays_and_local_wins() {
        let c = load(&[
            (
                "vmoat.conf",
                "VM_CPU=2\nEXPOSE_PORTS=(8080 9229)\nPROVISION_APT=\"git curl\"\nCMD_UP='docker compose up -d'\necho noise\n",
            ),
            ("vmoat.local.conf", "VM_CPU=$((VM_CPU * 3))\nPROVISION_APT=\"$PROVISION_APT jq\"\n"),
        ])
        .unwrap();
        assert_eq!(c.cpus, 6);
        assert_eq!(c.ports, vec![8080, 9229]);
        assert_eq!(c.apt, vec!["git", "curl", "jq"]);
        assert_eq!(c.values["vm.cpus"].1.to_string(), "vmoat.local.conf");
        assert_eq!(c.values["tunnel.ports"].1.to_string(), "vmoat.conf");
        assert_eq!(c.up.as_deref(), Some("docker compose up -d"));
    }

    #[test]
    fn toml_beats_legacy_at_the_same_level() {
        let c = load(&[
            ("vmoat.conf", "VM_CPU=2\nVM_DISK=80\n"),
            ("vmoat.toml", "[vm]\ncpus = 3\n"),
        ])
        .unwrap();
        assert_eq!((c.cpus, c.disk), (3, 80));
    }

    #[test]
    fn legacy_port_strings_and_bad_values() {
        let c = load(&[("vmoat.conf", "EXPOSE_PORTS=\"3000 5173\"\n")]).unwrap();
        assert_eq!(c.ports, vec![3000, 5173]);
        let m = msg(load(&[("vmoat.conf", "EXPOSE_PORTS=(8080 abc)\n")]));
        assert!(m.contains("EXPOSE_PORTS") && m.contains("\"abc\""), "{m}");
        let m = msg(load(&[("vmoat.conf", "VM_MEMORY=lots\n")]));
        assert!(m.contains("VM_MEMORY must be a whole number"), "{m}");
    }

    #[test]
    fn legacy_syntax_errors_are_reported() {
        let m = msg(load(&[("vmoat.conf", "VM_CPU=2\nif then fi (\n")]));
        assert!(m.contains("syntax error"), "{m}");
    }

    #[test]
    fn untrusted_or_changed_legacy_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::at(dir.path().join("state"));
        let marker = dir.path().join("ran");
        let conf = format!("touch {}\nVM_CPU=2\n", marker.display());
        std::fs::write(dir.path().join("vmoat.conf"), &conf).unwrap();
        let m = msg(Config::load(dir.path(), &st));
        assert!(
            m.contains("not trusted") && m.contains("git vmoat trust"),
            "{m}"
        );
        assert!(!marker.exists(), "untrusted config must not run");
        trust(&fake_wt(dir.path()), &st).unwrap();
        assert_eq!(Config::load(dir.path(), &st).unwrap().cpus, 2);
        std::fs::write(dir.path().join("vmoat.conf"), "VM_CPU=3\n").unwrap();
        let m = msg(Config::load(dir.path(), &st));
        assert!(m.contains("changed since you trusted it"), "{m}");
    }

    #[test]
    fn a_wide_mount_comes_only_from_the_local_file() {
        let m = msg(load(&[("vmoat.toml", "[vm]\nmount = \"/\"\n")]));
        assert!(
            m.contains("vmoat.toml: `vm.mount` is `/`") && m.contains("vmoat.local.toml"),
            "{m}"
        );
        let m = msg(load(&[("vmoat.conf", "VM_MOUNT=/etc\n")]));
        assert!(
            m.contains("vmoat.conf: `vm.mount`") && m.contains("vmoat.local.conf"),
            "{m}"
        );
        let c = load(&[("vmoat.local.toml", "[vm]\nmount = \"/\"\n")]).unwrap();
        assert_eq!(c.mount, PathBuf::from("/"));
    }

    /// Loads `files` from a git repository in which they are committed.
    fn load_committed(files: &[(&str, &str)]) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let st = State::at(dir.path().join("state"));
        let wt = dir.path().join("wt");
        std::fs::create_dir(&wt).unwrap();
        for (n, t) in files {
            std::fs::write(wt.join(n), t).unwrap();
        }
        for args in [
            &["init", "-q"][..],
            &["add", "."],
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "-m",
                "c",
            ],
        ] {
            let ok = std::process::Command::new("git")
                .args(args)
                .current_dir(&wt)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        }
        let wt = wt.canonicalize().unwrap();
        trust(&crate::repo::discover(&wt).unwrap(), &st).unwrap();
        Config::load(&wt, &st)
    }

    #[test]
    fn a_committed_local_file_counts_as_committed_for_the_mount() {
        let m = msg(load_committed(&[(
            "vmoat.local.toml",
            "[vm]\nmount = \"/\"\n",
        )]));
        assert!(
            m.contains("vmoat.local.toml: `vm.mount` is `/`")
                && m.contains("tracked by git")
                && m.contains("git rm --cached vmoat.local.toml"),
            "{m}"
        );
        let m = msg(load_committed(&[("vmoat.local.conf", "VM_MOUNT=/etc\n")]));
        assert!(
            m.contains("vmoat.local.conf: `vm.mount` is `/etc`") && m.contains("tracked by git"),
            "{m}"
        );
        // Tracked or not, a local file may still set what a committed one may.
        let c = load_committed(&[("vmoat.local.toml", "[vm]\ncpus = 2\n")]).unwrap();
        assert_eq!(c.cpus, 2);
    }

    #[test]
    fn up_is_detected_when_unset() {
        let c = load(&[("compose.yml", "services: {}\n")]).unwrap();
        assert_eq!(c.up.as_deref(), Some("docker compose up -d"));
        assert_eq!(
            c.values["commands.up"].1.to_string(),
            "detected from compose.yml"
        );
    }

    #[test]
    fn every_legacy_key_has_a_toml_twin_that_round_trips() {
        let layer: Layer = vec![
            ("vm.cpus", Val::UInt(2)),
            ("provision.script", Val::Str("echo 'hi'\nline2".into())),
            ("tunnel.ports", Val::Ports(vec![8080])),
            ("provision.apt", Val::List(vec!["git".into()])),
        ];
        let text = render_toml(&layer);
        let back = toml_layer(Path::new("vmoat.toml"), &text).unwrap();
        for kv in &layer {
            assert!(back.contains(kv), "{kv:?} in {text}");
        }
        let legacy: std::collections::BTreeSet<_> = KEYS.iter().map(|d| d.legacy).collect();
        assert_eq!(legacy.len(), KEYS.len());
    }
}
