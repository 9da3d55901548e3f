//! Real TCP clients across two network namespaces joined by veth, the
//! classifier attached on the server side with the real feeds loaded.
//!
//! Needs root. The namespaces (and with them the veth pair) are removed
//! when the guards drop, also when an assertion fails.

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use steer_tests::{
    addrs::{AWS_CLASS, AWS4, AWS6, GCP_CLASS, GCP4, SERVER4, SERVER6, UNLISTED4, UNLISTED6},
    load_or_skip,
    netns::{Netns, veth},
    real_feeds, real_table, tcp,
};
use steer_user::{
    AttachMode, Class, FlowClass, RangeTable,
    feeds::{Feed, FeedEntry},
};

const PORT: u16 = 5000;

/// (client source address, expected class) for every connection made.
const CASES: [(&str, &str); 5] = [
    (AWS4, AWS_CLASS),
    (AWS6, AWS_CLASS),
    (GCP4, GCP_CLASS),
    (UNLISTED4, "unknown"),
    (UNLISTED6, "unknown"),
];

fn name(table: &RangeTable, flow: Option<FlowClass>) -> String {
    match flow {
        None => "no flow entry".to_owned(),
        Some(f) => table
            .class(f.class)
            .map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
    }
}

/// Connects from `src` to the server, sends one byte, waits for the echo.
fn connect_from(src: &str) {
    let server: IpAddr = if src.contains(':') { SERVER6 } else { SERVER4 }
        .parse()
        .unwrap();
    let mut stream = tcp::connect_from(
        Some(src),
        SocketAddr::new(server, PORT),
        Duration::from_secs(5),
    );
    stream.write_all(b"x").unwrap();
    let mut buf = [0u8; 1];
    stream.read_exact(&mut buf).expect("echo from server");
}

fn classify_across_namespaces(mode: AttachMode, test: &str) {
    let Some(mut steer) = load_or_skip(test) else {
        return;
    };
    let table = real_table();
    steer.load_table(table.clone()).expect("load real table");
    steer.set_service_ports(&[PORT]).expect("service port");

    let srv = Netns::new("srv");
    let cli = Netns::new("cli");
    let clients: Vec<&str> = CASES.iter().map(|(a, _)| *a).collect();
    veth(
        &srv,
        "steer-s",
        &[SERVER4, SERVER6],
        &cli,
        "steer-c",
        &clients,
    );

    let (ready_tx, ready_rx) = mpsc::channel();
    let server = srv.spawn(move || {
        steer.attach("steer-s", mode).expect("attach XDP");
        let listeners = [SERVER4, SERVER6].map(|a| {
            let l = TcpListener::bind((a.parse::<IpAddr>().unwrap(), PORT)).expect("listen");
            l.set_nonblocking(false).unwrap();
            l
        });
        ready_tx.send(()).unwrap();
        let mut seen = Vec::new();
        for (src, _) in CASES {
            let l = &listeners[usize::from(src.contains(':'))];
            let (mut conn, peer) = l.accept().expect("accept");
            // The class is read once, right after accept, from the peer.
            seen.push((peer, steer.flow_class(peer, PORT)));
            let mut b = [0u8; 1];
            conn.read_exact(&mut b).unwrap();
            conn.write_all(&b).unwrap();
        }
        let counters = steer.class_counters().unwrap();
        (steer, table, seen, counters)
    });

    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server ready");
    let attached = srv.ip_output(&["link", "show", "dev", "steer-s"]);
    assert!(
        attached.contains("xdp"),
        "XDP not shown on the link: {attached}"
    );
    let client = cli.spawn(move || {
        for (src, _) in CASES {
            connect_from(src);
        }
    });
    client.join().expect("client thread");
    let (steer, table, seen, counters) = server.join().expect("server thread");

    for ((src, want), (peer, class)) in CASES.iter().zip(&seen) {
        assert_eq!(peer.ip(), src.parse::<IpAddr>().unwrap(), "accept order");
        assert_eq!(
            name(&table, *class),
            *want,
            "class read after accept for {peer}"
        );
    }
    let eu = Class {
        provider: "aws".into(),
        region: "eu-west-3".into(),
    };
    assert!(
        counters[&eu].syns >= 2,
        "eu-west-3 SYN counter: {:?}",
        counters[&eu]
    );
    assert!(
        counters[&Class::unknown()].syns >= 2,
        "unknown SYN counter: {:?}",
        counters[&Class::unknown()]
    );

    drop(steer);
    let detached = srv.ip_output(&["link", "show", "dev", "steer-s"]);
    assert!(
        !detached.contains("xdp"),
        "XDP still attached after drop: {detached}"
    );
}

