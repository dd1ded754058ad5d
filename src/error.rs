//! Errors that carry a hint for the user or a specific exit code.

use std::fmt;

/// Exit code for an error (anything that failed).
pub const EXIT_ERROR: i32 = 1;
/// Exit code for bad usage: unknown flags, invalid arguments.
pub const EXIT_USAGE: i32 = 2;

/// An error with a line telling the user what to do about it.
#[derive(Debug)]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// Builds an error whose message says what failed and whose hint says what to do.
pub fn hint(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    Hinted {
        message: message.into(),
        hint: hint.into(),
    }
    .into()
}

/// Bad command-line input (exit code 2).
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// The command run in the VM finished with this status: exit with it, print nothing.
#[derive(Debug)]
pub struct PassThrough(pub i32);

impl fmt::Display for PassThrough {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command exited with status {}", self.0)
    }
}

impl std::error::Error for PassThrough {}

/// The exit code an error maps to.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(p) = cause.downcast_ref::<PassThrough>() {
            return p.0;
        }
        if cause.downcast_ref::<Usage>().is_some() {
            return EXIT_USAGE;
        }
    }
    EXIT_ERROR
}

/// The first hint anywhere in the error chain.
pub fn find_hint(err: &anyhow::Error) -> Option<&str> {
    err.chain()
        .find_map(|c| c.downcast_ref::<Hinted>().map(|h| h.hint.as_str()))
}

/// True when the error is only a broken stdout pipe (the reader went away): not a failure.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Ok for status 0, else exit with the status and print nothing (`test`, `ssh CMD`).
pub fn pass_through(code: i32) -> anyhow::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(PassThrough(code).into())
    }
}
