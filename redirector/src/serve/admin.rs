//! The admin listener: `/healthz` (the process answers), `/readyz`
//! (serving, not draining), `/metrics` (Prometheus text format) and
//! `/report` (the figures of `redirector report` as an HTML page). Kept
//! off the public port so load balancers and scrapers never mix with
//! client traffic.

use std::{
    convert::Infallible,
    sync::{Arc, atomic::Ordering},
};

use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{Request, body::Bytes, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};
use tracing::info;

use super::{
    accept,
    activity::{Activity, IdleRule},
    conn::drive,
    http1_fast::MAX_HEADER_BYTES,
    metrics::Counted,
    report_page,
    state::State,
};
use crate::config::limits::ADMIN;

/// Serves until `stop` turns true, with the limits of [`ADMIN`]: a
/// connection cap, header and idle deadlines, and accept back-off.
pub async fn serve(listener: TcpListener, state: Arc<State>, stop: watch::Receiver<bool>) {
    if let Ok(a) = listener.local_addr() {
        info!(admin = %a, "admin listener");
    }
    let slots = Arc::new(Semaphore::new(ADMIN.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(ADMIN.header_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    let builder = Arc::new(builder);
    let metrics = state.metrics.clone();
    let on_conn = {
        let stop = stop.clone();
        move |stream, _peer, slot| {
            let (state, builder, mut stop) = (state.clone(), builder.clone(), stop.clone());
            tokio::spawn(async move {
                let _open = Counted::new(&state.metrics.admin_connections);
                let activity = Arc::new(Activity::new());
                let service = {
                    let (state, activity) = (state.clone(), activity.clone());
                    service_fn(move |req: Request<Incoming>| {
                        let (state, busy) = (state.clone(), activity.begin());
                        async move {
                            let response = answer(state, req.uri().path()).await;
                            drop(busy);
                            Ok::<_, Infallible>(response)
                        }
                    })
                };
                let c = Box::pin(builder.serve_connection(TokioIo::new(stream), service));
                let metrics = state.metrics.clone();
                let idle = IdleRule::streams(&ADMIN);
                drive(c, &activity, idle, &ADMIN, "admin", &metrics, &mut stop).await;
                drop(slot);
            });
        }
    };
    accept::accept_loop("admin", listener, slots, metrics, stop, on_conn).await;
}

async fn answer(state: Arc<State>, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" if state.ready.load(Ordering::Relaxed) => {
            (StatusCode::OK, "text/plain", "ready\n".to_owned())
        }
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "draining\n".to_owned(),
        ),
        // Off the async workers: the XDP counters are read from the
        // kernel under the loader's lock.
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            tokio::task::spawn_blocking(move || state.metrics.encode())
                .await
                .unwrap_or_default(),
        ),
        "/report" => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            report_page::render(&state).await,
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
