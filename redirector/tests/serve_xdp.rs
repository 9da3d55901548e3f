//! `redirector serve` with XDP attached, across network namespaces: a
//! client from a real AWS address gets its blob from the backend of its
//! region, and the metrics show that XDP's record of the SYN answered,
//! not a userspace search; a `[policy] drop` in the config file drops the
//! class's SYNs in the kernel after SIGHUP, and passes them once removed.
//! Needs root. Every address here exists only
//! inside the test's namespaces; the backend is a server in the
//! redirector's own namespace.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use steer_tests::{
    addrs::{AWS4, SERVER4, UNLISTED4},
    feed_server::FeedServer,
    launch::{Launch, Redirector},
    netns::{Netns, veth},
    process::root_or_skip,
    tcp::{http_get, try_connect_from},
};

const D: &str = "sha256:da86e6ba6ca197bf6bc5e9d900febd906b133eaa4750e6bed647b0fbe50ed43e";

#[test]
fn direct_clients_are_classified_by_xdp() {
    if !root_or_skip("direct_clients_are_classified_by_xdp") {
        return;
    }
    let srv = Netns::new("serve-s");
    let cli = Netns::new("serve-c");
    veth(
        &srv,
        "steer-xs",
        &[SERVER4],
        &cli,
        "steer-xc",
        &[AWS4, UNLISTED4],
    );

    // The backend lives in the redirector's namespace, on its loopback.
    let bucket = srv
        .spawn(|| {
            let b = FeedServer::start();
            b.set(&format!("paris/containers/images/{D}"), "blob", "");
            b
        })
        .join()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steer.toml");
    std::fs::write(
        &config,
        format!(
            "[upstream]\nregistry = \"http://192.0.2.99\"\n\n[[backend]]\nname = \"paris\"\nbase_url = \"{}\"\nserves = [\"aws/eu-west-3\"]\n\n[fallback]\nunknown = \"upstream\"\n",
            bucket.url("paris")
        ),
    )
    .unwrap();

    let launch = Launch {
        binary: env!("CARGO_BIN_EXE_redirector").into(),
        args: [
            "serve",
            "--listen",
            "192.0.2.1:8080",
            "--admin-listen",
            "127.0.0.1:0",
            "--xdp-iface",
            "steer-xs",
            "--xdp-mode",
            "generic",
            "--no-pin",
            "--snapshot",
            "/nonexistent/x",
            "--config",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([config.display().to_string()])
        .collect(),
        log: dir.path().join("redirector.log"),
        ..Launch::default()
    };
    let running = Redirector::start(Some(&srv), &launch);
    let admin = running.admin;
    let server: SocketAddr = (SERVER4.parse::<IpAddr>().unwrap(), 8080).into();

    let answers = cli
        .spawn(move || {
            [AWS4, UNLISTED4]
                .map(|src| http_get(Some(src), server, &format!("/v2/pause/blobs/{D}")))
        })
        .join()
        .unwrap();
    assert!(
        answers[0].contains(&format!(
            "location: {}/containers/images/{D}",
            bucket.url("paris")
        )),
        "{}",
        answers[0]
    );
    assert!(
        answers[1].contains(&format!(
            "location: http://192.0.2.99/v2/k8s-artifacts-prod/images/pause/blobs/{D}"
        )),
        "{}",
        answers[1]
    );

    let metrics = srv
        .spawn(move || http_get(None, admin, "/metrics"))
        .join()
        .unwrap();
    for want in [
        r#"steer_requests_total{route="blob",status="307",provider="aws",region="eu-west-3",backend="paris",source="xdp"} 1"#,
        r#"steer_requests_total{route="blob",status="307",provider="unknown",region="unknown",backend="upstream",source="xdp"} 1"#,
        // The kernel's own count of the two SYNs, one per class.
        r#"steer_xdp_syns_total{provider="aws",region="eu-west-3"} 1"#,
        r#"steer_xdp_syns_total{provider="unknown",region="unknown"} 1"#,
    ] {
        assert!(metrics.contains(want), "missing {want} in\n{metrics}");
    }

    // `[policy] drop` from the config file, applied on SIGHUP: the
    // class's SYNs are dropped in XDP; taken out again, they pass.
    let connects = |src: &'static str| {
        cli.spawn(move || try_connect_from(Some(src), server, Duration::from_millis(500)).is_ok())
            .join()
            .unwrap()
    };
    let policy = |drop: &str| {
        let text = std::fs::read_to_string(&config).unwrap();
        let base = text.split("[policy]").next().unwrap().to_owned();
        std::fs::write(&config, format!("{base}[policy]\ndrop = [{drop}]\n")).unwrap();
        running.signal(libc::SIGHUP);
    };
    let until = |want: bool| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while connects(AWS4) != want {
            assert!(Instant::now() < deadline, "policy never took effect");
        }
    };
    policy("\"aws/eu-west-3\"");
    until(false);
    assert!(connects(UNLISTED4), "another class was dropped too");
    let metrics = srv
        .spawn(move || http_get(None, admin, "/metrics"))
        .join()
        .unwrap();
    let dropped = r#"steer_xdp_dropped_syns_total{provider="aws",region="eu-west-3"} "#;
    assert!(
        metrics
            .lines()
            .any(|l| l.strip_prefix(dropped).is_some_and(|n| n != "0")),
        "{metrics}"
    );
    policy("");
    until(true);
    // Stopped from inside its namespace, where its wake-up can reach it.
    srv.spawn(move || drop(bucket)).join().unwrap();
}
