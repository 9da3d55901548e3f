//! `redirector serve`'s flags: the top layer of the config model, over
//! the Go service's environment and the config file. Defaults are not
//! repeated here: they live in the config model and
//! docs/configuration.md lists them.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context as _, Result};
use steer_user::AttachMode;

use super::range_args::RangeArgs;
use crate::{
    config::{Config, Layer, TlsFiles, XdpConfig, duration},
    control::Control,
    forwarded::Forwarded,
    serve::Server,
    xdp::{DEFAULT_PIN_DIR, parse_mode},
};

#[derive(clap::Args)]
pub struct ServeArgs {
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
    #[arg(long, value_name = "DURATION", value_parser = duration::flag)]
    pub reload_interval: Option<Duration>,
    /// Most client connections served at once; more wait in the kernel's
    /// backlog. Lowered to fit the open-file limit.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Time from accept to the first byte of the first request (PROXY
    /// header, TLS handshake, HTTP/2 preface).
    #[arg(long, value_name = "DURATION", value_parser = duration::positive_flag)]
    pub handshake_timeout: Option<Duration>,
    /// Time a client may take to send a request's headers (also the idle
    /// limit between requests on a kept-alive HTTP/1 connection)
    ///.
    #[arg(long, value_name = "DURATION", value_parser = duration::positive_flag)]
    pub header_timeout: Option<Duration>,
    /// A connection with no request in flight this long is closed
    /// (HTTP/2: GOAWAY).
    #[arg(long, value_name = "DURATION", value_parser = duration::positive_flag)]
    pub idle_timeout: Option<Duration>,
    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, value_name = "N")]
    pub max_streams: Option<u32>,
    /// Time to let in-flight requests finish after SIGTERM.
    #[arg(long, value_name = "DURATION", value_parser = duration::flag)]
    pub grace: Option<Duration>,
    /// Time a HEAD check at a backend may take before the client is sent
    /// upstream.
    #[arg(long, value_name = "DURATION", value_parser = duration::positive_flag)]
    pub blob_check_timeout: Option<Duration>,
    /// Blob check results kept, found and missing together.
    #[arg(long, value_name = "N")]
    pub blob_cache_entries: Option<u64>,
    /// Time a blob found at a backend is trusted.
    #[arg(long, value_name = "DURATION", value_parser = duration::flag)]
    pub blob_found_ttl: Option<Duration>,
    /// Time a missing blob (or a failed check) is remembered.
    #[arg(long, value_name = "DURATION", value_parser = duration::flag)]
    pub blob_missing_ttl: Option<Duration>,
    /// Most HEAD checks in flight in the process; past it clients go
    /// upstream at once.
    #[arg(long, value_name = "N")]
    pub max_blob_checks: Option<usize>,
    /// Most HEAD checks in flight for one client connection.
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
    /// Bind the public listener with SO_REUSEPORT, so that a new process
    /// can bind beside this one before it stops (restarts that drop
    /// nothing; see docs/operations.md).
    #[arg(long)]
    pub reuse_port: bool,
    /// Serving threads, each accepting on its own listening socket and
    /// serving what it accepted. Default: one per CPU.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Serve TLS with this PEM certificate chain (with --tls-key); ALPN
    /// offers HTTP/2 and HTTP/1.1.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Write one JSON line per request (time, client, class, source,
    /// route, status, backend, digest, bytes, request id) to this file,
    /// or to `stderr`. Never blocks a request: lines that do not fit the
    /// buffer are dropped and counted.
    #[arg(long, value_name = "PATH|stderr")]
    pub access_log: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub ranges: RangeArgs,
}

impl ServeArgs {
    /// The flags as the top layer of the config model.
    pub fn layer(&self) -> Layer {
        let forwarded = if self.forwarded_second_to_last {
            Some(Forwarded::SecondToLast)
        } else if !self.trusted_proxy.is_empty() {
            Some(Forwarded::Trusted(self.trusted_proxy.clone()))
        } else {
            None
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        Layer {
            file: self.config.clone(),
            listen: self.listen,
            admin: self.admin_listen,
            proxy_protocol: self.proxy_protocol.then_some(true),
            reuse_port: self.reuse_port.then_some(true),
            workers: self.workers,
            access_log: self.access_log.clone(),
            tls,
            handshake_timeout: self.handshake_timeout,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            max_streams: self.max_streams,
            grace: self.grace,
            reload_interval: self.reload_interval,
            blob_check_timeout: self.blob_check_timeout,
            blob_cache_entries: self.blob_cache_entries,
            blob_found_ttl: self.blob_found_ttl,
            blob_missing_ttl: self.blob_missing_ttl,
            max_blob_checks: self.max_blob_checks,
            max_blob_checks_per_connection: self.max_blob_checks_per_connection,
            forwarded,
            ..Layer::default()
        }
    }

    /// The whole config: the process environment, file, these flags.
    pub fn config(&self) -> Result<Config> {
        self.config_with_env(|k| std::env::var(k).ok())
    }

    /// [`ServeArgs::config`] with the environment read through `env`.
    pub fn config_with_env(&self, env: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let mut config = Config::resolve(env, self.layer())?;
        config.xdp = self.xdp_iface.as_ref().map(|iface| XdpConfig {
            iface: iface.clone(),
            mode: self.xdp_mode,
            pin_dir: (!self.no_pin).then(|| self.pin_dir.clone()),
        });
        config.ranges = self.ranges.sources();
        Ok(config)
    }
}

/// `redirector serve`: bind, say where, serve until SIGTERM or Ctrl-C.
pub fn run(args: ServeArgs) -> Result<()> {
    let config = args.config()?;
    crate::serve::cap_malloc_arenas(config.workers);
    // The control plane: admin, health checks, reloads. Requests are
    // served on the workers' own threads (serve::workers); one thread
    // here is enough, and each thread costs memory (a stack, a malloc
    // arena). Multi-threaded so a reload can block it briefly.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        let control =
            Control::new(server.config().reload_interval).context("installing signal handlers")?;
        // Tests and scripts wait for this line.
        println!(
            "steer: serving on {}, admin on {}",
            server.local_addr(),
            server.admin_addr()
        );
        server.run_with(control).await?;
        anyhow::Ok(())
    })?;
    Ok(())
}
