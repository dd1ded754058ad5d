//! The namespace's network: its slirp4netns uplink, and the veth and firewall rules earlier
//! versions left. (The tunnel forwarder that connects inside is the `forward` module.)

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::Netns;
use crate::error::hint;
use crate::exec::{self, Cmd};

/// The namespace's interface to slirp4netns, and the address slirp gives it.
const TAP: &str = "tap0";
const TAP_ADDR: &str = "10.0.2.100/24";

/// The namespace's way out: slirp4netns, a user-mode TCP/IP stack in the host's namespace that
/// turns the namespace's outgoing connections into ordinary sockets of its own. `apt` and
/// `docker pull` work inside, while the host routes, forwards and filters nothing for it: no
/// `ip_forward`, no firewall rule, no route into the namespace, so what a stack publishes on
/// 0.0.0.0 there is reachable only through the tunnels on 127.0.0.1. The host's own loopback
/// stays closed to it too (other worktrees' tunnels live there). It runs in the worktree's
/// cgroup, so it is stopped, and limited, with everything else of the worktree.
///
/// This starts it; [`Uplink::wait`] waits until it has configured its tap, so the caller can
/// start the daemon meanwhile (neither needs the other to start). `fresh`: the namespace was
/// just made, so no uplink can be running in it yet.
pub(super) fn start_uplink(id: &str, fresh: bool) -> Result<Uplink> {
    let log = Netns::run_dir(id).join("slirp4netns.log");
    if !fresh && has_tap(id) {
        return Ok(Uplink {
            id: id.to_string(),
            child: None,
            log,
        });
    }
    if !exec::on_path("slirp4netns") {
        return Err(hint(
            "slirp4netns is not installed",
            "apt install slirp4netns",
        ));
    }
    let child = Netns::in_cgroup(id)
        .args([
            "slirp4netns",
            "--configure",
            "--mtu=65520",
            "--disable-host-loopback",
            "--netns-type=path",
        ])
        .arg(Netns::netns_path(id))
        .arg(TAP)
        .spawn_detached(&log)?;
    Ok(Uplink {
        id: id.to_string(),
        child: Some(child),
        log,
    })
}

/// A slirp4netns started by [`start_uplink`] (`child` None: one was running already).
pub(super) struct Uplink {
    id: String,
    child: Option<std::process::Child>,
    log: std::path::PathBuf,
}

impl Uplink {
    /// Waits until the tap is configured; an error when slirp4netns exits or takes too long.
    pub(super) fn wait(self) -> Result<()> {
        let Some(mut child) = self.child else {
            return Ok(());
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !has_tap(&self.id) {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "slirp4netns exited ({}): {}",
                    exec::status_code(status),
                    std::fs::read_to_string(&self.log)
                        .unwrap_or_default()
                        .trim()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "slirp4netns did not configure {TAP} within 10 s (log: {})",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// Whether the namespace's tap is configured: slirp4netns's tap goes away with it, so a
/// configured tap means it is running.
fn has_tap(id: &str) -> bool {
    Cmd::new("ip")
        .args(["-n", id, "-4", "-o", "addr", "show", "dev", TAP])
        .output()
        .is_ok_and(|o| {
            o.status.success() && has_addr(&String::from_utf8_lossy(&o.stdout), TAP, TAP_ADDR)
        })
}

/// Removes what earlier versions set up for a namespace's uplink: a veth pair and firewall
/// rules commented `git-vmoat:<id>` (destroy and `gc` clear them after an upgrade).
pub(super) fn remove_legacy_uplink(id: &str) {
    let veth = format!("vmo{}", crate::naming::short_hash(id, 8));
    let exists = Cmd::new("ip")
        .args(["link", "show", &veth])
        .output()
        .is_ok_and(|o| o.status.success());
    if exists {
        let _ = Cmd::new("ip").args(["link", "delete", &veth]).output();
    }
    for (table, chain, rule) in legacy_rules() {
        if rule_comment_id(&rule) == Some(id) {
            let _ = Cmd::new("iptables")
                .args(["-t", table, "-D", chain])
                .args(delete_args(&rule))
                .output();
        }
    }
}

/// Every firewall rule an earlier version added: (table, chain, `iptables -S` line).
pub(super) fn legacy_rules() -> Vec<(&'static str, &'static str, String)> {
    if !exec::on_path("iptables") {
        return vec![];
    }
    let mut out = vec![];
    for (table, chain) in [("nat", "POSTROUTING"), ("filter", "FORWARD")] {
        let Ok(o) = Cmd::new("iptables")
            .args(["-t", table, "-S", chain])
            .output()
        else {
            continue;
        };
        out.extend(
            ours(&String::from_utf8_lossy(&o.stdout))
                .into_iter()
                .map(|l| (table, chain, l.to_string())),
        );
    }
    out
}

/// Whether `ip -o addr` output (one line per address: `2: tap0    inet 10.0.2.100/24 …`)
/// gives device `dev` the address `addr` (with its prefix length).
pub(super) fn has_addr(text: &str, dev: &str, addr: &str) -> bool {
    text.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1] == dev && matches!(f[2], "inet" | "inet6") && f[3] == addr
    })
}

/// The rules of `iptables -S` output that carry a `git-vmoat:<id>` comment.
pub(super) fn ours(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("-A ") && rule_comment_id(l).is_some())
        .collect()
}

