//! The generation logic against a shadow of the maps in memory: fill,
//! switch, retire, class names and policies, without root. The same rules
//! run against the kernel in `tests/tests/xdp_maps.rs`.

use std::collections::BTreeMap;

use ipnet::{Ipv4Net, Ipv6Net};

use super::*;
use crate::{
    feeds::{Feed, FeedEntry},
    table::RangeTable,
};

/// What the kernel maps would hold, per slot.
#[derive(Default)]
struct Shadow {
    v4: [BTreeMap<Ipv4Net, u32>; 2],
    v6: [BTreeMap<Ipv6Net, u32>; 2],
    names: BTreeMap<(u32, u32), Class>,
    policy: BTreeMap<(u32, u32), Policy>,
    counters: BTreeMap<(u32, u32), ClassCounters>,
    active: u32,
    /// Fail the next prefix write (a write that dies half way).
    fail_write: bool,
}

impl CounterMaps for Shadow {
    fn counters(&self, index: u32, count: u32) -> Result<Vec<ClassCounters>, Error> {
        Ok((0..=count)
            .map(|id| self.counters.get(&(index, id)).copied().unwrap_or_default())
            .collect())
    }
}

impl GenerationMaps for Shadow {
    fn zero_counters(&mut self, index: u32, count: u32) -> Result<(), Error> {
        for id in 0..=count {
            self.counters.remove(&(index, id));
        }
        Ok(())
    }

    fn clear_tries(&mut self, index: u32) -> Result<(), Error> {
        self.v4[index as usize].clear();
        self.v6[index as usize].clear();
        Ok(())
    }

    fn remove_prefixes(&mut self, index: u32, v4: &[Ipv4Net], v6: &[Ipv6Net]) -> Result<(), Error> {
        v4.iter().for_each(|n| {
            self.v4[index as usize].remove(n);
        });
        v6.iter().for_each(|n| {
            self.v6[index as usize].remove(n);
        });
        Ok(())
    }

    fn write_prefixes(
        &mut self,
        index: u32,
        table: &RangeTable,
        _: WriteMode,
    ) -> Result<bool, Error> {
        for (i, &(n, c)) in table.v4().iter().enumerate() {
            if self.fail_write && i == table.v4().len() / 2 {
                self.fail_write = false;
                return Err(Error::MissingMap { name: "injected" });
            }
            self.v4[index as usize].insert(n, c);
        }
        for &(n, c) in table.v6() {
            self.v6[index as usize].insert(n, c);
        }
        Ok(true)
    }

    fn set_class_name(&mut self, index: u32, id: u32, class: Option<&Class>) -> Result<(), Error> {
        match class {
            Some(c) => self.names.insert((index, id), c.clone()),
            None => self.names.remove(&(index, id)),
        };
        Ok(())
    }

    fn set_policy(&mut self, index: u32, id: u32, policy: Policy) -> Result<(), Error> {
        self.policy.insert((index, id), policy);
        Ok(())
    }

    fn set_active(&mut self, generation: u32) -> Result<(), Error> {
        self.active = generation;
        Ok(())
    }
}

impl Shadow {
    /// What a lookup of `net`'s first address answers in the active slot.
    fn lookup(&self, net: &str) -> Option<Class> {
        let net: Ipv4Net = net.parse().unwrap();
        let index = self.active & 1;
        let id = self.v4[index as usize]
            .iter()
            .filter(|(n, _)| n.contains(&net.network()))
            .max_by_key(|(n, _)| n.prefix_len())
            .map(|(_, &c)| c)?;
        self.names.get(&(index, id)).cloned()
    }
}

fn class(s: &str) -> Class {
    let (provider, region) = s.split_once('/').unwrap();
    Class {
        provider: provider.into(),
        region: region.into(),
    }
}

