//! How `sync` and `audit` pace and retry their calls to the upstream: a
//! request-rate limit shared by every task (`--max-rps`), and retries
//! with exponential backoff on 429, 5xx and transport errors, waiting
//! what a `Retry-After` header asks when there is one.

use std::time::{Duration, SystemTime};

use tokio::{sync::Mutex, time::Instant};

/// The longest wait a `Retry-After` may ask for; a registry asking for
/// more is retried after this (and counted, as every retry is).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The first backoff; each retry doubles it, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// At most `rps` requests start per second, across every task: each
/// request takes the next free slot, `1/rps` after the previous one.
pub struct RateLimit {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl RateLimit {
    /// `None` or 0: no limit.
    pub fn new(rps: Option<u32>) -> RateLimit {
        RateLimit {
            interval: rps.filter(|&r| r > 0).map(|r| Duration::from_secs(1) / r),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this request's slot.
    pub async fn wait(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(Instant::now());
            *next = at + interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// How many times a call is retried and how long each wait is.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            retries: 5,
            first_backoff: FIRST_BACKOFF,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0 for the first retry):
    /// the server's `Retry-After` when it gave one, else the backoff,
    /// with up to a quarter of it added so that many workers told "busy"
    /// at once do not all come back at once.
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(MAX_RETRY_AFTER);
        }
        let base = self
            .first_backoff
            .saturating_mul(1 << attempt.min(16))
            .min(MAX_BACKOFF);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        base + base / 4 * (nanos % 1000) / 1000
    }
}

/// Whether an answer with this status is worth another try.
pub fn retryable(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status) && status != 501
}

/// A `Retry-After` value: seconds, or an HTTP date (a date in the past
/// means now). Anything else is ignored (the backoff applies).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Tue, 01 Dec 2026 10:00:00 GMT").unwrap();
        let cases: &[(&str, &str, Option<Duration>)] = &[
            ("seconds", "3", Some(Duration::from_secs(3))),
            ("padded", " 0 ", Some(Duration::ZERO)),
            (
                "date ahead",
                "Tue, 01 Dec 2026 10:00:07 GMT",
                Some(Duration::from_secs(7)),
            ),
            (
                "date past",
                "Tue, 01 Dec 2026 09:00:00 GMT",
                Some(Duration::ZERO),
            ),
            ("negative", "-1", None),
            ("garbage", "soon", None),
        ];
        for (name, value, want) in cases {
            assert_eq!(parse_retry_after(value, now), *want, "{name}");
        }
    }

    #[test]
    fn waits_grow_are_capped_and_honour_retry_after() {
        let p = RetryPolicy::default();
        let first = p.wait(0, None);
        assert!(first >= FIRST_BACKOFF && first <= FIRST_BACKOFF * 5 / 4);
        let later = p.wait(3, None);
        assert!(later >= FIRST_BACKOFF * 8, "{later:?}");
        assert!(p.wait(30, None) <= MAX_BACKOFF * 5 / 4);
        assert_eq!(
            p.wait(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(p.wait(0, Some(Duration::from_secs(3600))), MAX_RETRY_AFTER);
    }

    #[test]
    fn retryable_statuses() {
        for (status, want) in [
            (429, true),
            (500, true),
            (503, true),
            (501, false),
            (404, false),
            (401, false),
        ] {
            assert_eq!(retryable(status), want, "{status}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_spaces_requests() {
        let limit = RateLimit::new(Some(10));
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            limit.wait().await;
        }
        // Slots at 0, 100, 200, 300, 400 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }
}
