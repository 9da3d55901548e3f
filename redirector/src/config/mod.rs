//! The one config model of `redirector serve` (and what `explain` shows
//! of it): the registry Go service's environment, then the config file,
//! then flags, each a [`Layer`], resolved once into a [`Config`] with the
//! defaults, which are written once (in [`settings`] and [`limits`]).
//! Durations read the same everywhere ([`duration`]). docs/configuration.md
//! is the reference.

pub mod bytes;
pub mod duration;
mod error;
mod file;
mod fleet_file;
mod layer;
pub mod limits;
pub mod rates;
pub mod settings;
#[cfg(test)]
mod tests;

use std::{net::SocketAddr, path::Path, time::Duration};

use steer_user::{Class, ranges::RangeSources};

use error::at_least_one;
pub use error::{ConfigError, TlsFiles, XdpConfig};
pub use layer::Layer;
use limits::Limits;
use rates::ClassRates;
use settings::{BlobCheckSettings, INFO_URL, PRIVACY_URL, Settings};

/// Where the public listener goes when nothing says (the Go service's
/// PORT default).
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 8080);
pub const DEFAULT_ADMIN: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    9102,
);
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(300);
/// Larger connection caps are typos: a process cannot hold them.
pub const MAX_CONNECTIONS: usize = 1 << 24;
/// More serving threads than this are a typo, not a machine.
pub const MAX_WORKERS: usize = 1024;

/// One serving thread per CPU the process may run on.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS))
}

/// Everything `serve` runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// What requests are answered with; swapped whole on SIGHUP.
    pub settings: Settings,
    /// Classes whose SYNs XDP drops (`[policy] drop`); applied on start
    /// and on SIGHUP.
    pub drop: Vec<Class>,
    /// SYNs per source, by class (`[policy] syn_rate`, `syn_burst`); with
    /// XDP, applied on start and on SIGHUP.
    pub syn_limits: ClassRates,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub proxy_protocol: bool,
    /// SO_REUSEPORT on the public listener (restarts beside the old process).
    pub reuse_port: bool,
    /// Serving threads: each accepts on its own socket and serves what it
    /// accepted.
    pub workers: usize,
    /// The JSON access log: a file to append to, or `stderr`; off if None.
    pub access_log: Option<std::path::PathBuf>,
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
    /// Drain time after SIGTERM.
    pub grace: Duration,
    /// Between range reloads; zero: only on SIGHUP.
    pub reload_interval: Duration,
    pub xdp: Option<XdpConfig>,
    pub ranges: RangeSources,
    /// The flags it was resolved with, to resolve again on SIGHUP.
    flags: Layer,
}

impl Config {
    /// The environment (through `env`), then the config file that
    /// `flags.file` names, if any, then `flags`.
    pub fn resolve(
        env: impl Fn(&str) -> Option<String>,
        flags: Layer,
    ) -> Result<Config, ConfigError> {
        let (env_layer, file_layer) = lower_layers(env, &flags)?;
        Config::from_layers(env_layer.under(file_layer).under(flags.clone()), flags)
    }

    /// Resolves again from the same flags, the current environment and
    /// the file as it is now (SIGHUP). Listeners, limits, XDP and range
    /// sources are kept from `self`: only settings and policy take effect.
    pub fn reread(&self) -> Result<Config, ConfigError> {
        let new = Config::resolve(|k| std::env::var(k).ok(), self.flags.clone())?;
        Ok(Config {
            settings: new.settings,
            drop: new.drop,
            syn_limits: new.syn_limits,
            ..self.clone()
        })
    }

    /// The config file, if one was read.
    pub fn file(&self) -> Option<&Path> {
        self.flags.file.as_deref()
    }

