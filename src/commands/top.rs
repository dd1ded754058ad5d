//! `top`: what every VM of this state dir (all repositories) uses of the host: CPU, memory,
//! disk, idle time and tunnels; live on a terminal, one snapshot otherwise or with --json.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::Serialize;

use crate::backend::usage::human_bytes;
use crate::backend::{self, Backend, BackendKind, Usage, suspend};
use crate::cli::JsonArgs;
use crate::output::{self, JSON_VERSION};
use crate::registry::{self, Owner};
use crate::state::State;

/// How long a snapshot watches CPU time to give a rate.
const SAMPLE: Duration = Duration::from_millis(500);
/// How often the live view is redrawn.
const REFRESH: Duration = Duration::from_secs(2);

#[derive(Serialize, Debug)]
struct Snapshot {
    version: u32,
    /// Over how long the CPU rates were measured, in milliseconds.
    sampled_ms: u64,
    vms: Vec<Row>,
    total: Total,
}

#[derive(Serialize, Debug, Clone)]
struct Row {
    vm: String,
    backend: BackendKind,
    /// `Running`, `Suspended`, `Stopped`, `absent`, or `unknown` when the backend cannot be asked.
    state: String,
    worktree: PathBuf,
    /// CPU use over the sample, in percent of one CPU (so up to 100 × CPUs).
    cpu_percent: Option<f64>,
    #[serde(flatten)]
    usage: Usage,
    /// When it was last seen in use (Unix seconds), and how long ago that is.
    last_active: Option<u64>,
    idle_secs: Option<u64>,
    /// When it was suspended (Unix seconds); null when it is not.
    suspended_since: Option<u64>,
    tunnels: Vec<TunnelCol>,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
struct TunnelCol {
    guest: u16,
    host: u16,
    alive: bool,
}

#[derive(Serialize, Debug, Default, PartialEq)]
struct Total {
    cpu_percent: Option<f64>,
    memory_used: u64,
    disk_bytes: u64,
}

pub fn run(args: &JsonArgs) -> Result<()> {
    let probe = Probe::new(State::open()?);
    if args.json {
        return output::json(&probe.snapshot()?);
    }
    if !std::io::stdout().is_terminal() {
        let snap = probe.snapshot()?;
        if snap.vms.is_empty() {
            output::info("no VMs in this state dir yet (`git vmoat up` makes one)");
            return Ok(());
        }
        return output::data(render(&snap, false));
    }
    probe.live()
}

/// Reads the registry and asks each VM's backend, one backend of each kind.
struct Probe {
    state: State,
    backends: HashMap<BackendKind, Box<dyn Backend>>,
}

impl Probe {
    fn new(state: State) -> Self {
        Self {
            state,
            backends: HashMap::new(),
        }
    }

    fn vms(&self) -> Result<Vec<(String, Owner)>> {
        Ok(registry::load(&self.state)?.into_iter().collect())
    }

    fn backend(&mut self, kind: BackendKind) -> Option<&dyn Backend> {
        if !self.backends.contains_key(&kind) {
            let b = backend::select(kind, &self.state).ok()?;
            self.backends.insert(kind, b);
        }
        self.backends.get(&kind).map(|b| b.as_ref())
    }

    /// Every VM's row at this moment (CPU as a rate needs a second look: see `rate`).
    fn rows(&mut self) -> Result<Vec<Row>> {
        let now = SystemTime::now();
        let mut rows = vec![];
        for (vm, owner) in self.vms()? {
            let state = self.state.clone();
            let (vm_state, usage) = match self.backend(owner.backend) {
                Some(b) => (
                    b.info(&vm)
                        .map_or_else(|_| "unknown".to_string(), |i| i.state.to_string()),
                    b.usage(&vm),
                ),
                None => ("unknown".to_string(), Usage::default()),
            };
            let last = suspend::last_active(&state, &vm);
            rows.push(Row {
                state: vm_state,
                backend: owner.backend,
                worktree: owner.root,
                cpu_percent: None,
                usage,
                last_active: last.map(unix_secs),
                idle_secs: last.map(|t| now.duration_since(t).unwrap_or_default().as_secs()),
                suspended_since: suspend::record(&state, &vm).map(|r| r.since),
                tunnels: tunnels(&state, &vm),
                vm,
            });
        }
        Ok(rows)
    }

