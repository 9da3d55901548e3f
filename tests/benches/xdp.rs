//! `cargo xtask bench xdp`: per-packet cost of the classifier through
//! BPF_PROG_TEST_RUN with all real prefixes loaded, against a bare program
//! that only returns XDP_PASS, measured in the same run.
//!
//! Each case runs right after a baseline run, over several rounds, so
//! machine noise hits both alike; the table shows the median per case and
//! the median of its per-pair ratios to the baseline. Needs root.

use std::{
    collections::BTreeMap,
    hint::black_box,
    net::SocketAddr,
    time::{Duration, Instant},
};

use steer_tests::{
    addrs::{AWS4, AWS6, SERVER4, SERVER6, UNLISTED4, UNLISTED6},
    packet::{Frame, L4, TCP_ACK},
    real_table,
};
use steer_user::{Classifier, MAX_SYN_RATE_MILLI, Policy, Steer, xdp::Baseline};

const SERVICE_PORT: u16 = 443;
const REPEAT: u32 = 200_000;
const ROUNDS: usize = 7;
const READS: u32 = 1_000_000;

struct Case {
    name: &'static str,
    packet: Vec<u8>,
    /// Goal as a multiple of the baseline (not a test: printed as met or not).
    goal: f64,
}

fn cases() -> Vec<Case> {
    let (aws, unlisted, server) = (AWS4, UNLISTED4, SERVER4);
    vec![
        Case {
            name: "non-TCP (UDP)",
            packet: Frame::syn(aws, server, SERVICE_PORT)
                .with_l4(L4::Udp {
                    src_port: 5353,
                    dst_port: SERVICE_PORT,
                })
                .bytes(),
            goal: 2.0,
        },
        Case {
            name: "TCP ACK to service port",
            packet: Frame::tcp(aws, 40000, server, SERVICE_PORT, TCP_ACK).bytes(),
            goal: 2.0,
        },
        Case {
            name: "SYN to another port",
            packet: Frame::syn(aws, server, 22).bytes(),
            goal: 8.0,
        },
        Case {
            name: "SYN from listed address (IPv4)",
            packet: Frame::syn(aws, server, SERVICE_PORT).bytes(),
            goal: 4.0,
        },
        Case {
            name: "SYN from unlisted address (IPv4)",
            packet: Frame::syn(unlisted, server, SERVICE_PORT).bytes(),
            goal: 3.0,
        },
        Case {
            name: "SYN from listed address (IPv6)",
            packet: Frame::syn(AWS6, SERVER6, SERVICE_PORT).bytes(),
            goal: 8.0,
        },
        Case {
            name: "SYN from unlisted address (IPv6)",
            packet: Frame::syn(UNLISTED6, SERVER6, SERVICE_PORT).bytes(),
            goal: 8.0,
        },
    ]
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

/// One measured case: its median, spread and median ratio to the
/// baseline it was paired with.
struct Row {
    name: String,
    median: Duration,
    min: Duration,
    max: Duration,
    ratio: f64,
    goal: Option<f64>,
}

/// Runs every case right after its own baseline run, so a burst of noise
/// from the shared machine hits the pair alike; the ratio is the median
/// of the per-pair ratios.
fn measure(
    steer: &mut Steer,
    baseline: &mut Baseline,
    baseline_packet: &[u8],
    cases: &[Case],
    base_times: &mut Vec<Duration>,
) -> anyhow::Result<Vec<Row>> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..ROUNDS {
        for (i, c) in cases.iter().enumerate() {
            let b = baseline.time_packet(baseline_packet, REPEAT)?;
            let t = steer.time_packet(&c.packet, REPEAT)?;
            base_times.push(b);
            times[i].push(t);
            ratios[i].push(ns(t) / ns(b).max(1.0));
        }
    }
    Ok(cases
        .iter()
        .zip(&mut times)
        .zip(&mut ratios)
        .map(|((c, t), r)| {
            let median = self::median(t);
            r.sort_unstable_by(f64::total_cmp);
            Row {
                name: c.name.to_owned(),
                median,
                min: t[0],
                max: t[t.len() - 1],
                ratio: r[r.len() / 2],
                goal: (c.goal > 0.0).then_some(c.goal),
            }
        })
        .collect())
}

