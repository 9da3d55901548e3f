//! The redirector: [`Server::bind`] a [`Config`], then [`Server::run`].
//!
//! Each connection is classified once, right after accept: from the class
//! XDP recorded for its SYN when XDP is attached (one load from a shared
//! mapping), else by the userspace classifier on the same table. Requests
//! on the connection reuse that answer; no request searches the ranges.
//!
//! Read top to bottom: [`accept`] (one loop per listener), [`conn`] (one
//! task per connection: PROXY header, classification, TLS, hyper),
//! [`handler`] (one request), [`state`], [`admin`]. Reloads run in the
//! caller's control loop through a [`Handle`], never in an accept loop.

mod accept;
mod access_log;
mod activity;
mod admin;
mod blob_check;
mod conn;
mod family_handles;
mod fds;
mod fleet;
mod handler;
mod health;
mod http1_fast;
mod http1_wire;
mod listen;
mod metrics;
mod notify;
mod prefixed;
mod prober;
mod proxy_protocol;
mod report_page;
mod request_counter;
mod request_head;
mod request_limit;
mod socket;
mod state;
mod target;
#[cfg(test)]
mod tests;
mod tls;
mod workers;
mod xdp_metrics;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, RwLock, atomic::Ordering},
};

use steer_user::{Steer, ranges::RangeSources};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};
use tracing::{error, info, warn};

pub use blob_check::{BlobProbe, HttpProbe, Presence};
use state::{Served, State};
pub use workers::cap_malloc_arenas;

