//! Project configuration: native `vmoat.toml` + `vmoat.local.toml`, and the original tool's
//! shell files `vmoat.conf` + `vmoat.local.conf` (run by bash in a child, only once trusted).
//! Each effective value remembers where it came from. The keys themselves are in `keys`.

mod keys;
mod legacy;
mod toml;
mod trust;
mod user;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use self::keys::{DEFAULT_STOP_TIMEOUT, KEYS, KeyDefault, Val, key_def};
pub use self::legacy::legacy_values;
pub use self::toml::render_toml;
pub use self::trust::{file_hash, legacy_files, trust, untrusted_legacy};
use crate::error::hint;
use crate::state::State;

/// Config file names, lowest precedence first: local beats shared, TOML beats shell.
pub const LEGACY_FILES: [&str; 2] = ["vmoat.conf", "vmoat.local.conf"];
pub const TOML_FILE: &str = "vmoat.toml";
pub const TOML_LOCAL_FILE: &str = "vmoat.local.toml";

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
    /// Idle time after which the watcher suspends the VM (None: never).
    pub suspend_after: Option<std::time::Duration>,
    /// GiB all running VMs may hold (0: host RAM minus `reserve`).
    pub budget: u64,
    pub reserve: u64,
    /// Over budget, suspend an idle VM rather than refuse.
    pub evict: bool,
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
    /// Volumes copied from a sibling before `up`; `["all"]`: every one its containers mount.
    pub warm_volumes: Vec<String>,
    /// Every key that has a value, with its source.
    pub values: BTreeMap<&'static str, (Val, Source)>,
    /// The config files that were read.
    pub files: Vec<PathBuf>,
}

