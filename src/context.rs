//! What every command starts from: the worktree, its config, git-vmoat's state, the backend,
//! and the VM name (with the ownership registry that keeps names unique).

use anyhow::Result;

use crate::backend::{self, Backend, BackendKind};
use crate::config::Config;
use crate::error::hint;
use crate::registry;
use crate::repo::{self, Worktree};
use crate::state::State;

pub use crate::registry::{Names, Owner};

/// A worktree's VM that exists: its name, the backend it was made with, and the context.
pub type Existing = (String, Box<dyn Backend>, Base);

/// What every command has: the worktree and git-vmoat's state, nothing that can fail on a
/// changed or untrusted config. Commands that only stop, delete or inspect a VM start here.
pub struct Base {
    pub wt: Worktree,
    pub state: State,
    flag: Option<BackendKind>,
    /// The registry's answer for this worktree, read once (nothing is claimed through a Base).
    recorded: std::cell::OnceCell<Option<(String, Owner)>>,
}

impl Base {
    pub fn load(backend_flag: Option<BackendKind>) -> Result<Self> {
        Ok(Self::at(here()?, State::open()?, backend_flag))
    }

    /// For a worktree already found (a job that must not depend on its current directory).
    pub fn at(wt: Worktree, state: State, backend_flag: Option<BackendKind>) -> Self {
        Self {
            wt,
            state,
            flag: backend_flag,
            recorded: Default::default(),
        }
    }

    /// This worktree's VM as recorded at creation: its name and owner (backend, prefix).
    pub fn recorded(&self) -> Result<Option<(String, Owner)>> {
        if let Some(r) = self.recorded.get() {
            return Ok(r.clone());
        }
        let found = registry::find(&registry::load(&self.state)?, &self.wt);
        Ok(self.recorded.get_or_init(|| found).clone())
    }

    /// The VM this worktree has, found by identity, with the backend it was made with; for VMs
    /// that predate the registry (made by the original tool), the configured name if such a VM
    /// exists. None: no VM to act on.
    pub fn existing_vm(self) -> Result<Option<Existing>> {
        if let Some((name, owner)) = self.recorded()? {
            let b = backend::select(owner.backend, &self.state)?;
            return Ok(Some((name, b, self)));
        }
        // Not recorded: only a VM the original tool made can exist; that needs today's config
        // for its name. A config that cannot be read means there is nothing we could find.
        let Ok(ctx) = self.full() else {
            return Ok(None);
        };
        let name = ctx.vm_name()?;
        if ctx.backend.ensure_installed().is_err()
            || ctx.backend.info(&name)?.state == crate::backend::VmState::Missing
        {
            return Ok(None);
        }
        let Ctx {
            wt, state, backend, ..
        } = ctx;
        Ok(Some((name, backend, Self::at(wt, state, None))))
    }

    /// Loads the config and the backend too (for commands that make or use a VM).
    pub fn full(self) -> Result<Ctx> {
        self.load_full(false)
    }

    /// Like `full`, for commands that need no VM (`name`, `status`, `seed`): where no backend
    /// can run here, a stand-in that derives names as `up` will and refuses the rest.
    pub fn full_without_vm(self) -> Result<Ctx> {
        self.load_full(true)
    }

    fn load_full(self, without_vm: bool) -> Result<Ctx> {
        let cfg = Config::load(&self.wt.root, &self.state)?;
        let wanted = match self.flag {
            Some(k) => k,
            None => BackendKind::parse(&cfg.backend)?,
        };
        let kind = match self.recorded()? {
            // The VM stays on the backend it was made with; switching needs a destroy first.
            Some((name, owner)) if wanted != BackendKind::Auto && wanted != owner.backend => {
                return Err(hint(
                    format!(
                        "this worktree's VM {name} runs on {}, but the backend is now set to {wanted}",
                        owner.backend
                    ),
                    format!(
                        "run `git vmoat destroy` to remove it first (then `up` makes one on {wanted}), or set the backend back to {}",
                        owner.backend
                    ),
                ));
            }
            Some((_, owner)) => owner.backend,
            None => wanted,
        };
        let backend = if without_vm {
            backend::select_without_vm(kind, &self.state)?
        } else {
            backend::select(kind, &self.state)?
        };
        Ok(Ctx {
            wt: self.wt,
            state: self.state,
            cfg,
            backend,
            new_repo_id: Default::default(),
        })
    }
}

