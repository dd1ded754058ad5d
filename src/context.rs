//! What every command starts from: the worktree, its config, git-vmoat's state, the backend,
//! and the VM name (with the ownership registry that keeps names unique).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::backend::{self, Backend};
use crate::config::Config;
use crate::error::hint;
use crate::repo::{self, Worktree};
use crate::state::State;

const NAMES: &str = "names.json";

/// Who a VM name belongs to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Owner {
    pub identity: String,
    pub root: PathBuf,
    pub backend: String,
    /// Device of the worktree's filesystem, to tell a deleted worktree from an unmounted disk.
    #[serde(default)]
    pub dev: Option<u64>,
}

pub type Names = BTreeMap<String, Owner>;

pub struct Ctx {
    pub wt: Worktree,
    pub state: State,
    pub cfg: Config,
    pub backend: Box<dyn Backend>,
}

impl Ctx {
    /// Discovers the worktree around the current directory and loads everything.
    pub fn load(backend_flag: Option<&str>) -> Result<Self> {
        let cwd = std::env::current_dir()?;
        let wt = repo::discover(&cwd)?;
        let state = State::open()?;
        let cfg = Config::load(&wt.root, &state)?;
        let backend = backend::select(backend_flag.unwrap_or(&cfg.backend), &state)?;
        Ok(Self {
            wt,
            state,
            cfg,
            backend,
        })
    }

    /// The VM name of this worktree, without recording anything.
    pub fn vm_name(&self) -> Result<String> {
        let names: Names = self.state.read_json(NAMES)?;
        self.derive(&names)
    }

    fn derive(&self, names: &Names) -> Result<String> {
        let identity = self.wt.identity();
        if let Some((name, _)) = names
            .iter()
            .find(|(n, o)| o.identity == identity && n.starts_with(&self.cfg.prefix))
        {
            return Ok(name.clone());
        }
        let max = self.backend.max_name_len()?;
        crate::naming::derive(&self.cfg.prefix, &self.wt.dir_name(), &identity, max, |n| {
            names.get(n).is_some_and(|o| o.identity != identity)
        })
        .map_err(|e| {
            hint(
                format!(
                    "no valid VM name fits: the shortest possible is {} characters, but {} allows {}",
                    e.shortest,
                    self.backend.kind(),
                    e.max_len
                ),
                "shorten vm.prefix, or give Colima a shorter home (COLIMA_HOME=~/.c): its socket paths must stay under 104 bytes",
            )
        })
    }

    /// The VM name, recorded as this worktree's so no other worktree can take it.
    pub fn claim_vm_name(&self) -> Result<String> {
        let identity = self.wt.identity();
        self.state.update_json(NAMES, |names: &mut Names| {
            let name = self.derive(names)?;
            let dev = std::fs::metadata(&self.wt.root)
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::dev(&m));
            names.insert(
                name.clone(),
                Owner {
                    identity,
                    root: self.wt.root.clone(),
                    backend: self.backend.kind().into(),
                    dev,
                },
            );
            Ok(name)
        })
    }
}

/// Closes a VM's tunnels, deletes it, and forgets it (name, host ports, runtime files).
/// Shared by `destroy`, `gc` and the watcher.
pub fn teardown(state: &State, backend: &dyn Backend, name: &str) -> Result<()> {
    let _vm_lock = state.lock(&format!("vm-{name}"))?;
    crate::tunnel::close_all(state, name)?;
    // Deleting is idempotent in every backend: no state query needed first.
    backend.delete(name)?;
    crate::tunnel::forget(state, name)?;
    unclaim(state, name)
}

/// Forgets a name (and its runtime files) whose VM is gone or was never made.
pub fn unclaim(state: &State, name: &str) -> Result<()> {
    state.update_json(NAMES, |names: &mut Names| {
        names.remove(name);
        Ok(())
    })?;
    let dir = state.vm_dir_path(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
