//! `cargo xtask bench xdp`: per-packet cost of the classifier through
//! BPF_PROG_TEST_RUN with all real prefixes loaded, against a bare program
//! that only returns XDP_PASS, measured in the same run.
//!
//! Each case runs right after a baseline run, over several rounds, so
//! machine noise hits both alike; the table shows the median per case and
//! the median of its per-pair ratios to the baseline. Needs root.

use std::{
    hint::black_box,
    net::SocketAddr,
    time::{Duration, Instant},
};

use steer_tests::{
    addrs::{AWS4, AWS6, SERVER4, SERVER6, UNLISTED4, UNLISTED6},
    packet::{Frame, L4, TCP_ACK},
    real_table,
};
use steer_user::{Classifier, Steer, xdp::Baseline};

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
            goal: 8.0,
        },
        Case {
            name: "SYN from unlisted address (IPv4)",
            packet: Frame::syn(unlisted, server, SERVICE_PORT).bytes(),
            goal: 8.0,
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

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing to parse.
    let table = real_table();
    let mut steer = Steer::load()?;
    let load = steer.load_table(table.clone())?;
    steer.set_service_ports(&[SERVICE_PORT])?;
    let mut baseline = Baseline::load()?;
    let cases = cases();
    // Same frame size as the IPv4 SYN cases.
    let baseline_packet = &cases[3].packet;

    // Each case runs right after its own baseline run, so a burst of
    // noise from the shared machine hits the pair alike; the ratio is the
    // median of the per-pair ratios.
    let mut base_times = Vec::new();
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

    let base = median(&mut base_times);
    println!(
        "XDP per-packet cost, BPF_PROG_TEST_RUN, {} prefixes loaded ({} IPv4, {} IPv6; batched: {}), {ROUNDS} rounds x {REPEAT} runs, each case paired with a baseline run; medians",
        load.v4 + load.v6,
        load.v4,
        load.v6,
        load.batched
    );
    println!();
    println!("| case | ns/packet | min..max | x baseline | goal |");
    println!("|---|---:|---:|---:|---|");
    let (bmin, bmax) = (base_times[0], base_times[base_times.len() - 1]);
    println!(
        "| baseline: bare XDP_PASS | {:.1} | {:.0}..{:.0} | 1.00 | |",
        ns(base),
        ns(bmin),
        ns(bmax)
    );
    for ((c, t), r) in cases.iter().zip(&mut times).zip(&mut ratios) {
        let m = median(t);
        r.sort_unstable_by(f64::total_cmp);
        let ratio = r[r.len() / 2];
        let verdict = if ratio <= c.goal { "met" } else { "MISSED" };
        println!(
            "| {} | {:.1} | {:.0}..{:.0} | {ratio:.2} | <= {:.0}x {verdict} |",
            c.name,
            ns(m),
            ns(t[0]),
            ns(t[ROUNDS - 1]),
            c.goal
        );
    }

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
