//! The registry Go service's handler test cases, run against `handle`
//! with the same settings, plus what steer adds (query strings, grammar).
//! Blob checks answer from a fixed set through a fake probe that counts
//! its calls: no request leaves the process.

use std::{
    collections::HashSet,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use http::{Method, Response, StatusCode, header};
use steer_user::ranges::RangeSources;

use super::{
    BlobProbe, Presence, State,
    blob_check::BlobChecker,
    handler::{Body, ConnInfo, handle},
};
use crate::config::{Config, Layer, settings};

/// Answers found for the URLs it was given, missing for every other, and
/// counts the HEADs it was asked for.
struct FakeProbe {
    found: HashSet<String>,
    calls: AtomicUsize,
}

impl BlobProbe for FakeProbe {
    fn head<'a>(&'a self, url: &'a str) -> Pin<Box<dyn Future<Output = Presence> + Send + 'a>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let found = self.found.contains(url);
        Box::pin(async move {
            if found {
                Presence::Found(Some(1000))
            } else {
                Presence::Missing
            }
        })
    }
}

const D: &str = "sha256:da86e6ba6ca197bf6bc5e9d900febd906b133eaa4750e6bed647b0fbe50ed43e";
const EU_WEST_3: &str =
    "https://prod-registry-k8s-io-eu-west-3.s3.dualstack.eu-west-3.amazonaws.com";

pub(super) fn state(vars: &[(&str, &str)], found: &[&str]) -> State {
    state_with_probe(vars, found).0
}

fn state_with_probe(vars: &[(&str, &str)], found: &[&str]) -> (State, Arc<FakeProbe>) {
    let env = |k: &str| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    };
    let settings = Config::resolve(env, Layer::default()).unwrap().settings;
    // The embedded ranges, as a fresh machine has them.
    let ranges = RangeSources::default().load(None).unwrap().ranges;
    let metrics = Arc::new(super::metrics::Metrics::default());
    let probe = Arc::new(FakeProbe {
        found: found.iter().map(|s| (*s).to_owned()).collect(),
        calls: AtomicUsize::new(0),
    });
    let state = State {
        checker: BlobChecker::new(&settings.blob_check, metrics.clone(), probe.clone()),
        health: Default::default(),
        access_log: None,
        metrics,
        ready: std::sync::atomic::AtomicBool::new(true),
        settings: RwLock::new(Arc::new(settings)),
        served: RwLock::new(Arc::new(super::Served::new(ranges))),
        steer: None,
        history: Default::default(),
        requests: Default::default(),
    };
    (state, probe)
}

/// (method, URL path and query, client address, status, Location).
type Case = (
    &'static str,
    String,
    &'static str,
    StatusCode,
    Option<String>,
);

/// What `handle` answers to `req` from `client` on a direct connection.
async fn respond(state: &State, client: &str, req: http::Request<()>) -> Response<Body> {
    handle(state, &direct_conn(state, client), &req).await
}

/// A direct connection from `client`, classified as accept would.
pub(super) fn direct_conn(state: &State, client: &str) -> ConnInfo {
    let peer: SocketAddr = format!("{client}:888").parse().unwrap();
    let (class, source) = state.classify(peer, 8080);
    ConnInfo {
        peer,
        class,
        source,
        checks: tokio::sync::Semaphore::new(8),
        host: Default::default(),
    }
}

/// The status and the Location, if any, of [`respond`].
async fn answer(
    state: &State,
    client: &str,
    req: http::Request<()>,
) -> (StatusCode, Option<String>) {
    let r = respond(state, client, req).await;
    let location = r
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status(), location)
}

