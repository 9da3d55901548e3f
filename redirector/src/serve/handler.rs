//! One request in, one response out: route, pick the target, build a
//! redirect that only ever points at a configured host.

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
};

use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Bytes;
use steer_user::Class;
use tracing::info;

use super::{
    access_log::Entry,
    blob_check::Presence,
    metrics::BlobLabels,
    request_counter::{RequestLabels, Target},
    request_head::RequestHead,
    state::{Source, State},
};
use crate::{
    backends::client_key,
    config::settings::Settings,
    routes::{Route, blob_location, route, upstream_location},
};

/// What is known about a connection, worked out once after accept.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub class: Arc<Class>,
    pub source: Source,
    /// Blob checks this connection may run at once.
    pub checks: tokio::sync::Semaphore,
    /// The first valid Host header: a connection's requests name the same
    /// host, so later ones are compared, not parsed again.
    pub host: OnceLock<Box<[u8]>>,
}

pub type Body = Full<Bytes>;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

pub async fn handle(state: &State, conn: &ConnInfo, req: &impl RequestHead) -> Response<Body> {
    let (method, path, query) = (req.method(), req.path(), req.query());
    // Behind a trusted proxy the client is in the header: classified per
    // request, in userspace. Otherwise the connection's class stands.
    let settings = state.settings();
    let settings = &*settings;
    let (client, from_header) = settings
        .forwarded
        .client(conn.peer.ip(), req.header_values(&X_FORWARDED_FOR));
    let (class, source) = if from_header {
        (state.classify_userspace(client), Source::Forwarded)
    } else {
        (conn.class.clone(), conn.source)
    };
    let routed = match host_problem(req, &conn.host) {
        None => route(method.as_str(), path),
        Some(what) => Route::Invalid {
            code: "BAD_REQUEST",
            what,
        },
    };
    let limited = state
        .requests
        .check(
            &settings.request_limits,
            &class,
            client,
            &state.metrics.limits,
        )
        .err();
    let route_name = if limited.is_some() {
        "limited"
    } else {
        routed.name()
    };
    // For the access log: the blob asked for, and its size when known.
    let mut blob: Option<(&str, Option<u64>)> = None;
    let (response, target) = match routed {
        _ if limited.is_some() => (
            too_many_requests(limited.unwrap_or(1)),
            Target::Fixed("limited"),
        ),
        Route::Info => (redirect(settings.info_url.clone()), Target::Fixed("info")),
        Route::Privacy => (
            redirect(settings.privacy_url.clone()),
            Target::Fixed("privacy"),
        ),
        Route::ApiBase => {
            let mut r = empty(StatusCode::OK);
            r.headers_mut().insert(
                "docker-distribution-api-version",
                HeaderValue::from_static("registry/2.0"),
            );
            (r, Target::Fixed("api-base"))
        }
        Route::NotFound => (
            text(StatusCode::NOT_FOUND, "404 page not found\n"),
            Target::Fixed("not-found"),
        ),
        Route::MethodNotAllowed => {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "Only GET and HEAD are allowed.\n",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            (r, Target::Fixed("method-not-allowed"))
        }
        Route::Invalid { code, what } => (oci_error(code, what), Target::Fixed("invalid")),
        Route::Upstream { rest } => (
            upstream(settings, &settings.upstream, rest, query),
            Target::Fixed("upstream"),
        ),
        Route::Signature { rest } => match &settings.signature_upstream {
            Some(sig) => (
                upstream(settings, sig, rest, query),
                Target::Fixed("signature-upstream"),
            ),
            None => (
                upstream(settings, &settings.upstream, rest, query),
                Target::Fixed("upstream"),
            ),
        },
        Route::Blob { digest, .. } => {
            let rest = &path["/v2".len()..];
            // A HEAD moves no blob bytes: only GETs count for bytes, cost
            // and budgets.
            let counted = method == http::Method::GET;
            blob = Some((digest, None));
            match blob_backend(state, conn, settings, &class, client, digest, counted).await {
                Some((url, name, size)) => {
                    blob = Some((digest, size));
                    (redirect(url), Target::Backend(name))
                }
                None => {
                    let response = upstream(settings, &settings.upstream, rest, query);
                    if counted
                        && settings.measure_upstream
                        && let Some(url) = response.headers().get(header::LOCATION)
                        && let Ok(url) = url.to_str()
                        && let Presence::Found(Some(size)) =
                            state.checker.check(url, &conn.checks).await
                    {
                        blob = Some((digest, Some(size)));
                        state.metrics.blob_bytes.with(
                            &BlobLabels {
                                backend: Target::Fixed("upstream"),
                                class: class.clone(),
                            },
                            |c| c.inc_by(size),
                        );
                        state.metrics.fleet.bytes_sent(
                            &super::fleet::UPSTREAM,
                            size,
                            settings.upstream_micro_dollars_per_gb,
                            None,
                        );
                    }
                    (response, Target::Fixed("upstream"))
                }
            }
        }
    };
    state.metrics.requests.inc(RequestLabels {
        route: route_name,
        status: response.status().as_u16(),
        class: class.clone(),
        backend: if response.headers().contains_key(header::LOCATION) {
            target.clone()
        } else {
            Target::Fixed("none")
        },
        source: source.as_str(),
    });
    if let Some(log) = &state.access_log {
        let class_name = class.to_string();
        let client_text = client.to_string();
        log.record(&Entry {
            client: &client_text,
            class: &class_name,
            source: source.as_str(),
            route: route_name,
            status: response.status().as_u16(),
            backend: target.as_str(),
            digest: blob.map(|(d, _)| d),
            bytes: blob.and_then(|(_, b)| b),
        });
    }
    info!(
        target: "steer::decision",
        peer = %conn.peer,
        %client,
        class = %class,
        source = source.as_str(),
        %method,
        path,
        status = response.status().as_u16(),
        target = target.as_str(),
        "request"
    );
    response
}