use crate::{
    config::{Config, ConfigError, limits::ADMIN},
    control::{Control, Event},
};
use blob_check::BlobChecker;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("loading ranges: {0}")]
    Ranges(String),
    #[error("{0}")]
    Xdp(String),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    FdLimit(#[from] fds::FdLimitTooLow),
    #[error(transparent)]
    AccessLog(#[from] access_log::AccessLogError),
    #[error("starting the serving threads: {0}")]
    Workers(String),
}

/// A bound redirector: its listeners are open (connections queue in the
/// backlog), nothing is served until [`Server::run`].
pub struct Server {
    state: Arc<State>,
    config: Config,
    /// One per worker.
    public: Vec<std::net::TcpListener>,
    admin: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Server {
    /// Loads the ranges, brings up XDP if asked, fits the connection cap
    /// to the open-file limit and binds both listeners. Blob checks go
    /// over HTTP.
    pub async fn bind(config: Config) -> Result<Server, ServeError> {
        let probe = HttpProbe::new(&config.settings.blob_check);
        Server::bind_with(config, Arc::new(probe)).await
    }

    /// [`Server::bind`] with blob checks answered by `probe`.
    pub async fn bind_with(
        mut config: Config,
        probe: Arc<dyn BlobProbe>,
    ) -> Result<Server, ServeError> {
        let tls = match &config.tls {
            Some(files) => Some(
                tls::acceptor(&files.cert, &files.key)
                    .map_err(|e| ServeError::Tls(format!("{e:#}")))?,
            ),
            None => None,
        };
        // Every descriptor a connection, a check or a pooled backend
        // connection may take fits under the open-file limit.
        let checks = &config.settings.blob_check;
        let outbound = checks.max_in_flight as u64
            + (blob_check::POOL_IDLE_PER_HOST * (config.settings.backends.hosts() + 1)) as u64;
        config.limits.max_connections = fds::connection_cap(
            config.limits.max_connections,
            fds::raise_fd_limit(),
            outbound,
        )?;
        let ranges = config
            .ranges
            .load(None)
            .map_err(|e| ServeError::Ranges(steer_user::ranges::chain(&e)))?
            .ranges;
        let public =
            listen::public(config.listen, config.reuse_port, config.workers).map_err(|source| {
                ServeError::Bind {
                    addr: config.listen,
                    source,
                }
            })?;
        let admin = TcpListener::bind(config.admin)
            .await
            .map_err(|source| ServeError::Bind {
                addr: config.admin,
                source,
            })?;
        let local_port = public[0]
            .local_addr()
            .map_or(config.listen.port(), |a| a.port());
        let steer = match &config.xdp {
            None => {
                if !config.drop.is_empty() || !config.syn_limits.is_empty() {
                    warn!(
                        "[policy] drop and syn_rate need XDP (--xdp-iface); they are not applied"
                    );
                }
                None
            }
            Some(x) => {
                let mut steer = crate::xdp::bring_up(
                    ranges.table.clone(),
                    &[local_port],
                    &x.iface,
                    x.mode,
                    x.pin_dir.as_deref(),
                )
                .map_err(|e| ServeError::Xdp(steer_user::ranges::chain(&e)))?;
                apply_kernel_policy(&mut steer, &config);
                Some(Arc::new(RwLock::new(steer)))
            }
        };
        let mut metrics = metrics::Metrics::default();
        if let Some(steer) = &steer {
            metrics.add_xdp(steer.clone());
        }
        let health = Arc::new(health::Health::default());
        health.register(&mut metrics.registry);
        let requests = request_limit::RequestLimiter::default();
        metrics
            .limits
            .configure(&config.syn_limits, &config.settings.request_limits);
        let access_log = match &config.access_log {
            Some(path) => Some(access_log::AccessLog::open(path, &mut metrics.registry).await?),
            None => None,
        };
        let metrics = Arc::new(metrics);
        metrics.ranges_generation.set(1);
        for (listener, cap) in [
            ("public", config.limits.max_connections),
            ("admin", ADMIN.max_connections),
        ] {
            metrics
                .connection_limit
                .get_or_create(&vec![("listener", listener)])
                .set(cap as i64);
        }
        metrics.fleet.configure(&config.settings);
        metrics.ranges_loaded();
        let state = Arc::new(State {
            checker: BlobChecker::new(&config.settings.blob_check, metrics.clone(), probe),
            health,
            access_log,
            metrics,
            ready: std::sync::atomic::AtomicBool::new(false),
            settings: RwLock::new(Arc::new(config.settings.clone())),
            served: RwLock::new(Arc::new(Served::new(ranges))),
            steer,
            history: Default::default(),
            requests,
        });
        Ok(Server {
            state,
            config,
            public,
            admin,
            tls,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.public[0].local_addr().unwrap_or(self.config.listen)
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr().unwrap_or(self.config.admin)
    }

    /// What reloads the running server (from any thread).
    pub fn handle(&self) -> Handle {
        Handle {
            state: self.state.clone(),
            config: Arc::new(Mutex::new(self.config.clone())),
        }
    }

    /// Serves until `shutdown` completes, then stops accepting, turns
    /// `/readyz` to 503 and gives in-flight requests the grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let Server {
            state,
            config,
            public,
            admin,
            tls,
        } = self;
        let local = public[0].local_addr().ok();
        // `drain` stops the public accept loop and closes its connections;
        // the admin listener keeps answering (/readyz: 503) until the end.
        let (drain_tx, drain) = watch::channel(false);
        let (admin_stop_tx, admin_stop) = watch::channel(false);
        let admin_task = tokio::spawn(admin::serve(admin, state.clone(), admin_stop));
        let prober = tokio::spawn(prober::probe_backends(state.clone()));
        let sampler = tokio::spawn(report_page::sample(state.clone()));
        let cap = config.limits.max_connections;
        let slots = Arc::new(Semaphore::new(cap));
        let port = local.map_or(config.listen.port(), |a| a.port());
        let conns = Arc::new(conn::Conns::new(
            state.clone(),
            config.limits.clone(),
            config.proxy_protocol,
            tls,
            port,
            drain.clone(),
        ));
        let workers = config.workers;
        let mut serving =
            workers::Workers::start(public, conns, slots.clone(), state.metrics.clone(), drain)
                .await
                .map_err(|e| ServeError::Workers(e.to_string()))?;
        state.ready.store(true, Ordering::Relaxed);
        let xdp = config.xdp.as_ref().map_or("off", |x| x.iface.as_str());
        info!(?local, xdp, max_connections = cap, workers, "serving");
        notify::ready();

        shutdown.await;

        state.ready.store(false, Ordering::Relaxed);
        notify::stopping();
        let _ = drain_tx.send(true);
        // The accept loops return and drop the listeners: new connections
        // are refused from here on.
        serving.stopped_accepting().await;
        info!("draining in-flight requests");
        let grace = config.grace;
        let all_closed = slots.acquire_many(u32::try_from(cap).unwrap_or(u32::MAX));
        if tokio::time::timeout(grace, all_closed).await.is_err() {
            warn!(
                ?grace,
                "grace period over; closing the remaining connections"
            );
        }
        serving.stop().await;
        prober.abort();
        sampler.abort();
        let _ = admin_stop_tx.send(true);
        let _ = admin_task.await;
        if let Some(steer) = &state.steer {
            let mut steer = steer.write().unwrap_or_else(|e| e.into_inner());
            steer.detach_all();
            steer.unpin();
        }
        Ok(())
    }

    /// [`Server::run`] with the control loop of the binary: SIGHUP and
    /// the reload timer reload, SIGTERM and Ctrl-C stop. The caller
    /// installs the handlers ([`Control::new`]) before it announces the
    /// server, so a signal right after the announcement is not lost.
    /// Needs the multi-threaded runtime (reloads block their worker
    /// briefly).
    pub async fn run_with(self, mut control: Control) -> Result<(), ServeError> {
        let handle = self.handle();
        let until_stopped = async move {
            loop {
                match control.next().await {
                    Event::Reload(why) => tokio::task::block_in_place(|| handle.reload(why)),
                    Event::Stop => return,
                }
            }
        };
        self.run(until_stopped).await
    }

    /// The config it serves with.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// Reloads a running server's config file and ranges.
#[derive(Clone)]
pub struct Handle {
    state: Arc<State>,
    config: Arc<Mutex<Config>>,
}

impl Handle {
    /// Re-reads the config file (when there is one: settings and policy;
    /// a bad file keeps the old ones) and reloads the ranges (a failure
    /// keeps the current ones). Blocking: file I/O and a table compile.
    pub fn reload(&self, why: &str) {
        let mut config = self.config.lock().unwrap_or_else(|e| e.into_inner());
        if config.file().is_some() {
            match config.reread() {
                Ok(new) => {
                    *self
                        .state
                        .settings
                        .write()
                        .unwrap_or_else(|e| e.into_inner()) = Arc::new(new.settings.clone());
                    self.state.metrics.fleet.configure(&new.settings);
                    self.state
                        .metrics
                        .limits
                        .configure(&new.syn_limits, &new.settings.request_limits);
                    if let Some(steer) = &self.state.steer {
                        let mut steer = steer.write().unwrap_or_else(|e| e.into_inner());
                        apply_kernel_policy(&mut steer, &new);
                    }
                    *config = new;
                    info!(why, "config reloaded");
                }
                Err(e) => error!(
                    why,
                    error = %e,
                    "config reload failed; the old config keeps serving"
                ),
            }
        }
        let sources: RangeSources = config.ranges.clone();
        drop(config);
        self.state.reload(&sources, why);
    }
}

/// Every class's SYN policy in the kernel from `config`: `drop` drops
/// all of a class's SYNs, `syn_rate` limits each source's, the rest pass.
/// Replaces the last policy whole, so a class taken out passes again.
fn apply_kernel_policy(steer: &mut Steer, config: &Config) {
    let (default, named) = crate::config::rates::kernel_policies(&config.drop, &config.syn_limits);
    let summary: Vec<String> = named.iter().map(|(c, p)| format!("{c}: {p:?}")).collect();
    match steer.set_policies(default, named) {
        Ok(()) => info!(?default, classes = %summary.join("; "), "XDP policy"),
        Err(e) => error!(error = %e, "setting the XDP policy"),
    }
}
