//! Moving a volume's files: streamed between two daemons with `docker cp` (through containers
//! that are created and never started, so no image has to be pulled), or copied directly by a
//! shell where the daemons' files are (reflinked where the filesystem can).

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::backend::copy_guard::COPY_LABEL;
use crate::backend::{Backend, Io};
use crate::exec::Cmd;
use crate::shell::quote;

/// The image the copy containers are made from: an empty one, imported from an empty archive.
pub const SCRATCH: &str = "git-vmoat/scratch:1";

/// Makes `SCRATCH` in a daemon unless it has it.
fn ensure_scratch(docker: Cmd, again: Cmd) -> Result<()> {
    let has = docker
        .args(["image", "inspect", "--format", "{{.Id}}", SCRATCH])
        .output()
        .is_ok_and(|o| o.status.success());
    if has {
        return Ok(());
    }
    let mut child = again
        .args(["import", "-", SCRATCH])
        .stdin_piped()
        .spawn_with(Stdio::null(), Stdio::piped())?;
    // Two zero blocks: the end of an archive that holds nothing.
    child
        .stdin
        .take()
        .context("docker import has no stdin")?
        .write_all(&[0u8; 1024])?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "making the empty copy image: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A container that mounts `volume` at /v, created never to run; removed on drop.
pub struct Holder<'a> {
    b: &'a dyn Backend,
    vm: String,
    pub id: String,
}

impl<'a> Holder<'a> {
    pub fn new(b: &'a dyn Backend, vm: &str, volume: &str) -> Result<Self> {
        ensure_scratch(b.docker(vm)?, b.docker(vm)?)?;
        let out = b
            .docker(vm)?
            .args(["create", "--network", "none", "--label"])
            .arg(format!("{COPY_LABEL}={}", std::process::id()))
            .arg("-v")
            .arg(format!("{volume}:/v"))
            .args([SCRATCH, "/nothing"])
            .checked()
            .with_context(|| format!("making a container to copy volume {volume} in {vm}"))?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(Self {
            b,
            vm: vm.to_string(),
            id,
        })
    }

    fn docker(&self) -> Result<Cmd> {
        self.b.docker(&self.vm)
    }
}

impl Drop for Holder<'_> {
    fn drop(&mut self) {
        if let Ok(d) = self.docker() {
            let _ = d.args(["rm", "-f", &self.id]).output();
        }
    }
}

/// Streams the files of `from`'s volume into `to`'s (a fresh one): `docker cp` out of one
/// daemon piped into `docker cp -a` (owners kept) into the other. Returns the bytes streamed.
pub fn stream(from: &Holder<'_>, to: &Holder<'_>) -> Result<u64> {
    let mut out = from
        .docker()?
        .args(["cp", &format!("{}:/v", from.id), "-"])
        .spawn_with(Stdio::piped(), Stdio::piped())?;
    let mut inn = to
        .docker()?
        .args(["cp", "-a", "-", &format!("{}:/", to.id)])
        .stdin_piped()
        .spawn_with(Stdio::null(), Stdio::piped())?;
    let mut src = out.stdout.take().context("docker cp has no stdout")?;
    let mut dst = inn.stdin.take().context("docker cp has no stdin")?;
    let copied = std::io::copy(&mut src, &mut dst);
    drop(dst);
    let out_done = out.wait_with_output()?;
    let in_done = inn.wait_with_output()?;
    for (what, o) in [("out of", &out_done), ("into", &in_done)] {
        if !o.status.success() {
            bail!(
                "copying the files {what} the volume: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
    }
    let total = copied.context("streaming the volume's files")?;
    Ok(total)
}

/// Runs `script` as root in the VM (sudo where the VM's shell is not root).
pub fn root_sh(b: &dyn Backend, vm: &str, script: &str) -> Result<crate::backend::ExecOut> {
    let body = format!(
        "S=; [ \"$(id -u)\" = 0 ] || S='sudo -n'; $S sh -c {}",
        quote(script)
    );
    b.exec(vm, Path::new("/"), Some(&body), Io::Capture)
}

/// Replaces the files at `dst` (a volume's `_data` dir) with a copy of `src`, in the VM: the
/// copy is made beside it and renamed into place, so `dst` is never half new.
pub fn replace_in_vm(b: &dyn Backend, vm: &str, src: &str, dst: &str) -> Result<()> {
    let script = format!(
        "set -e; s={}; d={}; p=\"$d.partial\"; o=\"$d.old\"; {RECOVER} rm -rf \"$p\" \"$o\"; \
         r=; cp --help 2>&1 | grep -q reflink && r=--reflink=auto; \
         cp -a $r \"$s\" \"$p\" || {{ rm -rf \"$p\"; exit 1; }}; \
         mv \"$d\" \"$o\"; mv \"$p\" \"$d\" || {{ mv \"$o\" \"$d\"; exit 1; }}; rm -rf \"$o\"",
        quote(src),
        quote(dst)
    );
    let out = root_sh(b, vm, &script)?;
    if out.code != 0 {
        bail!(
            "copying {src} to {dst} in {vm}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Puts a volume's files back where a swap that died between its two renames left them aside
/// (`$d` gone, `$d.old` whole), before anything removes `$d.old`.
const RECOVER: &str = "[ -e \"$d\" ] || [ ! -e \"$o\" ] || mv \"$o\" \"$d\";";

/// Moves the files of volume dir `src` into place at `dst` (the same filesystem): a rename.
pub fn move_in_vm(b: &dyn Backend, vm: &str, src: &str, dst: &str) -> Result<()> {
    let script = format!(
        "set -e; s={}; d={}; o=\"$d.old\"; {RECOVER} rm -rf \"$o\"; \
         mv \"$d\" \"$o\"; mv \"$s\" \"$d\" || {{ mv \"$o\" \"$d\"; exit 1; }}; mkdir \"$s\"; rm -rf \"$o\"",
        quote(src),
        quote(dst)
    );
    let out = root_sh(b, vm, &script)?;
    if out.code != 0 {
        bail!(
            "moving {src} into place in {vm}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The size in bytes of each dir (`du`), in the order given; 0 for one that cannot be read.
pub fn sizes(b: &dyn Backend, vm: &str, dirs: &[String]) -> Vec<u64> {
    if dirs.is_empty() {
        return vec![];
    }
    let args: Vec<String> = dirs.iter().map(|d| quote(d)).collect();
    let out = root_sh(b, vm, &format!("du -sk {} 2>/dev/null", args.join(" ")));
    let text = out.map(|o| o.stdout_text()).unwrap_or_default();
    let mut found = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some((k, path)) = line.split_once('\t')
            && let Ok(k) = k.trim().parse::<u64>()
        {
            found.insert(path.to_string(), k * 1024);
        }
    }
    dirs.iter()
        .map(|d| found.get(d).copied().unwrap_or(0))
        .collect()
}

/// Free bytes on the filesystem holding `dir` in the VM (None: unknown).
pub fn free(b: &dyn Backend, vm: &str, dir: &str) -> Option<u64> {
    let out = root_sh(b, vm, &format!("df -Pk {}", quote(dir))).ok()?;
    let text = out.stdout_text();
    let line = text.lines().nth(1)?;
    let kib: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(kib * 1024)
}

/// Whether an error says the disk filled up.
pub fn is_disk_full(e: &anyhow::Error) -> bool {
    let t = format!("{e:#}");
    t.contains("No space left") || t.contains("no space left")
}
