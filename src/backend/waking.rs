//! The backend every command gets: the real one, with a suspended VM woken before anything
//! needs it and shown as `Suspended`; commands run in it hold a lease that keeps it awake.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use super::{Backend, BackendKind, ExecOut, Io, StartSpec, VmInfo, VmState};
use super::{stopping, suspend};
use crate::exec::Cmd;
use crate::state::State;

pub struct Waking {
    inner: Box<dyn Backend>,
    state: State,
}

impl Waking {
    pub fn new(inner: Box<dyn Backend>, state: State) -> Self {
        Self { inner, state }
    }

    fn wake(&self, vm: &str) -> Result<()> {
        suspend::wake_for_command(&self.state, self.inner.as_ref(), vm, false)?;
        // Whatever a volume copy that died left in this VM is undone before it is used.
        super::copy_guard::recover(&self.state, self.inner.as_ref(), vm);
        Ok(())
    }
}

impl Backend for Waking {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn ensure_installed(&self) -> Result<()> {
        self.inner.ensure_installed()
    }
    fn max_name_len(&self) -> Result<usize> {
        self.inner.max_name_len()
    }
    fn shares_host_fs(&self) -> bool {
        self.inner.shares_host_fs()
    }
    fn info(&self, vm: &str) -> Result<VmInfo> {
        // A `down` that died midway is finished before the VM is looked at (or used).
        stopping::finish_interrupted(&self.state, self.inner.as_ref(), vm);
        let mut info = self.inner.info(vm)?;
        if info.state == VmState::Running
            && suspend::finish_interrupted(&self.state, self.inner.as_ref(), vm)
        {
            return Ok(info);
        }
        let suspended = suspend::record(&self.state, vm).is_some() || self.inner.is_frozen(vm);
        if suspended && matches!(info.state, VmState::Running | VmState::Stopped) {
            info.state = VmState::Suspended;
        }
        Ok(info)
    }
    fn describe_new(&self, vm: &str, spec: &StartSpec<'_>) -> String {
        self.inner.describe_new(vm, spec)
    }
    fn reserves_memory(&self) -> bool {
        self.inner.reserves_memory()
    }
    fn stop_containers(&self, vm: &str, timeout: Duration) {
        if suspend::record(&self.state, vm).is_some() || self.inner.is_frozen(vm) {
            // A VM the backend stopped is never started just to be stopped: nothing runs in it.
            if !self.inner.freezes_processes() {
                return;
            }
            // A frozen one is thawed (not woken: nothing is started again) so that its
            // containers get `timeout` as on a running VM; its daemon would give them docker's
            // own default when it is stopped.
            if let Err(e) = suspend::settle(&self.state, self.inner.as_ref(), vm) {
                crate::output::warn(format!("{e:#}"));
                return;
            }
        }
        self.inner.stop_containers(vm, timeout);
    }
    fn preflight(&self, spec: &StartSpec<'_>) -> Result<()> {
        self.inner.preflight(spec)
    }
    fn start(&self, vm: &str, spec: &StartSpec<'_>, current: &VmState) -> Result<()> {
        self.wake(vm)?;
        let current = if *current == VmState::Suspended {
            self.inner.info(vm)?.state
        } else {
            *current
        };
        self.inner.start(vm, spec, &current)
    }
    fn resume(&self, vm: &str) -> Result<()> {
        if suspend::wake_for_command(&self.state, self.inner.as_ref(), vm, false)? {
            return Ok(());
        }
        self.inner.resume(vm)
    }
    fn stop(&self, vm: &str) -> Result<()> {
        suspend::settle(&self.state, self.inner.as_ref(), vm)?;
        self.inner.stop(vm)
    }
    fn stopped_holds_host_state(&self) -> bool {
        self.inner.stopped_holds_host_state()
    }
    fn unwrapped(&self) -> &dyn Backend {
        self.inner.unwrapped()
    }
    fn freeze(&self, vm: &str) -> Result<()> {
        self.inner.freeze(vm)
    }
    fn thaw(&self, vm: &str) -> Result<()> {
        self.inner.thaw(vm)
    }
    fn freezes_processes(&self) -> bool {
        self.inner.freezes_processes()
    }
    fn is_frozen(&self, vm: &str) -> bool {
        self.inner.is_frozen(vm)
    }
    // Measured as it is: asking must not wake a suspended VM.
    fn live_usage(&self, vm: &str) -> super::Usage {
        self.inner.live_usage(vm)
    }
    fn disk_bytes(&self, vm: &str) -> Option<u64> {
        self.inner.disk_bytes(vm)
    }
    fn usage(&self, vm: &str) -> super::Usage {
        self.inner.usage(vm)
    }
    fn cpu_ns(&self, vm: &str) -> Option<u64> {
        self.inner.cpu_ns(vm)
    }
    fn disk_need(&self) -> Option<super::DiskNeed> {
        self.inner.disk_need()
    }
    fn delete(&self, vm: &str) -> Result<()> {
        suspend::settle(&self.state, self.inner.as_ref(), vm)?;
        self.inner.delete(vm)
    }
    fn exec(&self, vm: &str, cwd: &Path, script: Option<&str>, io: Io) -> Result<ExecOut> {
        self.wake(vm)?;
        // Anything run in the VM keeps it awake while it runs (the watcher never freezes it midway).
        let _lease = suspend::lease(&self.state, vm);
        self.inner.exec(vm, cwd, script, io)
    }
    fn docker(&self, vm: &str) -> Result<Cmd> {
        self.wake(vm)?;
        self.inner.docker(vm)
    }
    fn forward(&self, vm: &str, host: u16, guest: u16) -> Result<Cmd> {
        self.inner.forward(vm, host, guest)
    }
    fn owner_mark(&self, vm: &str) -> Option<String> {
        self.inner.owner_mark(vm)
    }
    fn set_owner_mark(&self, vm: &str, mark: &str) -> Result<()> {
        self.inner.set_owner_mark(vm, mark)
    }
    fn list_vms(&self) -> Result<Vec<String>> {
        self.inner.list_vms()
    }
    fn checks(&self, scope: &crate::check::Scope<'_>) -> Vec<crate::check::Check> {
        self.inner.checks(scope)
    }
    fn forwarder_marker(&self, vm: &str) -> String {
        self.inner.forwarder_marker(vm)
    }
}
