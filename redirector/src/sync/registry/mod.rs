//! A client for the upstream registry's distribution API, as `sync` and
//! `audit` need it: manifests (bounded in size, verified by digest), tag
//! lists (paginated), and blob streams. Every request goes through one
//! rate limit and one retry policy, and answers 401 challenges.
//!
//! Not oci-client: its errors drop the response headers, so it cannot
//! honour `Retry-After`, and it reads manifests into memory unbounded.
//! reqwest is the HTTP client object_store already brings.

pub mod auth;
pub mod body;
pub mod error;
pub mod retry;

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime},
};

use reqwest::{Method, Response, StatusCode, header};
use tokio::sync::Mutex;

pub use self::error::RegistryError;
use self::{
    auth::{Challenge, Credentials, TokenAnswer, parse_challenge},
    body::{next_link, ok, read_bounded},
    error::Result,
    retry::{RateLimit, RetryPolicy, parse_retry_after, retryable},
};

pub use self::body::MAX_DOCUMENT;

/// Tag list pages followed for one repository (1000 tags each).
pub const MAX_TAG_PAGES: usize = 1000;
/// Time for one manifest, tag list or token request, start to end.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Time to connect; and, for blob streams, the longest pause between two
/// reads (a blob has no total limit: layers can be gigabytes).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// What the manifest endpoint accepts: OCI and Docker, images and indexes.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// How to reach the upstream.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Requests per second, across every task; `None`: no limit.
    pub max_rps: Option<u32>,
    pub retry: RetryPolicy,
    pub credentials: Option<Credentials>,
}

/// Request and retry counts, for the report.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
}

pub struct Registry {
    http: reqwest::Client,
    /// `scheme://host[:port]`.
    base: String,
    /// The upstream path before every repository name (may be empty).
    prefix: String,
    limit: RateLimit,
    retry: RetryPolicy,
    credentials: Option<Credentials>,
    /// Per repository: the `Authorization` value its last challenge got.
    authorization: Mutex<HashMap<String, String>>,
    pub stats: Stats,
}

/// A manifest as fetched: its bytes, digest and media type.
pub struct Fetched {
    pub digest: String,
    pub media_type: Option<String>,
    pub body: bytes::Bytes,
}

