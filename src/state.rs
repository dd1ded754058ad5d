//! git-vmoat's own files: the state dir (registries, per-VM runtime files) and file locks.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The names of git-vmoat's files and dirs in a state dir, each spelled once: existing state
/// dirs keep working only while these stay exactly as they are.
pub mod files {
    /// The VM registry: VM name to owner.
    pub const NAMES: &str = "names.json";
    /// Host ports given out, per VM.
    pub const PORTS: &str = "ports.json";
    /// Which configs' commands are trusted.
    pub const TRUST: &str = "trust.json";
    /// Which provision contents are approved.
    pub const APPROVALS: &str = "approvals.json";
    /// In a VM's dir: its live tunnels.
    pub const TUNNELS: &str = "tunnels.json";
    /// In a VM's dir: its own owner record (and, in the netns backend's data dir, its owner mark).
    pub const OWNER: &str = "owner.json";
    /// One dir per VM: runtime files and the owner record.
    pub const VMS_DIR: &str = "vms";
    /// Background provisioning jobs, one JSON file per worktree key.
    pub const JOBS_DIR: &str = "jobs";
    /// Background jobs' logs.
    pub const LOGS_DIR: &str = "logs";
    /// The netns backend's VM data dirs.
    pub const NETNS_DIR: &str = "netns";
    /// In a netns VM's data dir: what the VM is.
    pub const NETNS_META: &str = "vm.json";
    /// Lock files.
    pub const LOCKS_DIR: &str = "locks";
    /// In a VM's dir: that it is suspended, since when, and what to start again on resume.
    pub const SUSPENDED: &str = "suspended.json";
    /// In a VM's dir: a `down` under way of it (thawed to be stopped), finished if it died.
    pub const STOPPING: &str = "stopping.json";
    /// In a VM's dir: touched by its forwarders when a tunnel carries traffic (its mtime counts).
    pub const TRAFFIC: &str = "traffic";
    /// In a VM's dir: the idle rule's last CPU sample and when the VM was last seen busy.
    pub const ACTIVITY: &str = "activity.json";
    /// In a VM's dir: one file per git-vmoat process running a command in the VM (named by pid).
    pub const BUSY_DIR: &str = "busy";
    /// In a VM's dir: the containers a volume copy paused there (unpaused again if it died).
    pub const DATA_PAUSED: &str = "data-paused.json";
    /// In a VM's dir: the volumes a copy into it was making (removed again if it died).
    pub const DATA_PARTIAL: &str = "data-partial.json";
    /// In a VM's dir: its containers a copy into it (or a restore) stopped (started again if
    /// it died).
    pub const DATA_STOPPED: &str = "data-stopped.json";
    /// In a VM's dir: where each of its volumes came from.
    pub const DATA_ORIGIN: &str = "data.json";
}

/// Where git-vmoat keeps what it knows between runs.
#[derive(Clone, Debug)]
pub struct State {
    root: PathBuf,
}

