//! What a Colima VM uses of the host, read from Lima's files: its instance dir and data disk
//! (allocated bytes: the disk images are sparse) and the processes its pid files name.

use std::path::PathBuf;

use super::Colima;
use crate::backend::usage::{self, DiskNeed, Usage};
use crate::backend::{Backend, VmState};

/// Free space a new Colima VM needs in the Lima home: Lima writes the VM image out into the
/// instance's disk (1-2 GiB once booted and Docker is installed), and the first images pulled
/// land on the data disk; with less, creation fails midway and leaves a Broken instance.
const NEW_VM_DISK: u64 = 3 << 30;

impl Colima {
    /// Lima's data disk of a profile (docker's images and volumes live there).
    fn data_disk_dir(vm: &str) -> Option<PathBuf> {
        let dir = Self::instance_dir(vm).ok()?;
        Some(dir.parent()?.join("_disks").join(format!("colima-{vm}")))
    }

    /// CPU and memory: a running VM holds all the memory it was given (to the host all of it
    /// is the hypervisor's own, anonymous memory).
    pub(super) fn measure(&self, vm: &str) -> Usage {
        let cpu_ns = self.vm_cpu_ns(vm);
        // Colima is asked only when Lima's processes run.
        let memory = cpu_ns
            .and_then(|_| self.info(vm).ok())
            .filter(|i| i.state == VmState::Running)
            .and_then(|i| i.memory_bytes);
        Usage {
            cpu_ns,
            memory_used: memory,
            memory_anon: memory,
            memory_limit: memory,
            disk_bytes: None,
        }
    }

    /// The instance dir (its root disk) and the data disk, as allocated (the images are sparse).
    pub(super) fn disk(&self, vm: &str) -> Option<u64> {
        let mut roots = vec![Self::instance_dir(vm).ok()?];
        roots.extend(Self::data_disk_dir(vm));
        usage::allocated_bytes(&roots)
    }

    /// CPU time of the processes Lima's pid files name: ha.pid (the host agent, which is the
    /// VM itself with vz), <vmType>.pid (qemu, krunkit) and <driver>.drv.pid (external drivers).
    pub(super) fn vm_cpu_ns(&self, vm: &str) -> Option<u64> {
        let dir = Self::instance_dir(vm).ok()?;
        let pid_files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pid"))
            .collect();
        usage::pid_files_cpu_ns(&pid_files)
    }

    pub(super) fn new_vm_disk() -> Option<DiskNeed> {
        let dir = Self::base_dir()?.join("_lima");
        Some(DiskNeed {
            dir,
            bytes: NEW_VM_DISK,
        })
    }
}
