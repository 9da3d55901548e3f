//! `redirector serve`: the HTTP redirector.
//!
//! Each connection is classified once, right after accept: from the class
//! XDP recorded for its SYN when XDP is attached (one load from a shared
//! mapping), else by the userspace classifier on the same table. Requests
//! on the connection reuse that answer; no request searches the ranges.

mod admin;
mod blob_check;
mod client_addr;
mod handler;
mod metrics;
mod proxy_protocol;
mod settings;
#[cfg(test)]
mod tests;
mod tls;

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::{Context as _, Result};
use hyper::{Request, body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
};
use steer_user::{
    AttachMode, Class, RangeTable, Steer,
    ranges::{RangeSources, Ranges, chain},
};
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
    sync::Semaphore,
};
use tracing::{debug, error, info, warn};

pub use client_addr::Forwarded;
pub use handler::{ConnInfo, Source};
#[cfg(test)]
pub use settings::DEFAULT_UPSTREAM;
pub use settings::{Settings, base_url, plain_path};

use crate::{
    config::{Config, ServerConfig},
    explain::DEFAULT_PIN_DIR,
    parse_mode,
    range_args::RangeArgs,
    reload::Reload,
};
use blob_check::BlobChecker;

#[derive(clap::Args)]
pub struct Args {
    /// Config file (TOML; see the README). Flags given here override it.
    #[arg(long, value_name = "FILE", env = "STEER_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on. Default: the config's server.listen, else
    /// `[::]:$PORT` (PORT as for the registry's Go service, default 8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Address of the admin listener (/healthz, /readyz, /metrics).
    /// Default: the config's server.admin, else 127.0.0.1:9102.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Attach XDP to this interface and classify connections from what it
    /// records; without it, connections are classified in userspace.
    #[arg(long, value_name = "IFACE")]
    xdp_iface: Option<String>,
    /// XDP mode: auto, native or generic.
    #[arg(long, default_value = "auto", value_parser = parse_mode)]
    xdp_mode: AttachMode,
    /// Pin the XDP maps here for `redirector explain --kernel`.
    #[arg(long, value_name = "DIR", env = "STEER_PIN_DIR", default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    /// Do not pin the maps.
    #[arg(long)]
    no_pin: bool,
    /// Seconds between range reloads (0: only on SIGHUP).
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    reload_interval: f64,
    /// Most connections served at once; more wait in the kernel's backlog.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Seconds a client may take to send a request's headers (also the
    /// idle limit between requests on a kept-alive HTTP/1 connection).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    header_timeout: f64,
    /// Seconds to let in-flight requests finish after SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    grace: f64,
    /// Seconds a HEAD check at a backend may take before the client is
    /// sent upstream [default: 5].
    #[arg(long, value_name = "SECS")]
    blob_check_timeout: Option<f64>,
    /// Blob check results kept, found and missing together [default: 100000].
    #[arg(long, value_name = "N")]
    blob_cache_entries: Option<u64>,
    /// Seconds a blob found at a backend is trusted [default: 86400].
    #[arg(long, value_name = "SECS")]
    blob_found_ttl: Option<f64>,
    /// Seconds a missing blob (or a failed check) is remembered [default: 60].
    #[arg(long, value_name = "SECS")]
    blob_missing_ttl: Option<f64>,
    /// A proxy network (CIDR) whose X-Forwarded-For is believed: the
    /// client is the rightmost entry that is not such a proxy. Repeatable.
    #[arg(long, value_name = "CIDR", conflicts_with = "forwarded_second_to_last")]
    trusted_proxy: Vec<ipnet::IpNet>,
    /// The Go service's rule: the second-to-last X-Forwarded-For entry,
    /// from any peer. Only behind a load balancer that is the sole way in.
    #[arg(long)]
    forwarded_second_to_last: bool,
    /// Every connection starts with a PROXY protocol header (v1 or v2)
    /// that names the client; connections without one are closed.
    #[arg(long)]
    proxy_protocol: bool,
    /// Serve TLS with this PEM certificate chain (with --tls-key); ALPN
    /// offers HTTP/2 and HTTP/1.1.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    ranges: RangeArgs,
}

