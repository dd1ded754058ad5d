//! Legacy `vmoat.conf` / `vmoat.local.conf`: shell files, evaluated by bash in a child process
//! (only once trusted), each known variable mapped to its TOML key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::keys::{KEYS, Kind, Val};
use super::trust::{check_trusted, repo_key_at};
use super::{LEGACY_FILES, Layer};
use crate::error::hint;
use crate::exec::Cmd;
use crate::state::State;

/// The values set by one legacy file (for `init --from-conf`), trusted first.
pub fn legacy_values(root: &Path, state: &State) -> Result<Layer> {
    let conf = root.join(LEGACY_FILES[0]);
    check_trusted(std::slice::from_ref(&conf), &repo_key_at(root), state)?;
    Ok(eval_legacy(root, &[conf])?
        .pop()
        .map(|(_, l)| l)
        .unwrap_or_default())
}

/// A value as bash left it: a plain variable or an array.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum ShellVal {
    Scalar(String),
    Array(Vec<String>),
}

/// Dumps the known variables NUL-separated on fd 3 after each file is sourced, so the values
/// that each file set can be told apart. Everything the files print goes to stderr.
const DUMP_SCRIPT: &str = r#"
exec 3>&1 1>&2
for __vmoat_f in "$@"; do
  bash -n -- "$__vmoat_f" || { echo "syntax error in $__vmoat_f" >&2; exit 97; }
done
__vmoat_dump() {
  local __vmoat_k __vmoat_d
  for __vmoat_k in __KEYS__; do
    __vmoat_d=$(declare -p "$__vmoat_k" 2>/dev/null) || continue
    case $__vmoat_d in
      "declare -a"*|"declare -A"*)
        eval "__vmoat_v=(\"\${${__vmoat_k}[@]}\")"
        printf 'A\0%s\0%s\0' "$__vmoat_k" "${#__vmoat_v[@]}" >&3
        if [ "${#__vmoat_v[@]}" -gt 0 ]; then printf '%s\0' "${__vmoat_v[@]}" >&3; fi ;;
      *) printf 'S\0%s\0%s\0' "$__vmoat_k" "${!__vmoat_k}" >&3 ;;
    esac
  done
  printf 'E\0' >&3
}
for __vmoat_f in "$@"; do
  . "$__vmoat_f"
  __vmoat_dump
done
"#;

/// Evaluates the files in order (local after shared), each layer holding what that file set.
pub(super) fn eval_legacy(root: &Path, files: &[PathBuf]) -> Result<Vec<(PathBuf, Layer)>> {
    let keys: Vec<&str> = KEYS.iter().map(|d| d.legacy).collect();
    let script = DUMP_SCRIPT.replace("__KEYS__", &keys.join(" "));
    let out = Cmd::new("bash")
        .arg("-c")
        .arg(script)
        .arg("vmoat.conf")
        .args(files)
        .current_dir(root)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.code() == Some(97) {
        return Err(hint(
            format!("a legacy config file has a syntax error:\n{stderr}"),
            "fix the shell syntax (check with `bash -n vmoat.conf`), or convert it: `git vmoat init --from-conf`",
        ));
    }
    let dumps = parse_dumps(&out.stdout).with_context(|| {
        format!(
            "evaluating {} with bash (stderr: {stderr})",
            files[0].display()
        )
    })?;
    if dumps.len() != files.len() {
        return Err(hint(
            format!(
                "evaluating the legacy config stopped early (bash exit {:?}):\n{stderr}",
                out.status.code()
            ),
            "a legacy config must only set variables; remove any `exit` or failing command",
        ));
    }
    if !stderr.is_empty() {
        crate::output::warn(format!("the legacy config printed:\n{stderr}"));
    }
    // A key belongs to the first file after which it has its final value.
    let mut layers = vec![];
    let mut before: BTreeMap<String, ShellVal> = BTreeMap::new();
    for (file, dump) in files.iter().zip(dumps) {
        let mut layer = vec![];
        for (k, v) in &dump {
            if before.get(k) != Some(v) {
                let name = file
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                layer.extend(legacy_value(&name, k, v)?);
            }
        }
        before = dump;
        layers.push((file.clone(), layer));
    }
    Ok(layers)
}

