//! What `sync` and `audit` share: the config (for the upstream and the
//! backends), the image selection, and how to talk to the upstream.

use std::{path::PathBuf, time::Instant};

use anyhow::{Context as _, Result};

use super::usage::UsageError;
use crate::{
    config::{Config, Layer},
    sync::{
        plan::{Plan, walk},
        registry::{Registry, RegistryOptions, auth::Credentials, retry::RetryPolicy},
        selection::{self, Image},
    },
};

#[derive(clap::Args)]
pub struct MirrorArgs {
    /// The config file (TOML; see docs/configuration.md): the upstream
    /// and the backends.
    #[arg(long, value_name = "FILE", env = "STEER_CONFIG")]
    pub config: Option<PathBuf>,
    /// An images file (TOML: [[image]] name, tags, digests, all_tags).
    #[arg(long, value_name = "FILE")]
    pub images: Option<PathBuf>,
    /// Images: name:tag, name@sha256:<hex>, or name for all its tags.
    #[arg(value_name = "IMAGE")]
    pub image: Vec<String>,
    /// Follow cosign signature and attestation tags (sha256-<hex>.sig,
    /// .att) where they exist: `--signatures=false` to leave them out.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub signatures: bool,
    /// The same as `--signatures=false`.
    #[arg(long)]
    pub no_signatures: bool,
    /// Blobs (or checks) in flight at once.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Most requests per second to the upstream (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_rps: u32,
    /// Retries of an upstream request after 429, 5xx or a broken
    /// connection, with backoff (Retry-After honoured).
    #[arg(long, value_name = "N", default_value_t = RetryPolicy::default().retries)]
    pub retries: u32,
    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The config, the upstream client and the walked plan.
pub struct Prepared {
    pub config: Config,
    pub registry: Registry,
    pub upstream: String,
}

impl MirrorArgs {
    /// Reads the config and the selection; every error here is a usage
    /// error (exit 2).
    pub fn prepare(&self) -> Result<(Prepared, Vec<Image>)> {
        let flags = Layer {
            file: self.config.clone(),
            ..Layer::default()
        };
        let config = Config::resolve(|k| std::env::var(k).ok(), flags)
            .map_err(|e| UsageError(e.to_string()))?;
        let mut images = Vec::new();
        if let Some(f) = &self.images {
            let text = std::fs::read_to_string(f)
                .map_err(|e| UsageError(format!("{}: {e}", f.display())))?;
            images = selection::parse_file(&text)
                .map_err(|e| UsageError(format!("{}: {e}", f.display())))?;
        }
        for arg in &self.image {
            images.push(selection::parse_arg(arg).map_err(UsageError)?);
        }
        if images.is_empty() {
            return Err(UsageError("name images (IMAGE... or --images FILE)".into()).into());
        }
        if self.jobs == Some(0) {
            return Err(UsageError("--jobs: must be at least 1".into()).into());
        }
        let s = &config.settings;
        let host = url::Url::parse(&s.upstream)
            .ok()
            .and_then(|u| {
                Some(format!(
                    "{}{}",
                    u.host_str()?,
                    u.port().map_or(String::new(), |p| format!(":{p}"))
                ))
            })
            .unwrap_or_default();
        let options = RegistryOptions {
            max_rps: Some(self.max_rps),
            retry: RetryPolicy {
                retries: self.retries,
                ..RetryPolicy::default()
            },
            credentials: Credentials::find(|k| std::env::var(k).ok(), &host),
        };
        let registry = Registry::new(&s.upstream, &s.upstream_path, options)
            .context("setting up the upstream client")?;
        let upstream = if s.upstream_path.is_empty() {
            s.upstream.clone()
        } else {
            format!("{}/{}", s.upstream, s.upstream_path)
        };
        Ok((
            Prepared {
                config,
                registry,
                upstream,
            },
            images,
        ))
    }
}

impl MirrorArgs {
    /// Whether to follow signature tags.
    pub fn follow_signatures(&self) -> bool {
        self.signatures && !self.no_signatures
    }
}

impl Prepared {
    pub async fn walk(&self, images: &[Image], signatures: bool, jobs: usize) -> Plan {
        let started = Instant::now();
        let plan = walk(&self.registry, images, signatures, jobs).await;
        tracing::info!(
            "{} blobs in {} manifests found in {:.1} s",
            plan.blobs.len(),
            plan.manifests,
            started.elapsed().as_secs_f64()
        );
        plan
    }
}

/// A runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}
