//! Kernel and userspace give the same class for the same address.
//!
//! The real AWS+GCP table is loaded into the kernel maps and into the
//! userspace classifier. For every prefix's first and last address, their
//! outside neighbours, and 100,000 seeded random addresses (half inside
//! random prefixes, half anywhere), three answers must agree: the
//! program's (a SYN through BPF_PROG_TEST_RUN, then the flow slot; for
//! IPv4 that is the direct table, which the test checks is in use), the
//! kernel's LPM trie (a map lookup: its own longest-prefix match, the
//! reference), and the userspace classifier. A sample is also checked
//! against a brute-force scan of the table. Needs root.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use steer_tests::{
    addrs::{SERVER4, SERVER6},
    load_or_skip,
    packet::Frame,
    real_table,
    sample::{Rng, random_addr},
};
use steer_user::{CLASS_UNKNOWN, Classifier, RangeTable};

const PORT: u16 = 443;
const RANDOM: usize = 100_000;
/// Every Nth address is also checked against the brute-force scan.
const BRUTE_EVERY: usize = 37;

/// Named addresses: (why this address, address).
fn addresses(table: &RangeTable) -> Vec<(String, IpAddr)> {
    let mut out = Vec::new();
    for (net, _) in table.v4() {
        let (first, last) = (u32::from(net.network()), u32::from(net.broadcast()));
        out.push((format!("first of {net}"), Ipv4Addr::from(first).into()));
        out.push((format!("last of {net}"), Ipv4Addr::from(last).into()));
        if let Some(a) = first.checked_sub(1) {
            out.push((format!("just below {net}"), Ipv4Addr::from(a).into()));
        }
        if let Some(a) = last.checked_add(1) {
            out.push((format!("just above {net}"), Ipv4Addr::from(a).into()));
        }
    }
    for (net, _) in table.v6() {
        let (first, last) = (u128::from(net.network()), u128::from(net.broadcast()));
        out.push((format!("first of {net}"), Ipv6Addr::from(first).into()));
        out.push((format!("last of {net}"), Ipv6Addr::from(last).into()));
        if let Some(a) = first.checked_sub(1) {
            out.push((format!("just below {net}"), Ipv6Addr::from(a).into()));
        }
        if let Some(a) = last.checked_add(1) {
            out.push((format!("just above {net}"), Ipv6Addr::from(a).into()));
        }
    }
    let mut rng = Rng(0x5eed_57ee_2026);
    for i in 0..RANDOM {
        let (v6, inside) = (i % 2 == 1, (i / 2) % 2 == 0);
        let addr = random_addr(table, &mut rng, v6, inside);
        out.push((format!("random #{i}"), addr));
    }
    out
}

/// The reference: scan every prefix, keep the longest that contains `addr`.
fn brute_force(table: &RangeTable, addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => table
            .v4()
            .iter()
            .filter(|(n, _)| n.contains(&a))
            .max_by_key(|(n, _)| n.prefix_len())
            .map_or(CLASS_UNKNOWN, |&(_, c)| c),
        IpAddr::V6(a) => table
            .v6()
            .iter()
            .filter(|(n, _)| n.contains(&a))
            .max_by_key(|(n, _)| n.prefix_len())
            .map_or(CLASS_UNKNOWN, |&(_, c)| c),
    }
}

fn name(table: &RangeTable, id: Option<u32>) -> String {
    match id {
        None => "nothing recorded".to_owned(),
        Some(id) => table
            .class(id)
            .map_or_else(|| format!("unknown ({id})"), |c| format!("{c} ({id})")),
    }
}

#[test]
fn kernel_and_userspace_agree_on_the_real_table() {
    let Some(mut steer) = load_or_skip("kernel_and_userspace_agree_on_the_real_table") else {
        return;
    };
    let table = real_table();
    steer.load_table(table.clone()).expect("load table");
    steer.set_service_ports(&[PORT]).expect("service port");
    let classifier = Classifier::new(&table);
    assert!(
        steer.dir_in_use().expect("ready flag"),
        "the real table must fit the IPv4 direct table"
    );

    let addrs = addresses(&table);
    assert!(
        addrs.len() > 4 * 11_000 + RANDOM - 10,
        "{} addresses",
        addrs.len()
    );
    let mut disagreements = Vec::new();
    let mut classified = 0usize;
    for (i, (why, addr)) in addrs.iter().enumerate() {
        let server = if addr.is_ipv4() { SERVER4 } else { SERVER6 };
        let src_port = 1024 + (i % 60_000) as u16;
        let syn = Frame::tcp(&addr.to_string(), src_port, server, PORT, 0x02).bytes();
        steer.run_packet(&syn).expect("test run");
        // Read right after the run: no other flow can have taken the slot.
        let kernel = steer
            .flow_class(SocketAddr::new(*addr, src_port), PORT)
            .map(|f| f.class);
        let user = classifier.classify(*addr);
        let trie = steer.lpm_class(*addr).expect("LPM lookup");
        if kernel != Some(user) || trie != user {
            disagreements.push(format!(
                "{addr} ({why}): program {}, LPM trie {}, userspace {}",
                name(&table, kernel),
                name(&table, Some(trie)),
                name(&table, Some(user))
            ));
        }
        if i % BRUTE_EVERY == 0 {
            let reference = brute_force(&table, *addr);
            if reference != user {
                disagreements.push(format!(
                    "{addr} ({why}): brute force {}, userspace {}",
                    name(&table, Some(reference)),
                    name(&table, Some(user))
                ));
            }
        }
        classified += usize::from(user != CLASS_UNKNOWN);
    }
    // The random half inside prefixes must mostly classify, or the test
    // would compare "unknown" with "unknown" and prove nothing.
    assert!(
        classified > RANDOM / 4,
        "only {classified} addresses classified"
    );
    assert!(
        disagreements.is_empty(),
        "{} of {} addresses disagree, first ones:\n  {}",
        disagreements.len(),
        addrs.len(),
        disagreements[..disagreements.len().min(20)].join("\n  ")
    );
}
