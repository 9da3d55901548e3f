//! `redirector serve`: the HTTP redirector.
//!
//! Each connection is classified once, right after accept: from the class
//! XDP recorded for its SYN when XDP is attached (one load from a shared
//! mapping), else by the userspace classifier on the same table. Requests
//! on the connection reuse that answer; no request searches the ranges.
//!
//! Tasks: one accept loop per listener (`accept`), one task per
//! connection (`conn`), and this module's control loop, which alone
//! handles signals and reloads, so neither ever stalls accepting.

mod accept;
mod admin;
mod args;
mod blob_check;
mod client_addr;
mod conn;
mod handler;
mod limits;
mod metrics;
mod prefixed;
mod proxy_protocol;
mod settings;
mod state;
#[cfg(test)]
mod tests;
mod tls;

use std::{
    net::SocketAddr,
    sync::{Arc, RwLock, atomic::Ordering},
    time::Duration,
};

use anyhow::{Context as _, Result};
use steer_user::{Steer, ranges::RangeSources, ranges::chain};
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
    sync::{Semaphore, watch},
};
use tracing::{error, info, warn};

pub use args::Args;
pub use client_addr::Forwarded;
#[cfg(test)]
pub use settings::DEFAULT_UPSTREAM;
pub use settings::{Settings, base_url, plain_path};
use state::{Served, State};

use blob_check::BlobChecker;
use limits::Limits;

pub fn run(args: Args) -> Result<()> {
    let (settings, server) = args.settings()?;
    let requested = args.limits(&server)?;
    let grace = args.grace(&server);
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
    // Every descriptor a connection, a check or a pooled backend
    // connection may take fits under the open-file limit.
    let fd_limit = limits::raise_fd_limit();
    let outbound = settings.blob_check.max_in_flight as u64
        + (blob_check::POOL_IDLE_PER_HOST * (settings.backends.hosts() + 1)) as u64;
    let limits = Limits {
        max_connections: limits::connection_cap(requested.max_connections, fd_limit, outbound)?,
        ..requested
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
    metrics
        .connection_limit
        .get_or_create(&vec![("listener", "public")])
        .set(limits.max_connections as i64);
    metrics
        .connection_limit
        .get_or_create(&vec![("listener", "admin")])
        .set(limits::ADMIN.max_connections as i64);
    let state = Arc::new(State {
        checker: BlobChecker::new(&settings.blob_check, metrics.clone()),
        metrics,
        ready: std::sync::atomic::AtomicBool::new(false),
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
        limits,
        grace,
    };
    runtime.block_on(serve(state.clone(), sources, listeners, &args))?;
    // Connections still open after the grace period are dropped here.
    drop(runtime);
    if let Some(steer) = &state.steer {
        let mut steer = steer.write().unwrap_or_else(|e| e.into_inner());
        steer.detach_all();
        steer.unpin();
    }
    Ok(())
}

/// Where to listen and with which limits, settled at start (a reload
/// does not move listeners).
struct Listeners {
    listen: SocketAddr,
    admin: SocketAddr,
    proxy_protocol: bool,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    grace: Duration,
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

    // `drain` stops the public accept loop and closes its connections;
    // the admin listener keeps answering (/readyz: 503) until the end.
    let (drain_tx, drain) = watch::channel(false);
    let (admin_stop_tx, admin_stop) = watch::channel(false);
    let admin_task = tokio::spawn(admin::serve(admin_listener, state.clone(), admin_stop));
    let cap = listeners.limits.max_connections;
    let slots = Arc::new(Semaphore::new(cap));
    let conns = Arc::new(conn::Conns::new(
        state.clone(),
        listeners.limits.clone(),
        listeners.proxy_protocol,
        listeners.tls.clone(),
        local.port(),
        drain.clone(),
    ));
    let accepting = tokio::spawn(accept::accept_loop(
        "public",
        listener,
        slots.clone(),
        state.metrics.clone(),
        drain,
        move |stream, peer, slot| {
            tokio::spawn(conns.clone().serve(stream, peer, slot));
        },
    ));
    state.ready.store(true, Ordering::Relaxed);
    info!(%local, xdp = args.xdp_iface.as_deref().unwrap_or("off"), max_connections = cap, "serving");
    // Tests and scripts wait for this line.
    println!("steer: serving on {local}, admin on {admin_local}");

    control(&state, &sources, args).await?;

    state.ready.store(false, Ordering::Relaxed);
    let _ = drain_tx.send(true);
    // The accept loop returns and drops the listener: new connections are
    // refused from here on.
    let _ = accepting.await;
    info!("draining in-flight requests");
    let grace = listeners.grace;
    let all_closed = slots.acquire_many(u32::try_from(cap).unwrap_or(u32::MAX));
    if tokio::time::timeout(grace, all_closed).await.is_err() {
        warn!(
            ?grace,
            "grace period over; closing the remaining connections"
        );
    }
    let _ = admin_stop_tx.send(true);
    let _ = admin_task.await;
    Ok(())
}

/// Handles signals and the reload timer until SIGTERM or Ctrl-C. Reloads
/// run here, off the accept loops.
async fn control(state: &Arc<State>, sources: &RangeSources, args: &Args) -> Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let period =
        (!args.reload_interval.is_zero()).then(|| args.reload_interval.max(Duration::from_secs(1)));
    let every = period.unwrap_or(Duration::from_secs(3600));
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tokio::task::block_in_place(|| {
                    reload_settings(state, args);
                    state.reload(sources, "SIGHUP");
                });
            }
            _ = timer.tick(), if period.is_some() => {
                tokio::task::block_in_place(|| state.reload(sources, "timer"));
            }
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Re-reads the config file on SIGHUP; a bad file keeps the old settings.
/// Listeners, limits and the blob cache's size and TTLs stay as they
/// started.
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
