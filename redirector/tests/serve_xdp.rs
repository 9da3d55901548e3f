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

    // The connection held across the policy change waits idle.
    let launch = Launch::serve_xdp(
        env!("CARGO_BIN_EXE_redirector").as_ref(),
        &config,
        "steer-xs",
        "generic",
        None,
        dir.path(),
        &["--handshake-timeout", "60s"],
    );
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
    // A connection made before the policy stays up through it: only SYNs
    // read the policy.
    let mut live = cli
        .spawn(move || steer_tests::tcp::connect_from(Some(AWS4), server, Duration::from_secs(10)))
        .join()
        .unwrap();
    policy("\"aws/eu-west-3\"");
    until(false);
    assert!(connects(UNLISTED4), "another class was dropped too");
    {
        use std::io::{Read as _, Write as _};
        write!(
            live,
            "GET /v2/pause/blobs/{D} HTTP/1.1\r\nHost: steer.test\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = live.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 307"),
            "a connection made before the drop policy: {answer:?}"
        );
    }
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

/// A TcpExt counter of the namespace, from /proc/net/netstat.
fn tcp_ext(ns: &Netns, name: &str) -> u64 {
    let out = ns.command("cat").arg("/proc/net/netstat").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no TcpExt {name}"))
}

#[test]
fn a_syn_flood_from_one_source_is_dropped_in_xdp_while_others_are_served() {
    if !root_or_skip("a_syn_flood_from_one_source_is_dropped_in_xdp_while_others_are_served") {
        return;
    }
    const FLOOD: u16 = 3000;
    const CLIENTS: [&str; 2] = [UNLISTED4, "198.51.100.8"];
    let srv = Netns::new("flood-s");
    let cli = Netns::new("flood-c");
    veth(
        &srv,
        "steer-fs",
        &[SERVER4],
        &cli,
        "steer-fc",
        &[AWS4, CLIENTS[0], CLIENTS[1]],
    );
    let dir = tempfile::tempdir().unwrap();
    let pins = steer_tests::PinDir::new("flood");
    let config = dir.path().join("steer.toml");
    // Every source: 20 SYNs at once, then 50 a second.
    std::fs::write(
        &config,
        "[upstream]\nregistry = \"http://192.0.2.99\"\n\n[policy]\nsyn_rate = { default = \"50/s\" }\nsyn_burst = { default = 20 }\n",
    )
    .unwrap();
    let launch = Launch::serve_xdp(
        env!("CARGO_BIN_EXE_redirector").as_ref(),
        &config,
        "steer-fs",
        "native",
        Some(pins.path()),
        dir.path(),
        &[],
    );
    let running = Redirector::start(Some(&srv), &launch);
    let admin = running.admin;
    let server: SocketAddr = (SERVER4.parse::<IpAddr>().unwrap(), 8080).into();
    let frames = steer_tests::flood::syns(
        AWS4,
        SERVER4,
        8080,
        FLOOD,
        steer_tests::flood::mac_of(&cli, "steer-fc"),
        steer_tests::flood::mac_of(&srv, "steer-fs"),
    );
    let drops_before = tcp_ext(&srv, "ListenDrops");
    let started = Instant::now();
    // The flood and ten real requests from each other source, at once.
    let (sent, answers) = std::thread::scope(|s| {
        let flood = cli.spawn(move || steer_tests::flood::send("steer-fc", &frames));
        let answers: Vec<String> = CLIENTS
            .iter()
            .flat_map(|c| std::iter::repeat_n(*c, 10))
            .map(|c| {
                let path = format!("/v2/pause/blobs/{D}");
                let cli = &cli;
                s.spawn(move || {
                    cli.spawn(move || http_get(Some(c), server, &path))
                        .join()
                        .unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        (flood.join().unwrap().expect("sending the flood"), answers)
    });
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(sent, FLOOD as usize, "frames the kernel took");
    for a in &answers {
        assert!(
            a.starts_with("HTTP/1.1 307"),
            "a real client was not served: {a}"
        );
    }
    // Wait for the counters to show every flood SYN (XDP counts on
    // arrival; the veth may still be delivering).
    let series = |m: &str, name: &str| {
        m.lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{name}{{provider=\"aws\",region=\"eu-west-3\"}} "))
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .unwrap_or(0.0) as u64
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let m = srv
            .spawn(move || http_get(None, admin, "/metrics"))
            .join()
            .unwrap();
        if series(&m, "steer_xdp_syns_total") >= FLOOD as u64 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let syns = series(&metrics, "steer_xdp_syns_total");
    let limited = series(&metrics, "steer_xdp_rate_limited_syns_total");
    assert_eq!(syns, FLOOD as u64, "{metrics}");
    // What passed is the burst plus the refill while the flood ran.
    let allowed = 20 + (50.0 * (elapsed + 1.0)) as u64;
    assert!(
        syns - limited <= allowed,
        "{} of {syns} flood SYNs passed in {elapsed:.2} s, more than {allowed}",
        syns - limited
    );
    assert_eq!(
        series(&metrics, "steer_xdp_dropped_syns_total"),
        limited,
        "every drop was a rate-limit drop"
    );
    // The few that passed never filled the listener's backlog.
    assert_eq!(tcp_ext(&srv, "ListenDrops"), drops_before, "listen drops");
    for want in [
        r#"steer_limit_per_second{kind="syn",class="default"} 50"#,
        r#"steer_limit_burst{kind="syn",class="default"} 20"#,
    ] {
        assert!(metrics.contains(want), "no {want} in\n{metrics}");
    }
    // explain --kernel reads the policy in force and the class's counts
    // from the pinned maps.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_redirector"))
        .args([
            "explain",
            "--kernel",
            "--snapshot",
            "/nonexistent/x",
            "--pin-dir",
        ])
        .arg(pins.path())
        .arg("--config")
        .arg(&config)
        .arg(AWS4)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            "policy   SYNs: 50/s per source, 20 at once; XDP drops the rest ([policy] syn_rate)"
        ),
        "{text}"
    );
    let want = format!(
        "kernel   policy 50/s per source, 20 at once; {syns} SYNs, {limited} dropped ({limited} over the limit)"
    );
    assert!(text.contains(&want), "no `{want}` in\n{text}");
    drop(running);
}
