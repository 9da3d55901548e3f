//! Does a backend have this blob? A HEAD request, cached.
//!
//! The cache is bounded in entries; a found blob is trusted for a long TTL,
//! a missing one (or a failed check) for a short one, so a blob that
//! arrives later at a mirror is found soon after. Concurrent checks for
//! the same URL share one request (moka's `try_get_with` runs one init per
//! key). A check that fails or times out answers "no": the client goes
//! upstream, which always has the blob.
//!
//! Outbound work is bounded: at most `max_in_flight` HEADs run in the
//! process and `max_per_connection` for one client connection (an HTTP/2
//! client can ask for many digests at once). A request past either bound
//! is not checked: its client goes upstream at once, and nothing is
//! cached for it. The HEAD itself is behind [`BlobProbe`], the edge tests
//! replace.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use moka::{Expiry, future::Cache};
use tokio::sync::Semaphore;
use tracing::debug;

use super::metrics::{Counted, Metrics};
use crate::config::settings::BlobCheckSettings;

/// What a check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// With the size the backend gave (`Content-Length`), if it gave one.
    Found(Option<u64>),
    Missing,
    /// Timed out, refused, or answered something other than 200/404.
    Failed,
    /// Not checked: a concurrency bound was reached. Never cached.
    Busy,
}

/// Idle connections kept open per backend host between checks.
pub const POOL_IDLE_PER_HOST: usize = 8;

/// One HEAD of a blob URL. The checker bounds its time and counts it.
pub trait BlobProbe: Send + Sync {
    fn head<'a>(&'a self, url: &'a str) -> Pin<Box<dyn Future<Output = Presence> + Send + 'a>>;

    /// The body of `url` (a 200), up to `max` bytes: for ownership
    /// proofs. Probes that cannot fetch say so.
    fn fetch<'a>(
        &'a self,
        url: &'a str,
        max: usize,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send + 'a>> {
        let _ = (url, max);
        Box::pin(async { Err("this probe cannot fetch".to_owned()) })
    }
}

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

/// HEAD over HTTP(S): 200 is found, 404 missing, anything else failed.
pub struct HttpProbe {
    client: HttpsClient,
}

impl HttpProbe {
    pub fn new(settings: &BlobCheckSettings) -> HttpProbe {
        use hyper_rustls::ConfigBuilderExt as _;
        // ring named explicitly: object_store brings aws-lc-rs too, and
        // with two providers built in rustls has no default.
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_webpki_roots()
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST.min(settings.max_in_flight))
            .build(https);
        HttpProbe { client }
    }
}

impl BlobProbe for HttpProbe {
    fn fetch<'a>(
        &'a self,
        url: &'a str,
        max: usize,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send + 'a>> {
        Box::pin(async move {
            let request = hyper::Request::get(url)
                .body(Empty::new())
                .map_err(|e| e.to_string())?;
            let resp = self
                .client
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            if resp.status() != 200 {
                return Err(format!("HTTP {}", resp.status().as_u16()));
            }
            let body = http_body_util::Limited::new(resp.into_body(), max);
            http_body_util::BodyExt::collect(body)
                .await
                .map(|b| b.to_bytes())
                .map_err(|e| format!("reading the body: {e}"))
        })
    }

    fn head<'a>(&'a self, url: &'a str) -> Pin<Box<dyn Future<Output = Presence> + Send + 'a>> {
        Box::pin(async move {
            let Ok(request) = hyper::Request::head(url).body(Empty::new()) else {
                return Presence::Failed;
            };
            match self.client.request(request).await {
                Ok(resp) if resp.status() == 200 => Presence::Found(
                    resp.headers()
                        .get(http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok()),
                ),
                Ok(resp) if resp.status() == 404 => Presence::Missing,
                Ok(resp) => {
                    debug!(
                        url,
                        status = resp.status().as_u16(),
                        "blob check answered neither 200 nor 404"
                    );
                    Presence::Failed
                }
                Err(e) => {
                    debug!(url, error = %e, "blob check failed");
                    Presence::Failed
                }
            }
        })
    }
}

