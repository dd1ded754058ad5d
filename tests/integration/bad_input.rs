//! Bad input, table-driven: each case must fail with a clear message and the documented exit
//! code, and change nothing: not the worktree, not git-vmoat's state, not the stand-in's VMs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;

mod cases;
use cases::{Case, cases};

/// Every file under `dir` with its content (symlinks by target), for before/after comparison.
/// git-vmoat's lock files and empty registries carry no state and are left out.
fn snapshot(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        // Lock files are opened (not changed) by every run; git's index is refreshed by status.
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".lock") || name == "index" || name == "logs" || name == "locks" {
            continue;
        }
        if ft.is_symlink() {
            out.insert(
                p.clone(),
                std::fs::read_link(&p)
                    .unwrap()
                    .to_string_lossy()
                    .as_bytes()
                    .to_vec(),
            );
        } else if ft.is_dir() {
            snapshot(&p, out);
        } else {
            let bytes = std::fs::read(&p).unwrap_or_default();
            if name.ends_with(".json")
                && matches!(serde_json::from_slice(&bytes), Ok(serde_json::Value::Object(m)) if m.is_empty())
            {
                continue;
            }
            out.insert(p.clone(), bytes);
        }
    }
}

/// How many bad inputs the table holds (README states it; docs.rs checks the two agree).
pub fn cases_len() -> usize {
    cases().len()
}

/// One case: the message and exit code, and nothing changed in HOME, the state dir or the VMs.
fn check(case: &Case) {
    let mut env = Env::new();
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src/feat"), "feat");
    let dir = (case.setup)(&mut env, &wt);
    let mut before = BTreeMap::new();
    snapshot(&env.home, &mut before);
    snapshot(&env.colima_state(), &mut before);
    let r = env.vmoat(&dir, case.args);
    assert_eq!(r.code, case.code, "{}: {r:?}", case.name);
    assert!(
        !case.message.is_empty(),
        "{}: a case names its message",
        case.name
    );
    assert!(
        r.stderr.contains(case.message),
        "{}: message {:?} not in {r:?}",
        case.name,
        case.message
    );
    if case.code == 1 && !r.stderr.contains("unrecognized") {
        assert!(
            r.stderr.contains("hint: "),
            "{}: an error says what to do: {r:?}",
            case.name
        );
    }
    let mut after = BTreeMap::new();
    snapshot(&env.home, &mut after);
    snapshot(&env.colima_state(), &mut after);
    // The stand-in's call log records attempts, not state.
    after.retain(|p, _| !p.ends_with("calls.jsonl"));
    before.retain(|p, _| !p.ends_with("calls.jsonl"));
    let changed: Vec<_> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(v))
        .map(|(p, _)| p.clone())
        .chain(before.keys().filter(|p| !after.contains_key(*p)).cloned())
        .collect();
    assert!(changed.is_empty(), "{}: changed {changed:#?}", case.name);
}

/// Each case is a test of its own, so one failure does not hide the others.
pub fn tests() -> Vec<crate::common::harness::Test> {
    let cases = cases();
    assert!(cases.len() >= 30, "at least 30 cases: {}", cases.len());
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, m)| m);
    cases
        .into_iter()
        .map(|case| {
            let slug: String = case
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            crate::common::harness::Test {
                name: format!("{module}::{slug}"),
                needs: &[],
                run: Box::new(move || check(&case)),
            }
        })
        .collect()
}
