//! What a connection's idle deadline is measured from: when it last
//! started or finished a request, and how many are in flight; and the
//! rule for how long it may sit idle.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::config::limits::Limits;

/// How long a connection may go with no request in flight, and what
/// closing it then is counted as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleRule {
    /// Before the first request.
    pub first: Duration,
    /// After a request finished.
    pub between: Duration,
    /// The `reason` of `steer_connections_rejected_total`.
    pub reason: &'static str,
}

impl IdleRule {
    /// HTTP/1 on the public listener. hyper's header-read timer is not
    /// used: it arms a timer for every request on a kept-alive
    /// connection. This deadline bounds the same thing, from accept or
    /// from the end of the last answer to the next request's complete
    /// head, with one timer per idle spell.
    pub fn http1(limits: &Limits) -> IdleRule {
        let t = limits.header_timeout.min(limits.idle_timeout);
        IdleRule {
            first: t,
            between: t,
            reason: "header_timeout",
        }
    }

    /// HTTP/2, and the admin listener (whose hyper keeps its own header
    /// timer).
    pub fn streams(limits: &Limits) -> IdleRule {
        IdleRule {
            first: limits.header_timeout.min(limits.idle_timeout),
            between: limits.idle_timeout,
            reason: "idle_timeout",
        }
    }
}

/// When a connection last started or finished a request, and how many
/// are in flight: what the idle deadline is measured from.
pub struct Activity {
    opened: Instant,
    /// Requests in flight (low 32 bits) and requests begun (high 32).
    counts: AtomicU64,
    /// Milliseconds after `opened` of the last start or finish.
    last_ms: AtomicU64,
    /// Woken when the first request begins.
    first: tokio::sync::Notify,
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            counts: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
            first: tokio::sync::Notify::new(),
        }
    }

    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Marks a request in flight until the guard drops.
    pub fn begin(self: &Arc<Self>) -> Busy {
        let before = self.counts.fetch_add((1 << 32) | 1, Ordering::Relaxed);
        self.touch();
        if before >> 32 == 0 {
            self.first.notify_waiters();
        }
        Busy(self.clone())
    }

    /// Completes once a request has begun on the connection.
    pub async fn first_request(&self) {
        let notified = self.first.notified();
        tokio::pin!(notified);
        // Registered before the check, so a request that begins in
        // between still wakes it.
        notified.as_mut().enable();
        if self.counts.load(Ordering::Relaxed) >> 32 > 0 {
            return;
        }
        notified.await;
    }

    /// Completes once no request has been in flight for the rule's limit.
    pub async fn idle(&self, rule: IdleRule) {
        loop {
            let counts = self.counts.load(Ordering::Relaxed);
            let (in_flight, begun) = (counts & 0xffff_ffff, counts >> 32);
            let limit = match begun {
                0 => rule.first,
                _ => rule.between,
            };
            if in_flight > 0 {
                tokio::time::sleep(limit).await;
                continue;
            }
            let last = self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A request in flight on a connection.
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.counts.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}
