//! `watch`: destroy VMs whose worktree git has forgotten, as it happens (or install a user
//! service that runs `watch --all`).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::WatchArgs;
use crate::output;
use crate::reconcile;
use crate::state::State;
use crate::steps::reclaim::{Reclaim, collect};

pub fn run(args: &WatchArgs) -> Result<()> {
    let all = args.all;
    if args.install_service {
        return install_service_file();
    }
    let state = State::open()?;
    let only = if all {
        None
    } else {
        Some(crate::context::here()?.common_dir)
    };
    output::info(match &only {
        Some(c) => format!("watching {} (Ctrl-C to stop)", c.display()),
        None => "watching every repository with VMs (Ctrl-C to stop)".into(),
    });
    let st = state.clone();
    // With --all, a VM made for a new repository changes the registry: watch it to start
    // watching that repository at once.
    let extra = if all {
        vec![state.root().to_path_buf()]
    } else {
        vec![]
    };
    std::fs::create_dir_all(state.root())?;
    crate::watch::run(
        Duration::from_millis(300),
        Duration::from_secs(args.interval),
        &extra,
        || match &only {
            Some(c) => vec![c.clone()],
            None => reconcile::repos(&st).unwrap_or_default(),
        },
        |repo| {
            let open = |vm: &str| {
                let names = crate::registry::load(&state).ok()?;
                crate::backend::select(names.get(vm)?.backend, &state).ok()
            };
            crate::backend::copy_guard::recover_all(&state, &open);
            // A `down` of a suspended VM that died midway (its guard too) is finished.
            crate::backend::stopping::finish_all(&state, &open);
            if let Err(e) = collect(&state, repo, true, Reclaim::Watcher) {
                output::warn(format!("reconciling {}: {e:#}", repo.display()));
            }
            crate::steps::idle::suspend_idle(&state, repo);
        },
    )
}

fn install_service_file() -> Result<()> {
    let exe = std::env::current_exe()?;
    let dirs = directories::BaseDirs::new().context("no home directory")?;
    if cfg!(target_os = "macos") {
        let path = dirs
            .home_dir()
            .join("Library/LaunchAgents/dev.git-vmoat.watch.plist");
        let text = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict>\n  <key>Label</key><string>dev.git-vmoat.watch</string>\n  <key>ProgramArguments</key><array><string>{}</string><string>watch</string><string>--all</string></array>\n  <key>RunAtLoad</key><true/>\n  <key>KeepAlive</key><true/>\n  <key>StandardErrorPath</key><string>{}/Library/Logs/git-vmoat-watch.log</string>\n</dict></plist>\n",
            exe.display(),
            dirs.home_dir().display()
        );
        write_service(&path, &text)?;
        output::info(format!(
            "enable it with: launchctl load -w {}",
            path.display()
        ));
    } else {
        let path = dirs
            .config_dir()
            .join("systemd/user/git-vmoat-watch.service");
        let text = format!(
            "[Unit]\nDescription=git-vmoat: destroy a worktree's VM when the worktree goes away\n\n[Service]\nExecStart={} watch --all\nRestart=on-failure\nRestartSec=5\n\n[Install]\nWantedBy=default.target\n",
            exe.display()
        );
        write_service(&path, &text)?;
        output::info(
            "enable it with: systemctl --user daemon-reload && systemctl --user enable --now git-vmoat-watch",
        );
    }
    Ok(())
}

fn write_service(path: &Path, text: &str) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    output::info(format!("wrote {}", path.display()));
    output::data(path.display().to_string())
}
