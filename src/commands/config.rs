//! `config`: the effective configuration and where each value comes from. Needs no backend.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::cli::JsonArgs;
use crate::config::{Config, KEYS, Val, Values};
use crate::context::Base;
use crate::output::{self, JSON_VERSION};

/// Every key with its value and source, in the order `init` writes them.
#[derive(Serialize, Debug)]
struct ConfigReport {
    version: u32,
    files: Vec<PathBuf>,
    values: BTreeMap<&'static str, KeyValue>,
    /// Why the config cannot be used (every key is still listed).
    error: Option<String>,
}

#[derive(Serialize, Debug)]
struct KeyValue {
    value: Option<Val>,
    source: String,
    legacy: &'static str,
    /// The documented default (from the key table, as README shows it).
    default: String,
    doc: &'static str,
}

impl ConfigReport {
    fn new(values: &Values, files: Vec<PathBuf>, error: Option<String>) -> Self {
        let values = KEYS
            .iter()
            .map(|d| {
                let (value, source) = match values.get(d.key) {
                    Some((v, s)) => (Some(v.clone()), s.to_string()),
                    None => (None, "unset".to_string()),
                };
                (
                    d.key,
                    KeyValue {
                        value,
                        source,
                        legacy: d.legacy,
                        default: d.default_doc(),
                        doc: d.doc,
                    },
                )
            })
            .collect();
        Self {
            version: JSON_VERSION,
            files,
            values,
            error,
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for d in KEYS {
            let Some(kv) = self.values.get(d.key) else {
                continue;
            };
            let line = match &kv.value {
                Some(v) => format!("{:<17} = {:<32} # {}", d.key, v.to_string(), kv.source),
                None => format!("{:<17}   {:<32} # unset", d.key, "(unset)"),
            };
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A config that cannot be read still gets every key listed (defaults and whatever reads
/// cleanly, so the error's "lists every key" holds), then the error and exit 1.
pub fn run(base: &Base, args: &JsonArgs) -> Result<()> {
    let (values, files, error) = match Config::load(&base.wt.root, &base.state) {
        Ok(cfg) => (cfg.values, cfg.files, None),
        Err(e) => {
            let (values, files) = Config::readable(&base.wt.root, &base.state);
            (values, files, Some(e))
        }
    };
    let report = ConfigReport::new(&values, files, error.as_ref().map(|e| format!("{e:#}")));
    if args.json {
        output::json(&report)?;
    } else {
        output::data(report.render())?;
    }
    // The same error every other command gives, so the listing never hides it.
    error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;

    #[test]
    fn config_lists_every_key_with_its_source() {
        let mut values = Values::new();
        values.insert("vm.cpus", (Val::UInt(4), Source::Default));
        values.insert(
            "commands.up",
            (
                Val::Str("docker compose up -d".into()),
                Source::Detected("compose.yaml".into()),
            ),
        );
        values.insert(
            "tunnel.ports",
            (
                Val::Ports(vec![8080]),
                Source::File("/src/app/vmoat.toml".into()),
            ),
        );
        let r = ConfigReport::new(&values, vec!["/src/app/vmoat.toml".into()], None);
        insta::assert_snapshot!("config_human", r.render());
        insta::assert_json_snapshot!("config_json", r);
    }
}
