//! Property tests: the config parsers and the name derivation never panic on any input, and
//! names are always valid and unique. A small seeded generator keeps them reproducible.

/// xorshift64*: deterministic, dependency-free randomness for property tests.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A string mixing the pieces most likely to break a parser.
    pub fn text(&mut self, pieces: &[&str], max: usize) -> String {
        let n = self.below(max + 1);
        (0..n).map(|_| pieces[self.below(pieces.len())]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;
    use crate::config;
    use crate::naming;

    const TOML_PIECES: &[&str] = &[
        "[vm]",
        "[tunnel]",
        "[health]",
        "[provision]",
        "[commands]",
        "\n",
        "=",
        " ",
        "\"",
        "'",
        "[",
        "]",
        "{",
        "}",
        ",",
        "cpus",
        "memory",
        "ports",
        "seed",
        "url",
        "up",
        "backend",
        "prefix",
        "4",
        "-1",
        "99999999999999999999",
        "0x10",
        "1e3",
        "true",
        "\"abc\"",
        "[8080, 9229]",
        "#",
        "\\",
        "\u{0}",
        "ü",
        "\"\"\"",
        "vm.cpus",
        ".",
        "inf",
        "nan",
    ];

    #[test]
    fn the_toml_parser_never_panics() {
        let mut rng = Rng::new(0x5eed);
        for _ in 0..20_000 {
            let text = rng.text(TOML_PIECES, 24);
            let _ = config::parse_toml_for_test(&text);
        }
    }

    #[test]
    fn the_legacy_dump_parser_never_panics() {
        let mut rng = Rng::new(42);
        let pieces = [
            "S",
            "A",
            "E",
            "\0",
            "VM_CPU",
            "EXPOSE_PORTS",
            "3",
            "-1",
            "x",
            "99999999999999999999999",
            "",
        ];
        for _ in 0..20_000 {
            let text = rng.text(&pieces, 16);
            let _ = config::parse_dumps_for_test(text.as_bytes());
        }
    }

    #[test]
    fn names_are_always_valid_fitting_and_unique() {
        let mut rng = Rng::new(7);
        let pieces = [
            "a", "Z", "9", "-", "_", ".", " ", "ü", "日本", "--", "default", "colima", "colima-",
            "wt", "\n", "'", "\"",
        ];
        let mut taken: std::collections::BTreeMap<String, String> = Default::default();
        for i in 0..5_000 {
            let dir = rng.text(&pieces, 30);
            let identity = format!("/repo{}/.git\0{i}", rng.below(50));
            let max = 12 + rng.below(50);
            let prefix = ["wt-", "", "x", "dev-", "colim"][rng.below(5)];
            match naming::derive(prefix, &dir, &identity, max, |n| {
                taken.get(n).is_some_and(|o| *o != identity)
            }) {
                Ok(name) => {
                    assert!(naming::is_valid(&name), "{name:?} from {dir:?}");
                    assert!(name.len() <= max, "{name:?} longer than {max}");
                    assert!(!taken.contains_key(&name), "{name:?} given twice");
                    taken.insert(name, identity);
                }
                Err(e) => assert!(
                    e.shortest > max,
                    "refused only when nothing fits: {e:?} for {dir:?}"
                ),
            }
        }
    }
}
