//! An in-process backend for unit tests of command logic: VMs and their states live in memory,
//! command results are scripted, and every call is recorded, so a test runs in milliseconds
//! with no Colima, root or docker.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Result, bail};

use super::{Backend, BackendKind, ExecOut, Io, StartSpec, VmInfo, VmState};
use crate::exec::Cmd;

/// One VM of the fake.
#[derive(Clone, Debug)]
pub struct FakeVm {
    pub state: VmState,
    pub cpus: u64,
    pub memory_gib: u64,
    pub owner_mark: Option<String>,
}

#[derive(Default)]
struct Inner {
    vms: BTreeMap<String, FakeVm>,
    /// (text the script contains, result): the first match answers `exec`.
    scripts: Vec<(String, i32, String)>,
    /// VMs whose deletion silently fails (a runtime that reports success and keeps the VM).
    undeletable: Vec<String>,
    calls: Vec<String>,
}

/// A backend whose clones share one machine, as every `select` of a real backend does.
#[derive(Clone)]
pub struct Fake {
    kind: BackendKind,
    inner: Arc<Mutex<Inner>>,
}

impl Fake {
    pub fn new(kind: BackendKind) -> Self {
        Self {
            kind,
            inner: Default::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding it has failed already; its data is still good.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or replaces) a VM in `state`.
    pub fn with_vm(self, name: &str, state: VmState) -> Self {
        self.lock().vms.insert(
            name.to_string(),
            FakeVm {
                state,
                cpus: 2,
                memory_gib: 2,
                owner_mark: None,
            },
        );
        self
    }

    /// The VM's state as the fake holds it (`Missing` when it has none).
    pub fn state_of(&self, name: &str) -> VmState {
        self.lock()
            .vms
            .get(name)
            .map_or(VmState::Missing, |v| v.state)
    }

    /// Makes `delete` of `name` report success and keep the VM.
    pub fn keep_on_delete(&self, name: &str) {
        self.lock().undeletable.push(name.to_string());
    }

    /// Every call made so far, as `op vm` lines.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    fn record(&self, op: &str, vm: &str) {
        self.lock().calls.push(format!("{op} {vm}"));
    }

    fn set_state(&self, vm: &str, state: VmState) -> Result<()> {
        match self.lock().vms.get_mut(vm) {
            Some(v) => {
                v.state = state;
                Ok(())
            }
            None => bail!("fake: no VM {vm}"),
        }
    }
}

impl Backend for Fake {
    fn unwrapped(&self) -> &dyn Backend {
        self
    }

    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn ensure_installed(&self) -> Result<()> {
        Ok(())
    }

    fn max_name_len(&self) -> Result<usize> {
        Ok(40)
    }

    fn info(&self, vm: &str) -> Result<VmInfo> {
        self.record("info", vm);
        Ok(match self.lock().vms.get(vm) {
            None => VmInfo::missing(),
            Some(v) => VmInfo {
                state: v.state,
                cpus: Some(v.cpus),
                memory_bytes: Some(v.memory_gib << 30),
                disk_bytes: None,
            },
        })
    }

    fn start(&self, vm: &str, spec: &StartSpec<'_>, _current: &VmState) -> Result<()> {
        self.record("start", vm);
        let mut inner = self.lock();
        let v = inner.vms.entry(vm.to_string()).or_insert(FakeVm {
            state: VmState::Stopped,
            cpus: spec.cpus,
            memory_gib: spec.memory_gib,
            owner_mark: None,
        });
        v.state = VmState::Running;
        Ok(())
    }

    fn resume(&self, vm: &str) -> Result<()> {
        self.record("resume", vm);
        self.set_state(vm, VmState::Running)
    }

    fn stop(&self, vm: &str) -> Result<()> {
        self.record("stop", vm);
        if self.state_of(vm) == VmState::Missing {
            return Ok(());
        }
        self.set_state(vm, VmState::Stopped)
    }

    fn delete(&self, vm: &str) -> Result<()> {
        self.record("delete", vm);
        let mut inner = self.lock();
        if !inner.undeletable.iter().any(|u| u == vm) {
            inner.vms.remove(vm);
        }
        Ok(())
    }

    fn exec(&self, vm: &str, _cwd: &Path, script: Option<&str>, _io: Io) -> Result<ExecOut> {
        self.record("exec", vm);
        if self.state_of(vm) != VmState::Running {
            bail!("fake: VM {vm} is not running");
        }
        let script = script.unwrap_or("");
        let inner = self.lock();
        let (code, stdout) = inner
            .scripts
            .iter()
            .find(|(needle, _, _)| script.contains(needle.as_str()))
            .map_or((0, String::new()), |(_, c, o)| (*c, o.clone()));
        Ok(ExecOut {
            code,
            stdout: stdout.into_bytes(),
            stderr: vec![],
        })
    }

    fn docker(&self, _vm: &str) -> Result<Cmd> {
        bail!("fake: no docker daemon")
    }

    fn forward(&self, _vm: &str, _host: u16, _guest: u16) -> Result<Cmd> {
        bail!("fake: no forwarder")
    }

    fn owner_mark(&self, vm: &str) -> Option<String> {
        self.lock().vms.get(vm)?.owner_mark.clone()
    }

    fn set_owner_mark(&self, vm: &str, mark: &str) -> Result<()> {
        if let Some(v) = self.lock().vms.get_mut(vm) {
            v.owner_mark = Some(mark.to_string());
        }
        Ok(())
    }

    fn list_vms(&self) -> Result<Vec<String>> {
        Ok(self.lock().vms.keys().cloned().collect())
    }

    fn forwarder_marker(&self, vm: &str) -> String {
        format!("--git-vmoat-fake={vm}")
    }
}
