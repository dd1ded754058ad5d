//! A throwaway unprivileged user, for tests of what another user can and cannot reach.

use std::path::Path;
use std::process::Command;

use super::{Env, Run, bin, to_run, which};

/// A throwaway unprivileged user whose home is the test's HOME, removed (`userdel -r`) on drop
/// even when the test fails. Needs root, useradd and setpriv.
pub struct TempUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TempUser {
    /// Err: why no user can be made here (the test is skipped with it).
    pub fn create(env: &Env) -> Result<Self, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("creating a test user needs root".into());
        }
        for tool in ["useradd", "userdel", "setpriv"] {
            if which(tool).is_none() && !Path::new("/usr/sbin").join(tool).exists() {
                return Err(format!(
                    "{tool} is not installed (apt install passwd util-linux)"
                ));
            }
        }
        // Unique per test process; the pid keeps parallel runs of the suite apart.
        // A count apart two users of one test process (tests run in parallel threads).
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("vmt{}x{n}", std::process::id());
        let out = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", "-d"])
            .arg(&env.home)
            .arg(&name)
            .output()
            .map_err(|e| format!("useradd: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "useradd failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        // From here on Drop removes the user, whatever fails next.
        let mut user = Self {
            name,
            uid: 0,
            gid: 0,
        };
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, &user.name])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        (user.uid, user.gid) = (id("-u"), id("-g"));
        Ok(user)
    }

    /// Gives the user the test's HOME (everything made there so far) and lets it reach it
    /// through the temp dir, which tempfile makes private to root.
    pub fn own_home(&self, env: &Env) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(env.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(&env.home)
            .status()
            .unwrap();
        assert!(st.success(), "chown of the test's HOME");
    }

    /// Takes away the user's subordinate ids (what useradd gave), so the rootless backend
    /// cannot run for them: a user with no backend at all.
    pub fn without_subordinate_ids(&self) {
        for (file, flag) in [
            ("/etc/subuid", "--del-subuids"),
            ("/etc/subgid", "--del-subgids"),
        ] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            for l in text.lines() {
                let f: Vec<&str> = l.split(':').collect();
                if f.len() == 3 && f[0] == self.name {
                    let (first, count): (u64, u64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
                    let range = format!("{first}-{}", first + count - 1);
                    let st = Command::new("usermod")
                        .args([flag, &range, &self.name])
                        .status()
                        .unwrap();
                    assert!(st.success(), "usermod {flag} {range}");
                }
            }
        }
    }

    /// git-vmoat run as this user, with the hermetic environment and no Colima stand-in.
    pub fn vmoat(&self, env: &Env, dir: &Path, args: &[&str]) -> Run {
        let mut c = env.cmd("setpriv", dir);
        c.args([
            &format!("--reuid={}", self.uid),
            &format!("--regid={}", self.gid),
            "--clear-groups",
            "--",
        ])
        .arg(bin())
        .args(args)
        .env("PATH", env.path_var(false))
        .env("USER", &self.name);
        to_run(c.output().unwrap())
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        // userdel refuses a user with processes: a failed test may leave its VMs running.
        use std::os::unix::fs::MetadataExt;
        // (uid 0 until the user's id was read: never signal root's processes.)
        let procs = std::fs::read_dir("/proc").into_iter().flatten().flatten();
        for e in procs.filter(|_| self.uid != 0) {
            let owned = std::fs::metadata(e.path()).is_ok_and(|m| m.uid() == self.uid);
            let pid = e.file_name().to_string_lossy().parse::<i32>().ok();
            if let (true, Some(p)) = (owned, pid.and_then(rustix::process::Pid::from_raw)) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
        let _ = Command::new("userdel")
            .args(["-r", &self.name])
            .stderr(std::process::Stdio::null())
            .status();
    }
}
