//! `gc` beyond the repository it runs in: what `--all` may reclaim, and only when asked.

use super::safety::{CONFIG, repo_with_config};
use crate::common::*;

/// A deleted repository's VMs are never reclaimed by guessing: `gc --all` (from anywhere) lists
/// them as missing on a dry run and reclaims them only when asked.
fn gc_all_reclaims_the_vms_of_a_deleted_repository_only_when_asked() {
    let env = Env::new();
    let repo = repo_with_config(&env, "gone", CONFIG);
    let keep = repo_with_config(&env, "kept", CONFIG);
    env.vmoat(&repo, &["up"]).ok();
    env.vmoat(&keep, &["up"]).ok();
    std::fs::remove_dir_all(&repo).unwrap();
    let r = env
        .vmoat(&env.home, &["gc", "--all", "--dry-run", "--json"])
        .ok();
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let vms = j["vms"].as_array().unwrap();
    let gone = vms.iter().find(|v| v["vm"] == "wt-gone").expect("listed");
    assert_eq!(
        (&gone["missing"], &gone["destroyed"]),
        (&true.into(), &false.into()),
        "{j}"
    );
    assert!(
        env.profile("wt-gone").is_some(),
        "a dry run destroys nothing"
    );
    env.vmoat(&env.home, &["gc", "--all"]).ok();
    assert!(env.profile("wt-gone").is_none());
    assert!(
        env.profile("wt-kept").is_some(),
        "a VM whose repository exists stays"
    );
}

/// A repository whose `vmoat.id` was edited by hand keeps its VM: upper case still reads as
/// the id; anything else is refused by `up` (never written over), and `gc --all` keeps the VM
/// for the id to be put back instead of reclaiming it as another repository's.
fn an_edited_repository_id_never_costs_the_vm() {
    let env = Env::new();
    let repo = repo_with_config(&env, "edited", CONFIG);
    env.vmoat(&repo, &["up"]).ok();
    let id = env.git(&repo, &["config", "vmoat.id"]).trim().to_string();
    env.git(&repo, &["config", "vmoat.id", &id.to_ascii_uppercase()]);
    assert_eq!(env.vmoat(&repo, &["name"]).ok().stdout.trim(), "wt-edited");

    env.git(&repo, &["config", "vmoat.id", "not-an-id"]);
    let r = env.vmoat(&repo, &["up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("not an id git-vmoat made"), "{r:?}");
    assert_eq!(
        env.git(&repo, &["config", "vmoat.id"]).trim(),
        "not-an-id",
        "never written over"
    );
    env.vmoat(&env.home, &["gc", "--all"]).ok();
    assert!(
        env.profile("wt-edited").is_some(),
        "kept for the id to come back"
    );
    env.git(&repo, &["config", "vmoat.id", &id]);
    let r = env.vmoat(&repo, &["status", "--json"]).ok();
    assert!(r.stdout.contains("\"wt-edited\""), "{r:?}");
}

crate::tests! {
    gc_all_reclaims_the_vms_of_a_deleted_repository_only_when_asked: Ssh;
    an_edited_repository_id_never_costs_the_vm: Ssh;
}
