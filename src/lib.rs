//! git-vmoat: one VM per git worktree, each running the project's full stack on its stock ports.

pub mod backend;
pub mod cli;
pub mod commands;
pub mod config;
pub mod consent;
pub mod context;
pub mod detect;
pub mod error;
pub mod exec;
#[cfg(test)]
mod fuzz;
pub mod git;
pub mod hooks;
pub mod jobs;
pub mod naming;
pub mod output;
pub mod reconcile;
pub mod registry;
pub mod repo;
pub mod seed;
pub mod shell;
pub mod state;
pub mod tunnel;
pub mod warm;
pub mod watch;
