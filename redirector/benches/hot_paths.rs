//! Criterion benches of the per-request hot paths, so a regression shows
//! in review: `cargo bench -p redirector --bench hot_paths` (or `cargo
//! xtask bench hot`). No root, no network.
//!
//! - route parsing: a blob, a manifest and an invalid path;
//! - classification read: decoding XDP's flow slot for a connection (what
//!   every direct connection pays once) and the userspace classifier over
//!   the embedded table (what every request behind a proxy pays);
//! - redirect building: the upstream and the backend Locations.

use std::{
    hint::black_box,
    net::{IpAddr, Ipv4Addr, SocketAddr},
};

use criterion::{Criterion, criterion_group, criterion_main};
use redirector::routes::{blob_location, route, upstream_location};
use steer_user::{Classifier, flow_key, ranges::RangeSources};

const DIGEST: &str = "sha256:da86e6ba6ca197bf6bc5e9d900febd906b133eaa4750e6bed647b0fbe50ed43e";

fn routes(c: &mut Criterion) {
    let blob = format!("/v2/coredns/coredns/blobs/{DIGEST}");
    let mut g = c.benchmark_group("route");
    g.bench_function("blob", |b| {
        b.iter(|| route(black_box("GET"), black_box(&blob)).name())
    });
    g.bench_function("manifest", |b| {
        b.iter(|| route(black_box("GET"), black_box("/v2/pause/manifests/3.10")).name())
    });
    g.bench_function("invalid digest", |b| {
        b.iter(|| route(black_box("GET"), black_box("/v2/pause/blobs/sha256:XYZ")).name())
    });
    g.finish();
}

fn classification(c: &mut Criterion) {
    let ranges = RangeSources::default()
        .load(None)
        .expect("the embedded snapshot")
        .ranges;
    // A spread of addresses: the first address of every 64th prefix, and
    // as many in no feed.
    let mut addrs: Vec<IpAddr> = ranges
        .table
        .v4()
        .iter()
        .step_by(64)
        .map(|(n, _)| IpAddr::V4(n.network()))
        .collect();
    let listed = addrs.len();
    addrs.extend((0..listed as u32).map(|i| IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i))));
    let classifier: &Classifier = &ranges.classifier;
    let mut g = c.benchmark_group("classify");
    let mut i = 0;
    g.bench_function("userspace (per proxied request)", |b| {
        b.iter(|| {
            i = (i + 1) % addrs.len();
            classifier.classify(black_box(addrs[i]))
        })
    });
    // The XDP handoff as userspace reads it: hash the flow to its slot,
    // check the tag, decode the class (the atomic load itself excluded).
    let peer = SocketAddr::new(addrs[0], 40_000);
    let slot = flow_key(peer, 443).slot();
    let value = slot.value(28, 1);
    g.bench_function("flow slot (per direct connection)", |b| {
        b.iter(|| {
            let s = flow_key(black_box(peer), black_box(443)).slot();
            s.read(black_box(value))
        })
    });
    g.finish();
}

fn locations(c: &mut Criterion) {
    let mut g = c.benchmark_group("location");
    g.bench_function("upstream", |b| {
        b.iter(|| {
            upstream_location(
                black_box("https://us-central1-docker.pkg.dev"),
                black_box("k8s-artifacts-prod/images"),
                black_box("/pause/manifests/3.10"),
                black_box(Some("n=100")),
            )
        })
    });
    g.bench_function("backend blob", |b| {
        b.iter(|| {
            blob_location(
                black_box(
                    "https://prod-registry-k8s-io-eu-west-3.s3.dualstack.eu-west-3.amazonaws.com",
                ),
                black_box(DIGEST),
            )
        })
    });
    g.finish();
}

criterion_group!(hot_paths, routes, classification, locations);
criterion_main!(hot_paths);
