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
    let parsed = match quick_parse(std::env::args_os().skip(1)) {
        Some(cli) => Ok(cli),
        None => Cli::try_parse(),
    };
    let cli = match parsed {
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

/// `name` and its flags, read without building clap's whole command tree: shell prompts run
/// it on every line, and building the tree costs as much as the rest of the command. Anything
/// else, `--help` included, or a combination clap would refuse, goes to clap.
fn quick_parse(args: impl Iterator<Item = std::ffi::OsString>) -> Option<Cli> {
    let (mut name, mut json, mut quiet, mut verbose) = (false, false, false, false);
    for arg in args {
        let flag = match arg.to_str()? {
            "name" if !name => &mut name,
            "--json" if name && !json => &mut json,
            "-q" | "--quiet" if !quiet => &mut quiet,
            "-v" | "--verbose" if !verbose => &mut verbose,
            _ => return None,
        };
        *flag = true;
    }
    (name && !(quiet && verbose)).then_some(Cli {
        quiet,
        verbose,
        backend: None,
        command: crate::cli::Command::Name(crate::cli::JsonArgs { json }),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn quick(args: &[&str]) -> Option<Cli> {
        quick_parse(args.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn the_name_shortcut_reads_exactly_what_clap_reads() {
        let words = [
            "name",
            "--json",
            "-q",
            "--quiet",
            "-v",
            "--verbose",
            "status",
            "-h",
        ];
        let mut lines: Vec<Vec<&str>> = vec![vec![]];
        for _ in 0..3 {
            let longer: Vec<Vec<&str>> = lines
                .iter()
                .flat_map(|l| words.iter().map(move |w| [l.clone(), vec![*w]].concat()))
                .collect();
            lines.extend(longer);
        }
        let mut taken = 0;
        for line in &lines {
            let Some(fast) = quick(line) else { continue };
            taken += 1;
            let argv = std::iter::once("git-vmoat").chain(line.iter().copied());
            let slow = Cli::try_parse_from(argv).expect("clap accepts what the shortcut takes");
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{line:?}");
        }
        // name, name --json, and each with one or two of the global flags.
        assert!(taken > 20, "{taken}");
        for refused in [
            &["name", "-q", "-v"][..],
            &["--json", "name"],
            &["name", "--help"],
            &["name", "extra"],
            &["name", "--backend", "netns"],
            &[],
        ] {
            assert!(quick(refused).is_none(), "{refused:?}");
        }
    }
}
