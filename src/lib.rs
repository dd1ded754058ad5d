//! git-vmoat: one VM per git worktree, each running the project's full stack on its stock ports.
//!
//! The binaries need only `entry` and `commands`' two ways to run `mcp`; everything else is
//! private to the crate, so the compiler reports what nothing uses.

pub(crate) mod backend;
pub(crate) mod check;
pub mod cli;
pub mod commands;
pub(crate) mod config;
pub(crate) mod consent;
pub(crate) mod context;
pub(crate) mod data;
pub(crate) mod detect;
pub mod entry;
pub mod error;
pub(crate) mod exec;
pub(crate) mod forward;
#[cfg(test)]
mod fuzz;
pub(crate) mod gendocs;
pub(crate) mod git;
pub(crate) mod hooks;
pub(crate) mod jobs;
pub(crate) mod naming;
pub mod output;
pub(crate) mod reconcile;
pub(crate) mod registry;
pub(crate) mod repo;
pub(crate) mod seed;
pub(crate) mod shell;
pub(crate) mod state;
pub(crate) mod steps;
pub(crate) mod tunnel;
pub(crate) mod warm;
pub(crate) mod watch;
