//! The kernel maps as steer-user fills and reads them: table replacement
//! and the flow-slot handoff. Needs root.

use std::{net::SocketAddr, sync::Arc};

use steer_tests::{
    addrs::{AWS4, SERVER4},
    load_or_skip,
    packet::{Frame, TCP_SYN},
    real_table,
};
use steer_user::{
    Class, FlowClass, Policy, RangeTable, Steer,
    feeds::{Feed, FeedEntry},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const PORT: u16 = 443;

fn table(entries: &[(&str, &str)]) -> Arc<RangeTable> {
    Arc::new(RangeTable::compile(&[Feed {
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
    }]))
}

/// Sends a SYN from `src:port` through the program; returns the flow it
/// recorded.
fn syn(steer: &mut Steer, src: &str, port: u16) -> FlowClass {
    let verdict = steer
        .run_packet(&Frame::tcp(src, port, SERVER4, PORT, TCP_SYN).bytes())
        .unwrap();
    assert_eq!(verdict, XDP_PASS, "SYN from {src}");
    flow(steer, src, port).expect("the SYN was recorded")
}

fn flow(steer: &Steer, src: &str, port: u16) -> Option<FlowClass> {
    steer.flow_class(SocketAddr::new(src.parse().unwrap(), port), PORT)
}

/// The region a recorded flow names, read through its own generation's
/// table, as a server would.
fn region(steer: &Steer, f: FlowClass) -> String {
    if f.generation == 0 {
        assert_eq!(f.class, 0, "before any table, every SYN is unknown");
        return "unknown".into();
    }
    let table = steer
        .table_of(f.generation)
        .unwrap_or_else(|| panic!("generation {} is gone", f.generation));
    table
        .class(f.class)
        .map_or("unknown".into(), |c| c.region.clone())
}

fn kernel_region(steer: &mut Steer, src: &str, port: u16) -> String {
    let f = syn(steer, src, port);
    assert_eq!(
        f.generation,
        steer.generation(),
        "SYNs use the active generation"
    );
    region(steer, f)
}

#[test]
fn reloads_switch_generations_and_old_flows_keep_their_meaning() {
    let Some(mut steer) =
        load_or_skip("reloads_switch_generations_and_old_flows_keep_their_meaning")
    else {
        return;
    };
    steer.set_service_ports(&[PORT]).unwrap();
    assert_eq!(steer.generation(), 0);
    assert_eq!(kernel_region(&mut steer, "10.1.1.1", 50000), "unknown");

    let a = table(&[
        ("10.0.0.0/8", "ten"),
        ("11.0.0.0/8", "eleven"),
        ("11.0.0.0/8", "eleven"),
        ("10.1.0.0/16", "narrow"),
    ]);
    let first = steer.load_table(a).unwrap();
    assert_eq!((first.generation, first.v4, first.removed), (1, 3, 0));
    let old_flow = syn(&mut steer, "11.1.1.1", 50001);
    assert_eq!(region(&steer, old_flow), "eleven");
    assert_eq!(kernel_region(&mut steer, "10.1.1.1", 50002), "narrow");

    // "aaa" sorts first, so every class id of the new table shifts.
    let b = table(&[
        ("10.0.0.0/8", "ten-again"),
        ("12.0.0.0/8", "twelve"),
        ("13.0.0.0/8", "aaa"),
    ]);
    let second = steer.load_table(b).unwrap();
    assert_eq!((second.generation, second.removed), (2, 0));
    assert_eq!(kernel_region(&mut steer, "11.1.1.1", 50003), "unknown");
    assert_eq!(kernel_region(&mut steer, "10.1.1.1", 50004), "ten-again");
    assert_eq!(kernel_region(&mut steer, "12.1.1.1", 50005), "twelve");
    assert_eq!(
        flow(&steer, "11.1.1.1", 50001).map(|f| region(&steer, f)),
        Some("eleven".into()),
        "a flow recorded before the switch reads through its own generation"
    );

    // The third table reuses the first generation's maps: what only the
    // first table had is removed there, and its flows can no longer be
    // interpreted, so they read None (the caller classifies in userspace).
    let c = table(&[("10.0.0.0/8", "ten-c")]);
    let third = steer.load_table(c).unwrap();
    assert_eq!(
        (third.generation, third.removed),
        (3, 2),
        "11/8 and 10.1/16"
    );
    assert_eq!(kernel_region(&mut steer, "10.1.1.1", 50006), "ten-c");
    assert_eq!(kernel_region(&mut steer, "11.1.1.1", 50007), "unknown");
    assert_eq!(kernel_region(&mut steer, "12.1.1.1", 50008), "unknown");
    assert_eq!(flow(&steer, "11.1.1.1", 50001), None);
    assert!(steer.table_of(1).is_none() && steer.table_of(2).is_some());

    // Counters follow class names across generations and renumbering.
    let counters = steer.class_counters().unwrap();
    let syns = |region: &str| {
        counters
            .iter()
            .find(|(c, _)| c.region == region)
            .map_or(0, |(_, n)| n.syns)
    };
    assert_eq!(
        [
            syns("eleven"),
            syns("narrow"),
            syns("twelve"),
            syns("ten-again"),
            syns("ten-c")
        ],
        [1, 1, 1, 1, 1]
    );
    assert_eq!(counters[&Class::unknown()].syns, 4);
}

#[test]
fn policy_follows_the_class_name_across_reloads() {
    let Some(mut steer) = load_or_skip("policy_follows_the_class_name_across_reloads") else {
        return;
    };
    steer.set_service_ports(&[PORT]).unwrap();
    steer
        .load_table(table(&[("10.0.0.0/8", "keep"), ("11.0.0.0/8", "stop")]))
        .unwrap();
    let stop = Class {
        provider: "t".into(),
        region: "stop".into(),
    };
    steer.set_policy(&stop, Policy::DROP).unwrap();
    let run = |steer: &mut Steer, src: &str, port: u16| {
        steer
            .run_packet(&Frame::tcp(src, port, SERVER4, PORT, TCP_SYN).bytes())
            .unwrap()
    };
    assert_eq!(run(&mut steer, "11.1.1.1", 1000), XDP_DROP);
    assert_eq!(run(&mut steer, "10.1.1.1", 1001), XDP_PASS);

    // New ids: "a" takes id 1, "keep" 2, "stop" 3.
    steer
        .load_table(table(&[
            ("9.0.0.0/8", "a"),
            ("10.0.0.0/8", "keep"),
            ("11.0.0.0/8", "stop"),
        ]))
        .unwrap();
    assert_eq!(run(&mut steer, "11.1.1.1", 1002), XDP_DROP);
    assert_eq!(run(&mut steer, "10.1.1.1", 1003), XDP_PASS);
    assert_eq!(run(&mut steer, "9.1.1.1", 1004), XDP_PASS);
    // And into a reused generation whose old slice had other ids.
    steer
        .load_table(table(&[("11.0.0.0/8", "stop"), ("12.0.0.0/8", "b")]))
        .unwrap();
    assert_eq!(run(&mut steer, "11.1.1.1", 1005), XDP_DROP);
    assert_eq!(run(&mut steer, "12.1.1.1", 1006), XDP_PASS);
    assert_eq!(steer.class_counters().unwrap()[&stop].dropped, 3);
}

#[test]
fn flow_slot_taken_by_a_later_flow_reads_none() {
    let Some(mut steer) = load_or_skip("flow_slot_taken_by_a_later_flow_reads_none") else {
        return;
    };
    let table = real_table();
    steer.load_table(table.clone()).expect("load table");
    steer.set_service_ports(&[PORT]).expect("service ports");

    // Two client ports of one address whose flows share a slot.
    let peer = |port: u16| SocketAddr::new(AWS4.parse().unwrap(), port);
    let slot = |port: u16| steer_user::flow_key(peer(port), PORT).slot().index;
    let mut first_at = std::collections::HashMap::new();
    let (a, b) = (1024..=u16::MAX)
        .find_map(|p| first_at.insert(slot(p), p).map(|prev| (prev, p)))
        .expect("two flows sharing a slot");

    let syn = |port: u16| Frame::tcp(AWS4, port, SERVER4, PORT, TCP_SYN).bytes();
    let eu = table.class_id("aws", "eu-west-3").map(|class| FlowClass {
        generation: 1,
        class,
    });
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
