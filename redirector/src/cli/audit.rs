//! `redirector audit`: check every backend through its public base_url.

use std::{process::ExitCode, time::Instant};

use anyhow::{Context as _, Result};

use super::{
    mirror_args::{MirrorArgs, runtime},
    usage::UsageError,
};
use crate::audit::{AuditReport, DEFAULT_AUDIT_JOBS, audit};

#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub mirror: MirrorArgs,
    /// Download every blob from every backend and hash it, instead of a
    /// HEAD.
    #[arg(long)]
    pub verify: bool,
    /// Only these backends (by name; repeatable).
    #[arg(long, value_name = "NAME")]
    pub backend: Vec<String>,
}

pub fn run(args: AuditArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let (prepared, images) = args.mirror.prepare()?;
    let all = prepared.config.settings.backends.list();
    for name in &args.backend {
        if !all.iter().any(|b| &*b.name == name) {
            return Err(UsageError(format!(
                "--backend: no backend named `{name}` in the config"
            ))
            .into());
        }
    }
    let backends: Vec<_> = all
        .iter()
        .filter(|b| args.backend.is_empty() || args.backend.iter().any(|n| *n == *b.name))
        .cloned()
        .collect();
    let jobs = args.mirror.jobs.unwrap_or(DEFAULT_AUDIT_JOBS);
    let report = runtime()?.block_on(async {
        let plan = prepared
            .walk(&images, args.mirror.follow_signatures(), jobs)
            .await;
        let checked = audit(&backends, &plan, jobs, args.verify)
            .await
            .context("setting up the HTTP client")?;
        anyhow::Ok(AuditReport {
            upstream: prepared.upstream.clone(),
            verify: args.verify,
            manifests: plan.manifests,
            blobs: plan.blobs.len(),
            bytes: plan.bytes(),
            seconds: started.elapsed().as_secs_f64(),
            errors: plan.errors.clone(),
            backends: checked,
        })
    })?;
    if args.mirror.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(ExitCode::from(report.exit_code()))
}
