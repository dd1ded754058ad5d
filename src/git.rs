//! The only place that runs `git` itself: what gix does not do (config writes, porcelain status).

use std::path::Path;

use anyhow::Result;

use crate::exec::Cmd;

fn git(dir: &Path) -> Cmd {
    Cmd::new("git").arg("-C").arg(dir)
}

/// Sets a key in the repository's own config (`git config --local`).
pub fn config_set(dir: &Path, key: &str, value: &str) -> Result<()> {
    git(dir).args(["config", "--local", key, value]).checked()?;
    Ok(())
}

/// Sets a key in one config file (`git config --file`).
pub fn file_config_set(file: &Path, key: &str, value: &str) -> Result<()> {
    Cmd::new("git")
        .arg("config")
        .arg("--file")
        .arg(file)
        .args([key, value])
        .checked()?;
    Ok(())
}

/// Removes a key from one config file; no error when it is not set.
pub fn file_config_unset(file: &Path, key: &str) -> Result<()> {
    let out = Cmd::new("git")
        .arg("config")
        .arg("--file")
        .arg(file)
        .args(["--unset-all", key])
        .output()?;
    if !out.status.success() && out.status.code() != Some(5) {
        anyhow::bail!(
            "git config --file {} --unset {key} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Removes a key from the repository's own config; no error when it is not set.
pub fn config_unset(dir: &Path, key: &str) -> Result<()> {
    let out = git(dir)
        .args(["config", "--local", "--unset-all", key])
        .output()?;
    // Exit 5: the key was not set.
    if !out.status.success() && out.status.code() != Some(5) {
        anyhow::bail!(
            "git config --unset {key} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether the worktree has uncommitted changes (tracked or untracked, ignoring ignored files).
pub fn is_dirty(dir: &Path) -> Result<bool> {
    let out = git(dir).args(["status", "--porcelain", "-z"]).checked()?;
    Ok(!out.stdout.is_empty())
}