#[test]
fn native_xdp_classifies_real_clients() {
    classify_across_namespaces(AttachMode::Native, "native_xdp_classifies_real_clients");
}

#[test]
fn generic_xdp_classifies_real_clients() {
    classify_across_namespaces(AttachMode::Generic, "generic_xdp_classifies_real_clients");
}

/// Reloads back to back while a client keeps connecting: the swap between
/// generations never lets a SYN read unknown, and no connection fails.
/// The two tables give the client's address different class ids.
#[test]
fn reloads_under_traffic_never_read_unknown() {
    let Some(mut steer) = load_or_skip("reloads_under_traffic_never_read_unknown") else {
        return;
    };
    let a = real_table();
    let mut feeds = real_feeds();
    feeds.insert(
        0,
        Feed {
            name: "custom",
            created: String::new(),
            entries: vec![FeedEntry {
                prefix: "198.18.0.0/15".parse().unwrap(),
                provider: "aaa".into(),
                region: "first".into(),
                service: String::new(),
            }],
        },
    );
    let b = Arc::new(RangeTable::compile(&feeds));
    assert_ne!(
        a.class_id("aws", "eu-west-3"),
        b.class_id("aws", "eu-west-3"),
        "the tables must number the class differently"
    );
    steer.load_table(a.clone()).unwrap();
    steer.set_service_ports(&[PORT]).unwrap();

    let srv = Netns::new("reload-s");
    let cli = Netns::new("reload-c");
    veth(&srv, "steer-ls", &[SERVER4], &cli, "steer-lc", &[AWS4]);
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = {
        let stop = stop.clone();
        srv.spawn(move || {
            steer
                .attach("steer-ls", AttachMode::Native)
                .expect("attach");
            let listener = TcpListener::bind((SERVER4, PORT)).expect("listen");
            listener.set_nonblocking(true).unwrap();
            if ready_tx.send(steer).is_err() {
                panic!("the test thread is gone");
            }
            let mut accepted = 0u64;
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut b = [0u8; 1];
                        conn.read_exact(&mut b).unwrap();
                        conn.write_all(&b).unwrap();
                        accepted += 1;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
            accepted
        })
    };
    let mut steer = ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server");

    let client = {
        let stop = stop.clone();
        cli.spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(3);
            let mut made = 0u64;
            while made < 3000 && Instant::now() < deadline {
                connect_from(AWS4);
                made += 1;
            }
            stop.store(true, Ordering::SeqCst);
            made
        })
    };
    let mut reloads = 0u32;
    while !stop.load(Ordering::SeqCst) && reloads < 400 {
        let next = if reloads.is_multiple_of(2) { &b } else { &a };
        steer.load_table(next.clone()).expect("reload");
        reloads += 1;
    }
    let made = client.join().expect("client");
    let accepted = server.join().expect("server");
    assert_eq!(made, accepted);
    assert!(
        reloads >= 10 && made >= 100,
        "{reloads} reloads, {made} connections"
    );

    let counters = steer.class_counters().unwrap();
    let unknown = counters[&Class::unknown()].syns;
    let eu = counters[&Class {
        provider: "aws".into(),
        region: "eu-west-3".into(),
    }]
        .syns;
    assert_eq!(unknown, 0, "a SYN read unknown during a swap");
    // Retransmitted SYNs count too, so at least one per connection.
    assert!(eu >= made, "{eu} SYNs counted for {made} connections");
}
