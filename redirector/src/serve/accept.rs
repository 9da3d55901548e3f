//! The accept loop of a listener, public or admin: a connection slot is
//! taken before accepting, so at the cap new connections wait in the
//! kernel's backlog instead of being accepted and dropped; accept errors
//! that say the process is out of something (descriptors, memory) pause
//! accepting with a growing back-off, as nginx does, instead of retrying
//! at once; and they are logged at most once per interval.

use std::{
    io,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
};
use tracing::warn;

use super::{metrics::Metrics, socket};

/// A listening socket the loop accepts from.
pub trait Accept {
    type Conn;
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Conn, SocketAddr)>>;
}

/// The admin listener: tokio's own.
impl Accept for TcpListener {
    type Conn = TcpStream;
    fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> {
        TcpListener::accept(self)
    }
}

/// The public listener: sockets registered only when they must wait.
impl Accept for socket::Listener {
    type Conn = socket::Socket;
    fn accept(&self) -> impl Future<Output = io::Result<(socket::Socket, SocketAddr)>> {
        socket::Listener::accept(self)
    }
}

/// The first pause after a resource error, and the longest.
const BACKOFF_START: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per interval for accept errors.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// How an accept error is counted and handled.
pub fn error_kind(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE) => "fd_exhausted",
        Some(libc::ENOBUFS | libc::ENOMEM) => "out_of_memory",
        // The one connection failed (aborted, reset, refused by a
        // firewall): the next accept may well succeed.
        Some(
            libc::ECONNABORTED
            | libc::ECONNRESET
            | libc::EPERM
            | libc::EPROTO
            | libc::ENETDOWN
            | libc::ENETUNREACH
            | libc::EHOSTDOWN
            | libc::EHOSTUNREACH
            | libc::ETIMEDOUT
            | libc::EINTR,
        ) => "connection",
        _ => "other",
    }
}

/// Accepts until `stop` turns true, handing each connection with its slot
/// to `on_conn`. `name` labels the metrics ("public" or "admin").
pub async fn accept_loop<L, F>(
    name: &'static str,
    listener: L,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    mut on_conn: F,
) where
    L: Accept,
    F: FnMut(L::Conn, SocketAddr, OwnedSemaphorePermit),
{
    let mut backoff = BACKOFF_START;
    let mut log = RateLimited::default();
    // One wait for the stop, for the loop's life: made afresh at every
    // accept it registered with the watch and left it again (two lock
    // round trips; callgrind, about 700 instructions a connection).
    let stopped = stop.wait_for(|s| *s);
    tokio::pin!(stopped);
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                metrics.at_capacity(name).inc();
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                    _ = &mut stopped => return,
                }
            }
        };
        // The stop first: a flood of connections must not hide it.
        let accepted = tokio::select! {
            biased;
            _ = &mut stopped => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = BACKOFF_START;
                on_conn(stream, peer, permit);
            }
            Err(e) => {
                drop(permit);
                let kind = error_kind(&e);
                metrics.accept_error(name, kind).inc();
                if let Some(suppressed) = log.allow() {
                    warn!(listener = name, error = %e, kind, suppressed, "accept failed");
                }
                if kind == "connection" {
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = &mut stopped => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Lets one event through per [`LOG_EVERY`], counting the rest.
#[derive(Default)]
struct RateLimited {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    /// `Some(n)`: log now, `n` events were dropped since the last line.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < LOG_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_by_kind() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(error_kind(&os(libc::EMFILE)), "fd_exhausted");
        assert_eq!(error_kind(&os(libc::ENFILE)), "fd_exhausted");
        assert_eq!(error_kind(&os(libc::ENOBUFS)), "out_of_memory");
        assert_eq!(error_kind(&os(libc::ECONNABORTED)), "connection");
        assert_eq!(error_kind(&os(libc::EINVAL)), "other");
    }

    #[test]
    fn logs_once_per_interval() {
        let mut log = RateLimited::default();
        assert_eq!(log.allow(), Some(0));
        for _ in 0..1000 {
            assert_eq!(log.allow(), None);
        }
        log.last = Some(Instant::now() - LOG_EVERY);
        assert_eq!(log.allow(), Some(1000));
    }
}
