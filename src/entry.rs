//! What both binaries run: parse, dispatch, print errors, exit with a documented code.
//!
//! `git-vmoat` hands `mcp` over to `git-vmoat-mcp`, the same program plus the MCP server, so
//! that no other command carries the server's runtime (a larger binary starts measurably
//! slower). Everything else runs the same in both.

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::commands::{self, Mcp};
use crate::{error, output};

pub fn main(mcp: Mcp) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help/--version print and exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    output::set_level(if cli.quiet {
        0
    } else if cli.verbose {
        2
    } else {
        1
    });
    match commands::run(cli, mcp) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if error::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let code = error::exit_code(&err);
            if err.downcast_ref::<error::PassThrough>().is_none() {
                output::error(format!("{err:#}"), error::find_hint(&err));
            }
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}
