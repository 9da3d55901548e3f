//! `cargo xtask bench lpm`: the userspace longest-prefix lookup over the
//! full real table against a sorted-vector binary search (and prefix-trie)
//! measured in the same run; kernel map loads one by one against batched;
//! memory of the compiled table. Needs root for the kernel part.
//!
//! Before timing, every structure must give the same answer for every
//! sampled address, or the bench fails. `STEER_LPM_PROFILE=steer` (or
//! `sorted`) runs only that lookup, for `perf stat`.

use std::{
    hint::black_box,
    net::IpAddr,
    time::{Duration, Instant},
};

use ipnet::{Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;
use steer_tests::{
    real_table,
    sample::{Rng, random_addr},
};
use steer_user::{CLASS_UNKNOWN, Classifier, RangeTable, Steer, WriteMode};

const ADDRS: usize = 100_000;
const ROUNDS: usize = 7;
const LOAD_ROUNDS: usize = 5;

/// The baseline: the table flattened into disjoint address intervals,
/// sorted, searched by binary search. What one writes without a trie.
struct Intervals {
    starts: Vec<u128>,
    /// (last address, class) per interval.
    ends: Vec<(u128, u32)>,
}

impl Intervals {
    fn new(prefixes: impl Iterator<Item = (u128, u128, u8, u32)>) -> Intervals {
        // Shortest first, so a nested prefix overwrites its part of the
        // enclosing one when painted onto the sorted boundary list.
        let mut sorted: Vec<(u128, u128, u8, u32)> = prefixes.collect();
        sorted.sort_by_key(|&(first, _, len, _)| (len, first));
        let mut spans: std::collections::BTreeMap<u128, (u128, u32)> = Default::default();
        for (first, last, _, class) in sorted {
            // Split the spans that straddle `first` and `last`, then drop
            // everything inside and insert this one.
            let straddling: Vec<(u128, (u128, u32))> = spans
                .range(..=last)
                .rev()
                .take_while(|(s, (e, _))| **s > first || *e >= first)
                .map(|(s, v)| (*s, *v))
                .collect();
            for (s, (e, c)) in straddling {
                spans.remove(&s);
                if s < first {
                    spans.insert(s, (first - 1, c));
                }
                if e > last {
                    spans.insert(last + 1, (e, c));
                }
            }
            spans.insert(first, (last, class));
        }
        Intervals {
            starts: spans.keys().copied().collect(),
            ends: spans.values().copied().collect(),
        }
    }

    fn get(&self, addr: u128) -> u32 {
        let i = self.starts.partition_point(|&s| s <= addr);
        match i.checked_sub(1) {
            Some(i) if self.ends[i].0 >= addr => self.ends[i].1,
            _ => CLASS_UNKNOWN,
        }
    }

    fn memory_bytes(&self) -> usize {
        self.starts.capacity() * 16 + self.ends.capacity() * 32
    }
}

struct Baselines {
    v4: Intervals,
    v6: Intervals,
    trie4: PrefixMap<Ipv4Net, u32>,
    trie6: PrefixMap<Ipv6Net, u32>,
}

impl Baselines {
    fn new(table: &RangeTable) -> Baselines {
        let v4 = Intervals::new(table.v4().iter().map(|&(n, c)| {
            (
                u128::from(u32::from(n.network())),
                u128::from(u32::from(n.broadcast())),
                n.prefix_len(),
                c,
            )
        }));
        let v6 = Intervals::new(table.v6().iter().map(|&(n, c)| {
            (
                u128::from(n.network()),
                u128::from(n.broadcast()),
                n.prefix_len(),
                c,
            )
        }));
        let mut trie4 = PrefixMap::new();
        let mut trie6 = PrefixMap::new();
        for &(n, c) in table.v4() {
            trie4.insert(n, c);
        }
        for &(n, c) in table.v6() {
            trie6.insert(n, c);
        }
        Baselines {
            v4,
            v6,
            trie4,
            trie6,
        }
    }

    fn sorted(&self, addr: IpAddr) -> u32 {
        match addr {
            IpAddr::V4(a) => self.v4.get(u128::from(u32::from(a))),
            IpAddr::V6(a) => self.v6.get(u128::from(a)),
        }
    }

    fn prefix_trie(&self, addr: IpAddr) -> u32 {
        match addr {
            IpAddr::V4(a) => self.trie4.get_lpm(&Ipv4Net::from(a)).map(|(_, c)| *c),
            IpAddr::V6(a) => self.trie6.get_lpm(&Ipv6Net::from(a)).map(|(_, c)| *c),
        }
        .unwrap_or(CLASS_UNKNOWN)
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Nanoseconds per lookup of `f` over `addrs` (several passes, so the
/// clock's resolution does not matter).
fn time(addrs: &[IpAddr], rounds: &mut Vec<f64>, f: impl Fn(IpAddr) -> u32) {
    const PASSES: usize = 5;
    let t = Instant::now();
    for _ in 0..PASSES {
        for &a in addrs {
            black_box(f(black_box(a)));
        }
    }
    rounds.push(t.elapsed().as_secs_f64() * 1e9 / (PASSES * addrs.len()) as f64);
}

fn median_f(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let table = real_table();
    let classifier = Classifier::new(&table);
    let baselines = Baselines::new(&table);

    let mut rng = Rng(0x1b_2026);
    let sample = |v6: bool, rng: &mut Rng| -> Vec<IpAddr> {
        (0..ADDRS)
            .map(|i| random_addr(&table, rng, v6, i % 2 == 0))
            .collect()
    };
    let families = [
        ("IPv4", sample(false, &mut rng)),
        ("IPv6", sample(true, &mut rng)),
    ];

    for (family, addrs) in &families {
        for &a in addrs {
            let want = classifier.classify(a);
            anyhow::ensure!(
                baselines.sorted(a) == want,
                "{family} {a}: sorted vector disagrees"
            );
            anyhow::ensure!(
                baselines.prefix_trie(a) == want,
                "{family} {a}: prefix-trie disagrees"
            );
        }
    }

    // For `perf stat`: only one lookup kind, nothing else.
    if let Ok(which) = std::env::var("STEER_LPM_PROFILE") {
        for (_, addrs) in &families {
            let mut t = Vec::new();
            for _ in 0..20 {
                match which.as_str() {
                    "steer" => time(addrs, &mut t, |a| classifier.classify(a)),
                    "sorted" => time(addrs, &mut t, |a| baselines.sorted(a)),
                    other => anyhow::bail!("STEER_LPM_PROFILE={other}: expected steer or sorted"),
                }
            }
        }
        return Ok(());
    }

    println!(
        "Userspace lookups over the real table ({} IPv4 + {} IPv6 prefixes), {ADDRS} seeded addresses per family (half inside prefixes), {ROUNDS} rounds, median",
        table.v4().len(),
        table.v6().len()
    );
    println!();
    println!(
        "| family | lookup | ns/lookup | million lookups/s | x sorted-vector baseline | goal |"
    );
    println!("|---|---|---:|---:|---:|---|");
    for (family, addrs) in &families {
        let (mut ours, mut sorted, mut trie) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            time(addrs, &mut sorted, |a| baselines.sorted(a));
            time(addrs, &mut ours, |a| classifier.classify(a));
            time(addrs, &mut trie, |a| baselines.prefix_trie(a));
        }
        let base = median_f(&mut sorted);
        for (name, t, goal) in [
            ("sorted vector, binary search (baseline)", &mut sorted, ""),
            ("prefix-trie 0.10", &mut trie, ""),
            ("steer classifier", &mut ours, ">= 5x"),
        ] {
            let ns = median_f(t);
            let speedup = base / ns.max(0.01);
            let verdict = match goal {
                "" => String::new(),
                g if speedup >= 5.0 => format!("{g} met"),
                g => format!("{g} MISSED"),
            };
            println!(
                "| {family} | {name} | {ns:.1} | {:.1} | {speedup:.2} | {verdict} |",
                1e3 / ns.max(0.01)
            );
        }
    }

    println!();
    println!("Memory of the compiled table (heap bytes):");
    println!();
    println!("| structure | KiB |");
    println!("|---|---:|");
    let (n4, n6) = classifier.node_counts();
    println!(
        "| range table (prefixes, origins, names) | {:.0} |",
        table.memory_bytes() as f64 / 1024.0
    );
    println!(
        "| steer classifier ({n4} IPv4 + {n6} IPv6 nodes) | {:.0} |",
        classifier.memory_bytes() as f64 / 1024.0
    );
    println!(
        "| sorted-vector baseline ({} + {} intervals) | {:.0} |",
        baselines.v4.starts.len(),
        baselines.v6.starts.len(),
        (baselines.v4.memory_bytes() + baselines.v6.memory_bytes()) as f64 / 1024.0
    );

    kernel_loads(&table)
}

/// A full reload into the inactive generation, one write per prefix
/// against one batch per family, alternating, same run.
fn kernel_loads(table: &std::sync::Arc<RangeTable>) -> anyhow::Result<()> {
    let mut steer = match Steer::load() {
        Ok(s) => s,
        Err(e) => {
            println!();
            println!("Kernel map loads: skipped, XDP cannot load here ({e}); run as root.");
            return Ok(());
        }
    };
    let (mut one, mut batch) = (Vec::new(), Vec::new());
    let mut batched = true;
    for _ in 0..LOAD_ROUNDS {
        one.push(
            steer
                .load_table_using(table.clone(), WriteMode::OneByOne)?
                .elapsed,
        );
        let load = steer.load_table_using(table.clone(), WriteMode::Batch)?;
        batched &= load.batched;
        batch.push(load.elapsed);
    }
    let one_ms = median(&mut one).as_secs_f64() * 1e3;
    let batch_ms = median(&mut batch).as_secs_f64() * 1e3;
    println!();
    println!(
        "Kernel reload of the full table into the inactive generation (all {} prefixes, plus names and policies, then the switch), {LOAD_ROUNDS} rounds, median",
        table.v4().len() + table.v6().len()
    );
    println!();
    println!("| write | ms | x one-by-one | goal |");
    println!("|---|---:|---:|---|");
    println!("| one BPF_MAP_UPDATE_ELEM per prefix (baseline) | {one_ms:.1} | 1.00 | |");
    let verdict = if batch_ms < 20.0 { "met" } else { "MISSED" };
    println!(
        "| BPF_MAP_UPDATE_BATCH{} | {batch_ms:.1} | {:.2} | < 20 ms {verdict} |",
        if batched {
            ""
        } else {
            " (fell back to single writes)"
        },
        batch_ms / one_ms.max(0.001)
    );
    Ok(())
}