impl State {
    /// `$GIT_VMOAT_STATE_DIR`, else the platform state dir (`~/.local/state/git-vmoat` on Linux;
    /// macOS has none, so its local data dir).
    pub fn open() -> Result<Self> {
        let root = match std::env::var_os("GIT_VMOAT_STATE_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => {
                let dirs = directories::ProjectDirs::from("", "", "git-vmoat")
                    .context("cannot find a home directory for git-vmoat's state (is HOME set?)")?;
                dirs.state_dir()
                    .unwrap_or_else(|| dirs.data_local_dir())
                    .to_path_buf()
            }
        };
        Ok(Self { root })
    }

    /// The state dir a tunnel forwarder is given on its command line.
    pub fn from_root(root: PathBuf) -> Self {
        Self { root }
    }

    #[cfg(test)]
    pub fn at(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory holding one VM's runtime files (ssh config, tunnels, logs), created.
    pub fn vm_dir(&self, vm: &str) -> Result<PathBuf> {
        let dir = self.vm_dir_path(vm);
        create_private_dir(&dir)?;
        Ok(dir)
    }

    /// The VM's dir without creating it.
    pub fn vm_dir_path(&self, vm: &str) -> PathBuf {
        self.root.join(files::VMS_DIR).join(vm)
    }

    /// One VM's lock: held while it is created, provisioned, warmed or repaired.
    pub fn lock_vm(&self, vm: &str) -> Result<Lock> {
        self.lock(&vm_lock_name(vm))
    }

    /// `lock_vm` when it is free; None when another process holds it.
    pub fn try_lock_vm(&self, vm: &str) -> Result<Option<Lock>> {
        self.try_lock(&vm_lock_name(vm))
    }

    /// The host-port registry and the tunnels drawn from it.
    /// Held while a VM is suspended or woken (apart from `lock_vm`, which `up` holds while it
    /// starts the VM, and which the wake inside it must not wait for).
    pub fn lock_wake(&self, vm: &str) -> Result<Lock> {
        self.lock(&format!("wake-{}", vm_lock_name(vm)))
    }

    /// `lock_wake` when it is free (None: the VM is being suspended or woken now).
    pub fn try_lock_wake(&self, vm: &str) -> Result<Option<Lock>> {
        self.try_lock(&format!("wake-{}", vm_lock_name(vm)))
    }

    /// Held while volumes are copied out of a VM (its containers paused): one copy at a time.
    pub fn lock_data_source(&self, vm: &str) -> Result<Lock> {
        self.lock(&format!("data-src-{}", vm_lock_name(vm)))
    }

    /// `lock_data_source` when it is free (None: a copy is running).
    pub fn try_lock_data_source(&self, vm: &str) -> Result<Option<Lock>> {
        self.try_lock(&format!("data-src-{}", vm_lock_name(vm)))
    }

    /// Held while volumes are made in a VM by a copy.
    pub fn lock_data_target(&self, vm: &str) -> Result<Lock> {
        self.lock(&format!("data-dst-{}", vm_lock_name(vm)))
    }

    /// `lock_data_target` when it is free (None: a copy is running).
    pub fn try_lock_data_target(&self, vm: &str) -> Result<Option<Lock>> {
        self.try_lock(&format!("data-dst-{}", vm_lock_name(vm)))
    }

    pub fn lock_ports(&self) -> Result<Lock> {
        self.lock("ports")
    }

    /// Colima's own config, which its instances share.
    pub fn lock_colima(&self) -> Result<Lock> {
        self.lock("colima")
    }

    /// Making (or taking back) a repository's id.
    pub fn lock_repo_id(&self) -> Result<Lock> {
        self.lock("repo-id")
    }

    /// The VM registry's own lock, as `update_json` takes it.
    pub fn lock_names(&self) -> Result<Lock> {
        self.lock_json(files::NAMES)
    }

    /// One `up` per worktree (by its location key), saying `waiting` when it has to wait.
    pub fn lock_up(&self, location_key: &str, waiting: &str) -> Result<Lock> {
        let name = format!("up-{}", crate::naming::short_hash(location_key, 16));
        self.lock_waiting(&name, waiting)
    }

    /// The lock of a state dir JSON file, named after its path.
    fn lock_json(&self, rel: &str) -> Result<Lock> {
        self.lock(&rel.replace(['/', '.'], "-"))
    }

    /// Takes an exclusive lock named `name`, blocking until it is free. Released on drop
    /// (and by the kernel if we die), so a crash never leaves a stale lock.
    fn lock(&self, name: &str) -> Result<Lock> {
        self.lock_waiting(name, &format!("waiting for another git-vmoat ({name})…"))
    }

    /// Like `lock`, saying `waiting` when it has to wait.
    fn lock_waiting(&self, name: &str, waiting: &str) -> Result<Lock> {
        let file = self.open_lock(name)?;
        if file.try_lock().is_err() {
            crate::output::info(waiting);
            file.lock()
                .with_context(|| format!("locking {}", self.lock_path(name).display()))?;
        }
        Ok(Lock { _file: file })
    }

    /// Takes the lock when it is free; None when another process holds it.
    fn try_lock(&self, name: &str) -> Result<Option<Lock>> {
        let file = self.open_lock(name)?;
        Ok(file.try_lock().is_ok().then_some(Lock { _file: file }))
    }

    fn lock_path(&self, name: &str) -> PathBuf {
        self.root
            .join(files::LOCKS_DIR)
            .join(format!("{name}.lock"))
    }

    fn open_lock(&self, name: &str) -> Result<File> {
        let path = self.lock_path(name);
        create_private_dir(path.parent().context("lock path has no parent")?)?;
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening lock {}", path.display()))
    }

    /// Reads a JSON file of the state dir, or the default when it does not exist yet.
    pub fn read_json<T: DeserializeOwned + Default>(&self, rel: &str) -> Result<T> {
        read_json(&self.root.join(rel))
    }

    /// Reads, changes and writes back a JSON file under its own lock (read-modify-write safe
    /// against concurrent git-vmoat processes).
    pub fn update_json<T, R>(&self, rel: &str, f: impl FnOnce(&mut T) -> Result<R>) -> Result<R>
    where
        T: DeserializeOwned + Serialize + Default,
    {
        let _lock = self.lock_json(rel)?;
        let path = self.root.join(rel);
        let mut value: T = read_json(&path)?;
        let r = f(&mut value)?;
        write_json(&path, &value)?;
        Ok(r)
    }
}

