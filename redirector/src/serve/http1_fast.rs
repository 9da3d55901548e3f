//! HTTP/1.1 without hyper for what pulls send: bodiless GET and HEAD
//! requests ([`http1_wire::parse`] says which). They are parsed with
//! httparse (hyper's parser), given to the same handler, and answered in
//! one write per batch of pipelined requests. hyper's per-connection
//! set-up and per-request dispatch were a third of the userspace
//! instructions of a kept-alive request (docs/benchmarks.md).
//!
//! Anything else (a body, an upgrade, `Expect`, HTTP/1.0, bytes
//! httparse refuses) ends this path: hyper takes the
//! connection with the unanswered bytes in front, as if it had served it
//! from the start, and answers (or refuses) them as it always has.
//!
//! The same deadlines as hyper's path ([`super::conn`]): from accept, or
//! from the end of the last answer, to the next complete head,
//! `header_timeout` (one timer per idle spell); an answer the client does
//! not take within `header_timeout` closes the connection; on drain, the
//! next answer says `connection: close` and an idle connection closes
//! (one that has not sent its first request yet gets to send it).

use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    sync::watch,
    time::Instant,
};

use crate::config::limits::Limits;

use super::{
    handler::{self, ConnInfo},
    http1_wire::{self, Head},
    prefixed::Prefixed,
    request_head::RequestHead,
    state::State,
};

/// Largest request head accepted, in bytes: here (a longer one is
/// answered 431 and the connection closed, as hyper does), and hyper's
/// HTTP/1 buffer and HTTP/2 header list. The fast path's buffer grows
/// only as a head needs it ([`Prefixed::fill`]).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Answers to pipelined requests are written once this many bytes are
/// waiting, before more are read.
const FLUSH_AT: usize = 16 * 1024;

/// The answer buffer's first size: a redirect with its headers.
const ANSWER_ROOM: usize = 512;

/// How the fast path ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The connection is done: closed by either side, or timed out.
    Closed,
    /// The next request is hyper's; its bytes are still buffered.
    ToHyper,
}

/// What woke the wait for more bytes.
enum Woke {
    Read(std::io::Result<usize>),
    Drain,
    Timer,
}

/// Serves requests on `io` until the connection ends or a request needs
/// hyper.
pub async fn serve<S>(
    io: &mut Prefixed<S>,
    state: &State,
    conn: &ConnInfo,
    limits: &Limits,
    drain: &mut watch::Receiver<bool>,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let metrics = &state.metrics;
    // As IdleRule::http1 for hyper's connections.
    let idle = limits.header_timeout.min(limits.idle_timeout);
    let mut last = Instant::now();
    let timer = tokio::time::sleep_until(last + idle);
    tokio::pin!(timer);
    let drained = drain.wait_for(|d| *d);
    tokio::pin!(drained);
    let (mut draining, mut served) = (false, 0u64);
    // Room for a redirect's answer at once: grown from empty it took five
    // reallocations (callgrind, a new connection per request).
    let mut out = Vec::with_capacity(ANSWER_ROOM);
    loop {
        let mut close = false;
        let handoff = loop {
            let mut slots = http1_wire::slots();
            let len = match http1_wire::parse(io.buffered(), &mut slots) {
                Head::Simple {
                    request,
                    len,
                    close: asked,
                } => {
                    close = asked || draining;
                    let head = request.method() == http::Method::HEAD;
                    let response = handler::handle(state, conn, &request).await;
                    served += 1;
                    http1_wire::encode(response, head, close, &mut out);
                    len
                }
                Head::Partial if io.buffered().len() >= MAX_HEADER_BYTES => {
                    metrics.connection_rejected("public", "header_size").inc();
                    let mut r = http::Response::new(Default::default());
                    *r.status_mut() = http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
                    http1_wire::encode(r, false, true, &mut out);
                    close = true;
                    break None;
                }
                Head::Partial => break None,
                Head::Other(reason) => break Some(reason),
            };
            io.consume(len);
            if close || out.len() >= FLUSH_AT {
                break None;
            }
        };
        if !out.is_empty() {
            // The flush matters for TLS: rustls may hold records back.
            let write = async {
                io.write_all(&out).await?;
                io.flush().await
            };
            let written = tokio::time::timeout(limits.header_timeout, write).await;
            out.clear();
            match written {
                Ok(Ok(())) => last = Instant::now(),
                Ok(Err(_)) => return Ended::Closed,
                Err(_) => {
                    metrics.connection_rejected("public", "write_timeout").inc();
                    return Ended::Closed;
                }
            }
        }
        if let Some(reason) = handoff {
            metrics.http1_handoff(reason).inc();
            return Ended::ToHyper;
        }
        if close {
            return Ended::Closed;
        }
        // Wait for the rest of a head, or the next one.
        loop {
            if draining && served > 0 && io.buffered().is_empty() {
                return Ended::Closed;
            }
            let woke = tokio::select! {
                biased;
                read = io.fill(MAX_HEADER_BYTES) => Woke::Read(read),
                _ = &mut drained, if !draining => Woke::Drain,
                _ = &mut timer => Woke::Timer,
            };
            match woke {
                Woke::Read(Ok(0) | Err(_)) => return Ended::Closed,
                Woke::Read(Ok(_)) => break,
                Woke::Drain => draining = true,
                Woke::Timer => {
                    // The timer was set at the start of the idle spell
                    // before this one: move it on, or close.
                    let deadline = last + idle;
                    if Instant::now() >= deadline {
                        metrics
                            .connection_rejected("public", "header_timeout")
                            .inc();
                        return Ended::Closed;
                    }
                    timer.as_mut().reset(deadline);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "http1_fast_tests.rs"]
mod tests;
