//! `redirector serve`'s flags, and how they layer over the Go service's
//! environment and the config file: environment, then file, then flags.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Result, bail};
use steer_user::AttachMode;

use super::{Forwarded, Settings, limits::Limits};
use crate::{
    config::{Config, ServerConfig},
    duration,
    explain::DEFAULT_PIN_DIR,
    parse_mode,
    range_args::RangeArgs,
};

#[derive(clap::Args)]
pub struct Args {
    /// Config file (TOML; see docs/configuration.md). Flags given here
    /// override it.
    #[arg(long, value_name = "FILE", env = "STEER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on. Default: the config's server.listen, else
    /// `[::]:$PORT` (PORT as for the registry's Go service, default 8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Address of the admin listener (/healthz, /readyz, /metrics).
    /// Default: the config's server.admin, else 127.0.0.1:9102.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Attach XDP to this interface and classify connections from what it
    /// records; without it, connections are classified in userspace.
    #[arg(long, value_name = "IFACE")]
    pub xdp_iface: Option<String>,
    /// XDP mode: auto, native or generic.
    #[arg(long, default_value = "auto", value_parser = parse_mode)]
    pub xdp_mode: AttachMode,
    /// Pin the XDP maps here for `redirector explain --kernel`.
    #[arg(long, value_name = "DIR", env = "STEER_PIN_DIR", default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// Do not pin the maps.
    #[arg(long)]
    pub no_pin: bool,
    /// Time between range reloads (0: only on SIGHUP). Seconds, or a
    /// duration such as 5m.
    #[arg(long, value_name = "DURATION", default_value = "300", value_parser = duration::flag)]
    pub reload_interval: Duration,
    /// Most client connections served at once; more wait in the kernel's
    /// backlog. Lowered to fit the open-file limit [default: 10000].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Time from accept to the first byte of the first request (PROXY
    /// header, TLS handshake, HTTP/2 preface) [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = duration::positive_flag)]
    pub handshake_timeout: Option<Duration>,
    /// Time a client may take to send a request's headers (also the idle
    /// limit between requests on a kept-alive HTTP/1 connection)
    /// [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = duration::positive_flag)]
    pub header_timeout: Option<Duration>,
    /// A connection with no request in flight this long is closed
    /// (HTTP/2: GOAWAY) [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = duration::positive_flag)]
    pub idle_timeout: Option<Duration>,
    /// Concurrent HTTP/2 streams per connection [default: 100].
    #[arg(long, value_name = "N")]
    pub max_streams: Option<u32>,
    /// Time to let in-flight requests finish after SIGTERM [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = duration::flag)]
    pub grace: Option<Duration>,
    /// Time a HEAD check at a backend may take before the client is sent
    /// upstream [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = duration::positive_flag)]
    pub blob_check_timeout: Option<Duration>,
    /// Blob check results kept, found and missing together [default: 100000].
    #[arg(long, value_name = "N")]
    pub blob_cache_entries: Option<u64>,
    /// Time a blob found at a backend is trusted [default: 24h].
    #[arg(long, value_name = "DURATION", value_parser = duration::flag)]
    pub blob_found_ttl: Option<Duration>,
    /// Time a missing blob (or a failed check) is remembered [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = duration::flag)]
    pub blob_missing_ttl: Option<Duration>,
    /// Most HEAD checks in flight in the process; past it clients go
    /// upstream at once [default: 256].
    #[arg(long, value_name = "N")]
    pub max_blob_checks: Option<usize>,
    /// Most HEAD checks in flight for one client connection [default: 8].
    #[arg(long, value_name = "N")]
    pub max_blob_checks_per_connection: Option<usize>,
    /// A proxy network (CIDR) whose X-Forwarded-For is believed: the
    /// client is the rightmost entry that is not such a proxy. Repeatable.
    #[arg(long, value_name = "CIDR", conflicts_with = "forwarded_second_to_last")]
    pub trusted_proxy: Vec<ipnet::IpNet>,
    /// The Go service's rule: the second-to-last X-Forwarded-For entry,
    /// from any peer. Only behind a load balancer that is the sole way in.
    #[arg(long)]
    pub forwarded_second_to_last: bool,
    /// Every connection starts with a PROXY protocol header (v1 or v2)
    /// that names the client; connections without one are closed.
    #[arg(long)]
    pub proxy_protocol: bool,
    /// Serve TLS with this PEM certificate chain (with --tls-key); ALPN
    /// offers HTTP/2 and HTTP/1.1.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub ranges: RangeArgs,
}

/// Larger connection caps are typos: a process cannot hold them.
const MAX_CONNECTIONS: usize = 1 << 24;

/// The grace period when neither flag nor file sets one.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

impl Args {
    /// The settings: the Go service's environment, then the config file,
    /// then flags given on the command line.
    pub fn settings(&self) -> Result<(Settings, ServerConfig)> {
        let defaults = Settings::from_env(|k| std::env::var(k).ok())?;
        let (mut settings, server) = match &self.config {
            Some(path) => {
                let c = Config::read(path, defaults)?;
                (c.settings, c.server)
            }
            None => (defaults, ServerConfig::default()),
        };
        let b = &mut settings.blob_check;
        if let Some(v) = self.blob_check_timeout {
            b.timeout = v;
        }
        if let Some(v) = self.blob_cache_entries {
            b.capacity = v;
        }
        if let Some(v) = self.blob_found_ttl {
            b.found_ttl = v;
        }
        if let Some(v) = self.blob_missing_ttl {
            b.missing_ttl = v;
        }
        if let Some(v) = self.max_blob_checks {
            b.max_in_flight = at_least_one("--max-blob-checks", v)?;
        }
        if let Some(v) = self.max_blob_checks_per_connection {
            b.max_per_connection = at_least_one("--max-blob-checks-per-connection", v)?;
        }
        if self.forwarded_second_to_last {
            settings.forwarded = Forwarded::SecondToLast;
        } else if !self.trusted_proxy.is_empty() {
            settings.forwarded = Forwarded::Trusted(self.trusted_proxy.clone());
        }
        Ok((settings, server))
    }

    /// The connection limits: flag, else file, else default.
    pub fn limits(&self, file: &ServerConfig) -> Result<Limits> {
        let d = Limits::default();
        let max_connections = self
            .max_connections
            .or(file.max_connections)
            .unwrap_or(d.max_connections);
        if !(1..=MAX_CONNECTIONS).contains(&max_connections) {
            bail!("max connections: `{max_connections}` is not from 1 to {MAX_CONNECTIONS}");
        }
        let max_streams = self
            .max_streams
            .or(file.max_streams)
            .unwrap_or(d.max_streams);
        if max_streams == 0 {
            bail!("max streams: must be at least 1");
        }
        Ok(Limits {
            handshake_timeout: self
                .handshake_timeout
                .or(file.handshake_timeout)
                .unwrap_or(d.handshake_timeout),
            header_timeout: self
                .header_timeout
                .or(file.header_timeout)
                .unwrap_or(d.header_timeout),
            idle_timeout: self
                .idle_timeout
                .or(file.idle_timeout)
                .unwrap_or(d.idle_timeout),
            max_connections,
            max_streams,
        })
    }

    pub fn grace(&self, file: &ServerConfig) -> Duration {
        self.grace.or(file.grace).unwrap_or(DEFAULT_GRACE)
    }
}

fn at_least_one(what: &str, v: usize) -> Result<usize> {
    if v == 0 {
        bail!("{what}: must be at least 1");
    }
    Ok(v)
}
