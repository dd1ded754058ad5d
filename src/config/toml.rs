//! `vmoat.toml` files: parsing into typed values (unknown keys get the closest valid key), and
//! rendering values back as a commented file (`init --from-conf`).

use std::path::Path;

use anyhow::Result;

use super::Layer;
use super::keys::{KEYS, Kind, Val, key_def, leaf, sections};
use crate::error::hint;

/// Parses one TOML file into values, rejecting unknown keys and wrong types.
pub(super) fn toml_layer(path: &Path, text: &str) -> Result<Layer> {
    toml_entries(path, text)?.into_iter().collect()
}

/// Each key of one TOML file, good or bad, so `config` can show what is readable around an
/// error; the outer error is a syntax error (nothing readable).
pub(super) fn toml_entries(path: &Path, text: &str) -> Result<Vec<Result<(&'static str, Val)>>> {
    let file = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        hint(
            format!("{file} is not valid TOML: {}", e.to_string().trim_end()),
            format!("fix the syntax of {}", path.display()),
        )
    })?;
    let sections = sections();
    let mut out = vec![];
    for (k, v) in &table {
        if k == "warm" && v.is_bool() {
            // `warm = false` is short for `[warm] enabled = false`.
            out.push(toml_value(&file, "warm.enabled", v));
        } else if sections.contains(&k.as_str()) {
            let Some(inner) = v.as_table() else {
                out.push(Err(hint(
                    format!("{file}: `{k}` must be a table ([{k}])"),
                    format!("write it as a [{k}] section"),
                )));
                continue;
            };
            for (k2, v2) in inner {
                let key = format!("{k}.{k2}");
                if key == "warm.volumes" && v2.as_str() == Some("all") {
                    // `warm.volumes = "all"` is short for `["all"]`.
                    let all = toml::Value::Array(vec![v2.clone()]);
                    out.push(toml_value(&file, &key, &all));
                    continue;
                }
                out.push(toml_value(&file, &key, v2));
            }
        } else if v.is_table() && key_def(k).is_none() {
            out.push(Err(unknown_table(&file, k, &sections)));
        } else {
            out.push(toml_value(&file, k, v));
        }
    }
    Ok(out)
}

/// A misspelt section gets the same help as a misspelt key.
fn unknown_table(file: &str, name: &str, sections: &[&str]) -> anyhow::Error {
    let closest = sections
        .iter()
        .map(|s| (strsim::levenshtein(name, s), *s))
        .filter(|(d, _)| *d <= 2)
        .min();
    let all = sections
        .iter()
        .map(|s| format!("[{s}]"))
        .collect::<Vec<_>>()
        .join(", ");
    hint(
        format!("{file}: unknown table `[{name}]`"),
        match closest {
            Some((_, s)) => format!("did you mean `[{s}]`? (the tables are {all})"),
            None => format!("the tables are {all}; `git vmoat config` lists every key"),
        },
    )
}

fn toml_value(file: &str, key: &str, v: &toml::Value) -> Result<(&'static str, Val)> {
    let Some(d) = key_def(key) else {
        return Err(hint(
            format!("{file}: unknown key `{key}`"),
            match suggest(key) {
                Some(s) => format!("did you mean `{s}`? (`git vmoat config` lists every key)"),
                None => "`git vmoat config` lists every key".into(),
            },
        ));
    };
    let bad = |want: &str| {
        hint(
            format!("{file}: `{key}` must be {want}, got {}", describe(v)),
            format!("fix `{key}` in {file}"),
        )
    };
    let val = match d.kind {
        Kind::Bool => Val::Bool(v.as_bool().ok_or_else(|| bad("true or false"))?),
        Kind::Str => Val::Str(v.as_str().ok_or_else(|| bad("a string"))?.to_string()),
        Kind::UInt { min, max } => {
            let want = format!("a whole number from {min} to {max}");
            let n = v.as_integer().ok_or_else(|| bad(&want))?;
            if n < min as i64 || n > max as i64 {
                return Err(bad(&want));
            }
            Val::UInt(n as u64)
        }
        Kind::StrList => {
            let want = "a list of strings, e.g. [\"a\", \"b\"]";
            let arr = v.as_array().ok_or_else(|| bad(want))?;
            Val::List(
                arr.iter()
                    .map(|x| x.as_str().map(String::from).ok_or_else(|| bad(want)))
                    .collect::<Result<_>>()?,
            )
        }
        Kind::PortList => {
            let want = "a list of ports from 1 to 65535, e.g. [8080, 9229]";
            let arr = v.as_array().ok_or_else(|| bad(want))?;
            Val::Ports(
                arr.iter()
                    .map(|x| {
                        x.as_integer()
                            .and_then(|n| u16::try_from(n).ok())
                            .filter(|n| *n > 0)
                            .ok_or_else(|| bad(want))
                    })
                    .collect::<Result<_>>()?,
            )
        }
    };
    Ok((d.key, val))
}

fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("the string {s:?}"),
        other => format!("{} `{other}`", other.type_str()),
    }
}