pub struct BlobChecker {
    probe: Arc<dyn BlobProbe>,
    cache: Cache<String, Presence, foldhash::quality::RandomState>,
    timeout: Duration,
    metrics: Arc<Metrics>,
    /// HEADs in flight in the whole process.
    in_flight: Semaphore,
}

/// A check that could not start: a bound was reached.
#[derive(Debug)]
struct Busy;

struct Ttl {
    found: Duration,
    missing: Duration,
}

impl Expiry<String, Presence> for Ttl {
    fn expire_after_create(&self, _: &String, value: &Presence, _: Instant) -> Option<Duration> {
        Some(match value {
            Presence::Found(_) => self.found,
            Presence::Missing | Presence::Failed | Presence::Busy => self.missing,
        })
    }
}

impl BlobChecker {
    pub fn new(
        settings: &BlobCheckSettings,
        metrics: Arc<Metrics>,
        probe: Arc<dyn BlobProbe>,
    ) -> BlobChecker {
        metrics.blob_check_limit.set(settings.max_in_flight as i64);
        let cache = Cache::builder()
            .max_capacity(settings.capacity)
            .expire_after(Ttl {
                found: settings.found_ttl,
                missing: settings.missing_ttl,
            })
            // Every blob request hashes its ~100-byte URL here: SipHash
            // cost more than the rest of the lookup. foldhash is seeded
            // per process, as std's RandomState is, and the URLs' digests
            // are validated hex, not free text.
            .build_with_hasher(foldhash::quality::RandomState::default());
        BlobChecker {
            probe,
            cache,
            timeout: settings.timeout,
            metrics,
            in_flight: Semaphore::new(settings.max_in_flight),
        }
    }

    /// Whether `url` answers 200 to HEAD, from the cache when it can.
    /// `conn` holds the client connection's check slots.
    pub async fn check(&self, url: &str, conn: &Semaphore) -> Presence {
        if let Some(p) = self.cache.get(url).await {
            self.metrics.blob_cache_hits.inc();
            return p;
        }
        self.metrics.blob_cache_misses.inc();
        // Only the request that starts the check takes slots; concurrent
        // ones for the same URL wait on it.
        let init = async {
            let Ok(_process) = self.in_flight.try_acquire() else {
                self.metrics.blob_check_rejected("process").inc();
                return Err(Busy);
            };
            let Ok(_connection) = conn.try_acquire() else {
                self.metrics.blob_check_rejected("connection").inc();
                return Err(Busy);
            };
            let _counted = Counted::new(&self.metrics.blob_checks_in_flight);
            Ok(self.head(url).await)
        };
        self.cache
            .try_get_with_by_ref(url, init)
            .await
            .unwrap_or(Presence::Busy)
    }

    /// The body of `url`, at most `max` bytes, within the check timeout.
    pub async fn fetch(&self, url: &str, max: usize) -> Result<Bytes, String> {
        tokio::time::timeout(self.timeout, self.probe.fetch(url, max))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", self.timeout)))
    }

    /// One HEAD of `url` now, past the cache and the concurrency bounds
    /// (health probes: one per backend per interval).
    pub async fn probe(&self, url: &str) -> Presence {
        self.head(url).await
    }

    async fn head(&self, url: &str) -> Presence {
        self.metrics.blob_checks.inc();
        let start = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.probe.head(url)).await;
        self.metrics
            .blob_check_seconds
            .observe(start.elapsed().as_secs_f64());
        let presence = result.unwrap_or_else(|_| {
            debug!(url, timeout = ?self.timeout, "blob check timed out");
            Presence::Failed
        });
        if presence == Presence::Failed {
            self.metrics.blob_check_failures.inc();
        }
        presence
    }
}