impl Registry {
    pub fn new(base: &str, prefix: &str, options: RegistryOptions) -> Result<Registry> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            // Only the registry and where it redirects: no proxy from the
            // environment steers a sync elsewhere.
            .no_proxy()
            .user_agent(concat!("steer-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| RegistryError::Transport {
                url: base.to_owned(),
                source,
            })?;
        Ok(Registry {
            http,
            base: base.trim_end_matches('/').to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            limit: RateLimit::new(options.max_rps),
            retry: options.retry,
            credentials: options.credentials,
            authorization: Mutex::new(HashMap::new()),
            stats: Stats::default(),
        })
    }

    /// How calls are retried (also used for a blob whose download broke).
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// The upstream repository that holds `name`.
    pub fn repository(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// The manifest `reference` (a tag or a digest) of `repo`; `None` if
    /// the registry has no such manifest. Fetched by digest, its bytes
    /// must have that digest.
    pub async fn manifest(&self, repo: &str, reference: &str) -> Result<Option<Fetched>> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let resp = self
            .send(repo, Method::GET, &url, Some(MANIFEST_ACCEPT), true)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = ok(resp, &url)?;
        let media_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let body = read_bounded(resp, &url).await?;
        let digest = crate::sync::digest::sha256(&body);
        if reference.contains(':') && reference != digest {
            return Err(RegistryError::invalid(
                &url,
                format!("manifest bytes have digest {digest}"),
            ));
        }
        Ok(Some(Fetched {
            digest,
            media_type,
            body,
        }))
    }

    /// Every tag of `repo`, following `Link: <...>; rel="next"`.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            tags: Option<Vec<String>>,
        }
        let mut url = format!("{}/v2/{repo}/tags/list?n=1000", self.base);
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let resp = ok(self.send(repo, Method::GET, &url, None, true).await?, &url)?;
            let next = resp
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link)
                .map(|l| self.same_origin(&url, &l))
                .transpose()?;
            let body = read_bounded(resp, &url).await?;
            let page: Page = serde_json::from_slice(&body)
                .map_err(|e| RegistryError::invalid(&url, format!("not a tag list: {e}")))?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) => url = n,
                None => return Ok(tags),
            }
        }
        Err(RegistryError::invalid(
            &url,
            format!("more than {MAX_TAG_PAGES} pages of tags"),
        ))
    }

    /// The blob's body as a stream (the caller verifies it). Registries
    /// may redirect to their storage; the redirect is followed.
    pub async fn blob(&self, repo: &str, digest: &str) -> Result<Response> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        ok(self.send(repo, Method::GET, &url, None, false).await?, &url)
    }

    /// A link from the registry, made absolute; only to the registry
    /// itself, never elsewhere.
    fn same_origin(&self, from: &str, link: &str) -> Result<String> {
        if link.starts_with('/') {
            return Ok(format!("{}{link}", self.base));
        }
        if link.starts_with(&format!("{}/", self.base)) {
            return Ok(link.to_owned());
        }
        Err(RegistryError::invalid(
            from,
            format!("next page `{link}` is not on the registry"),
        ))
    }

    /// Sends one request, paced by the rate limit, answering one 401
    /// challenge and retrying 429, 5xx and transport errors. Any other
    /// answer is the caller's to read.
    async fn send(
        &self,
        repo: &str,
        method: Method,
        url: &str,
        accept: Option<&str>,
        bounded: bool,
    ) -> Result<Response> {
        let mut authorized = false;
        let mut attempt = 0;
        loop {
            self.limit.wait().await;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let mut req = self.http.request(method.clone(), url);
            if bounded {
                req = req.timeout(REQUEST_TIMEOUT);
            }
            if let Some(a) = accept {
                req = req.header(header::ACCEPT, a);
            }
            if let Some(auth) = self.authorization.lock().await.get(repo) {
                req = req.header(header::AUTHORIZATION, auth);
            }
            let retry_after = match req.send().await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !authorized => {
                    authorized = true;
                    self.answer_challenge(repo, url, &resp).await?;
                    continue;
                }
                Ok(resp) if retryable(resp.status().as_u16()) && attempt < self.retry.retries => {
                    resp.headers()
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()))
                }
                Ok(resp) => return Ok(resp),
                Err(e) if attempt < self.retry.retries => {
                    tracing::debug!("{url}: {e}; retrying");
                    None
                }
                Err(source) => {
                    return Err(RegistryError::Transport {
                        url: url.to_owned(),
                        source,
                    });
                }
            };
            let wait = self.retry.wait(attempt, retry_after);
            tracing::debug!("{url}: retry {} in {wait:?}", attempt + 1);
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Gets what a 401's challenge asks for and keeps it for `repo`.
    async fn answer_challenge(&self, repo: &str, url: &str, resp: &Response) -> Result<()> {
        let header = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let value = match parse_challenge(header) {
            Some(Challenge::Basic) => match &self.credentials {
                Some(c) => c.basic(),
                None => {
                    return Err(RegistryError::invalid(
                        url,
                        "basic auth asked for, and no credentials are set (STEER_UPSTREAM_USERNAME, STEER_UPSTREAM_PASSWORD or a docker config file)",
                    ));
                }
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => format!("Bearer {}", self.token(url, &realm, service, scope).await?),
            None => {
                return Err(RegistryError::invalid(
                    url,
                    format!("HTTP 401 with a challenge steer cannot answer: `{header}`"),
                ));
            }
        };
        self.authorization
            .lock()
            .await
            .insert(repo.to_owned(), value);
        Ok(())
    }

    async fn token(
        &self,
        url: &str,
        realm: &str,
        service: Option<String>,
        scope: Option<String>,
    ) -> Result<String> {
        let mut token_url = url::Url::parse(realm).map_err(|e| {
            RegistryError::invalid(url, format!("token realm `{realm}` is not a URL: {e}"))
        })?;
        if !matches!(token_url.scheme(), "http" | "https") {
            return Err(RegistryError::invalid(
                url,
                format!("token realm `{realm}` is not http(s)"),
            ));
        }
        {
            let mut q = token_url.query_pairs_mut();
            if let Some(s) = &service {
                q.append_pair("service", s);
            }
            if let Some(s) = &scope {
                q.append_pair("scope", s);
            }
        }
        self.limit.wait().await;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = self.http.get(token_url).timeout(REQUEST_TIMEOUT);
        if let Some(c) = &self.credentials {
            req = req.header(header::AUTHORIZATION, c.basic());
        }
        let resp = req
            .send()
            .await
            .map_err(|source| RegistryError::Transport {
                url: realm.to_owned(),
                source,
            })?;
        let resp = ok(resp, realm)?;
        let body = read_bounded(resp, realm).await?;
        serde_json::from_slice::<TokenAnswer>(&body)
            .ok()
            .and_then(TokenAnswer::into_token)
            .ok_or_else(|| {
                RegistryError::invalid(url, format!("token endpoint {realm} gave no token"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_stay_on_the_registry() {
        let r = Registry::new("http://reg:5000", "k8s/images", RegistryOptions::default()).unwrap();
        assert_eq!(r.repository("pause"), "k8s/images/pause");
        assert_eq!(
            r.same_origin("u", "/v2/x?last=1").unwrap(),
            "http://reg:5000/v2/x?last=1"
        );
        assert!(r.same_origin("u", "http://reg:5000/v2/x").is_ok());
        assert!(r.same_origin("u", "http://reg:50001/v2/x").is_err());
        assert!(r.same_origin("u", "https://elsewhere/v2/x").is_err());
    }
}