pub struct Ctx {
    pub wt: Worktree,
    pub state: State,
    pub cfg: Config,
    pub backend: Box<dyn Backend>,
    /// The repository id this process made (taken back if the first VM fails to start).
    new_repo_id: std::cell::RefCell<Option<String>>,
}

impl Ctx {
    /// Discovers the worktree around the current directory and loads everything.
    pub fn load(backend_flag: Option<BackendKind>) -> Result<Self> {
        Base::load(backend_flag)?.full()
    }

    /// The VM name of this worktree, without recording anything: the recorded one, else the
    /// one `up` would make.
    pub fn vm_name(&self) -> Result<String> {
        let names = registry::load(&self.state)?;
        // With nothing recorded no id could match: skip reading it (`name` must stay cheap).
        let wt = if names.is_empty() {
            self.wt.clone()
        } else {
            self.wt_now()
        };
        if let Some((name, _)) = registry::find(&names, &wt) {
            return Ok(name);
        }
        self.derive(&|n| {
            names.get(n).is_some_and(|o| !registry::owns(o, &wt))
                || registry::read_owner(&self.state, n).is_some_and(|o| !registry::owns(&o, &wt))
        })
    }

    /// The worktree with the repository id as it is now: a claim in this process (the first
    /// `up` of a repository) may have made the id after the worktree was read.
    pub fn wt_now(&self) -> Worktree {
        let mut wt = self.wt.clone();
        if wt.repo_id.is_none() {
            wt.repo_id = repo::read_repo_id(&wt.common_dir);
        }
        wt
    }

    /// Keeps this worktree's owner record with the VM itself (best effort: the registry and the
    /// runtime dir hold it too).
    pub fn mark_owner(&self, vm: &str) {
        if let Some(owner) = registry::read_owner(&self.state, vm)
            && let Ok(text) = serde_json::to_string(&owner)
            && self.backend.owner_mark(vm).as_deref() != Some(text.as_str())
            && let Err(e) = self.backend.set_owner_mark(vm, &text)
        {
            crate::output::warn(format!(
                "could not keep the owner record with VM {vm}: {e:#}"
            ));
        }
    }

    /// A VM that exists and carries another worktree's owner record (or one that cannot be
    /// read): never this worktree's, whatever a lost or damaged registry says.
    fn marked_by_other(&self, vm: &str, wt: &std::cell::OnceCell<Worktree>) -> bool {
        self.backend.owner_mark(vm).is_some_and(|m| {
            serde_json::from_str::<Owner>(&m).map_or(true, |o| {
                !registry::owns(&o, wt.get_or_init(|| self.wt_now()))
            })
        })
    }