fn print_row(r: &Row) {
    let goal = r.goal.map_or(String::new(), |g| {
        let verdict = if r.ratio <= g { "met" } else { "MISSED" };
        format!("<= {g:.0}x {verdict}")
    });
    println!(
        "| {} | {:.1} | {:.0}..{:.0} | {:.2} | {goal} |",
        r.name,
        ns(r.median),
        ns(r.min),
        ns(r.max),
        r.ratio
    );
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing to parse.
    let table = real_table();
    let mut steer = Steer::load()?;
    let load = steer.load_table(table.clone())?;
    steer.set_service_ports(&[SERVICE_PORT])?;
    anyhow::ensure!(steer.dir_in_use()?, "the IPv4 direct table is not in use");
    let mut baseline = Baseline::load()?;
    let cases = cases();
    // Same frame size as the IPv4 SYN cases.
    let baseline_packet = cases[3].packet.clone();
    let mut base_times = Vec::new();

    // 1. The classifier as it ships: IPv4 through the direct table.
    let mut rows = measure(
        &mut steer,
        &mut baseline,
        &baseline_packet,
        &cases,
        &mut base_times,
    )?;

    // 2. Per-source SYN limits: a SYN under its limit (a bucket looked up
    // and refilled) and one over it (dropped: what a flooding source
    // costs).
    let listed = Frame::syn(AWS4, SERVER4, SERVICE_PORT).bytes();
    let flooding = Frame::syn(UNLISTED4, SERVER4, SERVICE_PORT).bytes();
    let aws = table
        .class(table.longest_match(AWS4.parse()?).map_or(0, |(_, id)| id))
        .cloned()
        .expect("AWS4 is listed");
    steer.set_policies(
        Policy::PASS,
        BTreeMap::from([
            // The fastest limit the kernel takes: never over.
            (aws, Policy::limit(MAX_SYN_RATE_MILLI, u32::MAX)),
            // A thousandth of a SYN a second, one at once: after the
            // first, every SYN from this source is over.
            (steer_user::Class::unknown(), Policy::limit(1, 1)),
        ]),
    )?;
    let limit_cases = [
        Case {
            name: "SYN from listed address (IPv4), under its limit",
            packet: listed.clone(),
            goal: 0.0,
        },
        Case {
            name: "SYN over its source's limit (dropped)",
            packet: flooding,
            goal: 3.0,
        },
    ];
    let limited = measure(
        &mut steer,
        &mut baseline,
        &baseline_packet,
        &limit_cases,
        &mut base_times,
    )?;
    let flood_rate = 1e9 / ns(limited[1].median).max(1.0);
    rows.extend(limited);
    steer.set_policies(Policy::PASS, BTreeMap::new())?;

    // 3. The reference: IPv4 through the LPM trie, as before the direct
    // table (its ready flag cleared; the trie is always complete).
    steer.lpm_only()?;
    let lpm_cases: Vec<Case> = cases[3..5]
        .iter()
        .map(|c| Case {
            name: if c.name.contains("unlisted") {
                "SYN from unlisted address (IPv4), LPM trie"
            } else {
                "SYN from listed address (IPv4), LPM trie"
            },
            packet: c.packet.clone(),
            goal: 0.0,
        })
        .collect();
    rows.extend(measure(
        &mut steer,
        &mut baseline,
        &baseline_packet,
        &lpm_cases,
        &mut base_times,
    )?);

    let base = median(&mut base_times);
    println!(
        "XDP per-packet cost, BPF_PROG_TEST_RUN, {} prefixes loaded ({} IPv4, {} IPv6; batched: {}; IPv4 through the direct table), {ROUNDS} rounds x {REPEAT} runs, each case paired with a baseline run; medians",
        load.v4 + load.v6,
        load.v4,
        load.v6,
        load.batched
    );
    println!();
    println!("| case | ns/packet | min..max | x baseline | goal |");
    println!("|---|---:|---:|---:|---|");
    println!(
        "| baseline: bare XDP_PASS | {:.1} | {:.0}..{:.0} | 1.00 | |",
        ns(base),
        ns(base_times[0]),
        ns(base_times[base_times.len() - 1])
    );
    for r in &rows {
        print_row(r);
    }
    println!();
    println!(
        "A flood from one source over its limit: {:.1} M SYNs a second dropped per core ({:.1} ns each).",
        flood_rate / 1e6,
        1e9 / flood_rate
    );

    userspace_reads(&mut steer, &table)?;
    Ok(())
}

/// What the redirector pays per connection to learn its class: a read of
/// the slot the program wrote, against the userspace classifier it falls
/// back to, in the same run.
fn userspace_reads(steer: &mut Steer, table: &steer_user::RangeTable) -> anyhow::Result<()> {
    let peer = SocketAddr::new(AWS4.parse()?, 40000);
    steer.run_packet(&Frame::syn(AWS4, SERVER4, SERVICE_PORT).bytes())?;
    assert!(
        steer.flow_class(peer, SERVICE_PORT).is_some(),
        "the SYN was recorded"
    );
    let classifier = Classifier::new(table);

    let mut slot = Vec::new();
    let mut trie = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..READS {
            black_box(steer.flow_class(black_box(peer), SERVICE_PORT));
        }
        slot.push(t.elapsed() / READS);
        let t = Instant::now();
        for _ in 0..READS {
            black_box(classifier.classify(black_box(peer.ip())));
        }
        trie.push(t.elapsed() / READS);
    }
    let slot_med = median(&mut slot);
    let trie_med = median(&mut trie);
    println!();
    println!("Userspace, per accepted connection ({ROUNDS} rounds x {READS} reads, median):");
    println!();
    println!("| read | ns | x flow-slot read |");
    println!("|---|---:|---:|");
    println!(
        "| flow slot (mmap, what XDP recorded) | {:.1} | 1.00 |",
        ns(slot_med)
    );
    println!(
        "| userspace classifier (fallback) | {:.1} | {:.2} |",
        ns(trie_med),
        ns(trie_med) / ns(slot_med).max(0.1)
    );
    Ok(())
}
