//! `hooks install|uninstall|status`: the post-checkout hook that gives each new worktree its VM.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::cli::HooksCommand;
use crate::output::{self, JSON_VERSION};
use crate::repo::{self, Worktree};
use crate::{git, hooks};

pub fn run(cmd: &HooksCommand) -> Result<()> {
    let wt = crate::context::here()?;
    match cmd {
        HooksCommand::Install { up } => install(&wt, *up),
        HooksCommand::Uninstall => uninstall(&wt),
        HooksCommand::Status { json } => {
            let report = status(&wt)?;
            if *json {
                output::json(&report)
            } else {
                output::data(report.render())
            }
        }
    }
}

/// `vmoat.auto` is set where every worktree reads it: the main checkout's config.
fn config_dir(wt: &Worktree) -> PathBuf {
    wt.main_root.clone().unwrap_or_else(|| wt.root.clone())
}

fn install(wt: &Worktree, up: bool) -> Result<()> {
    let st = hooks::install(wt)?;
    git::config_set(
        &config_dir(wt),
        "vmoat.auto",
        if up {
            crate::hooks::AutoMode::Up
        } else {
            crate::hooks::AutoMode::Provision
        }
        .as_str(),
    )?;
    output::info(format!("installed {}", st.dir.join(hooks::HOOK).display()));
    if st.chained {
        output::info(format!(
            "your earlier hook is kept as {} and runs first",
            hooks::ORIG
        ));
    }
    output::info(format!(
        "every `git worktree add` now {} its VM in the background; run `git vmoat watch --install-service` so removed worktrees lose theirs",
        if up {
            "seeds, provisions and starts the stack in"
        } else {
            "seeds and provisions"
        }
    ));
    // What the job will run unattended is shown and approved here.
    crate::consent::approve_on_install(wt);
    Ok(())
}

fn uninstall(wt: &Worktree) -> Result<()> {
    if hooks::uninstall(wt)? {
        output::info("removed git-vmoat's post-checkout hook (any earlier hook is back in place)");
    } else {
        output::info("git-vmoat's hook is not installed here: nothing to remove");
    }
    git::config_unset(&config_dir(wt), "vmoat.auto")
}

/// `hooks status`: where the hook goes and whether it is installed.
#[derive(Serialize, Debug, Clone)]
struct HooksReport {
    version: u32,
    hooks_dir: PathBuf,
    core_hooks_path: Option<String>,
    installed: bool,
    outdated: bool,
    chained: bool,
    auto: Option<String>,
}

fn status(wt: &Worktree) -> Result<HooksReport> {
    let st = hooks::state(wt)?;
    Ok(HooksReport {
        version: JSON_VERSION,
        hooks_dir: st.dir,
        core_hooks_path: st.hooks_path,
        installed: st.installed,
        outdated: st.outdated,
        chained: st.chained,
        auto: repo::config_string(&wt.root, "vmoat.auto")?,
    })
}

impl HooksReport {
    fn render(&self) -> String {
        let mut out = format!("hooks dir: {}\n", self.hooks_dir.display());
        let hook = match (self.installed, self.outdated) {
            (false, _) => "not installed (`git vmoat hooks install`)",
            (true, true) => "installed, older version (`git vmoat hooks install` refreshes it)",
            (true, false) => "installed",
        };
        out.push_str(&format!("post-checkout: {hook}\n"));
        if self.chained {
            out.push_str(&format!("chained: {} runs first\n", hooks::ORIG));
        }
        out.push_str(&format!(
            "vmoat.auto: {}\n",
            self.auto.as_deref().unwrap_or("unset (no automatic VMs)")
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_status_renders_each_state() {
        let installed = HooksReport {
            version: JSON_VERSION,
            hooks_dir: "/src/app/.git/hooks".into(),
            core_hooks_path: None,
            installed: true,
            outdated: false,
            chained: true,
            auto: Some("provision".into()),
        };
        let absent = HooksReport {
            installed: false,
            chained: false,
            auto: None,
            core_hooks_path: Some(".githooks".into()),
            hooks_dir: "/src/app/.githooks".into(),
            ..installed.clone()
        };
        let old = HooksReport {
            version: JSON_VERSION,
            hooks_dir: "/src/app/.git/hooks".into(),
            core_hooks_path: None,
            installed: true,
            outdated: true,
            chained: false,
            auto: Some("up".into()),
        };
        insta::assert_snapshot!(
            "hooks_status_human",
            [&installed, &old, &absent]
                .map(HooksReport::render)
                .join("---\n")
        );
        insta::assert_json_snapshot!("hooks_status_json", absent);
    }
}
