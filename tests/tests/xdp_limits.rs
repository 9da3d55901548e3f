//! Per-source SYN limits in the XDP program, through BPF_PROG_TEST_RUN.
//!
//! Needs root (CAP_BPF). Steps run in order against one loaded program,
//! because buckets carry state from one SYN to the next: each names a
//! packet, the verdict, and how the class counters move. A burst from one
//! source passes its first N and drops the rest; another source, another
//! /64 and an unlimited class are untouched; non-SYN packets are never
//! limited; tokens refill; a table reload keeps limits and buckets.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use steer_tests::{
    addrs::{SERVER4, SERVER6},
    load_or_skip,
    packet::{Frame, TCP_ACK},
};
use steer_user::{
    Class, Outcome, Policy, RangeTable, Steer,
    feeds::{Feed, FeedEntry},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const PORT: u16 = 443;

fn table() -> RangeTable {
    let entry = |prefix: &str, region: &str| FeedEntry {
        prefix: prefix.parse().unwrap(),
        provider: "lab".into(),
        region: region.into(),
        service: "test".into(),
    };
    RangeTable::compile(&[Feed {
        name: "lab",
        created: "now".into(),
        entries: vec![
            entry("10.1.0.0/16", "limited"),
            entry("2001:db8:1::/48", "limited"),
            entry("10.2.0.0/16", "slow"),
            entry("10.3.0.0/16", "free"),
        ],
    }])
}

fn class(name: &str) -> Class {
    if name == "unknown" {
        return Class::unknown();
    }
    let (provider, region) = name.split_once('/').unwrap();
    Class {
        provider: provider.into(),
        region: region.into(),
    }
}

/// One packet and what it must do: the verdict, and whether its class
/// counts it as rate-limited.
struct Step {
    name: &'static str,
    frame: Frame,
    class: &'static str,
    verdict: u32,
    /// 1 for a SYN: the class counts it.
    syns: u64,
}

fn syn(name: &'static str, src: &str, class: &'static str, verdict: u32) -> Step {
    let dst = if src.contains(':') { SERVER6 } else { SERVER4 };
    Step {
        name,
        frame: Frame::syn(src, dst, PORT),
        class,
        verdict,
        syns: 1,
    }
}

fn run(steer: &mut Steer, steps: &[Step]) -> Vec<String> {
    let mut problems = Vec::new();
    for s in steps {
        let before = steer.class_counters().unwrap();
        let outcomes_before = steer.outcome_counters().unwrap();
        let verdict = steer.run_packet(&s.frame.bytes()).unwrap();
        let after = steer.class_counters().unwrap();
        let outcomes_after = steer.outcome_counters().unwrap();
        if verdict != s.verdict {
            problems.push(format!(
                "{}: verdict {verdict}, expected {}",
                s.name, s.verdict
            ));
        }
        let limited = u64::from(s.verdict == XDP_DROP);
        let c = class(s.class);
        let get =
            |m: &BTreeMap<Class, steer_user::ClassCounters>| m.get(&c).copied().unwrap_or_default();
        let (b, a) = (get(&before), get(&after));
        let syn = s.syns;
        let delta = (
            a.syns - b.syns,
            a.dropped - b.dropped,
            a.rate_limited - b.rate_limited,
        );
        if delta != (syn, limited, limited) {
            problems.push(format!(
                "{}: {} (syns, dropped, rate_limited) +{delta:?}, expected +{:?}",
                s.name,
                s.class,
                (syn, limited, limited)
            ));
        }
        let moved = |o: Outcome| {
            let n = |v: &[(Outcome, steer_user::PacketCounters)]| {
                v.iter()
                    .find(|(x, _)| *x == o)
                    .map_or(0, |(_, c)| c.packets)
            };
            n(&outcomes_after) - n(&outcomes_before)
        };
        if moved(Outcome::RateLimited) != limited {
            problems.push(format!(
                "{}: rate_limited outcome moved by {}",
                s.name,
                moved(Outcome::RateLimited)
            ));
        }
    }
    problems
}

#[test]
fn syn_limits_per_source() {
    let Some(mut steer) = load_or_skip("syn_limits_per_source") else {
        return;
    };
    steer.load_table(Arc::new(table())).unwrap();
    steer.set_service_ports(&[PORT]).unwrap();
    // Default: 3 at once, one a second. lab/slow: 1 at once, 20 a second.
    let default = Policy::limit(1_000, 3);
    let policies = BTreeMap::from([
        (class("lab/slow"), Policy::limit(20_000, 1)),
        (class("lab/free"), Policy::PASS),
    ]);
    steer.set_policies(default, policies.clone()).unwrap();

    let (p, d) = (XDP_PASS, XDP_DROP);
    let ack = Step {
        name: "an ACK from the limited source is never limited",
        frame: Frame::tcp("10.1.0.1", 40000, SERVER4, PORT, TCP_ACK),
        class: "lab/limited",
        verdict: p,
        syns: 0,
    };
    let mut steps = vec![
        syn("burst 1", "10.1.0.1", "lab/limited", p),
        syn("burst 2", "10.1.0.1", "lab/limited", p),
        syn("burst 3", "10.1.0.1", "lab/limited", p),
        syn("burst 4: over", "10.1.0.1", "lab/limited", d),
        syn("burst 5: over", "10.1.0.1", "lab/limited", d),
        ack,
        syn("another source in the class", "10.1.0.2", "lab/limited", p),
        syn("an IPv6 source", "2001:db8:1:0:0:0:0:1", "lab/limited", p),
        syn("the same /64", "2001:db8:1:0:ffff:0:0:2", "lab/limited", p),
        syn("the same /64 again", "2001:db8:1:0:1::3", "lab/limited", p),
        syn("the same /64: over", "2001:db8:1:0::4", "lab/limited", d),
        syn("another /64", "2001:db8:1:1::1", "lab/limited", p),
        syn("slow 1", "10.2.0.1", "lab/slow", p),
        syn("slow 2: over", "10.2.0.1", "lab/slow", d),
        syn("unknown takes the default", "192.0.2.99", "unknown", p),
    ];
    for _ in 0..10 {
        steps.push(syn("an unlimited class", "10.3.0.1", "lab/free", p));
    }
    let mut problems = run(&mut steer, &steps);

    // 20 a second is a token every 50 ms: after 150 ms at least one, and
    // the bucket holds one at most.
    std::thread::sleep(Duration::from_millis(150));
    problems.extend(run(
        &mut steer,
        &[
            syn("slow, refilled", "10.2.0.1", "lab/slow", p),
            syn("slow, refilled: over", "10.2.0.1", "lab/slow", d),
        ],
    ));

    // A reload renumbers nothing here but switches generations: the
    // limits follow, and the buckets are the same.
    steer.load_table(Arc::new(table())).unwrap();
    assert_eq!(
        steer.policy_of(&class("lab/slow")),
        Policy::limit(20_000, 1)
    );
    assert_eq!(steer.policy_of(&class("lab/limited")), default);
    problems.extend(run(
        &mut steer,
        &[
            syn("after a reload, still over", "10.1.0.1", "lab/limited", d),
            syn(
                "after a reload, another source",
                "10.1.0.9",
                "lab/limited",
                p,
            ),
        ],
    ));

    // Lifting every limit (the config's are removed) passes at once.
    steer.set_policies(Policy::PASS, BTreeMap::new()).unwrap();
    problems.extend(run(
        &mut steer,
        &[syn("limits lifted", "10.1.0.1", "lab/limited", p)],
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
