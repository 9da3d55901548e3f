//! Requests per client address (`[policy] request_rate`): a token bucket
//! per client (IPv4 /32, IPv6 /64), after X-Forwarded-For or PROXY
//! resolution, with the rate of the client's class. Over it, 429 with
//! `Retry-After`.
//!
//! The buckets live in a bounded cache ([`MAX_CLIENTS`]); a client idle
//! for [`IDLE`] loses its bucket and comes back full, as one pushed out
//! by newer clients does. So memory stays bounded whatever the number of
//! distinct clients, and a flood of sources costs entries, not growth.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::{EncodeLabel as _, EncodeLabelSet, LabelSetEncoder},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use steer_user::Class;

use crate::config::rates::{ClassRates, Rate};

/// Clients with a bucket at once.
pub const MAX_CLIENTS: u64 = 100_000;
/// A bucket unused this long is dropped (a full one would be the same).
pub const IDLE: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Refills for the time since the last request and takes one; else
    /// the seconds until a token is there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst as f64);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / rate.per_second).ceil().max(1.0) as u64)
        }
    }
}

/// The class labels of the limit metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ClassLabel(Arc<Class>);

impl EncodeLabelSet for ClassLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::fmt::Result {
        ("provider", self.0.provider_label()).encode(encoder.encode_label())?;
        ("region", self.0.region_label()).encode(encoder.encode_label())
    }
}

/// The limit metrics: requests refused, clients with a bucket, and the
/// limits in force (SYN and request), by class.
#[derive(Clone, Default)]
pub struct LimitMetrics {
    limited: Family<ClassLabel, Counter>,
    clients: Gauge,
    rates: Family<LimitLabels, Gauge<f64, AtomicU64>>,
    bursts: Family<LimitLabels, Gauge>,
}

type LimitLabels = Vec<(&'static str, String)>;

impl LimitMetrics {
    pub fn register(registry: &mut Registry) -> LimitMetrics {
        let m = LimitMetrics::default();
        registry.register(
            "requests_limited",
            "Requests answered 429 because their client was over [policy] request_rate, by class",
            m.limited.clone(),
        );
        registry.register(
            "limit_per_second",
            "Limits in force per source address: kind syn ([policy] syn_rate, in XDP) or request ([policy] request_rate), by class (default, unknown or provider/region)",
            m.rates.clone(),
        );
        registry.register(
            "limit_burst",
            "How many at once each limit in steer_limit_per_second allows",
            m.bursts.clone(),
        );
        registry.register(
            "request_limit_clients",
            "Clients with a request bucket (at most 100,000; idle ones go after 10 minutes)",
            m.clients.clone(),
        );
        m
    }

    /// Shows `syn` and `requests` as the limits in force, replacing the
    /// last ones (at start and on every config reload).
    pub fn configure(&self, syn: &ClassRates, requests: &ClassRates) {
        self.rates.clear();
        self.bursts.clear();
        for (kind, limits) in [("syn", syn), ("request", requests)] {
            for (class, r) in limits.entries() {
                let labels = vec![("kind", kind.to_owned()), ("class", class)];
                self.rates.get_or_create(&labels).set(r.per_second);
                self.bursts.get_or_create(&labels).set(r.burst.into());
            }
        }
    }
}

pub struct RequestLimiter {
    buckets: moka::sync::Cache<IpAddr, Arc<Mutex<Bucket>>>,
}

impl Default for RequestLimiter {
    fn default() -> Self {
        RequestLimiter::with_capacity(MAX_CLIENTS)
    }
}

impl RequestLimiter {
    pub fn with_capacity(clients: u64) -> RequestLimiter {
        RequestLimiter {
            buckets: moka::sync::Cache::builder()
                .max_capacity(clients)
                .time_to_idle(IDLE)
                .build(),
        }
    }

    /// Whether `client` of `class` may make a request now; else the
    /// seconds to wait. No limit for its class: always.
    pub fn check(
        &self,
        limits: &ClassRates,
        class: &Arc<Class>,
        client: IpAddr,
        metrics: &LimitMetrics,
    ) -> Result<(), u64> {
        let Some(rate) = limits.of(class) else {
            return Ok(());
        };
        let now = Instant::now();
        let bucket = self.buckets.get_with(source_key(client), || {
            Arc::new(Mutex::new(Bucket {
                tokens: rate.burst as f64,
                last: now,
            }))
        });
        metrics.clients.set(self.buckets.entry_count() as i64);
        let result = bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(rate, now);
        if result.is_err() {
            metrics
                .limited
                .get_or_create(&ClassLabel(class.clone()))
                .inc();
        }
        result
    }
}

/// The address a bucket belongs to: IPv4 (or IPv4-mapped) as is, IPv6 by
/// its /64, as one host usually holds a whole /64.
pub fn source_key(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V4(a) => IpAddr::V4(a),
        IpAddr::V6(a) => {
            let s = a.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_passes_its_burst_then_says_when_to_come_back() {
        let rate = Rate {
            per_second: 0.5,
            burst: 2,
        };
        let t = Instant::now();
        let mut b = Bucket {
            tokens: 2.0,
            last: t,
        };
        assert_eq!(b.take(rate, t), Ok(()));
        assert_eq!(b.take(rate, t), Ok(()));
        // Empty: one token takes two seconds at 0.5/s.
        assert_eq!(b.take(rate, t), Err(2));
        assert_eq!(b.take(rate, t + Duration::from_secs(1)), Err(1));
        assert_eq!(b.take(rate, t + Duration::from_secs(2)), Ok(()));
        // Refills up to the burst only.
        let later = t + Duration::from_secs(3600);
        let passed = (0..5).filter(|_| b.take(rate, later).is_ok()).count();
        assert_eq!(passed, 2);
    }

    #[test]
    fn clients_in_one_ipv6_64_share_a_bucket() {
        for (a, b, same) in [
            ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true),
            ("2001:db8:1:2::1", "2001:db8:1:3::1", false),
            ("10.0.0.1", "::ffff:10.0.0.1", true),
            ("10.0.0.1", "10.0.0.2", false),
        ] {
            let (a, b): (IpAddr, IpAddr) = (a.parse().unwrap(), b.parse().unwrap());
            assert_eq!(source_key(a) == source_key(b), same, "{a} {b}");
        }
    }

    #[test]
    fn memory_is_bounded_whatever_the_clients() {
        let limiter = RequestLimiter::with_capacity(100);
        let limits = ClassRates {
            default: Some(Rate {
                per_second: 1.0,
                burst: 1,
            }),
            ..ClassRates::default()
        };
        let class = Arc::new(Class::unknown());
        for i in 0..10_000u32 {
            let _ = limiter.check(
                &limits,
                &class,
                IpAddr::from(i.to_be_bytes()),
                &LimitMetrics::default(),
            );
        }
        limiter.buckets.run_pending_tasks();
        assert!(
            limiter.buckets.entry_count() <= 100,
            "{}",
            limiter.buckets.entry_count()
        );
    }
}
