//! The XDP program's packet table, run through BPF_PROG_TEST_RUN.
//!
//! Needs root (CAP_BPF). Each row: a packet built from named parts, the
//! expected verdict, outcome counter, class and flow-map entry. A new case
//! is a new row.

use std::net::SocketAddr;

use steer_tests::{
    addrs::{AWS_CLASS, AWS4, AWS6, GCP_CLASS, GCP4, SERVER4, SERVER6, UNLISTED4, UNLISTED6},
    load_or_skip,
    packet::{self, Frame, L4},
    real_feeds,
};
use steer_user::{
    ClassCounters, Outcome, Policy, RangeTable, Steer,
    feeds::{Feed, FeedEntry},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const SERVICE_PORT: u16 = 5000;
const OTHER_PORT: u16 = 22;
/// In a test-only class whose policy is drop.
const BLOCKED4: &str = "198.18.0.1";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Class {
    /// Classified, to this provider/region ("unknown" for class 0).
    Is(&'static str),
    /// Not classified: no class counter moves, no flow is recorded.
    None,
}

struct Row {
    name: String,
    packet: Vec<u8>,
    /// Flow-map lookup for this packet, where it has one.
    flow: Option<(SocketAddr, u16)>,
    verdict: u32,
    outcome: Outcome,
    class: Class,
}

fn row(name: &str, frame: &Frame, verdict: u32, outcome: Outcome, class: Class) -> Row {
    let flow = match frame.l4 {
        L4::Tcp {
            src_port, dst_port, ..
        } => Some((SocketAddr::new(frame.src, src_port), dst_port)),
        _ => None,
    };
    Row {
        name: name.to_owned(),
        packet: frame.bytes(),
        flow,
        verdict,
        outcome,
        class,
    }
}

fn classified(name: &str, frame: Frame, class: &'static str) -> Row {
    row(
        name,
        &frame,
        XDP_PASS,
        Outcome::Classified,
        Class::Is(class),
    )
}

fn passed(name: &str, frame: Frame, outcome: Outcome) -> Row {
    row(name, &frame, XDP_PASS, outcome, Class::None)
}

fn rows() -> Vec<Row> {
    use Outcome::*;
    use packet::*;
    let eu = AWS_CLASS;
    let syn4 = || Frame::syn(AWS4, SERVER4, SERVICE_PORT);
    let syn6 = || Frame::syn(AWS6, SERVER6, SERVICE_PORT);
    let four_ext = || {
        syn6()
            .ipv6_ext(IPV6_HOPOPTS, 8)
            .ipv6_ext(IPV6_DSTOPTS, 8)
            .ipv6_ext(IPV6_ROUTING, 8)
            .ipv6_ext(IPV6_DSTOPTS, 8)
    };
    let mut rows = vec![
        classified("ipv4 SYN from AWS eu-west-3", syn4(), eu),
        classified(
            "ipv4 SYN from GCP",
            Frame::syn(GCP4, SERVER4, SERVICE_PORT),
            GCP_CLASS,
        ),
        classified(
            "ipv4 SYN from an unlisted address",
            Frame::syn(UNLISTED4, SERVER4, SERVICE_PORT),
            "unknown",
        ),
        classified("ipv4 SYN with payload", syn4().payload(100), eu),
        classified("ipv6 SYN from AWS eu-west-3", syn6(), eu),
        classified(
            "ipv6 SYN from an unlisted address",
            Frame::syn(UNLISTED6, SERVER6, SERVICE_PORT),
            "unknown",
        ),
        classified("ipv4 options, IHL 6", syn4().ipv4_options(1), eu),
        classified(
            "ipv4 options, IHL 15 (maximum)",
            syn4().ipv4_options(10),
            eu,
        ),
        classified("802.1Q tag", syn4().vlan(ETH_P_8021Q), eu),
        classified(
            "802.1ad + 802.1Q tags",
            syn4().vlan(ETH_P_8021AD).vlan(ETH_P_8021Q),
            eu,
        ),
        classified(
            "ipv6 behind two tags",
            syn6().vlan(ETH_P_8021AD).vlan(ETH_P_8021Q),
            eu,
        ),
        passed(
            "three VLAN tags",
            syn4()
                .vlan(ETH_P_8021AD)
                .vlan(ETH_P_8021Q)
                .vlan(ETH_P_8021Q),
            Unfollowed,
        ),
        classified(
            "ipv4 first fragment (MF set, offset 0)",
            syn4().ipv4_frag(0x2000),
            eu,
        ),
        classified("ipv4 don't-fragment flag", syn4().ipv4_frag(0x4000), eu),
        passed(
            "ipv4 non-first fragment",
            syn4().ipv4_frag(0x2000 | 185),
            Fragment,
        ),
        passed("ipv4 last fragment", syn4().ipv4_frag(3), Fragment),
        classified("ipv6 hop-by-hop", syn6().ipv6_ext(IPV6_HOPOPTS, 8), eu),
        classified(
            "ipv6 hop-by-hop, routing, destination options",
            syn6()
                .ipv6_ext(IPV6_HOPOPTS, 8)
                .ipv6_ext(IPV6_ROUTING, 24)
                .ipv6_ext(IPV6_DSTOPTS, 16),
            eu,
        ),
        classified(
            "ipv6 long destination options (2 KiB)",
            syn6().ipv6_ext(IPV6_DSTOPTS, 2048),
            eu,
        ),
        classified(
            "ipv6 first fragment",
            syn6().ipv6_ext(IPV6_FRAGMENT, 0x0001),
            eu,
        ),
        passed(
            "ipv6 non-first fragment",
            syn6().ipv6_ext(IPV6_FRAGMENT, 185 << 3),
            Fragment,
        ),
        classified("ipv6 four extension headers (the limit)", four_ext(), eu),
        passed(
            "ipv6 five extension headers",
            four_ext().ipv6_ext(IPV6_DSTOPTS, 8),
            Unfollowed,
        ),
        passed(
            "ipv6 authentication header",
            syn6().ipv6_ext(IPV6_AH, 16),
            Unfollowed,
        ),
        passed(
            "udp",
            syn4().with_l4(L4::Udp {
                src_port: 5353,
                dst_port: SERVICE_PORT,
            }),
            NotTcp,
        ),
        passed("icmp", syn4().with_l4(L4::Icmp), NotTcp),
        passed("icmpv6", syn6().with_l4(L4::Icmp), NotTcp),
        passed(
            "ack",
            Frame::tcp(AWS4, 40001, SERVER4, SERVICE_PORT, TCP_ACK),
            NotSyn,
        ),
        passed(
            "syn+ack",
            Frame::tcp(AWS4, 40002, SERVER4, SERVICE_PORT, TCP_SYN | TCP_ACK),
            NotSyn,
        ),
        passed(
            "fin+ack",
            Frame::tcp(AWS4, 40003, SERVER4, SERVICE_PORT, TCP_FIN | TCP_ACK),
            NotSyn,
        ),
        passed(
            "rst",
            Frame::tcp(AWS4, 40004, SERVER4, SERVICE_PORT, TCP_RST),
            NotSyn,
        ),
        passed(
            "ipv6 ack",
            Frame::tcp(AWS6, 40005, SERVER6, SERVICE_PORT, TCP_ACK),
            NotSyn,
        ),
        passed(
            "syn to another port",
            Frame::syn(AWS4, SERVER4, OTHER_PORT),
            OtherPort,
        ),
        passed(
            "ipv6 syn to another port",
            Frame::syn(AWS6, SERVER6, OTHER_PORT),
            OtherPort,
        ),
        passed("ipv4 version 5", syn4().ipv4_first_byte(0x55), Malformed),
        passed("ipv4 IHL 4", syn4().ipv4_first_byte(0x44), Malformed),
        passed(
            "tcp data offset 4",
            syn4().with_l4(L4::Tcp {
                src_port: 40006,
                dst_port: SERVICE_PORT,
                flags: TCP_SYN,
                data_offset: 4,
            }),
            Malformed,
        ),
        row(
            "SYN from a class with policy drop",
            &Frame::syn(BLOCKED4, SERVER4, SERVICE_PORT),
            XDP_DROP,
            Dropped,
            Class::Is("test/blocked"),
        ),
    ];
    rows.push(Row {
        name: "arp".into(),
        packet: packet::arp(),
        flow: None,
        verdict: XDP_PASS,
        outcome: NotIp,
        class: Class::None,
    });

    // Truncated at and just before every header boundary.
    let shapes = [
        ("ipv4 syn", syn4()),
        (
            "ipv4 syn with options behind two tags",
            syn4().ipv4_options(3).vlan(ETH_P_8021AD).vlan(ETH_P_8021Q),
        ),
        (
            "ipv6 syn with extensions",
            syn6()
                .ipv6_ext(IPV6_HOPOPTS, 8)
                .ipv6_ext(IPV6_FRAGMENT, 1)
                .vlan(ETH_P_8021Q),
        ),
    ];
    for (shape, frame) in shapes {
        let full = frame.bytes();
        for (header, end) in frame.header_ends() {
            for cut in [end - 1, end] {
                // The kernel refuses test runs shorter than an Ethernet
                // header, and the full frame is a complete SYN.
                if cut < 14 || cut >= full.len() {
                    continue;
                }
                rows.push(Row {
                    name: format!("{shape}: cut to {cut} bytes (around {header} end at {end})"),
                    packet: full[..cut].to_vec(),
                    flow: None,
                    verdict: XDP_PASS,
                    outcome: Malformed,
                    class: Class::None,
                });
            }
        }
    }

    // Every row gets its own client port, so a flow entry can only come
    // from its own packet.
    for (i, r) in rows.iter_mut().enumerate() {
        if let Some((peer, dport)) = r.flow {
            let port = 41000 + i as u16;
            if let Some(at) = tcp_offset_by_walk(&r.packet).filter(|&o| o + 20 <= r.packet.len()) {
                r.packet[at..at + 2].copy_from_slice(&port.to_be_bytes());
                r.flow = Some((SocketAddr::new(peer.ip(), port), dport));
            }
        }
    }
    rows
}

/// Offset of the TCP header in a frame the builder made, walking the same
/// headers it writes; None for frames without one.
fn tcp_offset_by_walk(p: &[u8]) -> Option<usize> {
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes([p[off], p[off + 1]]);
    off += 2;
    while ethertype == packet::ETH_P_8021Q || ethertype == packet::ETH_P_8021AD {
        ethertype = u16::from_be_bytes([p[off + 2], p[off + 3]]);
        off += 4;
    }
    match ethertype {
        packet::ETH_P_IPV4 => {
            let ihl = usize::from(p[off] & 0x0f) * 4;
            (p[off + 9] == 6 && ihl >= 20).then_some(off + ihl)
        }
        packet::ETH_P_IPV6 => {
            let mut next = p[off + 6];
            off += 40;
            loop {
                match next {
                    6 => return Some(off),
                    0 | 43 | 60 => {
                        next = p[off];
                        off += (usize::from(p[off + 1]) + 1) * 8;
                    }
                    44 => {
                        next = p[off];
                        off += 8;
                    }
                    _ => return None,
                }
            }
        }
        _ => None,
    }
}

/// The real feeds plus a test-only class that the policy drops.
fn table() -> RangeTable {
    let mut feeds = real_feeds();
    let blocked = Feed {
        name: "test",
        created: "now".into(),
        entries: vec![FeedEntry {
            prefix: "198.18.0.0/15".parse().unwrap(),
            provider: "test".into(),
            region: "blocked".into(),
            service: "test".into(),
        }],
    };
    feeds.push(blocked);
    RangeTable::compile(&feeds)
}

fn class_name(table: &RangeTable, id: u32) -> String {
    table
        .class(id)
        .map_or_else(|| "unknown".to_owned(), |c| c.to_string())
}

type Counters = (
    Vec<(Outcome, steer_user::PacketCounters)>,
    Vec<(String, ClassCounters)>,
);

fn snapshot(steer: &Steer) -> Counters {
    let outcomes = steer.outcome_counters().expect("outcome counters");
    let classes = steer
        .class_counters()
        .expect("class counters")
        .into_iter()
        .map(|(c, n)| (c.to_string(), n))
        .collect();
    (outcomes, classes)
}

#[test]
fn packet_table() {
    let Some(mut steer) = load_or_skip("packet_table") else {
        return;
    };
    let table = std::sync::Arc::new(table());
    steer.load_table(table.clone()).expect("load table");
    steer
        .set_service_ports(&[SERVICE_PORT, 443])
        .expect("service ports");
    let blocked = table.class_id("test", "blocked").expect("blocked class");
    let blocked = table.class(blocked).unwrap();
    steer.set_policy(blocked, Policy::DROP).expect("policy");

    let mut failures = Vec::new();
    let rows = rows();
    assert!(rows.len() > 60, "the table lost rows: {}", rows.len());
    for r in &rows {
        let (out_before, cls_before) = snapshot(&steer);
        let verdict = steer
            .run_packet(&r.packet)
            .unwrap_or_else(|e| panic!("{}: test run: {e}", r.name));
        let (out_after, cls_after) = snapshot(&steer);
        let mut problems = Vec::new();

        if verdict != r.verdict {
            problems.push(format!("verdict {verdict}, expected {}", r.verdict));
        }
        for ((o, before), (_, after)) in out_before.iter().zip(&out_after) {
            let (dp, db) = (after.packets - before.packets, after.bytes - before.bytes);
            let want = if *o == r.outcome {
                (1, r.packet.len() as u64)
            } else {
                (0, 0)
            };
            if (dp, db) != want {
                problems.push(format!(
                    "outcome {}: +{dp} packets +{db} bytes, expected +{} +{}",
                    o.name(),
                    want.0,
                    want.1
                ));
            }
        }
        assert_eq!(cls_before.len(), cls_after.len(), "the class set changed");
        for ((name, before), (_, after)) in cls_before.iter().zip(&cls_after) {
            let delta = (
                after.syns - before.syns,
                after.bytes - before.bytes,
                after.dropped - before.dropped,
            );
            let want = match r.class {
                Class::Is(c) if c == name.as_str() => {
                    (1, r.packet.len() as u64, u64::from(r.verdict == XDP_DROP))
                }
                _ => (0, 0, 0),
            };
            if delta != want {
                problems.push(format!(
                    "class {name}: (syns, bytes, dropped) +{delta:?}, expected +{want:?}"
                ));
            }
        }
        if let Some((peer, port)) = r.flow {
            let got = steer.flow_class(peer, port);
            let want = match r.class {
                Class::Is(_) if r.verdict == XDP_DROP => None,
                Class::Is(c) => Some(c.to_owned()),
                Class::None => None,
            };
            let got_name = got.map(|f| {
                assert_eq!(f.generation, steer.generation(), "{}: generation", r.name);
                class_name(&table, f.class)
            });
            if got_name != want {
                problems.push(format!(
                    "flow {peer} -> :{port}: {got_name:?}, expected {want:?}"
                ));
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{}:\n    {}", r.name, problems.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n  {}",
        failures.len(),
        rows.len(),
        failures.join("\n  ")
    );
}

#[test]
fn kernel_refuses_frames_shorter_than_ethernet() {
    let Some(mut steer) = load_or_skip("kernel_refuses_frames_shorter_than_ethernet") else {
        return;
    };
    // Documented kernel behaviour (bpf_prog_test_run_xdp): such frames
    // never reach the program, so the table starts at 14 bytes.
    assert!(steer.run_packet(&[0u8; 13]).is_err());
}

#[test]
fn the_bench_baseline_loads_and_runs() {
    // The bare program `bench xdp` measures against; CI does not run the
    // bench, so this keeps the program loadable.
    if load_or_skip("the_bench_baseline_loads_and_runs").is_none() {
        return;
    }
    let mut baseline = steer_user::xdp::Baseline::load().expect("baseline loads");
    let frame = Frame::syn(UNLISTED4, SERVER4, 80).bytes();
    baseline.time_packet(&frame, 10).expect("baseline runs");
}
