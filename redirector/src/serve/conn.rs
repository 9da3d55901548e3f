//! One client connection, from accept to close: the PROXY header, the
//! class, TLS, HTTP/1 (the fast path, [`http1_fast`], then hyper if a
//! request needs it) or HTTP/2, and a deadline on every phase.
//!
//! - accept to the first request byte (PROXY header, TLS handshake,
//!   HTTP/2 preface): `handshake_timeout`;
//! - HTTP/1: from accept, or from the end of the last answer, to the next
//!   request's complete head: `header_timeout` (one timer per idle
//!   spell, [`IdleRule::http1`], not hyper's timer per request);
//! - HTTP/2, no stream in flight: `idle_timeout` (before the first
//!   request, `header_timeout`);
//! - then a graceful close (HTTP/2: GOAWAY) that gets `header_timeout` to
//!   finish before the connection is dropped;
//! - on drain (SIGTERM), a graceful close bounded by the grace period.

use std::{convert::Infallible, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use hyper::{Request, body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::graceful::GracefulConnection,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
};
use tracing::debug;

use crate::config::limits::Limits;

use super::{
    activity::{Activity, IdleRule},
    handler::{self, ConnInfo},
    http1_fast::{self, MAX_HEADER_BYTES},
    metrics::{Counted, Metrics},
    prefixed::{Prefixed, Protocol, sniff},
    proxy_protocol,
    socket::Socket,
    state::{Source, State},
};

/// What every connection of the public listener shares.
pub struct Conns {
    pub state: Arc<State>,
    pub limits: Limits,
    pub proxy_protocol: bool,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub local_port: u16,
    /// Turns true when the server drains.
    pub drain: watch::Receiver<bool>,
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

/// A connection ready for HTTP: its stream, protocol and client.
enum Opened {
    Plain(Prefixed<Socket>, Protocol, Arc<ConnInfo>),
    /// Boxed: a TLS session's state is about a kilobyte.
    Tls(
        Box<Prefixed<tokio_rustls::server::TlsStream<Prefixed<Socket>>>>,
        Protocol,
        Arc<ConnInfo>,
    ),
}

/// Why a connection closed before HTTP started. A refusal holds the
/// socket until it is counted: a client that sees the close may read
/// /metrics at once.
enum Refused {
    Closed,
    ProxyHeader(Prefixed<Socket>),
    Tls(Prefixed<Socket>),
}

impl Conns {
    pub fn new(
        state: Arc<State>,
        limits: Limits,
        proxy_protocol: bool,
        tls: Option<tokio_rustls::TlsAcceptor>,
        local_port: u16,
        drain: watch::Receiver<bool>,
    ) -> Conns {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        // Half-close allowed: hyper then does not read the socket while a
        // request is in flight to see whether the client went away, a
        // read that on a fresh connection would register it with epoll
        // just before it closes. A client that shuts its write side after
        // the request still gets the answer; one that vanished is noticed
        // when the answer is written (handlers are bounded in time).
        // No header-read timer: IdleRule::http1 bounds the same wait.
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .half_close(true)
            .max_buf_size(MAX_HEADER_BYTES);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        // Quiet connections are pinged, so a peer that vanished frees its
        // slot; one that answers pings but opens no stream meets the idle
        // deadline.
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .max_concurrent_streams(limits.max_streams)
            .max_header_list_size(MAX_HEADER_BYTES as u32);
        Conns {
            state,
            limits,
            proxy_protocol,
            tls,
            local_port,
            drain,
            http1,
            http2,
        }
    }

    /// Serves one accepted connection; `slot` is its place under the
    /// connection cap, given back when it closes.
    pub async fn serve(
        self: Arc<Self>,
        stream: Socket,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
    ) {
        let metrics = &self.state.metrics;
        let _open = Counted::new(&metrics.connections);
        let opened = {
            // Polled in place: on a timeout it still holds the socket,
            // which closes only once the refusal is counted. Dropped before
            // HTTP starts, so the task's state holds the two one after the
            // other, not side by side (it is copied whole at spawn).
            let mut opening = std::pin::pin!(tokio::time::timeout(
                self.limits.handshake_timeout,
                self.open(stream, peer)
            ));
            match opening.as_mut().await {
                Ok(Ok(opened)) => Some(opened),
                Ok(Err(refused)) => {
                    self.refused(peer, refused);
                    None
                }
                Err(_) => {
                    self.count_refusal(peer, "handshake_timeout");
                    None
                }
            }
        };
        match opened {
            Some(Opened::Plain(io, protocol, conn)) => self.http(io, protocol, conn).await,
            Some(Opened::Tls(io, protocol, conn)) => self.http(*io, protocol, conn).await,
            None => {}
        }
        drop(slot);
    }

    /// Counts a refusal, then lets its socket close.
    fn refused(&self, peer: SocketAddr, refused: Refused) {
        match refused {
            Refused::Closed => {}
            Refused::ProxyHeader(_socket) => self.count_refusal(peer, "proxy_header"),
            Refused::Tls(_socket) => self.count_refusal(peer, "tls_handshake"),
        }
    }

    fn count_refusal(&self, peer: SocketAddr, reason: &'static str) {
        debug!(%peer, reason, "connection refused");
        self.state
            .metrics
            .connection_rejected("public", reason)
            .inc();
    }

    /// Everything up to the first request byte (the caller's deadline
    /// covers exactly this part).
    async fn open(&self, stream: Socket, peer: SocketAddr) -> Result<Opened, Refused> {
        let mut io = Prefixed::new(stream, Vec::new());
        // Behind a PROXY-protocol balancer the kernel saw the balancer, so
        // the client is classified in userspace.
        let named = match self.proxy_protocol {
            false => None,
            true => match proxy_protocol::read(&mut io).await {
                Ok(named) => named,
                Err(e) => {
                    debug!(%peer, error = %e, "PROXY header");
                    return Err(match e {
                        proxy_protocol::ProxyError::Closed => Refused::Closed,
                        _ => Refused::ProxyHeader(io),
                    });
                }
            },
        };
        let (client, class, source) = match named {
            Some(client) => (
                client,
                self.state.classify_userspace(client.ip()),
                Source::Proxy,
            ),
            None => {
                let (class, source) = self.state.classify(peer, self.local_port);
                (peer, class, source)
            }
        };
        let conn = Arc::new(ConnInfo {
            peer: client,
            class,
            source,
            checks: Semaphore::new(self.state.settings().blob_check.max_per_connection),
            host: Default::default(),
        });
        match &self.tls {
            None => {
                let protocol = sniffed(&mut io).await?;
                Ok(Opened::Plain(io, protocol, conn))
            }
            Some(acceptor) => {
                let tls = match acceptor.accept(io).into_fallible().await {
                    Ok(tls) => tls,
                    Err((e, io)) => {
                        debug!(%peer, error = %e, "TLS handshake failed");
                        return Err(Refused::Tls(io));
                    }
                };
                let mut io = Prefixed::new(tls, Vec::new());
                let protocol = sniffed(&mut io).await?;
                Ok(Opened::Tls(Box::new(io), protocol, conn))
            }
        }
    }

    async fn http<S>(&self, mut io: Prefixed<S>, protocol: Protocol, conn: Arc<ConnInfo>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if protocol == Protocol::Http1 {
            let mut drain = self.drain.clone();
            let ended = http1_fast::serve(&mut io, &self.state, &conn, &self.limits, &mut drain);
            if ended.await == http1_fast::Ended::Closed {
                return;
            }
        }
        let activity = Arc::new(Activity::new());
        let service = {
            let (state, activity) = (self.state.clone(), activity.clone());
            service_fn(move |req: Request<Incoming>| {
                let (state, conn, busy) = (state.clone(), conn.clone(), activity.begin());
                async move {
                    let response = handler::handle(&state, &conn, &req).await;
                    drop(busy);
                    Ok::<_, Infallible>(response)
                }
            })
        };
        let io = TokioIo::new(io);
        // Boxed: hyper's connection is about a kilobyte, and each future it
        // is passed through would otherwise copy it (callgrind: memcpy was
        // a third of a new connection's instructions).
        match protocol {
            Protocol::Http1 => {
                let c = Box::pin(self.http1.serve_connection(io, service));
                self.drive(c, &activity, IdleRule::http1(&self.limits))
                    .await
            }
            Protocol::Http2 => {
                let c = Box::pin(self.http2.serve_connection(io, service));
                self.drive(c, &activity, IdleRule::streams(&self.limits))
                    .await
            }
        }
    }

    /// [`drive`] on the public listener.
    async fn drive<C>(&self, c: Pin<Box<C>>, activity: &Activity, idle: IdleRule)
    where
        C: GracefulConnection<Error = hyper::Error>,
    {
        let (limits, metrics) = (&self.limits, &self.state.metrics);
        let mut drain = self.drain.clone();
        drive(c, activity, idle, limits, "public", metrics, &mut drain).await
    }
}

async fn sniffed<S: AsyncRead + Unpin>(io: &mut Prefixed<S>) -> Result<Protocol, Refused> {
    match sniff(io).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) | Err(_) => Err(Refused::Closed),
    }
}

