//! The main checkout's vmoat.toml must be committed for worktrees to have it: the check that
//! `status` and `up` share, and the `cd … &&` prefix of the commands it suggests.

use crate::config::TOML_FILE;
use crate::output;

/// `cd DIR && ` when the user stands elsewhere, so a printed git command acts on `dir`.
pub(crate) fn cd_prefix(dir: &std::path::Path) -> String {
    let here = std::env::current_dir()
        .ok()
        .and_then(|d| d.canonicalize().ok());
    if here.as_deref() == Some(dir) {
        String::new()
    } else {
        format!(
            "cd {} && ",
            crate::shell::quote_if_needed(&dir.to_string_lossy())
        )
    }
}

/// In a linked worktree, warns when the main checkout's vmoat.toml is not committed as it is:
/// worktrees are checked out from commits, so this one and every new one miss it (or its
/// changes). Costs one `stat` unless the main checkout has the file.
pub(crate) fn warn_if_config_uncommitted(wt: &crate::repo::Worktree) {
    use crate::repo::Committed;
    let Some(main) = wt.main_root.as_deref().filter(|_| !wt.is_main()) else {
        return;
    };
    let file = main.join(TOML_FILE);
    if !file.is_file() {
        return;
    }
    let (what, commit) = match crate::repo::file_committed(main, TOML_FILE) {
        // A repository gix cannot read is reported by the commands that need it.
        Ok(Committed::Yes) | Err(_) => return,
        Ok(Committed::NotInHead) => (
            "is not committed, so this worktree and new ones do not have it",
            format!("git add {TOML_FILE} && git commit -m 'Add {TOML_FILE}'"),
        ),
        Ok(Committed::Changed) => (
            "has uncommitted changes, which this worktree and new ones do not have",
            format!("git commit -m 'Update {TOML_FILE}' {TOML_FILE}"),
        ),
    };
    output::warn(format!(
        "{} {what}: commit it in the main checkout (`{}{commit}`), then merge or rebase this branch",
        file.display(),
        cd_prefix(main)
    ));
}
