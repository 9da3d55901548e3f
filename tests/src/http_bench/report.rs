//! The bench's report: per mode and server, the median of the rounds and
//! its spread, each figure as a ratio to nginx's in the same run; as a
//! Markdown table and as JSON.

use std::fmt::Write as _;

use serde_json::json;

use super::load::{Cpu, WrkRun};

/// One round of one server in one mode.
#[derive(Clone, Debug, Default)]
pub struct Round {
    pub wrk: WrkRun,
    /// Server CPU time over the run.
    pub cpu: Cpu,
    pub quiet: bool,
}

/// All rounds of one server in one mode, and its memory after them.
#[derive(Clone, Debug)]
pub struct Series {
    /// Which table: "pinned", "shared cores", "TLS, pinned", ...
    pub section: String,
    pub mode: String,
    pub server: String,
    pub rounds: Vec<Round>,
    pub rss_kib: u64,
    pub pss_kib: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The figures of a series: medians over its rounds.
#[derive(Clone, Debug)]
pub struct Figures {
    pub rate: f64,
    pub rate_min: f64,
    pub rate_max: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub cpu_per_request: f64,
    pub user_per_request: f64,
    pub system_per_request: f64,
    pub faults_per_request: f64,
    pub errors: u64,
    pub rss_mib: f64,
    pub pss_mib: f64,
    pub all_quiet: bool,
}

impl Series {
    pub fn figures(&self) -> Figures {
        let rates: Vec<f64> = self.rounds.iter().map(|r| r.wrk.rate()).collect();
        let m = |f: fn(&Round) -> f64| median(self.rounds.iter().map(f).collect());
        Figures {
            rate: median(rates.clone()),
            rate_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
            rate_max: rates.iter().copied().fold(0.0, f64::max),
            p50: m(|r| r.wrk.p50),
            p99: m(|r| r.wrk.p99),
            p999: m(|r| r.wrk.p999),
            cpu_per_request: m(|r| r.cpu.total_us() / r.wrk.requests.max(1) as f64),
            user_per_request: m(|r| r.cpu.user_us / r.wrk.requests.max(1) as f64),
            system_per_request: m(|r| r.cpu.system_us / r.wrk.requests.max(1) as f64),
            faults_per_request: m(|r| r.cpu.minor_faults / r.wrk.requests.max(1) as f64),
            errors: self.rounds.iter().map(|r| r.wrk.errors).sum(),
            rss_mib: self.rss_kib as f64 / 1024.0,
            pss_mib: self.pss_kib as f64 / 1024.0,
            all_quiet: self.rounds.iter().all(|r| r.quiet),
        }
    }
}

/// The Markdown table of one section: a row per mode and server, each
/// figure with its ratio to the mode's baseline server in the same run.
pub fn markdown(all: &[Series], section: &str, baseline: impl Fn(&str) -> &'static str) -> String {
    let series: Vec<&Series> = all.iter().filter(|s| s.section == section).collect();
    let mut out = String::from(
        "| mode | server | req/s: median (ratio), min–max | p50 µs | p99 µs | p99.9 µs | CPU µs/req | user | system | page faults/req | RSS MiB | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in &series {
        let f = s.figures();
        let base = series
            .iter()
            .find(|b| b.mode == s.mode && b.server == baseline(&s.mode))
            .map(|b| b.figures());
        let with = |x: f64, digits: usize, b: fn(&Figures) -> f64| match &base {
            Some(base) if b(base) > 0.0 => format!("{x:.digits$} ({:.2}x)", x / b(base)),
            _ => format!("{x:.digits$}"),
        };
        let _ = writeln!(
            out,
            "| {} | {}{} | {}, {:.0}–{:.0} | {} | {} | {} | {} | {:.1} | {:.1} | {:.3} | {}, PSS {:.1} | {} |",
            s.mode,
            s.server,
            if f.all_quiet { "" } else { " (busy machine)" },
            with(f.rate, 0, |b| b.rate),
            f.rate_min,
            f.rate_max,
            with(f.p50, 0, |b| b.p50),
            with(f.p99, 0, |b| b.p99),
            with(f.p999, 0, |b| b.p999),
            with(f.cpu_per_request, 1, |b| b.cpu_per_request),
            f.user_per_request,
            f.system_per_request,
            f.faults_per_request,
            with(f.rss_mib, 1, |b| b.rss_mib),
            f.pss_mib,
            f.errors,
        );
    }
    out
}

/// The same as JSON, rounds included, with the ratios to the baseline.
pub fn json(series: &[Series], baseline: impl Fn(&str) -> &'static str) -> serde_json::Value {
    let rows: Vec<_> = series
        .iter()
        .map(|s| {
            let f = s.figures();
            let base_name = baseline(&s.mode);
            let base = series
                .iter()
                .find(|b| b.section == s.section && b.mode == s.mode && b.server == base_name)
                .map(|b| b.figures());
            let ratio = |x: f64, b: fn(&Figures) -> f64| {
                base.as_ref()
                    .map(|base| x / b(base))
                    .filter(|r| r.is_finite())
            };
            json!({
                "ratios_to": base_name,
                "ratios": {
                    "req_per_s": ratio(f.rate, |b| b.rate),
                    "p50": ratio(f.p50, |b| b.p50),
                    "p99": ratio(f.p99, |b| b.p99),
                    "p99_9": ratio(f.p999, |b| b.p999),
                    "cpu_us_per_request": ratio(f.cpu_per_request, |b| b.cpu_per_request),
                    "rss": ratio(f.rss_mib, |b| b.rss_mib),
                },
                "section": s.section,
                "mode": s.mode,
                "server": s.server,
                "req_per_s": {"median": f.rate, "min": f.rate_min, "max": f.rate_max},
                "latency_us": {"p50": f.p50, "p99": f.p99, "p99_9": f.p999},
                "cpu_us_per_request": f.cpu_per_request,
                "user_us_per_request": f.user_per_request,
                "system_us_per_request": f.system_per_request,
                "minor_faults_per_request": f.faults_per_request,
                "rss_mib": f.rss_mib,
                "pss_mib": f.pss_mib,
                "errors": f.errors,
                "quiet": f.all_quiet,
                "rounds": s.rounds.iter().map(|r| json!({
                    "requests": r.wrk.requests,
                    "seconds": r.wrk.seconds,
                    "req_per_s": r.wrk.rate(),
                    "user_us": r.cpu.user_us,
                    "system_us": r.cpu.system_us,
                    "minor_faults": r.cpu.minor_faults,
                    "p50_us": r.wrk.p50,
                    "p99_us": r.wrk.p99,
                    "p99_9_us": r.wrk.p999,
                    "errors": r.wrk.errors,
                    "quiet": r.quiet,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "series": rows })
}