/// Largest request head accepted, in bytes (HTTP/1 buffer, HTTP/2 header
/// list).
const MAX_HEADER_BYTES: usize = 64 * 1024;

pub struct State {
    /// Swapped whole when the config file is reloaded.
    settings: RwLock<Arc<Settings>>,
    metrics: Arc<metrics::Metrics>,
    /// False once draining has begun (for /readyz).
    ready: std::sync::atomic::AtomicBool,
    checker: BlobChecker,
    served: RwLock<Arc<Served>>,
    steer: Option<Arc<RwLock<Steer>>>,
}

/// The ranges in force, with every class behind a shared pointer: a
/// request behind a proxy clones a pointer, not two strings.
struct Served {
    ranges: Ranges,
    /// Indexed by class id; 0 is unknown.
    classes: Vec<Arc<Class>>,
}

impl Served {
    fn new(ranges: Ranges) -> Served {
        let classes = (0..=ranges.table.class_count() as u32)
            .map(|id| shared_class(&ranges.table, id))
            .collect();
        Served { ranges, classes }
    }

    fn class(&self, id: u32) -> Arc<Class> {
        self.classes
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| Arc::new(Class::unknown()))
    }
}

/// Class `id` of `table` behind a new shared pointer (unknown for 0 and
/// for ids the table lacks).
fn shared_class(table: &RangeTable, id: u32) -> Arc<Class> {
    Arc::new(table.class(id).cloned().unwrap_or_else(Class::unknown))
}

impl State {
    fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn served(&self) -> Arc<Served> {
        self.served
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The class of an address the kernel did not see (from a proxy).
    fn classify_userspace(&self, addr: std::net::IpAddr) -> Arc<Class> {
        let served = self.served();
        served.class(served.ranges.classifier.classify(addr))
    }

    /// The class of a direct client, once per connection.
    fn classify(&self, peer: SocketAddr, local_port: u16) -> (Arc<Class>, Source) {
        if let Some(steer) = &self.steer {
            let steer = steer.read().unwrap_or_else(|e| e.into_inner());
            if let Some(flow) = steer.flow_class(peer, local_port) {
                let served = self.served();
                let class = match steer.table_of(flow.generation) {
                    // The usual case: the generation serving requests.
                    Some(t) if Arc::ptr_eq(t, &served.ranges.table) => served.class(flow.class),
                    // A flow recorded just before a switch.
                    Some(t) => shared_class(t, flow.class),
                    None => Arc::new(Class::unknown()),
                };
                return (class, Source::Xdp);
            }
        }
        (self.classify_userspace(peer.ip()), Source::Userspace)
    }

    /// Reloads the ranges; on any failure the current ones keep serving.
    /// The XDP maps are locked only for the kernel write, not while the
    /// sources are read and compiled.
    fn reload(&self, sources: &RangeSources, why: &str) {
        let current = self.served();
        let (outcome, _) = crate::reload::reload(sources, &current.ranges, why, |table| {
            self.steer
                .as_ref()
                .map(|steer| {
                    let mut steer = steer.write().unwrap_or_else(|e| e.into_inner());
                    steer.load_table(table.clone())
                })
                .transpose()
        });
        if let Reload::Reloaded { ranges, .. } = outcome {
            *self.served.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Served::new(ranges));
            self.metrics.ranges_generation.inc();
        }
    }
}

impl Args {
    /// The settings: the Go service's environment, then the config file,
    /// then flags given on the command line.
    fn settings(&self) -> Result<(Settings, ServerConfig)> {
        let defaults = Settings::from_env(|k| std::env::var(k).ok())?;
        let (mut settings, server) = match &self.config {
            Some(path) => {
                let c = Config::read(path, defaults)?;
                (c.settings, c.server)
            }
            None => (defaults, ServerConfig::default()),
        };
        let secs = |what: &str, v: f64| -> Result<Duration> {
            Duration::try_from_secs_f64(v)
                .map_err(|_| anyhow::anyhow!("--{what}: `{v}` is not a number of seconds"))
        };
        let b = &mut settings.blob_check;
        if let Some(v) = self.blob_check_timeout {
            b.timeout = secs("blob-check-timeout", v)?;
        }
        if let Some(v) = self.blob_cache_entries {
            b.capacity = v;
        }
        if let Some(v) = self.blob_found_ttl {
            b.found_ttl = secs("blob-found-ttl", v)?;
        }
        if let Some(v) = self.blob_missing_ttl {
            b.missing_ttl = secs("blob-missing-ttl", v)?;
        }
        if self.forwarded_second_to_last {
            settings.forwarded = Forwarded::SecondToLast;
        } else if !self.trusted_proxy.is_empty() {
            settings.forwarded = Forwarded::Trusted(self.trusted_proxy.clone());
        }
        Ok((settings, server))
    }
}