pub(super) fn parse_dumps(bytes: &[u8]) -> Result<Vec<BTreeMap<String, ShellVal>>> {
    let text = String::from_utf8_lossy(bytes);
    let mut fields = text.split('\0');
    let mut dumps = vec![];
    let mut cur = BTreeMap::new();
    while let Some(tag) = fields.next() {
        match tag {
            "E" => dumps.push(std::mem::take(&mut cur)),
            "S" => {
                let k = fields.next().context("truncated dump")?;
                let v = fields.next().context("truncated dump")?;
                cur.insert(k.to_string(), ShellVal::Scalar(v.to_string()));
            }
            "A" => {
                let k = fields.next().context("truncated dump")?;
                let n: usize = fields.next().context("truncated dump")?.parse()?;
                let vals = (0..n)
                    .map(|_| fields.next().map(String::from).context("truncated dump"))
                    .collect::<Result<_>>()?;
                cur.insert(k.to_string(), ShellVal::Array(vals));
            }
            "" => {}
            other => bail!("unexpected dump field {other:?}"),
        }
    }
    Ok(dumps)
}

fn legacy_value(file: &str, name: &str, v: &ShellVal) -> Result<Option<(&'static str, Val)>> {
    let d = KEYS
        .iter()
        .find(|d| d.legacy == name)
        .context("unknown legacy key")?;
    let words: Vec<String> = match v {
        ShellVal::Scalar(s) => s.split_whitespace().map(String::from).collect(),
        ShellVal::Array(a) => a
            .iter()
            .flat_map(|s| s.split_whitespace())
            .map(String::from)
            .collect(),
    };
    let scalar = match v {
        ShellVal::Scalar(s) => s.clone(),
        ShellVal::Array(a) => a.first().cloned().unwrap_or_default(),
    };
    let bad = |want: &str, got: &str| {
        hint(
            format!("{file}: {name} must be {want}, got {got:?}"),
            format!("fix {name} in {file}"),
        )
    };
    let val = match d.kind {
        Kind::Bool if scalar.trim().is_empty() => return Ok(None),
        Kind::Bool => match scalar.trim() {
            "1" | "true" | "yes" | "on" => Val::Bool(true),
            "0" | "false" | "no" | "off" => Val::Bool(false),
            _ => return Err(bad("true or false", &scalar)),
        },
        Kind::Str if scalar.is_empty() => return Ok(None),
        Kind::Str => Val::Str(scalar),
        Kind::UInt { .. } if scalar.trim().is_empty() => return Ok(None),
        Kind::UInt { min, max } => {
            let want = format!("a whole number from {min} to {max}");
            let n: u64 = scalar.trim().parse().map_err(|_| bad(&want, &scalar))?;
            if n < min || n > max {
                return Err(bad(&want, &scalar));
            }
            Val::UInt(n)
        }
        Kind::StrList => Val::List(words),
        Kind::PortList => Val::Ports(
            words
                .iter()
                .map(|w| {
                    w.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| bad("ports from 1 to 65535", w))
                })
                .collect::<Result<_>>()?,
        ),
    };
    Ok(Some((d.key, val)))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, msg};

    #[test]
    fn legacy_files_are_evaluated_with_arrays_and_local_wins() {
        let c = load(&[
            (
                "vmoat.conf",
                "VM_CPU=2\nEXPOSE_PORTS=(8080 9229)\nPROVISION_APT=\"git curl\"\nCMD_UP='docker compose up -d'\necho noise\n",
            ),
            ("vmoat.local.conf", "VM_CPU=$((VM_CPU * 3))\nPROVISION_APT=\"$PROVISION_APT jq\"\n"),
        ])
        .unwrap();
        assert_eq!(c.cpus, 6);
        assert_eq!(c.ports, vec![8080, 9229]);
        assert_eq!(c.apt, vec!["git", "curl", "jq"]);
        assert_eq!(c.values["vm.cpus"].1.to_string(), "vmoat.local.conf");
        assert_eq!(c.values["tunnel.ports"].1.to_string(), "vmoat.conf");
        assert_eq!(c.up.as_deref(), Some("docker compose up -d"));
    }

    #[test]
    fn legacy_port_strings_and_bad_values() {
        let c = load(&[("vmoat.conf", "EXPOSE_PORTS=\"3000 5173\"\n")]).unwrap();
        assert_eq!(c.ports, vec![3000, 5173]);
        let m = msg(load(&[("vmoat.conf", "EXPOSE_PORTS=(8080 abc)\n")]));
        assert!(m.contains("EXPOSE_PORTS") && m.contains("\"abc\""), "{m}");
        let m = msg(load(&[("vmoat.conf", "VM_MEMORY=lots\n")]));
        assert!(m.contains("VM_MEMORY must be a whole number"), "{m}");
    }

    #[test]
    fn legacy_syntax_errors_are_reported() {
        let m = msg(load(&[("vmoat.conf", "VM_CPU=2\nif then fi (\n")]));
        assert!(m.contains("syntax error"), "{m}");
    }
}
