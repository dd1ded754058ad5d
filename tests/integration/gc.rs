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

crate::tests! {
    gc_all_reclaims_the_vms_of_a_deleted_repository_only_when_asked: Ssh;
}
