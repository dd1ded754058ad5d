//! POSIX shell quoting for commands sent to a VM's shell.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Quotes a string so that a POSIX shell reads it back as exactly one word, byte for byte
/// (spaces, quotes, newlines and unicode included).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quotes only when the word would not survive the shell as it is (for display).
pub fn quote_if_needed(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain { s.to_string() } else { quote(s) }
}

/// Quotes an argument that may not be UTF-8 so a POSIX shell reads it back byte for byte.
/// UTF-8 runs are single-quoted as they are; each other byte is made by `printf` with an
/// octal escape, because the script travels as text (over ssh, into `bash -c`). An argv byte
/// is never NUL and these bytes are never newlines, which command substitution would drop.
pub fn quote_os(s: &OsStr) -> String {
    if let Some(text) = s.to_str() {
        return quote(text);
    }
    let mut out = String::new();
    for chunk in s.as_bytes().utf8_chunks() {
        if !chunk.valid().is_empty() {
            out.push_str(&quote(chunk.valid()));
        }
        if !chunk.invalid().is_empty() {
            let octal: String = chunk
                .invalid()
                .iter()
                .map(|b| format!("\\{b:03o}"))
                .collect();
            out.push_str(&format!("\"$(printf '{octal}')\""));
        }
    }
    out
}

/// Joins argv into one shell command line that runs exactly that argv (bytes kept as they are).
pub fn join<S: AsRef<OsStr>>(args: &[S]) -> String {
    args.iter()
        .map(|a| quote_os(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A script that runs `script` in `dir`, failing if the directory is missing. The script
/// stays a separate command list: joined with `&&`, a trailing `&` in it would background the
/// whole list, `cd` included, holding the session's output open.
pub fn in_dir(dir: &std::path::Path, script: &str) -> String {
    format!(
        "cd -- {} || exit 1\n{}",
        quote(&dir.to_string_lossy()),
        script
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh_echo_args(line: &str) -> Vec<String> {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("for a in {line}; do printf '%s\\0' \"$a\"; done"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(String::from)
            .collect()
    }

    #[test]
    fn quoting_round_trips_through_a_real_shell() {
        let cases: Vec<String> = [
            "plain",
            "with space",
            "it's",
            "\"double\"",
            "$HOME `id` $(id)",
            "new\nline",
            "ünïcødé ✓",
            "",
            "back\\slash",
            "'",
            "*",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(sh_echo_args(&join(&cases)), cases);
    }

    #[test]
    fn arguments_that_are_not_utf8_reach_the_shell_byte_for_byte() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let cases: Vec<OsString> = [
            &b"\xff"[..],
            b"a\xffb",
            b"it's \xfe\xff\n",
            b"\xc3",
            b"\xe2\x9c",
            b"ok \xe2\x9c\x93",
        ]
        .iter()
        .map(|b| OsString::from_vec(b.to_vec()))
        .collect();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for a in {}; do printf '%s\\0' \"$a\"; done",
                join(&cases)
            ))
            .output()
            .unwrap();
        let got: Vec<OsString> = out
            .stdout
            .split(|b| *b == 0)
            .map(|b| OsString::from_vec(b.to_vec()))
            .take(cases.len())
            .collect();
        assert_eq!(got, cases);
    }

    #[test]
    fn display_quoting_leaves_plain_words_alone() {
        assert_eq!(quote_if_needed("--cpus"), "--cpus");
        assert_eq!(quote_if_needed("a b"), "'a b'");
        assert_eq!(quote_if_needed(""), "''");
    }

    #[test]
    fn in_dir_survives_odd_paths() {
        let dir = std::path::Path::new("/tmp/it's a dir");
        assert_eq!(
            in_dir(dir, "true"),
            "cd -- '/tmp/it'\\''s a dir' || exit 1\ntrue"
        );
    }
}