/// The backend that serves `digest` to `client`: the candidates in
/// order, each checked, at most `max_candidates` checks; `None`: upstream.
/// A check that could not even be made (a concurrency bound) sends the
/// client upstream at once rather than queueing more checks.
async fn blob_backend(
    state: &State,
    conn: &ConnInfo,
    settings: &Settings,
    class: &Arc<Class>,
    client: std::net::IpAddr,
    digest: &str,
    counted: bool,
) -> Option<(String, Arc<str>, Option<u64>)> {
    let backends = &settings.backends;
    let candidates = backends.candidates(class, client_key(client));
    // A failover is counted from the first candidate tried (one skipped
    // as unhealthy or unproven is not a failover at every request).
    let mut first: Option<&Arc<str>> = None;
    candidates.first()?;
    let mut served = None;
    let mut checks = 0;
    for c in &candidates {
        // Unhealthy, unproven or over-budget backends are skipped without
        // a check.
        if !state.health.usable(c.backend) {
            continue;
        }
        if checks == backends.max_candidates() {
            break;
        }
        checks += 1;
        first.get_or_insert(&c.backend.name);
        let url = blob_location(&c.backend.base_url, digest);
        match state.checker.check(&url, &conn.checks).await {
            Presence::Found(size) => {
                state.health.record(c.backend, true);
                let size = if counted { size.unwrap_or(0) } else { 0 };
                state.health.served(c.backend, size);
                state.metrics.blob_bytes.with(
                    &BlobLabels {
                        backend: Target::Backend(c.backend.name.clone()),
                        class: class.clone(),
                    },
                    |c| c.inc_by(size),
                );
                state.metrics.fleet.bytes_sent(
                    &c.backend.name,
                    size,
                    c.backend.micro_dollars_per_gb,
                    Some(settings.upstream_micro_dollars_per_gb),
                );
                served = Some((url, c.backend.name.clone(), counted.then_some(size)));
                break;
            }
            Presence::Missing => state.health.record(c.backend, true),
            Presence::Failed => state.health.record(c.backend, false),
            Presence::Busy => break,
        }
    }
    let to = served.as_ref().map_or("upstream", |(_, name, _)| &**name);
    let from = first.map_or(&candidates[0].backend.name, |f| f);
    if to != &**from {
        state.metrics.fleet.failover(from, to);
    }
    served
}

/// RFC 9112 section 3.2: a 400 for an HTTP/1.1 request without a Host
/// header, and for any request with more than one or with an invalid one.
/// (HTTP/2 names the authority in a pseudo-header instead.)
fn host_problem(req: &impl RequestHead, known: &OnceLock<Box<[u8]>>) -> Option<&'static str> {
    let version = req.version();
    if version != http::Version::HTTP_11 && version != http::Version::HTTP_10 {
        return None;
    }
    let mut hosts = req.header_values(&header::HOST);
    match (hosts.next(), hosts.next()) {
        (None, _) if version == http::Version::HTTP_11 => Some("Host header: none sent"),
        (None, _) => None,
        (Some(_), Some(_)) => Some("Host header: sent more than once"),
        (Some(h), None) if known.get().is_some_and(|k| **k == *h) => None,
        (Some(h), None) => {
            let valid = h.is_empty() || http::uri::Authority::try_from(h).is_ok();
            if valid {
                let _ = known.set(h.into());
            }
            (!valid).then_some("Host header")
        }
    }
}

/// A redirect upstream; `rest` was checked by the router, and the query
/// passes only if it is a valid header value (the URI parser already
/// refused control bytes and spaces).
fn upstream(settings: &Settings, base: &str, rest: &str, query: Option<&str>) -> Response<Body> {
    redirect(upstream_location(
        base,
        &settings.upstream_path,
        rest,
        query,
    ))
}

/// 429 for a client over its request rate: when to come back, in the
/// OCI error format clients print.
fn too_many_requests(retry_after: u64) -> Response<Body> {
    let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"too many requests from this address"}]}"#;
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    r
}

/// Takes the URL by value: the header keeps its bytes instead of a copy.
fn redirect(url: String) -> Response<Body> {
    match HeaderValue::from_maybe_shared(Bytes::from(url)) {
        Ok(location) => {
            let mut r = empty(StatusCode::TEMPORARY_REDIRECT);
            r.headers_mut().insert(header::LOCATION, location);
            r
        }
        // Unreachable with checked paths and URI-validated queries; never
        // a panic, never a header with a control byte.
        Err(_) => oci_error("NAME_INVALID", "request"),
    }
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::default());
    *r.status_mut() = status;
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A distribution-spec error body.
fn oci_error(code: &'static str, what: &'static str) -> Response<Body> {
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"invalid {what}"}}]}}"#);
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