/// A table of (prefix, provider/region) rows, from one custom feed.
fn table(rows: &[(&str, &str)]) -> Arc<RangeTable> {
    let entries = rows
        .iter()
        .map(|(net, c)| {
            let c = class(c);
            FeedEntry {
                prefix: net.parse().unwrap(),
                provider: c.provider,
                region: c.region,
                service: String::new(),
            }
        })
        .collect();
    let feed = Feed {
        name: "custom",
        created: String::new(),
        entries,
    };
    Arc::new(RangeTable::compile(&[feed]))
}

#[test]
fn a_load_fills_the_inactive_slot_then_switches() {
    let (mut maps, mut gens) = (Shadow::default(), Generations::default());
    let first = table(&[("10.0.0.0/8", "aws/a"), ("10.1.0.0/16", "aws/b")]);
    let load = gens
        .load_table(&mut maps, first.clone(), WriteMode::Batch)
        .unwrap();
    assert_eq!((load.generation, maps.active), (1, 1));
    assert_eq!(maps.v4[1].len(), 2);
    assert!(maps.v4[0].is_empty(), "the other slot is untouched");
    assert_eq!(maps.lookup("10.1.2.0/24"), Some(class("aws/b")));
    assert_eq!(maps.names.get(&(1, 1)), Some(&class("aws/a")));

    let second = table(&[("10.0.0.0/8", "gcp/x")]);
    gens.load_table(&mut maps, second, WriteMode::Batch)
        .unwrap();
    assert_eq!(maps.active, 2);
    assert_eq!(maps.lookup("10.1.2.0/24"), Some(class("gcp/x")));
    // The previous generation is still known for flows recorded in it.
    assert!(Arc::ptr_eq(gens.table_of(1).unwrap(), &first));
    assert_eq!(gens.by_epoch(1), Some(1));
    assert_eq!(gens.by_epoch(2), Some(2));
    assert_eq!(gens.by_epoch(3), None);
}

#[test]
fn a_reused_slot_loses_stale_prefixes_names_and_counters() {
    let (mut maps, mut gens) = (Shadow::default(), Generations::default());
    let first = table(&[
        ("10.0.0.0/8", "aws/a"),
        ("10.1.0.0/16", "aws/b"),
        ("10.2.0.0/16", "aws/c"),
    ]);
    gens.load_table(&mut maps, first, WriteMode::Batch).unwrap();
    // SYNs counted in generation 1, class aws/c (id 3).
    maps.counters.insert(
        (1, 3),
        ClassCounters {
            syns: 5,
            bytes: 300,
            dropped: 1,
            rate_limited: 1,
        },
    );
    gens.load_table(
        &mut maps,
        table(&[("10.0.0.0/8", "aws/a")]),
        WriteMode::Batch,
    )
    .unwrap();
    // Generation 3 reuses slot 1: one class, one prefix.
    let load = gens
        .load_table(
            &mut maps,
            table(&[("10.0.0.0/8", "aws/c")]),
            WriteMode::Batch,
        )
        .unwrap();
    assert_eq!((load.generation, load.removed), (3, 2));
    assert_eq!(maps.v4[1].len(), 1, "stale prefixes removed");
    assert_eq!(
        maps.names.get(&(1, 2)),
        None,
        "names beyond the new count cleared"
    );
    assert_eq!(maps.names.get(&(1, 1)), Some(&class("aws/c")));
    assert!(!maps.counters.contains_key(&(1, 3)), "counters zeroed");
    // Retired counters still count, by class name.
    let sums = gens.class_counters(&maps).unwrap();
    assert_eq!(sums.get(&class("aws/c")).map(|c| c.syns), Some(5));
}

