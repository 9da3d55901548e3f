//! Load and measurement for `cargo xtask bench http`: the wrk script, a
//! wrk run and its numbers, a server's CPU time and memory from /proc,
//! and the quiet-machine check.

use std::{
    fmt::Write as _,
    fs,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use super::Request;
use crate::process::{run_bounded, text};

/// Writes a wrk script that sends `requests` in turn, each thread from
/// its own starting point, with `Connection: close` when `close`.
pub fn wrk_script(path: &Path, requests: &[Request], close: bool) {
    let mut lua = String::from("local reqs = {\n");
    for r in requests {
        // Built before wrk knows the URL, so the Host header is ours.
        let mut headers = String::from("[\"Host\"] = \"registry.steer.test\", ");
        if let Some(c) = r.client {
            let _ = write!(headers, "[\"X-Forwarded-For\"] = \"{c}\", ");
        }
        if close {
            headers.push_str("[\"Connection\"] = \"close\", ");
        }
        let _ = writeln!(
            lua,
            "  wrk.format(\"GET\", \"{}\", {{ {headers} }}),",
            r.path
        );
    }
    lua.push_str(
        r#"}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end
local i = 0
function init(args)
  i = (id * 7919) % #reqs
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "STEER requests=%d duration_us=%d errors=%d connect=%d read=%d write=%d status=%d timeout=%d p50=%d p99=%d p999=%d\n",
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"#,
    );
    fs::write(path, lua).expect("wrk script");
}

/// What one wrk run measured.
#[derive(Clone, Debug, Default)]
pub struct WrkRun {
    pub requests: u64,
    pub seconds: f64,
    pub errors: u64,
    /// Latency percentiles, microseconds.
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

impl WrkRun {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// How wrk runs: its threads, connections and duration.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub threads: u32,
    pub connections: u32,
    pub seconds: u32,
}

/// Runs wrk with `script` against `url`; `cmd` is the wrk command as the
/// caller builds it (inside the bench's namespace, maybe pinned).
pub fn wrk(mut cmd: Command, script: &Path, url: &str, load: Load) -> WrkRun {
    let Load {
        threads,
        connections,
        seconds,
    } = load;
    cmd.args(["-t", &threads.to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s"), "--timeout", "5s", "-s"])
        .arg(script)
        .arg(url);
    let limit = Duration::from_secs(u64::from(seconds) + 30);
    let out = run_bounded(&mut cmd, limit)
        .unwrap_or_else(|o| panic!("wrk ran over {limit:?}: {}", text(&o)));
    assert!(out.status.success(), "wrk failed: {}", text(&out));
    if std::env::var_os("STEER_BENCH_VERBOSE").is_some() {
        eprintln!("{}", text(&out));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("STEER "))
        .unwrap_or_else(|| panic!("wrk printed no summary: {}", text(&out)));
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    WrkRun {
        requests: field("requests") as u64,
        seconds: field("duration_us") / 1e6,
        errors: field("errors") as u64,
        p50: field("p50"),
        p99: field("p99"),
        p999: field("p999"),
    }
}

/// `pid` and every process below it.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = stat_fields(p).and_then(|f| f.get(1).and_then(|v| v.parse().ok())) {
                parents.push((p, ppid));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

/// The fields of /proc/PID/stat after the command name (state first).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU time spent in user space and in the kernel, microseconds, and
/// minor page faults (memory the kernel had to map in, counted in the
/// system time).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cpu {
    pub user_us: f64,
    pub system_us: f64,
    pub minor_faults: f64,
}

impl Cpu {
    pub fn total_us(&self) -> f64 {
        self.user_us + self.system_us
    }
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, before: Cpu) -> Cpu {
        Cpu {
            user_us: self.user_us - before.user_us,
            system_us: self.system_us - before.system_us,
            minor_faults: self.minor_faults - before.minor_faults,
        }
    }
}

/// User and system CPU time of `pid` and its descendants. A process's
/// stat sums all its threads, the ended ones included.
pub fn cpu_times(pid: u32) -> Cpu {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    process_tree(pid)
        .into_iter()
        .filter_map(stat_fields)
        .fold(Cpu::default(), |sum, f| {
            // minflt, utime and stime are fields 10, 14 and 15 of stat,
            // 8, 12 and 13 here.
            let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            Cpu {
                user_us: sum.user_us + t(11) / hz * 1e6,
                system_us: sum.system_us + t(12) / hz * 1e6,
                minor_faults: sum.minor_faults + t(7),
            }
        })
}

/// Resident memory of `pid` and its descendants: (RSS sum, PSS sum), KiB.
/// PSS splits shared pages among the processes that map them, so a
/// multi-process server is not counted twice.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let mut rss = 0;
    let mut pss = 0;
    for p in process_tree(pid) {
        let Ok(s) = fs::read_to_string(format!("/proc/{p}/smaps_rollup")) else {
            continue;
        };
        for line in s.lines() {
            let kib = || {
                line.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("Rss:") {
                rss += kib();
            } else if line.starts_with("Pss:") {
                pss += kib();
            }
        }
    }
    (rss, pss)
}

/// Waits (at most `limit`) until the machine is quiet: under `busy` of
/// all CPUs used over half a second. Returns whether it was.
pub fn wait_quiet(busy: f64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let a = cpu_jiffies();
        std::thread::sleep(Duration::from_millis(500));
        let b = cpu_jiffies();
        let (total, idle) = (b.0 - a.0, b.1 - a.1);
        if total > 0.0 && (total - idle) / total <= busy {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// (all, idle + iowait) jiffies from the first line of /proc/stat.
fn cpu_jiffies() -> (f64, f64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (v.iter().sum(), idle)
}