/// Runs a hyper connection until it ends, closing it gracefully when it
/// has been idle too long or the server drains. Shared by the public and
/// the admin listener.
pub async fn drive<C>(
    mut conn: Pin<Box<C>>,
    activity: &Activity,
    idle: IdleRule,
    limits: &Limits,
    listener: &'static str,
    metrics: &Metrics,
    drain: &mut watch::Receiver<bool>,
) where
    C: GracefulConnection<Error = hyper::Error>,
{
    // The connection first: one that is served and closed in its first
    // poll (a request that was already there) never arms the idle timer,
    // whose first arming may wake the runtime's driver (an eventfd write).
    let draining = tokio::select! {
        biased;
        ended = conn.as_mut() => {
            if let Err(e) = ended {
                if e.is_timeout() {
                    metrics.connection_rejected(listener, "header_timeout").inc();
                }
                debug!(listener, error = %e, "connection ended");
            }
            return;
        }
        _ = activity.idle(idle) => false,
        _ = drain.wait_for(|d| *d) => true,
    };
    if draining {
        // A connection accepted just before the drain may have its first
        // request on the way: serve that one, then close. The grace
        // period bounds the drain as a whole.
        let first = activity.first_request();
        tokio::pin!(first);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = &mut first => {}
            _ = tokio::time::sleep(limits.header_timeout) => {}
        }
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
        return;
    }
    conn.as_mut().graceful_shutdown();
    metrics.connection_rejected(listener, idle.reason).inc();
    if tokio::time::timeout(limits.header_timeout, conn)
        .await
        .is_err()
    {
        metrics.connection_rejected(listener, "close_timeout").inc();
    }
}