async fn run(state: &State, cases: Vec<Case>) {
    let mut failures = Vec::new();
    for (method, target, client, status, location) in cases {
        let req = http::Request::builder()
            .method(method.parse::<Method>().unwrap())
            .uri(target.as_str())
            .header("host", "registry.test")
            .body(())
            .unwrap();
        let (got_status, got) = answer(state, client, req).await;
        if got_status != status || got != location {
            failures.push(format!(
                "{method} {target} from {client}: {got_status} {got:?}, expected {status} {location:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

const NOWHERE: &str = "192.0.2.1";
const AWS_EU_WEST_3: &str = "35.180.1.1";
const GCP: &str = "35.220.26.1";

#[tokio::test]
async fn go_service_make_handler_cases() {
    let s = state(
        &[
            (
                "UPSTREAM_REGISTRY_ENDPOINT",
                "https://us-central1-docker.pkg.dev",
            ),
            ("UPSTREAM_REGISTRY_PATH", "k8s-artifacts-prod/images"),
        ],
        &[&format!("{EU_WEST_3}/containers/images/{D}")],
    );
    let up = "https://us-central1-docker.pkg.dev/v2/k8s-artifacts-prod/images";
    let redirect = StatusCode::TEMPORARY_REDIRECT;
    let cases: Vec<Case> = vec![
        ("GET", "/".into(), NOWHERE, redirect, Some(settings::INFO_URL.into())),
        ("GET", "/privacy".into(), NOWHERE, redirect, Some(settings::PRIVACY_URL.into())),
        ("GET", "/v3/".into(), NOWHERE, StatusCode::NOT_FOUND, None),
        ("GET", "/v2/".into(), NOWHERE, StatusCode::OK, None),
        ("GET", "/v2".into(), NOWHERE, StatusCode::OK, None),
        ("HEAD", "/v2".into(), NOWHERE, StatusCode::OK, None),
        ("POST", "/v2/".into(), NOWHERE, StatusCode::METHOD_NOT_ALLOWED, None),
        ("GET", "/v2/pause/manifests/latest".into(), NOWHERE, redirect, Some(format!("{up}/pause/manifests/latest"))),
        ("GET", "/v2/pause/tags/list?n=0".into(), NOWHERE, redirect, Some(format!("{up}/pause/tags/list?n=0"))),
        (
            "GET",
            "/v2/pause/tags/list?n=1000&after=v1.2.3".into(),
            NOWHERE,
            redirect,
            Some(format!("{up}/pause/tags/list?n=1000&after=v1.2.3")),
        ),
        ("GET", format!("/v2/pause/blobs/{D}"), NOWHERE, redirect, Some(format!("{up}/pause/blobs/{D}"))),
        (
            "GET",
            format!("/v2/pause/blobs/{D}"),
            AWS_EU_WEST_3,
            redirect,
            Some(format!("{EU_WEST_3}/containers/images/{D}")),
        ),
        ("GET", format!("/v2/pause/blobs/{D}"), GCP, redirect, Some(format!("{up}/pause/blobs/{D}"))),
        (
            "GET",
            "/v2/pause/manifests/sha256-da86e6ba6ca197bf6bc5e9d900febd906b133eaa4750e6bed647b0fbe50ed43e.sig".into(),
            NOWHERE,
            redirect,
            Some(format!(
                "{up}/pause/manifests/sha256-da86e6ba6ca197bf6bc5e9d900febd906b133eaa4750e6bed647b0fbe50ed43e.sig"
            )),
        ),
    ];
    run(&s, cases).await;
}

#[tokio::test]
async fn go_service_v2_handler_cases() {
    let known = [
        format!("{EU_WEST_3}/containers/images/{D}"),
        format!(
            "https://prod-registry-k8s-io-eu-west-1.s3.dualstack.eu-west-1.amazonaws.com/containers/images/{D}"
        ),
    ];
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    let s = state(
        &[
            ("UPSTREAM_REGISTRY_ENDPOINT", "https://k8s.gcr.io"),
            ("UPSTREAM_REGISTRY_PATH", ""),
            (
                "SIGNATURE_UPSTREAM_ENDPOINT",
                "https://us-central1-docker.pkg.dev",
            ),
        ],
        &known,
    );
    let redirect = StatusCode::TEMPORARY_REDIRECT;
    let sig = "sha256-da86e6ba6ca197bf6bc5e9d900febd906b133eaa4750e6bed647b0fbe50ed43e";
    let other = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1234567";
    let mut cases: Vec<Case> = vec![
        (
            "GET",
            format!("/v2/pause/blobs/{D}"),
            NOWHERE,
            redirect,
            Some(format!("https://k8s.gcr.io/v2/pause/blobs/{D}")),
        ),
        (
            "GET",
            "/v2/_catalog".into(),
            AWS_EU_WEST_3,
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            "GET",
            format!("/v2/pause/blobs/{D}"),
            AWS_EU_WEST_3,
            redirect,
            Some(format!("{EU_WEST_3}/containers/images/{D}")),
        ),
        (
            "GET",
            "/v2/pause/manifests/latest".into(),
            NOWHERE,
            redirect,
            Some("https://k8s.gcr.io/v2/pause/manifests/latest".into()),
        ),
        (
            "GET",
            format!("/v2/pause/blobs/{other}"),
            AWS_EU_WEST_3,
            redirect,
            Some(format!("https://k8s.gcr.io/v2/pause/blobs/{other}")),
        ),
        (
            "GET",
            "/v2/pause/tags/list".into(),
            NOWHERE,
            redirect,
            Some("https://k8s.gcr.io/v2/pause/tags/list".into()),
        ),
        // Deliberate difference: the Go service redirects a sha256 digest of
        // 128 hex digits upstream; the OCI grammar says sha256 is 64.
        (
            "GET",
            format!("/v2/pause/blobs/sha256:{}", "3b".repeat(64)),
            NOWHERE,
            StatusCode::BAD_REQUEST,
            None,
        ),
    ];
    // Cosign signatures and attestations go to the signature upstream.
    let signatures = [
        ("GET", "pause", "sig"),
        ("GET", "pause", "att"),
        ("HEAD", "pause", "sig"),
        ("GET", "kubernetes/pause", "sig"),
    ];
    cases.extend(signatures.map(|(method, name, kind)| -> Case {
        let path = format!("/v2/{name}/manifests/{sig}.{kind}");
        let to = format!("https://us-central1-docker.pkg.dev{path}");
        (method, path, NOWHERE, redirect, Some(to))
    }));
    run(&s, cases).await;
}

#[tokio::test]
async fn blob_checks_are_cached() {
    let (s, probe) = state_with_probe(&[], &[&format!("{EU_WEST_3}/containers/images/{D}")]);
    let cases: Vec<Case> = (0..3)
        .map(|_| {
            (
                "GET",
                format!("/v2/pause/blobs/{D}"),
                AWS_EU_WEST_3,
                StatusCode::TEMPORARY_REDIRECT,
                Some(format!("{EU_WEST_3}/containers/images/{D}")),
            )
        })
        .collect();
    run(&s, cases).await;
    let m = &s.metrics;
    assert_eq!(
        (
            m.blob_checks.get(),
            m.blob_cache_misses.get(),
            m.blob_cache_hits.get()
        ),
        (1, 1, 2)
    );
    assert_eq!(
        probe.calls.load(Ordering::SeqCst),
        1,
        "one HEAD for three pulls"
    );
    let text = m.encode();
    assert!(
        text.contains(r#"steer_requests_total{route="blob",status="307",provider="aws",region="eu-west-3",backend="aws-eu-west-3",source="userspace"} 3"#),
        "{text}"
    );
    // Three redirects of a blob the check found at 1000 bytes.
    assert!(
        text.contains(r#"steer_blob_bytes_total{backend="aws-eu-west-3",provider="aws",region="eu-west-3"} 3000"#),
        "{text}"
    );
    // The default prices: the bucket costs nothing, the upstream $0.12/GB.
    assert_close(
        sample(&text, "steer_estimated_savings_dollars_total"),
        3000e-9 * 0.12,
    );
    assert_close(
        sample(
            &text,
            r#"steer_estimated_cost_dollars_total{payer="aws-eu-west-3"}"#,
        ),
        0.0,
    );
}

/// The value of `series` in a Prometheus text exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {series} in {text}"))
}

fn assert_close(got: f64, want: f64) {
    assert!(
        (got - want).abs() <= want.abs() * 1e-9 + 1e-15,
        "{got} != {want}"
    );
}

async fn location_with_xff(
    state: &State,
    peer: &str,
    xff: Option<&str>,
) -> (StatusCode, Option<String>) {
    let mut req = http::Request::builder()
        .uri(format!("/v2/pause/blobs/{D}"))
        .header("host", "registry.test");
    if let Some(v) = xff {
        req = req.header("x-forwarded-for", v);
    }
    answer(state, peer, req.body(()).unwrap()).await
}

#[tokio::test]
async fn forwarded_clients_are_classified_per_request() {
    let bucket = format!("{EU_WEST_3}/containers/images/{D}");
    let up =
        format!("https://us-central1-docker.pkg.dev/v2/k8s-artifacts-prod/images/pause/blobs/{D}");
    let s = state(&[], &[&bucket]);
    let set = |s: &State, f: crate::forwarded::Forwarded| {
        let mut new = (*s.settings()).clone();
        new.forwarded = f;
        *s.settings.write().unwrap() = Arc::new(new);
    };
    set(
        &s,
        crate::forwarded::Forwarded::Trusted(vec!["127.0.0.0/8".parse().unwrap()]),
    );
    let redirect = StatusCode::TEMPORARY_REDIRECT;
    assert_eq!(
        location_with_xff(&s, "127.0.0.1", Some("35.180.1.1")).await,
        (redirect, Some(bucket.clone()))
    );
    // From an untrusted peer the header means nothing.
    assert_eq!(
        location_with_xff(&s, NOWHERE, Some("35.180.1.1")).await,
        (redirect, Some(up.clone()))
    );
    // Odd values never fail a blob pull: the peer is used.
    for odd in ["unknown", "35.180.1.1, <script>", &"9".repeat(5000)] {
        assert_eq!(
            location_with_xff(&s, "127.0.0.1", Some(odd)).await,
            (redirect, Some(up.clone())),
            "{odd:.20}"
        );
    }
    set(&s, crate::forwarded::Forwarded::SecondToLast);
    assert_eq!(
        location_with_xff(&s, NOWHERE, Some("35.180.1.1, 130.211.0.5")).await,
        (redirect, Some(bucket))
    );
    assert_eq!(
        location_with_xff(&s, NOWHERE, Some("35.180.1.1")).await,
        (redirect, Some(up))
    );
}

#[tokio::test]
async fn host_header_rules_of_rfc_9112() {
    let s = state(&[], &[]);
    let bad = StatusCode::BAD_REQUEST;
    let redirect = StatusCode::TEMPORARY_REDIRECT;
    let req = |version: http::Version, hosts: &[&str]| {
        let mut r = http::Request::builder()
            .uri("/v2/pause/manifests/latest")
            .version(version);
        for h in hosts {
            r = r.header("host", *h);
        }
        r.body(()).unwrap()
    };
    use http::Version;
    let cases = || {
        [
            (
                "1.1 with one Host",
                req(Version::HTTP_11, &["registry.test"]),
                redirect,
            ),
            (
                "1.1 with Host:port",
                req(Version::HTTP_11, &["registry.test:8080"]),
                redirect,
            ),
            (
                "1.1 with an empty Host",
                req(Version::HTTP_11, &[""]),
                redirect,
            ),
            ("1.1 without Host", req(Version::HTTP_11, &[]), bad),
            (
                "1.1 with two",
                req(Version::HTTP_11, &["a.test", "b.test"]),
                bad,
            ),
            ("1.1 with a bad one", req(Version::HTTP_11, &["a b/c"]), bad),
            ("1.0 without Host", req(Version::HTTP_10, &[]), redirect),
            (
                "1.0 with two",
                req(Version::HTTP_10, &["a.test", "a.test"]),
                bad,
            ),
            ("2 without Host", req(Version::HTTP_2, &[]), redirect),
        ]
    };
    for (name, r, want) in cases() {
        let (status, location) = answer(&s, NOWHERE, r).await;
        assert_eq!(status, want, "{name}");
        assert_eq!(location.is_some(), want == redirect, "{name}");
    }
    // All on one connection, which remembers the first valid Host: the
    // same answers, whatever came before.
    let conn = direct_conn(&s, NOWHERE);
    for (name, r, want) in cases().into_iter().chain(cases()) {
        assert_eq!(
            handle(&s, &conn, &r).await.status(),
            want,
            "{name}, one connection"
        );
    }
}

#[tokio::test]
async fn blobs_sent_upstream_are_measured_when_asked() {
    let up = format!(
        "{}/v2/{}/pause/blobs/{D}",
        settings::DEFAULT_UPSTREAM,
        settings::DEFAULT_UPSTREAM_PATH
    );
    let (s, probe) = state_with_probe(&[], &[&up]);
    let req = || {
        http::Request::builder()
            .uri(format!("/v2/pause/blobs/{D}"))
            .header("host", "registry.test")
            .body(())
            .unwrap()
    };
    // Off (the default): no HEAD upstream, no bytes counted for it.
    assert_eq!(
        answer(&s, GCP, req()).await,
        (StatusCode::TEMPORARY_REDIRECT, Some(up.clone()))
    );
    assert_eq!(probe.calls.load(Ordering::SeqCst), 0);
    let on = settings::Settings {
        measure_upstream: true,
        ..(*s.settings()).clone()
    };
    *s.settings.write().unwrap() = Arc::new(on);
    for _ in 0..2 {
        assert_eq!(
            answer(&s, GCP, req()).await,
            (StatusCode::TEMPORARY_REDIRECT, Some(up.clone()))
        );
    }
    assert_eq!(
        probe.calls.load(Ordering::SeqCst),
        1,
        "one cached HEAD upstream"
    );
    let text = s.metrics.encode();
    assert!(
        text.contains(
            r#"steer_blob_bytes_total{backend="upstream",provider="gcp",region="europe-north1"} 2000"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_head_moves_no_bytes() {
    let (s, _) = state_with_probe(&[], &[&format!("{EU_WEST_3}/containers/images/{D}")]);
    let cases: Vec<Case> = ["HEAD", "HEAD", "GET"]
        .into_iter()
        .map(|m| {
            (
                m,
                format!("/v2/pause/blobs/{D}"),
                AWS_EU_WEST_3,
                StatusCode::TEMPORARY_REDIRECT,
                Some(format!("{EU_WEST_3}/containers/images/{D}")),
            )
        })
        .collect();
    run(&s, cases).await;
    let text = s.metrics.encode();
    assert_eq!(
        sample(
            &text,
            r#"steer_blob_bytes_total{backend="aws-eu-west-3",provider="aws",region="eu-west-3"}"#
        ),
        1000.0,
        "only the GET counts"
    );
}

#[tokio::test]
async fn clients_over_their_request_rate_get_429_with_retry_after() {
    let bucket = format!("{EU_WEST_3}/containers/images/{D}");
    let s = state(&[], &[&bucket]);
    let rates = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let mut new = (*s.settings()).clone();
    // Two a minute at once by default; one for AWS eu-west-3.
    new.request_limits = crate::config::rates::parse(
        "request",
        &rates(&[("default", "1/m"), ("aws/eu-west-3", "1/m")]),
        &std::collections::BTreeMap::from([
            ("default".to_owned(), 2),
            ("aws/eu-west-3".to_owned(), 1),
        ]),
    )
    .unwrap();
    new.forwarded = crate::forwarded::Forwarded::Trusted(vec!["127.0.0.0/8".parse().unwrap()]);
    *s.settings.write().unwrap() = Arc::new(new);
    let (redirect, limited) = (
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::TOO_MANY_REQUESTS,
    );
    let get = |peer: &'static str, xff: Option<&'static str>| {
        let s = &s;
        async move {
            let mut req = http::Request::builder()
                .uri(format!("/v2/pause/blobs/{D}"))
                .header("host", "registry.test");
            if let Some(v) = xff {
                req = req.header("x-forwarded-for", v);
            }
            let r = respond(s, peer, req.body(()).unwrap()).await;
            let retry = r
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status(), retry)
        }
    };
    // (what, peer, X-Forwarded-For, status, Retry-After)
    type Case = (
        &'static str,
        &'static str,
        Option<&'static str>,
        StatusCode,
        Option<&'static str>,
    );
    let cases: [Case; 8] = [
        ("GCP, first of its burst of 2", GCP, None, redirect, None),
        ("GCP, second", GCP, None, redirect, None),
        // A token every 60 s.
        ("GCP, over", GCP, None, limited, Some("60")),
        (
            "another client of the class",
            "35.220.26.2",
            None,
            redirect,
            None,
        ),
        // Behind a trusted proxy the limit follows the header's client.
        (
            "through the proxy, eu-west-3",
            "127.0.0.1",
            Some("35.180.1.1"),
            redirect,
            None,
        ),
        (
            "through the proxy, eu-west-3 again: over",
            "127.0.0.1",
            Some("35.180.1.1"),
            limited,
            Some("60"),
        ),
        (
            "through the proxy, another client",
            "127.0.0.1",
            Some("35.180.1.2"),
            redirect,
            None,
        ),
        // The proxy's own requests are its own client.
        ("the proxy itself", "127.0.0.1", None, redirect, None),
    ];
    let mut failures = Vec::new();
    for (name, peer, xff, status, retry) in cases {
        let got = get(peer, xff).await;
        if got != (status, retry.map(str::to_owned)) {
            failures.push(format!("{name}: {got:?}, expected {status} {retry:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let text = s.metrics.encode();
    for series in [
        r#"steer_requests_limited_total{provider="gcp",region="europe-north1"} 1"#,
        r#"steer_requests_limited_total{provider="aws",region="eu-west-3"} 1"#,
    ] {
        assert!(text.contains(series), "no {series} in\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with(r#"steer_requests_total{route="limited",status="429""#)),
        "{text}"
    );
}
