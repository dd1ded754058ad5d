//! VM names from worktree identity: `<prefix><dir>` as the original tool named them where that
//! name is free and fits, else a shortened slug plus a stable hash of the worktree's identity.

use sha2::{Digest, Sha256};

/// Names Colima maps onto its own default profile; never usable for a worktree.
const RESERVED: [&str; 2] = ["default", "colima"];
/// Colima strips this from a profile name (`colima-foo` is profile `foo`), so the socket path,
/// ssh host and `list` name would no longer match the name we asked for.
const COLIMA_STRIPS: &str = "colima-";
/// Slug length kept in a hashed name (Colima's advice: short slug plus hash).
const HASHED_SLUG_MAX: usize = 16;

/// Lowercases, turns every char outside `[a-z0-9-]` into `-`, squeezes runs of `-` and trims
/// them at both ends: the original tool's rule.
pub fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A name every backend accepts: `[a-z0-9]+(-[a-z0-9]+)*`, not reserved, not `colima-…`.
pub fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && !RESERVED.contains(&name)
        && !name.starts_with(COLIMA_STRIPS)
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Checks a configured prefix (`vm.prefix` / VM_PREFIX).
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let ok = prefix.len() <= 20
        && !prefix.starts_with('-')
        && !prefix.starts_with(COLIMA_STRIPS)
        && !prefix.contains("--")
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{prefix}` is not a usable VM name prefix: use at most 20 of a-z, 0-9 and single dashes, not starting with a dash or `colima-` (e.g. \"wt-\")"
        ))
    }
}

/// `len` hex digits of a stable hash of `s` (for short derived names).
pub fn short_hash(s: &str, len: usize) -> String {
    hash_hex(s, len)
}

fn hash_hex(identity: &str, len: usize) -> String {
    let digest = Sha256::digest(identity.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..len].to_string()
}

/// `colima-foo…` becomes `colimafoo…`: Colima would strip the `colima-` (see COLIMA_STRIPS).
/// A prefix never starts with `colima-` (check_prefix), so it survives intact.
fn not_colima_prefixed(name: String) -> String {
    match name.strip_prefix(COLIMA_STRIPS) {
        Some(rest) => format!("colima{rest}"),
        None => name,
    }
}

/// Why no name could be made.
#[derive(Debug, PartialEq, Eq)]
pub struct NoName {
    pub shortest: usize,
    pub max_len: usize,
}

/// Derives the VM name for a worktree.
///
/// `identity` distinguishes worktrees (repository + worktree id); `taken(name)` says whether a
/// name already belongs to another worktree. The original `<prefix><slug>` name is kept when it
/// is valid, fits `max_len` and is free, so VMs made by the original tool are found again.
pub fn derive(
    prefix: &str,
    dir_name: &str,
    identity: &str,
    max_len: usize,
    taken: impl Fn(&str) -> bool,
) -> Result<String, NoName> {
    let s = slug(dir_name);
    let plain = not_colima_prefixed(format!("{prefix}{s}"));
    if !s.is_empty() && is_valid(&plain) && plain.len() <= max_len && !taken(&plain) {
        return Ok(plain);
    }
    for hash_len in [6, 10, 16] {
        let hash = hash_hex(identity, hash_len);
        let room = max_len.saturating_sub(prefix.len() + hash_len + 1);
        let mut cut: String = s.chars().take(room.min(HASHED_SLUG_MAX)).collect();
        while cut.ends_with('-') {
            cut.pop();
        }
        let name = not_colima_prefixed(if cut.is_empty() {
            format!("{prefix}{hash}")
        } else {
            format!("{prefix}{cut}-{hash}")
        });
        if name.len() > max_len {
            return Err(NoName {
                shortest: prefix.len() + hash_len,
                max_len,
            });
        }
        if is_valid(&name) && !taken(&name) {
            return Ok(name);
        }
    }
    Err(NoName {
        shortest: prefix.len() + 16,
        max_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_follows_the_original_rule() {
        let cases = [
            ("Feature_X", "feature-x"),
            ("--a..b--", "a-b"),
            ("main", "main"),
            ("ünï cødé", "n-c-d"),
            ("日本", ""),
            ("a  b", "a-b"),
            ("UPPER", "upper"),
            ("x-1.2", "x-1-2"),
        ];
        for (input, want) in cases {
            assert_eq!(slug(input), want, "slug({input:?})");
        }
    }

    #[test]
    fn the_original_name_is_kept_when_free() {
        assert_eq!(
            derive("wt-", "feature", "id1", 50, |_| false).unwrap(),
            "wt-feature"
        );
    }

    #[test]
    fn two_worktrees_with_one_dir_name_get_two_names() {
        let a = derive("wt-", "main", "/r1/.git\0main", 50, |_| false).unwrap();
        let b = derive("wt-", "main", "/r2/.git\0main", 50, |n| n == a).unwrap();
        assert_eq!(a, "wt-main");
        assert_ne!(a, b);
        assert!(
            b.starts_with("wt-main-") && b.len() == "wt-main-".len() + 6,
            "{b}"
        );
        // Stable: the same identity always hashes to the same name.
        assert_eq!(
            b,
            derive("wt-", "main", "/r2/.git\0main", 50, |n| n == a).unwrap()
        );
    }

    #[test]
    fn long_names_are_shortened_to_fit() {
        let long = "a-very-long-worktree-directory-name-that-would-break-the-socket-path";
        let n = derive("wt-", long, "id", 30, |_| false).unwrap();
        assert!(n.len() <= 30 && is_valid(&n), "{n}");
        assert!(n.starts_with("wt-a-very-long-w"), "{n}");
    }

    #[test]
    fn reserved_and_symbol_only_names_get_a_hash() {
        let n = derive("", "default", "id", 40, |_| false).unwrap();
        assert!(n.starts_with("default-"), "{n}");
        let n = derive("wt-", "日本", "id", 40, |_| false).unwrap();
        assert!(is_valid(&n) && n.starts_with("wt-") && n.len() == 9, "{n}");
    }

    #[test]
    fn no_name_starts_with_colima_dash() {
        // Colima would strip it: `colima-foo` is its profile `foo`.
        assert!(!is_valid("colima-foo"));
        assert_eq!(
            derive("", "colima-foo", "id", 40, |_| false).unwrap(),
            "colimafoo"
        );
        assert_eq!(
            derive("", "Colima_Foo", "id", 40, |_| false).unwrap(),
            "colimafoo"
        );
        // The reserved `colima` gets a hash, never `colima-<hash>`.
        let n = derive("", "colima", "id", 40, |_| false).unwrap();
        assert!(n.starts_with("colima") && !n.starts_with("colima-"), "{n}");
        // Taken, or too long: the hashed forms avoid it too.
        let n = derive("", "colima-foo", "id", 40, |n| n == "colimafoo").unwrap();
        assert!(n.starts_with("colimafoo-") && is_valid(&n), "{n}");
        let n = derive("colim", "a-foo", "id", 40, |_| false).unwrap();
        assert_eq!(n, "colimafoo");
        assert!(check_prefix("colima-").is_err());
        assert!(check_prefix("colima").is_ok());
    }

    #[test]
    fn impossible_limits_are_reported() {
        assert_eq!(
            derive("wt-", "main", "id", 5, |_| false),
            Err(NoName {
                shortest: 9,
                max_len: 5
            })
        );
    }

    #[test]
    fn hash_collisions_fall_back_to_longer_hashes() {
        let first = derive("wt-", "x", "id", 40, |_| true);
        assert!(first.is_err());
        let n = derive("wt-", "x", "id", 40, |n| n.len() < 15).unwrap();
        assert_eq!(n.len(), "wt-x-".len() + 10);
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("wt-").is_ok());
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("WT-").is_err());
        assert!(check_prefix("-x").is_err());
        assert!(check_prefix("a--").is_err());
    }
}
