//! Does a backend have this blob? A HEAD request, cached.
//!
//! The cache is bounded in entries; a found blob is trusted for a long TTL,
//! a missing one (or a failed check) for a short one, so a blob that
//! arrives later at a mirror is found soon after. Concurrent checks for
//! the same URL share one request (moka's `try_get_with` runs one init per
//! key). A check that fails or times out answers "no": the client goes
//! upstream, which always has the blob.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use moka::{Expiry, future::Cache};
use tracing::debug;

use super::{metrics::Metrics, settings::BlobCheckSettings};

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

/// What a check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Found,
    Missing,
    /// Timed out, refused, or answered something other than 200/404.
    Failed,
}

pub struct BlobChecker {
    client: HttpsClient,
    /// Tests: the URLs that are present; no request is sent.
    #[cfg(test)]
    fixed: Option<std::collections::HashSet<String>>,
    cache: Cache<String, Presence>,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

struct Ttl {
    found: Duration,
    missing: Duration,
}

impl Expiry<String, Presence> for Ttl {
    fn expire_after_create(
        &self,
        _: &String,
        value: &Presence,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(match value {
            Presence::Found => self.found,
            Presence::Missing | Presence::Failed => self.missing,
        })
    }
}

impl BlobChecker {
    pub fn new(settings: &BlobCheckSettings, metrics: Arc<Metrics>) -> BlobChecker {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        let cache = Cache::builder()
            .max_capacity(settings.capacity)
            .expire_after(Ttl {
                found: settings.found_ttl,
                missing: settings.missing_ttl,
            })
            .build();
        BlobChecker {
            client,
            #[cfg(test)]
            fixed: None,
            cache,
            timeout: settings.timeout,
            metrics,
        }
    }

    /// Whether `url` answers 200 to HEAD, from the cache when it can.
    pub async fn check(&self, url: &str) -> Presence {
        if let Some(p) = self.cache.get(url).await {
            self.metrics.blob_cache_hits.inc();
            return p;
        }
        self.metrics.blob_cache_misses.inc();
        self.cache.get_with_by_ref(url, self.head(url)).await
    }

    /// A checker that answers from `found` without any request (tests).
    #[cfg(test)]
    pub fn fixed(
        settings: &BlobCheckSettings,
        metrics: Arc<Metrics>,
        found: &[&str],
    ) -> BlobChecker {
        let mut checker = BlobChecker::new(settings, metrics);
        checker.fixed = Some(found.iter().map(|s| (*s).to_owned()).collect());
        checker
    }

    async fn head(&self, url: &str) -> Presence {
        self.metrics.blob_checks.inc();
        #[cfg(test)]
        if let Some(found) = &self.fixed {
            return if found.contains(url) {
                Presence::Found
            } else {
                Presence::Missing
            };
        }
        let start = Instant::now();
        let request = match hyper::Request::head(url).body(Empty::new()) {
            Ok(r) => r,
            Err(_) => return Presence::Failed,
        };
        let result = tokio::time::timeout(self.timeout, self.client.request(request)).await;
        self.metrics
            .blob_check_seconds
            .observe(start.elapsed().as_secs_f64());
        match result {
            Ok(Ok(resp)) if resp.status() == 200 => Presence::Found,
            Ok(Ok(resp)) if resp.status() == 404 => Presence::Missing,
            Ok(Ok(resp)) => {
                debug!(
                    url,
                    status = resp.status().as_u16(),
                    "blob check answered neither 200 nor 404"
                );
                Presence::Failed
            }
            Ok(Err(e)) => {
                debug!(url, error = %e, "blob check failed");
                Presence::Failed
            }
            Err(_) => {
                debug!(url, timeout = ?self.timeout, "blob check timed out");
                Presence::Failed
            }
        }
    }
}