    fn derive(&self, taken: &dyn Fn(&str) -> bool) -> Result<String> {
        // The current id is needed only when a VM of that name carries an owner record.
        let wt = std::cell::OnceCell::new();
        let taken = |n: &str| taken(n) || self.marked_by_other(n, &wt);
        let taken = &taken;
        // Only a seed for the hash that keeps names unique; the location (not the id, which
        // may not exist yet) makes the name `name` predicts equal to the one `up` records.
        let identity = self.wt.location_key();
        let max = self.backend.max_name_len()?;
        crate::naming::derive(&self.cfg.prefix, &self.wt.dir_name(), &identity, max, taken)
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

    /// Gives back a name whose VM was never made, and the repository id if this process made
    /// it for that VM alone.
    pub fn give_back(&self, name: &str) -> Result<()> {
        unclaim(&self.state, name)?;
        if let Some(id) = self.new_repo_id.take() {
            registry::forget_new_repo_id(&self.state, &self.wt, &id)?;
        }
        Ok(())
    }

    /// The VM name, recorded as this worktree's (in the registry and the VM's own owner
    /// record) before anything is made, so no other worktree can take it and the watcher sees it.
    pub fn claim_vm_name(&self) -> Result<String> {
        // The repository gets its id here, once everything else was checked: a refused
        // command leaves the repository as it was.
        let mut wt = self.wt.clone();
        let (id, made) = registry::ensure_repo_id(&self.state, &mut wt)?;
        let claimed = registry::claim(
            &self.state,
            &wt,
            self.backend.kind(),
            &self.cfg.prefix,
            |taken| self.derive(taken),
        );
        match claimed {
            Ok((name, _)) => {
                if made {
                    self.new_repo_id.replace(Some(id));
                }
                Ok(name)
            }
            Err(e) => {
                if made {
                    let _ = registry::forget_new_repo_id(&self.state, &wt, &id);
                }
                Err(e)
            }
        }
    }
}

/// The worktree around the current directory (for commands that need no more than that).
pub fn here() -> Result<Worktree> {
    repo::discover(&std::env::current_dir()?)
}

/// Closes a VM's tunnels, deletes it, and forgets it (name, host ports, runtime files).
/// Shared by `destroy`, `gc` and the watcher.
pub fn teardown(state: &State, backend: &dyn Backend, name: &str) -> Result<()> {
    let _vm_lock = state.lock_vm(name)?;
    crate::tunnel::close_all(state, backend, name)?;
    // Deleting is idempotent in every backend: no state query needed first.
    backend.delete(name)?;
    // Never report (or forget) a VM as destroyed while it still exists.
    let after = backend.info(name)?.state;
    if after != crate::backend::VmState::Missing {
        return Err(hint(
            format!("VM {name} still exists after deleting it ({after})"),
            format!(
                "nothing was forgotten; retry, or inspect it with the {} backend's own tools",
                backend.kind()
            ),
        ));
    }
    crate::tunnel::forget(state, name)?;
    unclaim(state, name)
}

/// Forgets a name (and its runtime files) whose VM is gone or was never made.
pub fn unclaim(state: &State, name: &str) -> Result<()> {
    registry::unclaim(state, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::VmState;
    use crate::backend::fake::Fake;

    fn worktree(tmp: &std::path::Path) -> Worktree {
        let root = tmp.join("proj");
        let ok = std::process::Command::new("git")
            .args(["init", "-q"])
            .arg(&root)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git init");
        crate::repo::discover(&root).unwrap()
    }

    fn ctx(tmp: &std::path::Path, fake: &Fake) -> Ctx {
        let wt = worktree(tmp);
        let state = State::at(tmp.join("state"));
        let cfg = Config::load(&wt.root, &state).unwrap();
        Ctx {
            wt,
            state,
            cfg,
            backend: Box::new(fake.clone()),
            new_repo_id: Default::default(),
        }
    }

    #[test]
    fn a_claimed_name_is_recorded_with_its_backend_and_given_back_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = Fake::new(BackendKind::Netns);
        let ctx = ctx(tmp.path(), &fake);
        let name = ctx.claim_vm_name().unwrap();
        assert_eq!(name, format!("{}proj", ctx.cfg.prefix));
        let (_, owner) = registry::find(&registry::load(&ctx.state).unwrap(), &ctx.wt_now())
            .expect("recorded before anything is made");
        assert_eq!(owner.backend, BackendKind::Netns);
        assert!(crate::repo::read_repo_id(&ctx.wt.common_dir).is_some());
        // Claiming again is the same name; giving it back leaves the repository as it was.
        assert_eq!(ctx.claim_vm_name().unwrap(), name);
        ctx.give_back(&name).unwrap();
        assert!(registry::load(&ctx.state).unwrap().is_empty());
        assert_eq!(crate::repo::read_repo_id(&ctx.wt.common_dir), None);
        assert!(fake.calls().is_empty(), "claiming touches no VM");
    }

    #[test]
    fn teardown_deletes_the_vm_then_forgets_it() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = Fake::new(BackendKind::Colima);
        let ctx = ctx(tmp.path(), &fake);
        let name = ctx.claim_vm_name().unwrap();
        let fake = fake.with_vm(&name, VmState::Running);
        teardown(&ctx.state, &fake, &name).unwrap();
        assert_eq!(fake.state_of(&name), VmState::Missing);
        assert_eq!(
            fake.calls(),
            [format!("delete {name}"), format!("info {name}")]
        );
        assert!(registry::load(&ctx.state).unwrap().is_empty());
        assert!(
            !ctx.state.vm_dir_path(&name).exists(),
            "its runtime files go too"
        );
    }

    #[test]
    fn teardown_forgets_nothing_while_the_vm_still_exists() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = Fake::new(BackendKind::Colima);
        let ctx = ctx(tmp.path(), &fake);
        let name = ctx.claim_vm_name().unwrap();
        let fake = fake.with_vm(&name, VmState::Stopped);
        fake.keep_on_delete(&name);
        let e = teardown(&ctx.state, &fake, &name).unwrap_err();
        assert!(
            e.to_string()
                .contains("still exists after deleting it (Stopped)"),
            "{e}"
        );
        assert!(crate::error::find_hint(&e).is_some_and(|h| h.contains("colima")));
        assert!(registry::load(&ctx.state).unwrap().contains_key(&name));
    }
}