    fn from_layers(l: Layer, flags: Layer) -> Result<Config, ConfigError> {
        let b = BlobCheckSettings::default();
        let blob_check = BlobCheckSettings {
            timeout: l.blob_check_timeout.unwrap_or(b.timeout),
            capacity: l.blob_cache_entries.unwrap_or(b.capacity),
            found_ttl: l.blob_found_ttl.unwrap_or(b.found_ttl),
            missing_ttl: l.blob_missing_ttl.unwrap_or(b.missing_ttl),
            max_in_flight: at_least_one("max blob checks", l.max_blob_checks)?
                .unwrap_or(b.max_in_flight),
            max_per_connection: at_least_one(
                "max blob checks per connection",
                l.max_blob_checks_per_connection,
            )?
            .unwrap_or(b.max_per_connection),
        };
        let settings = Settings {
            upstream: l.upstream_or_default(),
            upstream_path: l.upstream_path_or_default(),
            signature_upstream: l.signature_upstream.clone().flatten(),
            info_url: l.info_url.clone().unwrap_or_else(|| INFO_URL.to_owned()),
            privacy_url: l
                .privacy_url
                .clone()
                .unwrap_or_else(|| PRIVACY_URL.to_owned()),
            backends: l.backend_table(),
            blob_check,
            forwarded: l.forwarded.clone().unwrap_or_default(),
            measure_upstream: l.measure_upstream.unwrap_or(false),
            upstream_micro_dollars_per_gb: l
                .upstream_micro_dollars_per_gb
                .unwrap_or(settings::DEFAULT_UPSTREAM_MICRO_DOLLARS_PER_GB),
            request_limits: l.request_rate.clone().unwrap_or_default(),
        };
        let d = Limits::default();
        let workers = l.workers.unwrap_or_else(default_workers);
        if !(1..=MAX_WORKERS).contains(&workers) {
            return Err(ConfigError::new(format!(
                "workers (--workers, server.workers): `{workers}` is not from 1 to {MAX_WORKERS}"
            )));
        }
        let max_connections = l.max_connections.unwrap_or(d.max_connections);
        if !(1..=MAX_CONNECTIONS).contains(&max_connections) {
            return Err(ConfigError::new(format!(
                "max connections: `{max_connections}` is not from 1 to {MAX_CONNECTIONS}"
            )));
        }
        let max_streams = l.max_streams.unwrap_or(d.max_streams);
        if max_streams == 0 {
            return Err(ConfigError::new("max streams: must be at least 1"));
        }
        let limits = Limits {
            handshake_timeout: l.handshake_timeout.unwrap_or(d.handshake_timeout),
            header_timeout: l.header_timeout.unwrap_or(d.header_timeout),
            idle_timeout: l.idle_timeout.unwrap_or(d.idle_timeout),
            max_connections,
            max_streams,
        };
        Ok(Config {
            settings,
            drop: l.drop.unwrap_or_default(),
            syn_limits: l.syn_rate.unwrap_or_default(),
            listen: l.listen.unwrap_or(DEFAULT_LISTEN),
            admin: l.admin.unwrap_or(DEFAULT_ADMIN),
            proxy_protocol: l.proxy_protocol.unwrap_or(false),
            reuse_port: l.reuse_port.unwrap_or(false),
            workers,
            access_log: l.access_log.clone(),
            tls: l.tls,
            limits,
            grace: l.grace.unwrap_or(DEFAULT_GRACE),
            reload_interval: l.reload_interval.unwrap_or(DEFAULT_RELOAD_INTERVAL),
            xdp: None,
            ranges: RangeSources::default(),
            flags,
        })
    }
}

/// A key, the value it resolves to, and where that came from.
pub type OriginRow = (&'static str, Option<String>, Origin);

/// Where a resolved value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    Env,
    File,
    Flag,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::Env => "env",
            Origin::File => "file",
            Origin::Flag => "flag",
        }
    }
}

