//! Messages on stderr (coloured on a TTY unless NO_COLOR), data on stdout, JSON helpers.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Instant;

/// Writes to stderr and ignores failure: a closed pipe (`| head`) or a full disk under a
/// redirected log must never turn a message into a crash midway through a command.
macro_rules! say {
    ($($a:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($a)*);
    }};
}

macro_rules! say_raw {
    ($($a:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($a)*);
    }};
}

/// 0 = quiet, 1 = normal, 2 = verbose (shows the commands run).
static LEVEL: AtomicU8 = AtomicU8::new(1);

/// When the command started: non-TTY messages carry the time since.
static START: OnceLock<Instant> = OnceLock::new();
/// A live progress line is on the terminal and must be cleared before the next message.
static LIVE: AtomicBool = AtomicBool::new(false);

pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
    START.get_or_init(Instant::now);
}

fn stderr_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// `[+12.3s] ` in logs and pipes, where no live line shows how long things take.
fn stamp() -> String {
    if stderr_tty() {
        return String::new();
    }
    let e = START.get_or_init(Instant::now).elapsed();
    format!("[+{}.{}s] ", e.as_secs(), e.subsec_millis() / 100)
}

fn clear_live() {
    if LIVE.swap(false, Ordering::Relaxed) {
        say_raw!("\r\x1b[K");
    }
}

/// A progress line: on a terminal it rewrites itself in place; elsewhere it is an ordinary
/// message (the caller decides how often).
pub fn progress(msg: impl AsRef<str>) {
    if quiet() {
        return;
    }
    if stderr_tty() {
        say_raw!("\r\x1b[K{} {}", paint("1;34", "vmoat:"), msg.as_ref());
        let _ = std::io::stderr().flush();
        LIVE.store(true, Ordering::Relaxed);
    } else {
        info(msg);
    }
}

/// Whether progress lines rewrite in place (so they can be sent often).
pub fn live_progress() -> bool {
    stderr_tty() && !quiet()
}

pub fn verbose() -> bool {
    LEVEL.load(Ordering::Relaxed) >= 2
}

pub fn quiet() -> bool {
    LEVEL.load(Ordering::Relaxed) == 0
}

/// Whether stderr gets colours: a terminal, NO_COLOR unset or empty, TERM not dumb.
pub fn color() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

fn paint(code: &str, text: &str) -> String {
    paint_if(color(), code, text)
}

fn paint_if(colored: bool, code: &str, text: &str) -> String {
    if colored {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// A progress or status message.
pub fn info(msg: impl AsRef<str>) {
    if !quiet() {
        clear_live();
        say!("{} {}{}", paint("1;34", "vmoat:"), stamp(), msg.as_ref());
    }
}

/// Something the user should know but that does not stop the command.
pub fn warn(msg: impl AsRef<str>) {
    clear_live();
    say!("{} {}", paint("1;33", "vmoat: warning:"), msg.as_ref());
}

/// A line of a tool's own output, shown indented under the message about it.
pub fn indented(line: &str) {
    say!("  {line}");
}

/// A step worth seeing only with `-v` (e.g. each watcher pass, which tests wait on).
pub fn detail(msg: impl AsRef<str>) {
    if verbose() {
        say!("{} {}", paint("2", "vmoat:"), msg.as_ref());
    }
}

/// A command about to be run, shown with `-v`.
pub fn trace(msg: impl AsRef<str>) {
    if verbose() {
        say!("{} {}", paint("2", "vmoat: $"), msg.as_ref());
    }
}

/// Prints the final error and its hint.
pub fn error(msg: impl AsRef<str>, hint: Option<&str>) {
    clear_live();
    say_raw!("{}", error_lines(msg.as_ref(), hint, color()));
}

fn error_lines(msg: &str, hint: Option<&str>, colored: bool) -> String {
    let mut out = format!("{} {msg}\n", paint_if(colored, "1;31", "error:"));
    if let Some(h) = hint {
        out.push_str(&format!("{} {h}\n", paint_if(colored, "1;36", "hint:")));
    }
    out
}

/// An error as `main` shows it, without colours (for tests that pin the wording).
#[cfg(test)]
pub(crate) fn error_text(err: &anyhow::Error) -> String {
    error_lines(&format!("{err:#}"), crate::error::find_hint(err), false)
}

/// A message a report carries, told on stderr when the report is shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Note {
    Info(String),
    Warn(String),
}

impl Note {
    pub(crate) fn emit(&self) {
        match self {
            Note::Info(m) => info(m),
            Note::Warn(m) => warn(m),
        }
    }
}

/// As the user reads it (without the time stamp and colours).
impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::Info(m) => write!(f, "vmoat: {m}"),
            Note::Warn(m) => write!(f, "vmoat: warning: {m}"),
        }
    }
}

/// Writes lines of data to stdout; a broken pipe surfaces as an io error (exit 0 in main).
/// Asks `question` on the terminal (the caller checked there is one): true for y/yes.
pub fn ask_yes(question: &str) -> anyhow::Result<bool> {
    use std::io::BufRead;
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

pub fn data(text: impl AsRef<str>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_ref().as_bytes())?;
    if !text.as_ref().ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Prints a JSON document (a report, or a value built in place) on stdout.
pub fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    data(serde_json::to_string_pretty(value)?)
}

/// The version of every `--json` schema; bumped only on incompatible change.
pub const JSON_VERSION: u32 = 1;

/// Human duration: 4s, 1m05s, 1h02m.
pub fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{}.{}s", s, d.subsec_millis() / 100)
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_millis(4200)), "4.2s");
        assert_eq!(duration(Duration::from_secs(65)), "1m05s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h02m");
    }
}