/// The valid key closest to a misspelt one; a legacy name maps to its TOML twin.
pub fn suggest(key: &str) -> Option<&'static str> {
    if let Some(d) = KEYS.iter().find(|d| d.legacy.eq_ignore_ascii_case(key)) {
        return Some(d.key);
    }
    KEYS.iter()
        .map(|d| {
            let dist = strsim::levenshtein(key, d.key)
                .min(strsim::levenshtein(leaf(key), leaf(d.key)) + 1);
            (dist, d.key)
        })
        .filter(|(dist, _)| *dist <= 3)
        .min()
        .map(|(_, k)| k)
}

/// Renders values as a `vmoat.toml`, grouped by section, each with its doc line.
pub fn render_toml(values: &Layer) -> String {
    let value_of = |key: &str| values.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
    let entry = |d: &super::keys::KeyDef, v: &Val| {
        format!("# {} (was {})\n{} = {v}\n", d.doc, d.legacy, leaf(d.key))
    };
    let mut out = String::new();
    for d in KEYS.iter().filter(|d| !d.key.contains('.')) {
        if let Some(v) = value_of(d.key) {
            out.push_str(&entry(d, v));
        }
    }
    for section in sections() {
        let prefix = format!("{section}.");
        let keys: Vec<_> = KEYS
            .iter()
            .filter(|d| d.key.starts_with(&prefix))
            .filter_map(|d| value_of(d.key).map(|v| (d, v)))
            .collect();
        if keys.is_empty() {
            continue;
        }
        out.push_str(&format!("\n[{section}]\n"));
        for (d, v) in keys {
            out.push_str(&entry(d, v));
        }
    }
    out
}

/// One TOML value read as `key` (for checking the table's examples).
#[cfg(test)]
pub(super) fn value_for_test(key: &str, v: &toml::Value) -> Result<Val> {
    toml_value("vmoat.toml", key, v).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, msg};
    use super::*;

    #[test]
    fn unknown_keys_name_the_file_and_the_closest_key() {
        let m = msg(load(&[("vmoat.toml", "[vm]\ncpu = 2\n")]));
        assert!(
            m.contains("vmoat.toml: unknown key `vm.cpu`") && m.contains("`vm.cpus`"),
            "{m}"
        );
        let m = msg(load(&[("vmoat.local.toml", "VM_MEMORY = 2\n")]));
        assert!(
            m.contains("vmoat.local.toml") && m.contains("`vm.memory`"),
            "{m}"
        );
        let m = msg(load(&[("vmoat.toml", "[health]\nurll = \"x\"\n")]));
        assert!(m.contains("`health.url`"), "{m}");
    }

    #[test]
    fn bad_types_and_ranges_are_rejected() {
        for (text, want) in [
            (
                "[vm]\ncpus = \"four\"",
                "`vm.cpus` must be a whole number from 1 to 1024",
            ),
            ("[vm]\ncpus = 0", "from 1 to 1024"),
            ("[vm]\nmemory = -3", "`vm.memory` must be"),
            (
                "[tunnel]\nports = [70000]",
                "`tunnel.ports` must be a list of ports",
            ),
            ("[tunnel]\nports = [0]", "`tunnel.ports`"),
            ("[tunnel]\nports = \"8080\"", "`tunnel.ports`"),
            ("[provision]\napt = \"git curl\"", "list of strings"),
            ("vm = 3", "`vm` must be a table"),
            ("[vm]\ntype = \"hyperv\"", "`vm.type` is `hyperv`"),
            (
                "backend = \"docker\"",
                "`backend` is `docker`; use auto, colima, netns or rootless",
            ),
            ("[vm]\nprefix = \"WT_\"", "not a usable VM name prefix"),
            ("[vm]\nmount = \"relative/dir\"", "must be an absolute path"),
            ("[health]\nurl = \"localhost:8080\"", "must start with http"),
            (
                "[provision]\napt = [\"ok\", \"rm -rf\"]",
                "not an apt package name",
            ),
        ] {
            let m = msg(load(&[("vmoat.toml", text)]));
            assert!(m.contains(want) && m.contains("vmoat.toml"), "{text}: {m}");
        }
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let m = msg(load(&[("vmoat.toml", "[vm]\ncpus = 2\nmemory = = 3\n")]));
        assert!(m.contains("not valid TOML") && m.contains("line 3"), "{m}");
    }

    #[test]
    fn every_legacy_key_has_a_toml_twin_that_round_trips() {
        let layer: Layer = vec![
            ("vm.cpus", Val::UInt(2)),
            ("provision.script", Val::Str("echo 'hi'\nline2".into())),
            ("tunnel.ports", Val::Ports(vec![8080])),
            ("provision.apt", Val::List(vec!["git".into()])),
        ];
        let text = render_toml(&layer);
        let back = toml_layer(Path::new("vmoat.toml"), &text).unwrap();
        for kv in &layer {
            assert!(back.contains(kv), "{kv:?} in {text}");
        }
        let legacy: std::collections::BTreeSet<_> = KEYS.iter().map(|d| d.legacy).collect();
        assert_eq!(legacy.len(), KEYS.len());
    }
}
