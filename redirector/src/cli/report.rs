//! `redirector report`: requests, bytes, the share mirrors served, cost
//! and savings, per client class and per backend, from the instances'
//! `/metrics` (since each started) or from a Prometheus server (over a
//! window, summed over every instance it scrapes).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use clap::Args;

use crate::{
    config::duration,
    report::{figures, prometheus, sources},
};

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("source").required(true).multiple(false))]
pub struct ReportArgs {
    /// Ask the Prometheus server at URL (e.g. http://prometheus:9090) for
    /// the increases over `--since`, summed over every instance it scrapes.
    #[arg(long, value_name = "URL", group = "source")]
    pub prometheus: Option<String>,
    /// The window of `--prometheus`, up to now.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = window, requires = "prometheus")]
    pub since: Duration,
    /// Scrape these instances' admin listeners (http://HOST:PORT or the
    /// full /metrics URL) for their totals since they started.
    #[arg(long, value_name = "URL", num_args = 1.., group = "source")]
    pub metrics: Vec<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The longest any one request to a source may take.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration::positive_flag)]
    pub timeout: Duration,
}

fn window(s: &str) -> Result<Duration, String> {
    let d = duration::positive_flag(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!("`{s}` is shorter than a second"));
    }
    Ok(d)
}

pub fn run(args: ReportArgs) -> Result<()> {
    let agent = sources::agent(args.timeout);
    let report = if let Some(base) = &args.prometheus {
        let end = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let (samples, instances) =
            prometheus::fetch(&agent, base, args.since, end).context("querying Prometheus")?;
        let window = format!("over the last {}", humantime::format_duration(args.since));
        figures::figures(&samples, &window, instances)
    } else {
        let per_instance = sources::scrape(&agent, &args.metrics).context("scraping")?;
        let instances = per_instance.len();
        figures::figures(&figures::merge(per_instance), "since start", instances)
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
