//! The goals for `bench http`, each said met or MISSED, and the
//! counts' table.

use std::fmt::Write as _;

use serde_json::json;
use steer_tests::http_bench::report::{Round, Series};

use super::Counted;

fn say(ok: bool, what: String) {
    println!("goal {}: {what}", if ok { "met" } else { "MISSED" });
}

/// A figure the issue sets no goal for, printed beside the goals.
fn note(what: String) {
    println!("(no goal) {what}");
}

/// The counts side by side, ratios to nginx; then the redirector's and
/// nginx's system calls per new connection by name.
pub fn counts_table(counts: &[Counted]) -> String {
    let mut out = String::from(
        "| server | syscalls/req, keep-alive | syscalls/conn, new connection | Ir/req, keep-alive | Ir/req, new connection |\n|---|---|---|---|---|\n",
    );
    let nginx = counts.iter().find(|c| c.server == "nginx");
    let with = |x: f64, b: Option<f64>, digits: usize| match b {
        Some(b) if b > 0.0 => format!("{x:.digits$} ({:.2}x)", x / b),
        _ => format!("{x:.digits$}"),
    };
    for c in counts {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            c.server,
            with(
                c.syscalls_keep_alive.total,
                nginx.map(|n| n.syscalls_keep_alive.total),
                1
            ),
            with(c.syscalls_new.total, nginx.map(|n| n.syscalls_new.total), 1),
            with(c.ir_keep_alive, nginx.map(|n| n.ir_keep_alive), 0),
            with(c.ir_new, nginx.map(|n| n.ir_new), 0),
        );
    }
    for c in counts {
        let calls: Vec<String> = c
            .syscalls_new
            .by_name
            .iter()
            .filter(|(_, v)| v.abs() >= 0.05)
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect();
        let _ = writeln!(
            out,
            "\n{} per new connection: {}",
            c.server,
            calls.join(", ")
        );
    }
    out
}

pub fn counts_json(counts: &[Counted]) -> serde_json::Value {
    counts
        .iter()
        .map(|c| {
            json!({
                "server": c.server,
                "syscalls_per_request_keep_alive": c.syscalls_keep_alive.total,
                "syscalls_per_connection": c.syscalls_new.total,
                "syscalls_per_connection_by_name": c.syscalls_new.by_name,
                "syscalls_per_request_keep_alive_by_name": c.syscalls_keep_alive.by_name,
                "ir_per_request_keep_alive": c.ir_keep_alive,
                "ir_per_request_new_connection": c.ir_new,
            })
        })
        .collect()
}

/// In how many of the rounds both ran `ok` held between `a`'s round and
/// `b`'s: a round's servers run one after the other, so a pair saw the
/// same minute of the machine, which the medians over rounds do not.
fn paired(a: &Series, b: &Series, ok: impl Fn(&Round, &Round) -> bool) -> String {
    let pairs = a.rounds.iter().zip(&b.rounds);
    let held = pairs.clone().filter(|(x, y)| ok(x, y)).count();
    format!("{held} of {} rounds", pairs.count())
}

fn cpu_per_request(r: &Round) -> f64 {
    r.cpu.total_us() / r.wrk.requests.max(1) as f64
}

/// Every goal of the issue the run measured, met or missed.
pub fn check(series: &[Series], counts: Option<&[Counted]>) {
    let series_of = |section: &str, mode: &str, server: &str| {
        series
            .iter()
            .find(|s| s.section == section && s.mode == mode && s.server == server)
    };
    let cpu_goals = [
        ("pinned", "keep-alive", 0.85),
        ("pinned", "new connection", 0.9),
        ("shared cores", "keep-alive", 1.0),
        ("shared cores", "new connection", 1.0),
        ("TLS", "new TLS connection", 1.0),
    ];
    for (section, mode, bound) in cpu_goals {
        let (Some(st), Some(ng)) = (
            series_of(section, mode, "steer"),
            series_of(section, mode, "nginx"),
        ) else {
            continue;
        };
        let r = st.figures().cpu_per_request / ng.figures().cpu_per_request;
        let rounds = paired(st, ng, |a, b| {
            cpu_per_request(a) <= bound * cpu_per_request(b)
        });
        say(
            r <= bound,
            format!(
                "{section} {mode} CPU per request {r:.2}x nginx (at most {bound}x; medians; within it in {rounds})"
            ),
        );
    }
    for section in ["pinned", "shared cores"] {
        for mode in ["keep-alive", "new connection"] {
            if let (Some(st), Some(hp)) = (
                series_of(section, mode, "steer"),
                series_of(section, mode, "haproxy"),
            ) {
                let (a, b) = (st.figures().p99, hp.figures().p99);
                let rounds = paired(st, hp, |x, y| x.wrk.p99 <= y.wrk.p99);
                let what = format!(
                    "{section} {mode} p99 no worse than HAProxy's: {a:.0} against {b:.0} µs (medians; at most HAProxy's in {rounds})"
                );
                // The p99 goal is the pinned mode's; on shared
                // cores its goal is CPU only.
                match section {
                    "pinned" => say(a <= b, what),
                    _ => note(what),
                }
            }
        }
    }
    let rss = series
        .iter()
        .filter(|s| s.server == "steer")
        .map(|s| s.figures().rss_mib)
        .fold(0.0, f64::max);
    if rss > 0.0 {
        say(
            rss < 20.0,
            format!("RSS with the full ranges {rss:.1} MiB (under 20 MiB)"),
        );
    }
    let Some(counts) = counts else { return };
    let (Some(st), Some(ng)) = (
        counts.iter().find(|c| c.server == "steer"),
        counts.iter().find(|c| c.server == "nginx"),
    ) else {
        return;
    };
    let r = st.ir_keep_alive / ng.ir_keep_alive;
    say(
        r <= 0.6,
        format!("keep-alive instructions per request {r:.2}x nginx (at most 0.6x)"),
    );
    say(
        st.syscalls_new.total <= ng.syscalls_new.total,
        format!(
            "system calls per new connection {:.1} against nginx's {:.1} (no more)",
            st.syscalls_new.total, ng.syscalls_new.total
        ),
    );
}
