//! `redirector sync`: fill every backend's store from the upstream.

use std::{process::ExitCode, sync::atomic::Ordering, time::Instant};

use anyhow::Result;

use super::{
    mirror_args::{MirrorArgs, runtime},
    usage::UsageError,
};
use crate::sync::{DEFAULT_JOBS, SyncOptions, report::Report, store::Store, sync};

#[derive(clap::Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub mirror: MirrorArgs,
    /// Only this shard of the blobs, by digest: K/N with K from 0 to N-1
    /// (a Kubernetes indexed Job's JOB_COMPLETION_INDEX/N).
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<(u64, u64)>,
    /// List what each backend lacks and how many bytes would move; copy
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (k, n) = s.split_once('/').ok_or("expected K/N, such as 0/4")?;
    let k: u64 = k.parse().map_err(|_| format!("`{k}` is not a number"))?;
    let n: u64 = n.parse().map_err(|_| format!("`{n}` is not a number"))?;
    if n == 0 || k >= n {
        return Err(format!("K must be from 0 to N-1 (got {k}/{n})"));
    }
    Ok((k, n))
}

pub fn run(args: SyncArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let (prepared, images) = args.mirror.prepare()?;
    let mut stores = Vec::new();
    for b in prepared.config.settings.backends.list() {
        if let Some(store) = Store::open(b).map_err(|e| UsageError(e.to_string()))? {
            stores.push(store);
        }
    }
    if stores.is_empty() {
        return Err(
            UsageError("no backend in the config has a store (backend.store)".into()).into(),
        );
    }
    let jobs = args.mirror.jobs.unwrap_or(DEFAULT_JOBS);
    let options = SyncOptions {
        jobs,
        dry_run: args.dry_run,
        terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let report = runtime()?.block_on(async {
        let mut plan = prepared
            .walk(&images, args.mirror.follow_signatures(), jobs)
            .await;
        if let Some((k, n)) = args.shard {
            plan.shard(k, n);
        }
        let backends = sync(&prepared.registry, &plan, &stores, &options).await;
        let stats = &prepared.registry.stats;
        Report {
            upstream: prepared.upstream.clone(),
            dry_run: args.dry_run,
            shard: args.shard.map(|(k, n)| format!("{k}/{n}")),
            manifests: plan.manifests,
            blobs: plan.blobs.len(),
            bytes: plan.bytes(),
            foreign_layers: plan.foreign,
            requests: stats.requests.load(Ordering::Relaxed),
            retries: stats.retries.load(Ordering::Relaxed),
            seconds: started.elapsed().as_secs_f64(),
            errors: plan.errors.clone(),
            backends,
        }
    });
    if args.mirror.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(ExitCode::from(report.exit_code()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn shards() {
        assert_eq!(super::parse_shard("0/4"), Ok((0, 4)));
        assert_eq!(super::parse_shard("3/4"), Ok((3, 4)));
        for bad in ["4/4", "1/0", "x/2", "1", "-1/2"] {
            assert!(super::parse_shard(bad).is_err(), "{bad}");
        }
    }
}