#[test]
fn policies_follow_class_names_across_renumbering() {
    let (mut maps, mut gens) = (Shadow::default(), Generations::default());
    gens.load_table(
        &mut maps,
        table(&[("10.0.0.0/8", "aws/a"), ("11.0.0.0/8", "aws/b")]),
        WriteMode::Batch,
    )
    .unwrap();
    gens.set_policy(&mut maps, &class("aws/b"), Policy::DROP)
        .unwrap();
    assert_eq!(maps.policy.get(&(1, 2)), Some(&Policy::DROP));
    // aws/b becomes id 1 in the next table.
    gens.load_table(
        &mut maps,
        table(&[("11.0.0.0/8", "aws/b"), ("12.0.0.0/8", "aws/z")]),
        WriteMode::Batch,
    )
    .unwrap();
    assert_eq!(maps.policy.get(&(0, 1)), Some(&Policy::DROP));
    assert_eq!(maps.policy.get(&(0, 2)), Some(&Policy::PASS));
    gens.set_policy(&mut maps, &class("aws/b"), Policy::PASS)
        .unwrap();
    assert_eq!(maps.policy.get(&(0, 1)), Some(&Policy::PASS));
}

#[test]
fn a_default_policy_covers_every_class_not_named_and_unknown() {
    let (mut maps, mut gens) = (Shadow::default(), Generations::default());
    gens.load_table(
        &mut maps,
        table(&[("10.0.0.0/8", "aws/a"), ("11.0.0.0/8", "aws/b")]),
        WriteMode::Batch,
    )
    .unwrap();
    let default = Policy::limit(100_000, 200);
    let slow = Policy::limit(20_000, 40);
    let named = BTreeMap::from([
        (class("aws/b"), Policy::limit(1_000_000, 2000)),
        (Class::unknown(), slow),
    ]);
    gens.set_policies(&mut maps, default, named).unwrap();
    // Rewritten in place in the active generation (slot 1).
    assert_eq!(maps.policy.get(&(1, 0)), Some(&slow), "unknown");
    assert_eq!(maps.policy.get(&(1, 1)), Some(&default), "aws/a");
    assert_eq!(
        maps.policy.get(&(1, 2)),
        Some(&Policy::limit(1_000_000, 2000))
    );
    // And carried into the next table, renumbered.
    gens.load_table(
        &mut maps,
        table(&[("11.0.0.0/8", "aws/b"), ("12.0.0.0/8", "aws/z")]),
        WriteMode::Batch,
    )
    .unwrap();
    assert_eq!(maps.policy.get(&(0, 0)), Some(&slow));
    assert_eq!(
        maps.policy.get(&(0, 1)),
        Some(&Policy::limit(1_000_000, 2000))
    );
    assert_eq!(maps.policy.get(&(0, 2)), Some(&default), "aws/z, new");
    assert_eq!(gens.policy_of(&class("aws/q")), default);
}

#[test]
fn a_failed_load_switches_nothing_and_is_cleaned_before_reuse() {
    let (mut maps, mut gens) = (Shadow::default(), Generations::default());
    let first = table(&[("10.0.0.0/8", "aws/a")]);
    gens.load_table(&mut maps, first, WriteMode::Batch).unwrap();
    maps.fail_write = true;
    let big: Vec<(String, &str)> = (0..8)
        .map(|i| (format!("20.{i}.0.0/16"), "aws/b"))
        .collect();
    let rows: Vec<(&str, &str)> = big.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    assert!(
        gens.load_table(&mut maps, table(&rows), WriteMode::Batch)
            .is_err()
    );
    assert_eq!((maps.active, gens.generation()), (1, 1), "no switch");
    assert_eq!(maps.lookup("10.0.0.0/24"), Some(class("aws/a")));
    assert!(!maps.v4[0].is_empty(), "half written");
    // The next load into that slot starts from empty tries.
    gens.load_table(
        &mut maps,
        table(&[("30.0.0.0/8", "aws/c")]),
        WriteMode::Batch,
    )
    .unwrap();
    assert_eq!(maps.active, 2);
    assert_eq!(
        maps.v4[0].keys().map(|n| n.to_string()).collect::<Vec<_>>(),
        ["30.0.0.0/8"]
    );
}