    /// Each VM's CPU time alone: the first of two looks (its disk need not be walked twice).
    fn cpu_rows(&mut self) -> Result<Vec<Row>> {
        let mut rows = vec![];
        for (vm, owner) in self.vms()? {
            let cpu_ns = self.backend(owner.backend).and_then(|b| b.cpu_ns(&vm));
            rows.push(Row {
                vm,
                backend: owner.backend,
                state: String::new(),
                worktree: owner.root,
                cpu_percent: None,
                usage: Usage {
                    cpu_ns,
                    ..Usage::default()
                },
                last_active: None,
                idle_secs: None,
                suspended_since: None,
                tunnels: vec![],
            });
        }
        Ok(rows)
    }

    /// One snapshot: two looks `SAMPLE` apart, for the CPU rates.
    fn snapshot(mut self) -> Result<Snapshot> {
        let first = self.cpu_rows()?;
        let start = Instant::now();
        if !first.is_empty() {
            std::thread::sleep(SAMPLE);
        }
        let rows = self.rows()?;
        Ok(snapshot_of(&first, rows, start.elapsed()))
    }

    /// Redraws every `REFRESH` until interrupted (Ctrl-C ends the process: nothing to undo).
    fn live(mut self) -> Result<()> {
        let colored = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::env::var("TERM").map_or(true, |t| t != "dumb");
        let mut prev = self.cpu_rows()?;
        let mut at = Instant::now();
        let mut wait = SAMPLE;
        loop {
            std::thread::sleep(wait);
            let rows = self.rows()?;
            let snap = snapshot_of(&prev, rows, at.elapsed());
            at = Instant::now();
            prev.clone_from(&snap.vms);
            let body = if snap.vms.is_empty() {
                "no VMs in this state dir yet (`git vmoat up` makes one)\n".to_string()
            } else {
                render(&snap, colored)
            };
            let head = format!(
                "git vmoat top: {} VM{}, every {}s (Ctrl-C quits)\n\n",
                snap.vms.len(),
                if snap.vms.len() == 1 { "" } else { "s" },
                REFRESH.as_secs()
            );
            // Home and clear, then the frame: one write, so the screen never shows half a frame.
            output::data(format!("\x1b[H\x1b[2J{head}{body}"))?;
            wait = REFRESH;
        }
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn tunnels(state: &State, vm: &str) -> Vec<TunnelCol> {
    crate::tunnel::list(state, vm)
        .unwrap_or_default()
        .into_iter()
        .map(|(t, alive)| TunnelCol {
            guest: t.guest,
            host: t.host,
            alive,
        })
        .collect()
}

/// CPU use between two samples of a VM's CPU time, in percent of one CPU.
fn cpu_percent(before: Option<u64>, after: Option<u64>, wall: Duration) -> Option<f64> {
    let used = after?.checked_sub(before?)?;
    let wall = wall.as_nanos();
    (wall > 0).then(|| used as f64 * 100.0 / wall as f64)
}

/// The rows of `now` with their CPU rates against `before`, and the totals.
fn snapshot_of(before: &[Row], mut now: Vec<Row>, wall: Duration) -> Snapshot {
    for r in &mut now {
        let prev = before.iter().find(|p| p.vm == r.vm);
        r.cpu_percent = cpu_percent(prev.and_then(|p| p.usage.cpu_ns), r.usage.cpu_ns, wall);
    }
    let total = totals(&now);
    Snapshot {
        version: JSON_VERSION,
        sampled_ms: wall.as_millis() as u64,
        vms: now,
        total,
    }
}

fn totals(rows: &[Row]) -> Total {
    let rates: Vec<f64> = rows.iter().filter_map(|r| r.cpu_percent).collect();
    Total {
        cpu_percent: (!rates.is_empty()).then(|| rates.iter().sum()),
        memory_used: rows.iter().filter_map(|r| r.usage.memory_used).sum(),
        disk_bytes: rows.iter().filter_map(|r| r.usage.disk_bytes).sum(),
    }
}

const HEADER: [&str; 8] = [
    "VM", "STATE", "CPU", "MEMORY", "DISK", "IDLE", "TUNNELS", "WORKTREE",
];

/// The table: one line per VM, then the totals.
fn render(snap: &Snapshot, colored: bool) -> String {
    let mut lines: Vec<[String; 8]> = vec![HEADER.map(String::from)];
    for r in &snap.vms {
        lines.push([
            r.vm.clone(),
            r.state.clone(),
            percent(r.cpu_percent),
            memory(&r.usage),
            r.usage.disk_bytes.map_or("-".into(), human_bytes),
            idle(r),
            tunnel_text(&r.tunnels),
            r.worktree.display().to_string(),
        ]);
    }
    let t = &snap.total;
    lines.push([
        "total".into(),
        String::new(),
        percent(t.cpu_percent),
        human_bytes(t.memory_used),
        human_bytes(t.disk_bytes),
        String::new(),
        String::new(),
        String::new(),
    ]);
    let widths: Vec<usize> = (0..8)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let mut cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        if colored {
            if i == 0 {
                cells = cells.iter().map(|c| paint("1", c)).collect();
            } else if let Some(code) = state_colour(&l[1]) {
                cells[1] = paint(code, &cells[1]);
            }
        }
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn paint(code: &str, text: &str) -> String {
    format!("\x1b[{code}m{text}\x1b[0m")
}

fn state_colour(state: &str) -> Option<&'static str> {
    match state {
        "Running" => Some("32"),
        "Suspended" => Some("36"),
        "Stopped" => Some("33"),
        "" => None,
        _ => Some("31"),
    }
}

fn percent(p: Option<f64>) -> String {
    p.map_or("-".into(), |p| format!("{p:.1}%"))
}

fn memory(u: &Usage) -> String {
    match (u.memory_used, u.memory_limit) {
        (Some(used), Some(limit)) => format!("{} / {}", human_bytes(used), human_bytes(limit)),
        (Some(used), None) => human_bytes(used),
        (None, Some(limit)) => format!("- / {}", human_bytes(limit)),
        (None, None) => "-".into(),
    }
}

/// How long the VM has been idle, or, while suspended, how long ago it was suspended.
fn idle(r: &Row) -> String {
    let ago = |secs: u64| output::duration(Duration::from_secs(secs));
    if let Some(since) = r.suspended_since {
        let now = unix_secs(SystemTime::now());
        return format!("suspended {} ago", ago(now.saturating_sub(since)));
    }
    r.idle_secs.map_or("-".into(), ago)
}

/// Host ports, a dead tunnel's marked: `8080 9001(dead)`.
fn tunnel_text(tunnels: &[TunnelCol]) -> String {
    if tunnels.is_empty() {
        return "-".into();
    }
    tunnels
        .iter()
        .map(|t| {
            if t.alive {
                t.host.to_string()
            } else {
                format!("{}(dead)", t.host)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(vm: &str, state: &str, cpu_ns: Option<u64>, disk: Option<u64>) -> Row {
        Row {
            vm: vm.into(),
            backend: BackendKind::Netns,
            state: state.into(),
            worktree: format!("/src/{vm}").into(),
            cpu_percent: None,
            usage: Usage {
                cpu_ns,
                memory_used: Some(300 << 20),
                memory_anon: Some(200 << 20),
                memory_limit: Some(8 << 30),
                disk_bytes: disk,
            },
            last_active: Some(1_700_000_000),
            idle_secs: Some(125),
            suspended_since: None,
            tunnels: vec![
                TunnelCol {
                    guest: 8080,
                    host: 8080,
                    alive: true,
                },
                TunnelCol {
                    guest: 5432,
                    host: 9001,
                    alive: false,
                },
            ],
        }
    }

    #[test]
    fn cpu_percent_comes_from_two_samples() {
        let half = Duration::from_millis(500);
        assert_eq!(cpu_percent(Some(0), Some(250_000_000), half), Some(50.0));
        assert_eq!(cpu_percent(Some(0), Some(1_000_000_000), half), Some(200.0));
        assert_eq!(cpu_percent(None, Some(5), half), None);
        assert_eq!(cpu_percent(Some(9), Some(5), half), None, "a restarted VM");
        assert_eq!(cpu_percent(Some(0), Some(5), Duration::ZERO), None);
    }

    #[test]
    fn snapshots_rate_each_vm_against_itself_and_sum_the_totals() {
        let before = vec![
            row("wt-a", "Running", Some(0), None),
            row("wt-b", "Running", Some(0), None),
        ];
        let now = vec![
            row("wt-b", "Running", Some(100_000_000), Some(2 << 30)),
            row("wt-a", "Running", Some(500_000_000), Some(1 << 30)),
            row("wt-c", "Stopped", None, None),
        ];
        let s = snapshot_of(&before, now, Duration::from_secs(1));
        let rate = |vm: &str| s.vms.iter().find(|r| r.vm == vm).unwrap().cpu_percent;
        assert_eq!(rate("wt-a"), Some(50.0));
        assert_eq!(rate("wt-b"), Some(10.0));
        assert_eq!(rate("wt-c"), None);
        assert_eq!(
            s.total,
            Total {
                cpu_percent: Some(60.0),
                memory_used: 3 * (300 << 20),
                disk_bytes: 3 << 30,
            }
        );
        assert_eq!(s.sampled_ms, 1000);
    }

    #[test]
    fn the_table_shows_every_column_and_colours_only_when_asked() {
        let mut suspended = row("wt-sleepy", "Suspended", Some(7), Some(512 << 20));
        suspended.suspended_since = Some(unix_secs(SystemTime::now()) - 600);
        let s = snapshot_of(
            &[row("wt-a", "Running", Some(0), None)],
            vec![
                row("wt-a", "Running", Some(125_000_000), Some(3 << 29)),
                suspended,
            ],
            Duration::from_millis(500),
        );
        let text = render(&s, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].starts_with("VM") && lines[0].contains("WORKTREE"),
            "{text}"
        );
        for want in [
            "25.0%",
            "300.0 MiB / 8.0 GiB",
            "1.5 GiB",
            "2m05s",
            "8080 9001(dead)",
            "/src/wt-a",
        ] {
            assert!(lines[1].contains(want), "{want} missing: {text}");
        }
        assert!(lines[2].contains("suspended 10m00s ago"), "{text}");
        assert!(
            lines[3].starts_with("total") && lines[3].contains("2.0 GiB"),
            "{text}"
        );
        assert!(!text.contains('\x1b'));
        assert!(render(&s, true).contains("\x1b[36mSuspended"));
    }

    #[test]
    fn json_has_the_usage_fields_at_the_top_level_of_each_row() {
        let s = snapshot_of(&[], vec![row("wt-a", "Running", Some(1), Some(10))], SAMPLE);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["version"], JSON_VERSION);
        let r = &v["vms"][0];
        for key in [
            "cpu_ns",
            "memory_used",
            "memory_anon",
            "memory_limit",
            "disk_bytes",
        ] {
            assert!(r.get(key).is_some(), "{key} missing: {r}");
        }
        assert_eq!(r["backend"], "netns");
        assert_eq!(r["cpu_percent"], serde_json::Value::Null);
        assert_eq!(r["tunnels"][1]["host"], 9001);
        assert_eq!(v["total"]["disk_bytes"], 10);
    }
}
