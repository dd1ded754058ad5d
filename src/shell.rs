//! POSIX shell quoting for commands sent to a VM's shell.

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

/// Joins argv into one shell command line that runs exactly that argv.
pub fn join(args: &[String]) -> String {
    args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
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