fn vm_lock_name(vm: &str) -> String {
    format!("vm-{vm}")
}

/// Held while a lock is taken.
pub struct Lock {
    _file: File,
}

pub fn read_json<T: DeserializeOwned + Default>(path: &Path) -> Result<T> {
    match std::fs::read(path) {
        // git-vmoat never writes an empty record (writes are whole and synced), so an empty file
        // is damage (a power cut, a full disk): reading it as "nothing recorded" would let one
        // repository claim or destroy another's VM.
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Err(corrupt(path, "it is empty")),
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt(path, &e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The error for a damaged state file: names it and the way out.
fn corrupt(path: &Path, why: &str) -> anyhow::Error {
    crate::error::hint(
        format!(
            "git-vmoat's state file {} is corrupt ({why}); nothing was changed",
            path.display()
        ),
        "run `git vmoat doctor --repair`: it sets the damaged file aside and rebuilds the records from the VMs that exist",
    )
}

/// Moves a damaged state file out of the way (kept for inspection, never deleted).
pub fn set_aside(path: &Path) {
    let aside = path.with_extension(format!("json.corrupt-{}", crate::jobs::now()));
    if std::fs::rename(path, &aside).is_ok() {
        crate::output::warn(format!(
            "set the damaged {} aside as {}",
            path.display(),
            aside.display()
        ));
    }
}

/// Writes durably and atomically: a temp file, synced, renamed over the old one, and the dir
/// synced, so a reader never sees half a file and a power cut leaves the old or the new one.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().context("state path has no parent")?;
    create_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let bytes = serde_json::to_vec_pretty(value)?;
    let written = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        // A full disk must not leave a half-written temp file behind.
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn json_update_round_trips_and_missing_is_default() {
        let tmp = tempfile::tempdir().unwrap();
        let st = State::at(tmp.path().join("s"));
        let m: BTreeMap<String, u32> = st.read_json("x.json").unwrap();
        assert!(m.is_empty());
        st.update_json("x.json", |m: &mut BTreeMap<String, u32>| {
            m.insert("a".into(), 1);
            Ok(())
        })
        .unwrap();
        let m: BTreeMap<String, u32> = st.read_json("x.json").unwrap();
        assert_eq!(m.get("a"), Some(&1));
    }

    #[test]
    fn corrupt_state_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("x.json"), "{nope").unwrap();
        let st = State::at(tmp.path().to_path_buf());
        let err = st.read_json::<BTreeMap<String, u32>>("x.json").unwrap_err();
        assert!(format!("{err:#}").contains("x.json is corrupt"), "{err:#}");
    }

    #[test]
    fn an_empty_record_is_corrupt_never_empty() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("names.json"), "").unwrap();
        let st = State::at(tmp.path().to_path_buf());
        let err = st
            .read_json::<BTreeMap<String, u32>>("names.json")
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("names.json is corrupt"), "{msg}");
        assert!(
            crate::error::find_hint(&err).is_some_and(|h| h.contains("doctor --repair")),
            "{msg}"
        );
        // And an update refuses too, leaving the file as it was.
        let r = st.update_json("names.json", |m: &mut BTreeMap<String, u32>| {
            m.insert("x".into(), 1);
            Ok(())
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(tmp.path().join("names.json")).unwrap(), b"");
    }
}
