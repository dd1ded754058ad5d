//! The `git-vmoat` binary: parse, dispatch, print errors, exit with a documented code.

use std::process::ExitCode;

use clap::Parser;
use git_vmoat::cli::Cli;
use git_vmoat::{commands, error, output};

fn main() -> ExitCode {
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
    match commands::run(cli) {
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