/// Every key of the model with the value it resolves to and where that
/// came from: flags over the file over the environment over the default
/// (`None` where the default is "not set"). Fails as [`Config::resolve`]
/// would.
pub fn origins(
    env: impl Fn(&str) -> Option<String>,
    flags: Layer,
) -> Result<Vec<OriginRow>, ConfigError> {
    let env_layer = Layer::from_env(&env)?;
    let file_layer = match &flags.file {
        Some(path) => read_file(path)?,
        None => Layer::default(),
    };
    // The same stack `resolve` builds, from the layers read once here.
    let stack = env_layer
        .clone()
        .under(file_layer.clone())
        .under(flags.clone());
    let config = Config::from_layers(stack, flags.clone())?;
    let defaults = layer_of(&Config::from_layers(Layer::default(), Layer::default())?);
    let resolved = layer_of(&config).entries();
    let layers = [
        (flags.entries(), Origin::Flag),
        (file_layer.entries(), Origin::File),
        (env_layer.entries(), Origin::Env),
    ];
    Ok(defaults
        .entries()
        .into_iter()
        .zip(resolved)
        .enumerate()
        .filter(|(_, ((key, _), _))| *key != "file" && *key != "default_aws_base_url")
        .map(|(i, ((key, _), (_, value)))| {
            let origin = layers
                .iter()
                .find(|(entries, _)| entries[i].1.is_some())
                .map_or(Origin::Default, |(_, o)| *o);
            (key, value, origin)
        })
        .collect())
}

/// A resolved config as a layer that sets every key it has a value
/// for (what `check-config` shows).
fn layer_of(c: &Config) -> Layer {
    let s = &c.settings;
    let b = &s.blob_check;
    let l = &c.limits;
    Layer {
        upstream: Some(s.upstream.clone()),
        upstream_path: Some(s.upstream_path.clone()),
        signature_upstream: s.signature_upstream.clone().map(Some),
        info_url: Some(s.info_url.clone()),
        privacy_url: Some(s.privacy_url.clone()),
        backends: Some(s.backends.clone()),
        default_aws_base_url: None,
        blob_check_timeout: Some(b.timeout),
        blob_cache_entries: Some(b.capacity),
        blob_found_ttl: Some(b.found_ttl),
        blob_missing_ttl: Some(b.missing_ttl),
        max_blob_checks: Some(b.max_in_flight),
        max_blob_checks_per_connection: Some(b.max_per_connection),
        forwarded: Some(s.forwarded.clone()),
        measure_upstream: Some(s.measure_upstream),
        upstream_micro_dollars_per_gb: Some(s.upstream_micro_dollars_per_gb),
        listen: Some(c.listen),
        admin: Some(c.admin),
        proxy_protocol: Some(c.proxy_protocol),
        reuse_port: Some(c.reuse_port),
        workers: Some(c.workers),
        access_log: c.access_log.clone(),
        tls: c.tls.clone(),
        handshake_timeout: Some(l.handshake_timeout),
        header_timeout: Some(l.header_timeout),
        idle_timeout: Some(l.idle_timeout),
        max_connections: Some(l.max_connections),
        max_streams: Some(l.max_streams),
        grace: Some(c.grace),
        reload_interval: Some(c.reload_interval),
        drop: Some(c.drop.clone()),
        syn_rate: Some(c.syn_limits.clone()),
        request_rate: Some(s.request_limits.clone()),
        file: c.file().map(Into::into),
    }
}

/// The layers under the flags: the environment, and the file the flags
/// name (empty without one).
fn lower_layers(
    env: impl Fn(&str) -> Option<String>,
    flags: &Layer,
) -> Result<(Layer, Layer), ConfigError> {
    let env = Layer::from_env(env)?;
    let file = match &flags.file {
        Some(path) => read_file(path)?,
        None => Layer::default(),
    };
    Ok((env, file))
}

/// Reads and validates a config file into a layer; errors start with the
/// file's path.
pub fn read_file(path: &Path) -> Result<Layer, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(format!("reading {}: {e}", path.display())))?;
    let mut layer =
        file::parse(&text).map_err(|e| ConfigError::new(format!("{}: {e}", path.display())))?;
    layer.file = Some(path.to_owned());
    Ok(layer)
}
