//! The kernel maps as steer-user fills and reads them: table replacement
//! and the flow-slot handoff. Needs root.

use std::net::SocketAddr;

use steer_tests::{
    addrs::{AWS4, SERVER4},
    load_or_skip,
    packet::{Frame, TCP_SYN},
    real_table,
};
use steer_user::{
    RangeTable, Steer,
    feeds::{Feed, FeedEntry},
};

const XDP_PASS: u32 = 2;
const PORT: u16 = 443;

fn table(entries: &[(&str, &str)]) -> RangeTable {
    RangeTable::compile(&[Feed {
        name: "t",
        created: "t".into(),
        entries: entries
            .iter()
            .map(|(prefix, region)| FeedEntry {
                prefix: prefix.parse().unwrap(),
                provider: "t".into(),
                region: (*region).into(),
                service: "s".into(),
            })
            .collect(),
    }])
}

/// The class the kernel records for a SYN from `src`, by name.
fn kernel_class(steer: &mut Steer, table: &RangeTable, src: &str, port: u16) -> String {
    assert_eq!(
        steer
            .run_packet(&Frame::tcp(src, port, SERVER4, PORT, TCP_SYN).bytes())
            .unwrap(),
        XDP_PASS
    );
    let id = steer
        .flow_class(SocketAddr::new(src.parse().unwrap(), port), PORT)
        .expect("the SYN was recorded");
    table
        .class(id)
        .map_or("unknown".into(), |c| c.region.clone())
}

#[test]
fn replacing_the_table_removes_stale_prefixes() {
    let Some(mut steer) = load_or_skip("replacing_the_table_removes_stale_prefixes") else {
        return;
    };
    steer.set_service_ports(&[PORT]).unwrap();
    let old = table(&[
        ("10.0.0.0/8", "ten"),
        ("11.0.0.0/8", "eleven"),
        ("10.1.0.0/16", "narrow"),
    ]);
    let first = steer.load_table(&old).unwrap();
    assert_eq!((first.v4, first.removed), (3, 0));
    assert_eq!(kernel_class(&mut steer, &old, "11.1.1.1", 50001), "eleven");
    assert_eq!(kernel_class(&mut steer, &old, "10.1.1.1", 50002), "narrow");

    let new = table(&[("10.0.0.0/8", "ten-again"), ("12.0.0.0/8", "twelve")]);
    let second = steer.load_table(&new).unwrap();
    assert_eq!(
        (second.v4, second.removed),
        (2, 2),
        "11/8 and 10.1/16 are stale"
    );
    assert_eq!(kernel_class(&mut steer, &new, "11.1.1.1", 50003), "unknown");
    assert_eq!(
        kernel_class(&mut steer, &new, "10.1.1.1", 50004),
        "ten-again"
    );
    assert_eq!(kernel_class(&mut steer, &new, "12.1.1.1", 50005), "twelve");
    assert_eq!(steer.table().map(|t| t.v4().len()), Some(2));
}

#[test]
fn flow_slot_taken_by_a_later_flow_reads_none() {
    let Some(mut steer) = load_or_skip("flow_slot_taken_by_a_later_flow_reads_none") else {
        return;
    };
    let table = real_table();
    steer.load_table(&table).expect("load table");
    steer.set_service_ports(&[PORT]).expect("service ports");

    // Two client ports of one address whose flows share a slot.
    let peer = |port: u16| SocketAddr::new(AWS4.parse().unwrap(), port);
    let slot = |port: u16| steer_user::flow_key(peer(port), PORT).slot().index;
    let mut first_at = std::collections::HashMap::new();
    let (a, b) = (1024..=u16::MAX)
        .find_map(|p| first_at.insert(slot(p), p).map(|prev| (prev, p)))
        .expect("two flows sharing a slot");

    let syn = |port: u16| Frame::tcp(AWS4, port, SERVER4, PORT, TCP_SYN).bytes();
    let eu = table.class_id("aws", "eu-west-3");
    assert!(eu.is_some());
    assert_eq!(steer.run_packet(&syn(a)).unwrap(), XDP_PASS);
    assert_eq!(steer.flow_class(peer(a), PORT), eu);
    assert_eq!(steer.run_packet(&syn(b)).unwrap(), XDP_PASS);
    assert_eq!(
        steer.flow_class(peer(b), PORT),
        eu,
        "the later flow owns the slot"
    );
    assert_eq!(
        steer.flow_class(peer(a), PORT),
        None,
        "the earlier flow must read None (and fall back), never another flow's class"
    );
}