/// The values one file sets, in its order.
pub type Layer = Vec<(&'static str, Val)>;

/// Every key that has a value, with its source.
pub type Values = BTreeMap<&'static str, (Val, Source)>;

/// Defaults, then the files' layers in precedence order, then the detected up command.
fn merge(root: &Path, home: &Path, mut layers: Vec<(PathBuf, Layer)>) -> (Values, Vec<PathBuf>) {
    let mut values = Values::new();
    for (k, v) in defaults(home) {
        values.insert(k, (v, Source::Default));
    }
    // The user's own file first, then shared files before local ones; at the same level TOML
    // after shell.
    let user = user::user_file();
    layers.sort_by_key(|(p, _)| {
        if Some(p) == user.as_ref() {
            return -1;
        }
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

/// Every key's default on this machine, from the key table.
fn defaults(home: &Path) -> Layer {
    KEYS.iter()
        .filter_map(|d| d.default_value(home).map(|v| (d.key, v)))
        .collect()
}

/// The legacy files present in the worktree.
fn legacy_present(root: &Path) -> Vec<PathBuf> {
    LEGACY_FILES
        .iter()
        .map(|f| root.join(f))
        .filter(|p| p.is_file())
        .collect()
}

impl Config {
    /// Loads the configuration of the worktree at `root`.
    pub fn load(root: &Path, state: &State) -> Result<Self> {
        let home = home_dir()?;
        let mut layers: Vec<(PathBuf, Layer)> = vec![];
        if let Some(path) = user::user_file() {
            match std::fs::read_to_string(&path) {
                Ok(text) => layers.push((path.clone(), toml::toml_layer(&path, &text)?)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            }
        }
        let legacy = legacy_present(root);
        if !legacy.is_empty() {
            trust::check_trusted(&legacy, &trust::repo_key_at(root), state)?;
            layers.extend(legacy::eval_legacy(root, &legacy)?);
        }
        for name in [TOML_FILE, TOML_LOCAL_FILE] {
            let path = root.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => layers.push((path.clone(), toml::toml_layer(&path, &text)?)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            }
        }
        let (values, files) = merge(root, &home, layers);
        warn_tracked_local(root, &files)?;
        let mut cfg = Self::from_values(values, files, &home)?;
        cfg.check_shared_mount(root, &home)?;
        user::evict_only_from_own_files(&mut cfg);
        Ok(cfg)
    }

    /// What `config` still shows when `load` fails: the defaults and every value that reads
    /// cleanly, with its source, so the keys are listed next to the error. A legacy file is
    /// evaluated only when trusted, as in `load`.
    pub fn readable(root: &Path, state: &State) -> (Values, Vec<PathBuf>) {
        let home = home_dir().unwrap_or_default();
        let mut layers: Vec<(PathBuf, Layer)> = vec![];
        if let Some(path) = user::user_file()
            && let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(entries) = toml::toml_entries(&path, &text)
        {
            layers.push((path, entries.into_iter().flatten().collect()));
        }
        let legacy = legacy_present(root);
        if !legacy.is_empty()
            && trust::check_trusted(&legacy, &trust::repo_key_at(root), state).is_ok()
            && let Ok(l) = legacy::eval_legacy(root, &legacy)
        {
            layers.extend(l);
        }
        for name in [TOML_FILE, TOML_LOCAL_FILE] {
            let path = root.join(name);
            if let Ok(text) = std::fs::read_to_string(&path)
                && let Ok(entries) = toml::toml_entries(&path, &text)
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

    /// Checks every value against its key's check (in table order, so the first bad key is
    /// named), then reads the typed fields.
    fn from_values(values: Values, files: Vec<PathBuf>, home: &Path) -> Result<Self> {
        for d in KEYS {
            if let Some((v, src)) = values.get(d.key) {
                d.check.run(v, home).map_err(|msg| {
                    hint(
                        format!("{src}: `{}` {msg}", d.key),
                        format!("fix `{}` in {src}", d.key),
                    )
                })?;
            }
        }
        let get = Get(&values);
        Ok(Self {
            backend: get
                .str("backend")
                .unwrap_or_else(|| get.default_str("backend")),
            prefix: get.str("vm.prefix").unwrap_or_default(),
            cpus: get.uint("vm.cpus"),
            memory: get.uint("vm.memory"),
            disk: get.uint("vm.disk"),
            vm_type: get.str("vm.type"),
            mount_type: get.str("vm.mount-type"),
            mount: keys::expand_home(
                &get.str("vm.mount")
                    .unwrap_or_else(|| home.to_string_lossy().into_owned()),
                home,
            ),
            stop_timeout: get.uint("vm.stop-timeout"),
            suspend_after: get
                .str("vm.suspend-after")
                .and_then(|s| keys::parse_duration(&s))
                .flatten(),
            budget: get.uint("vm.budget"),
            reserve: get.uint("vm.reserve"),
            evict: get.bool("vm.evict"),
            apt: get.list("provision.apt"),
            script: get.str("provision.script"),
            seed: get.list("provision.seed"),
            up: get.str("commands.up"),
            test: get.str("commands.test"),
            health_url: get.str("health.url"),
            health_timeout: get.uint("health.timeout"),
            ports: get.ports("tunnel.ports"),
            warm: get.bool("warm.enabled"),
            warm_images: get.list("warm.images"),
            warm_volumes: get.list("warm.volumes"),
            values,
            files,
        })
    }
}

/// Typed reads of merged values. A key missing from the table is a bug, caught by every test
/// that loads a config.
struct Get<'a>(&'a Values);

impl Get<'_> {
    fn val(&self, key: &str) -> Option<&Val> {
        debug_assert!(key_def(key).is_some(), "`{key}` is not in the key table");
        self.0.get(key).map(|(v, _)| v)
    }
    /// A non-empty string; an empty one means unset.
    fn str(&self, key: &str) -> Option<String> {
        match self.val(key) {
            Some(Val::Str(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    }
    fn default_str(&self, key: &str) -> String {
        match key_def(key).map(|d| d.default) {
            Some(KeyDefault::Str(s)) => s.into(),
            _ => String::new(),
        }
    }
    fn uint(&self, key: &str) -> u64 {
        match self.val(key) {
            Some(Val::UInt(n)) => *n,
            _ => 0,
        }
    }
    fn list(&self, key: &str) -> Vec<String> {
        match self.val(key) {
            Some(Val::List(l)) => l.clone(),
            _ => vec![],
        }
    }
    fn ports(&self, key: &str) -> Vec<u16> {
        match self.val(key) {
            Some(Val::Ports(p)) => p.clone(),
            _ => vec![],
        }
    }
    /// True unless set to false.
    fn bool(&self, key: &str) -> bool {
        !matches!(self.val(key), Some(Val::Bool(false)))
    }
}

fn home_dir() -> Result<PathBuf> {
    directories::BaseDirs::new()
        .map(|b| b.home_dir().to_path_buf())
        .context("cannot find your home directory (is HOME set?)")
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

/// Fuzzing entry: the TOML layer parser on arbitrary text.
#[cfg(test)]
pub(crate) fn parse_toml_for_test(text: &str) -> Result<usize> {
    toml::toml_layer(Path::new("vmoat.toml"), text).map(|l| l.len())
}

/// Fuzzing entry: the legacy dump parser on arbitrary bytes.
#[cfg(test)]
pub(crate) fn parse_dumps_for_test(bytes: &[u8]) -> Result<usize> {
    legacy::parse_dumps(bytes).map(|d| d.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn load(files: &[(&str, &str)]) -> Result<Config> {
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
    pub(super) fn fake_wt(root: &Path) -> crate::repo::Worktree {
        crate::repo::Worktree {
            root: root.to_path_buf(),
            main_root: Some(root.to_path_buf()),
            common_dir: root.to_path_buf(),
            id: None,
            repo_id: None,
        }
    }

    pub(super) fn msg(r: Result<Config>) -> String {
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
    fn toml_beats_legacy_at_the_same_level() {
        let c = load(&[
            ("vmoat.conf", "VM_CPU=2\nVM_DISK=80\n"),
            ("vmoat.toml", "[vm]\ncpus = 3\n"),
        ])
        .unwrap();
        assert_eq!((c.cpus, c.disk), (3, 80));
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
}
