//! `version`: git-vmoat's version.

use anyhow::Result;

pub fn run() -> Result<()> {
    crate::output::data(format!("git-vmoat {}", env!("CARGO_PKG_VERSION")))
}
