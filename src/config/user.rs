//! The user's own config file (machine-wide, below every project file) and what only the
//! user's own files may set.

use std::path::PathBuf;

use super::{Config, LEGACY_FILES, Source, TOML_FILE};

/// The user's own config file, below every project file: for what belongs to the machine
/// rather than a project (`vm.budget`, `vm.reserve`, `vm.evict`, `vm.suspend-after`).
/// `~/.config/git-vmoat/config.toml` on Linux (`$XDG_CONFIG_HOME`), the platform's config dir
/// elsewhere.
pub fn user_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "git-vmoat").map(|d| d.config_dir().join("config.toml"))
}

/// `vm.evict` suspends other worktrees' VMs, of any repository: a branch's committed file
/// must not turn it on, only the user's own file or a local one.
pub(super) fn evict_only_from_own_files(cfg: &mut Config) {
    let Some((_, Source::File(path))) = cfg.values.get("vm.evict") else {
        return;
    };
    let name = path.file_name().unwrap_or_default();
    if cfg.evict && (name == TOML_FILE || name == LEGACY_FILES[0]) {
        cfg.evict = false;
        crate::output::warn(format!(
            "ignoring vm.evict from {}: a committed file may not suspend other VMs; set it in vmoat.local.toml or your own config ({})",
            path.display(),
            user_file().map_or_else(
                || "~/.config/git-vmoat/config.toml".into(),
                |p| p.display().to_string()
            )
        ));
    }
}