/// What follows `-D <chain>` to delete a rule listed as `-A <chain> …` (iptables quotes the
/// comment for the shell; our comments hold no spaces, so dropping the quotes gives the argv).
pub(super) fn delete_args(rule: &str) -> Vec<&str> {
    rule.split_whitespace()
        .skip(2)
        .map(|a| a.trim_matches('"'))
        .collect()
}

/// The id in a rule's `--comment git-vmoat:<id>`.
pub(super) fn rule_comment_id(rule: &str) -> Option<&str> {
    let (_, rest) = rule.split_once("--comment ")?;
    let c = rest.split_whitespace().next()?.trim_matches('"');
    c.strip_prefix("git-vmoat:")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ip -n <ns> -4 -o addr show dev tap0` after slirp4netns configured it (iproute2 6.x).
    const IP_ADDR_TAP: &str = "2: tap0    inet 10.0.2.100/24 scope global tap0\\       valid_lft forever preferred_lft forever\n";
    /// `ip -4 -o addr show` on a host: other devices and addresses.
    const IP_ADDR_HOST: &str = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n\
        4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever preferred_lft forever\n";

    #[test]
    fn a_configured_tap_is_told_from_ip_addr_output() {
        assert!(has_addr(IP_ADDR_TAP, TAP, TAP_ADDR));
        assert!(
            !has_addr(IP_ADDR_TAP, TAP, "10.0.2.100/32"),
            "prefix counts"
        );
        assert!(!has_addr(IP_ADDR_HOST, TAP, TAP_ADDR));
        assert!(has_addr(IP_ADDR_HOST, "eth0", "192.0.2.2/24"));
        assert!(!has_addr("", TAP, TAP_ADDR), "no tap yet");
    }

    /// `iptables -S <chain>` (iptables v1.8.9, nf_tables) with rules of an earlier version.
    const IPTABLES_FILTER: &str = "-P FORWARD ACCEPT\n\
        -A FORWARD -o vmo12345678 -m comment --comment \"git-vmoat:wt-a-1f2e\" -j ACCEPT\n\
        -A FORWARD -s 10.201.3.0/30 -m comment --comment \"git-vmoat:wt-b-9a0c\" -j ACCEPT\n\
        -A FORWARD -j RETURN\n";
    const IPTABLES_NAT: &str = "-P POSTROUTING ACCEPT\n\
        -A POSTROUTING -s 10.201.3.0/30 ! -o vmo12345678 -m comment --comment \"git-vmoat:wt-b-9a0c\" -j MASQUERADE\n";

    #[test]
    fn legacy_rules_are_found_and_deleted_by_their_own_arguments() {
        let rules = ours(IPTABLES_FILTER);
        assert_eq!(rules.len(), 2, "{rules:?}");
        assert_eq!(
            rules.iter().map(|r| rule_comment_id(r)).collect::<Vec<_>>(),
            [Some("wt-a-1f2e"), Some("wt-b-9a0c")]
        );
        assert_eq!(
            delete_args(rules[0]),
            [
                "-o",
                "vmo12345678",
                "-m",
                "comment",
                "--comment",
                "git-vmoat:wt-a-1f2e",
                "-j",
                "ACCEPT"
            ]
        );
        let nat = ours(IPTABLES_NAT);
        assert_eq!(
            delete_args(nat[0]),
            [
                "-s",
                "10.201.3.0/30",
                "!",
                "-o",
                "vmo12345678",
                "-m",
                "comment",
                "--comment",
                "git-vmoat:wt-b-9a0c",
                "-j",
                "MASQUERADE"
            ]
        );
        assert!(ours("-P POSTROUTING ACCEPT\n").is_empty(), "policies only");
    }

    #[test]
    fn a_legacy_rule_gives_its_id() {
        assert_eq!(
            rule_comment_id(
                "-A FORWARD -o vmo12345678 -m comment --comment \"git-vmoat:wt-a-1f2e\" -j ACCEPT"
            ),
            Some("wt-a-1f2e")
        );
        assert_eq!(
            rule_comment_id("-A FORWARD -m comment --comment other -j ACCEPT"),
            None
        );
    }
}
