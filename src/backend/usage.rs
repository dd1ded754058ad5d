//! What a VM uses of the host (CPU time, memory, disk), and the file-system and process
//! measurements the backends build it from.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A VM's use of the host at one moment; None where the backend cannot tell.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// CPU time used since the VM started, in nanoseconds (two samples give a rate).
    pub cpu_ns: Option<u64>,
    /// Memory held now, page cache included.
    pub memory_used: Option<u64>,
    /// The part of it only swap can take back.
    pub memory_anon: Option<u64>,
    /// The most it may hold.
    pub memory_limit: Option<u64>,
    /// Disk space allocated to the VM's files (sparse disk images count what they hold).
    pub disk_bytes: Option<u64>,
}

/// Where a new VM's disk goes and the free space it needs there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskNeed {
    pub dir: PathBuf,
    pub bytes: u64,
}

/// Bytes allocated to the files under `roots` (st_blocks, so sparse files count what they
/// hold): each inode once however many links it has, never descending into another mount
/// (a running dockerd's overlay mounts show the same files again). None: no root exists.
pub fn allocated_bytes(roots: &[PathBuf]) -> Option<u64> {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total = 0u64;
    let mut any = false;
    for root in roots {
        let Ok(meta) = std::fs::symlink_metadata(root) else {
            continue;
        };
        any = true;
        let dev = meta.dev();
        let mut stack = vec![(root.clone(), meta)];
        while let Some((path, meta)) = stack.pop() {
            if meta.dev() != dev || !seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            total = total.saturating_add(meta.blocks().saturating_mul(512));
            if !meta.is_dir() {
                continue;
            }
            // Unreadable dirs (a race with a container removing them) count what was seen.
            let Ok(entries) = std::fs::read_dir(&path) else {
                continue;
            };
            for e in entries.flatten() {
                if let Ok(m) = e.path().symlink_metadata() {
                    stack.push((e.path(), m));
                }
            }
        }
    }
    any.then_some(total)
}

/// Free space for an unprivileged user on the file system that holds `path` (or would: the
/// nearest existing ancestor of a dir not yet made).
pub fn free_bytes(path: &Path) -> Option<u64> {
    let p = path.ancestors().find(|a| a.exists())?;
    let st = rustix::fs::statvfs(p).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// CPU time (user + system) a live process has used, in nanoseconds.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    if cfg!(target_os = "linux") {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        return proc_stat_cpu_ns(&stat);
    }
    // macOS has no /proc: ps gives the same two times summed, to the hundredth of a second.
    let out = crate::exec::Cmd::new("ps")
        .args(["-o", "time=", "-p", &pid.to_string()])
        .output()
        .ok()?;
    ps_time_ns(String::from_utf8_lossy(&out.stdout).trim())
}

/// utime + stime from a `/proc/<pid>/stat` line. Their unit, USER_HZ, is 100 on every Linux
/// architecture (the kernel scales its own tick rate to it for user space).
fn proc_stat_cpu_ns(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parens: fields count from after its last `)`.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 10_000_000)
}

/// `ps -o time=` text (`[[dd-]hh:]mm:ss[.cc]`) in nanoseconds.
fn ps_time_ns(text: &str) -> Option<u64> {
    let (days, hms) = match text.split_once('-') {
        Some((d, rest)) => (d.parse::<u64>().ok()?, rest),
        None => (0, text),
    };
    let mut secs = 0f64;
    for part in hms.split(':') {
        secs = secs * 60.0 + part.parse::<f64>().ok()?;
    }
    Some(((days as f64 * 86_400.0 + secs) * 1e9) as u64)
}

/// Bytes for people: `512 B`, `12.0 KiB`, `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The live processes named by pid files (each process once), with their summed CPU time.
pub fn pid_files_cpu_ns(files: &[PathBuf]) -> Option<u64> {
    let mut pids: Vec<u32> = files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok()?.trim().parse().ok())
        .filter(|&p| crate::exec::process_alive(p))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    let times: Vec<u64> = pids.into_iter().filter_map(process_cpu_ns).collect();
    (!times.is_empty()).then(|| times.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_links_count_once_and_sparse_files_count_what_they_hold() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("vm");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        let empty = allocated_bytes(std::slice::from_ref(&root)).unwrap();
        std::fs::write(root.join("a/data"), vec![7u8; 1 << 20]).unwrap();
        let one = allocated_bytes(std::slice::from_ref(&root)).unwrap();
        assert!(one >= empty + (1 << 20), "{empty} -> {one}");
        std::fs::hard_link(root.join("a/data"), root.join("a/b/link")).unwrap();
        let linked = allocated_bytes(std::slice::from_ref(&root)).unwrap();
        assert!(
            linked < one + (1 << 20),
            "a hard link counted twice: {one} -> {linked}"
        );
        let sparse = std::fs::File::create(root.join("disk.img")).unwrap();
        sparse.set_len(10 << 30).unwrap();
        let with_sparse = allocated_bytes(std::slice::from_ref(&root)).unwrap();
        assert!(
            with_sparse < linked + (1 << 20),
            "sparse image counted by its length"
        );
        assert_eq!(allocated_bytes(&[tmp.path().join("nothing")]), None);
    }

    #[test]
    fn bytes_read_naturally() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(20 << 20), "20.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn cpu_times_parse() {
        let stat = "42 (my (odd) cmd) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(proc_stat_cpu_ns(stat), Some(3_000_000_000));
        assert_eq!(ps_time_ns("0:01.50"), Some(1_500_000_000));
        assert_eq!(ps_time_ns("1:00:00"), Some(3_600_000_000_000));
        assert_eq!(ps_time_ns("2-00:00:01"), Some(172_801_000_000_000));
        assert_eq!(ps_time_ns("x"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_free_space_is_known() {
        let busy = std::time::Instant::now();
        while busy.elapsed() < std::time::Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        assert!(process_cpu_ns(std::process::id()).is_some());
        assert!(free_bytes(Path::new("/nonexistent/dir/below")).is_some());
    }
}