pub fn run(args: Args) -> Result<()> {
    let (settings, server) = args.settings()?;
    let listen = match args.listen.or(server.listen) {
        Some(a) => a,
        None => {
            let port: u16 = match std::env::var("PORT") {
                Ok(p) => p
                    .parse()
                    .with_context(|| format!("PORT: `{p}` is not a port"))?,
                Err(_) => 8080,
            };
            SocketAddr::from(([0u16; 8], port))
        }
    };
    let admin = args
        .admin_listen
        .or(server.admin)
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9102)));
    let proxy_protocol = args.proxy_protocol || server.proxy_protocol.unwrap_or(false);
    let tls = match (
        args.tls_cert.as_ref().or(server.tls_cert.as_ref()),
        args.tls_key.as_ref().or(server.tls_key.as_ref()),
    ) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        (None, None) => None,
        _ => anyhow::bail!("TLS needs both a certificate and a key"),
    };
    let sources = args.ranges.sources();
    let ranges = sources.load(None).context("loading ranges")?.ranges;

    let steer = match &args.xdp_iface {
        None => None,
        Some(iface) => {
            let mut steer =
                Steer::load().context("loading the XDP classifier (needs root or CAP_BPF)")?;
            steer
                .load_table(ranges.table.clone())
                .context("loading ranges into the XDP maps")?;
            steer
                .set_service_ports(&[listen.port()])
                .context("setting the service port")?;
            if !args.no_pin
                && let Err(e) = steer.pin(&args.pin_dir)
            {
                warn!(error = %chain(&e), "maps not pinned; `explain --kernel` will not see them");
            }
            steer
                .attach(iface, args.xdp_mode)
                .with_context(|| format!("attaching XDP to {iface}"))?;
            Some(Arc::new(RwLock::new(steer)))
        }
    };

    let mut metrics = metrics::Metrics::default();
    if let Some(steer) = &steer {
        metrics.add_xdp(steer.clone());
    }
    let metrics = Arc::new(metrics);
    metrics.ranges_generation.set(1);
    let state = Arc::new(State {
        checker: BlobChecker::new(&settings.blob_check, metrics.clone()),
        metrics,
        ready: std::sync::atomic::AtomicBool::new(true),
        settings: RwLock::new(Arc::new(settings)),
        served: RwLock::new(Arc::new(Served::new(ranges))),
        steer,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let listeners = Listeners {
        listen,
        admin,
        proxy_protocol,
        tls,
    };
    runtime.block_on(serve(state.clone(), sources, listeners, &args))?;
    if let Some(steer) = &state.steer {
        let mut steer = steer.write().unwrap_or_else(|e| e.into_inner());
        steer.detach_all();
        steer.unpin();
    }
    Ok(())
}

/// Where to listen, settled at start (a reload does not move listeners).
struct Listeners {
    listen: SocketAddr,
    admin: SocketAddr,
    proxy_protocol: bool,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

async fn serve(
    state: Arc<State>,
    sources: RangeSources,
    listeners: Listeners,
    args: &Args,
) -> Result<()> {
    let listen = listeners.listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let local = listener.local_addr()?;
    let admin_listener = admin::bind(listeners.admin).await?;
    let admin_local = admin_listener.local_addr()?;
    let admin_task = tokio::spawn(admin::serve(admin_listener, state.clone()));
    info!(%local, xdp = args.xdp_iface.as_deref().unwrap_or("off"), "serving");
    // Tests and scripts wait for this line.
    println!("steer: serving on {local}, admin on {admin_local}");

    let header_timeout = Duration::from_secs_f64(args.header_timeout.max(0.1));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    // HTTP/2 connections are pinged when quiet, so a peer that vanished
    // frees its slot.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(args.max_connections.max(1)));

    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let period = (args.reload_interval > 0.0)
        .then(|| Duration::from_secs_f64(args.reload_interval.max(1.0)));
    let mut timer = tokio::time::interval_at(
        tokio::time::Instant::now() + period.unwrap_or(Duration::from_secs(3600)),
        period.unwrap_or(Duration::from_secs(3600)),
    );
    // A permit is taken before accepting, so at the cap new connections
    // wait in the kernel's backlog instead of being accepted and dropped.
    let mut permit = None;
    loop {
        tokio::select! {
            p = slots.clone().acquire_owned(), if permit.is_none() => {
                permit = Some(p.expect("the semaphore is never closed"));
            }
            accepted = listener.accept(), if permit.is_some() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let permit = permit.take();
                let _ = stream.set_nodelay(true);
                let (state, builder, watcher) = (state.clone(), builder.clone(), graceful.watcher());
                let (proxy, port) = (listeners.proxy_protocol, local.port());
                let tls = listeners.tls.clone();
                tokio::spawn(async move {
                    let mut stream = stream;
                    // Behind a PROXY-protocol balancer the kernel saw the
                    // balancer, so the client is classified in userspace.
                    let (client, class, source) = match proxy {
                        false => {
                            let (class, source) = state.classify(peer, port);
                            (peer, class, source)
                        }
                        true => match proxy_protocol::read(&mut stream, header_timeout).await {
                            Ok(Some(client)) => {
                                (client, state.classify_userspace(client.ip()), Source::Proxy)
                            }
                            Ok(None) => {
                                let (class, source) = state.classify(peer, port);
                                (peer, class, source)
                            }
                            Err(e) => {
                                debug!(%peer, error = %e, "connection closed");
                                return;
                            }
                        },
                    };
                    state.metrics.connections.inc();
                    let conn = Arc::new(ConnInfo { peer: client, class, source });
                    let service = {
                        let state = state.clone();
                        service_fn(move |req: Request<Incoming>| {
                            let (state, conn) = (state.clone(), conn.clone());
                            async move {
                                Ok::<_, Infallible>(handler::handle(&state, &conn, &req).await)
                            }
                        })
                    };
                    match tls {
                        None => {
                            let connection = builder.serve_connection(TokioIo::new(stream), service);
                            let _ = watcher.watch(connection).await;
                        }
                        Some(acceptor) => {
                            match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(tls_stream)) => {
                                    let connection =
                                        builder.serve_connection(TokioIo::new(tls_stream), service);
                                    let _ = watcher.watch(connection).await;
                                }
                                Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                                Err(_) => debug!(%peer, "TLS handshake timed out"),
                            }
                        }
                    }
                    state.metrics.connections.dec();
                    drop(permit);
                });
            }
            _ = hup.recv() => {
                reload_settings(&state, args);
                reload_blocking(&state, &sources, "SIGHUP").await
            }
            _ = timer.tick(), if period.is_some() => reload_blocking(&state, &sources, "timer").await,
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    drop(listener);
    state
        .ready
        .store(false, std::sync::atomic::Ordering::Relaxed);
    info!("draining in-flight requests");
    let grace = Duration::from_secs_f64(args.grace.max(0.0));
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            ?grace,
            "grace period over; closing the remaining connections"
        );
    }
    admin_task.abort();
    Ok(())
}

/// Re-reads the config file on SIGHUP; a bad file keeps the old settings.
/// Listeners and the blob cache's size and TTLs stay as they started.
fn reload_settings(state: &State, args: &Args) {
    if args.config.is_none() {
        return;
    }
    match args.settings() {
        Ok((settings, _)) => {
            *state.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
            info!("config reloaded");
        }
        Err(e) => error!(
            error = format!("{e:#}"),
            "config reload failed; the old config keeps serving"
        ),
    }
}

/// Reloads off the async threads: compiling a table takes tens of ms.
async fn reload_blocking(state: &Arc<State>, sources: &RangeSources, why: &'static str) {
    let (state, sources) = (state.clone(), sources.clone());
    let _ = tokio::task::spawn_blocking(move || state.reload(&sources, why)).await;
}
