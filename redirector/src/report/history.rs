//! The last hours of blob bytes by backend, for the `/report` page's
//! chart: a bounded ring of totals, one point per sampling interval.

use std::collections::{BTreeMap, VecDeque};

use super::figures::Report;

/// How often the server samples its totals for the ring.
pub const SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
/// Points kept: six hours at one a minute. A point holds one total per
/// backend, so the ring's memory is bounded by the fleet's size.
pub const CAPACITY: usize = 360;

/// Bytes sent to each backend (and `upstream`) since start, at a time.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Unix seconds.
    pub at: u64,
    pub bytes: BTreeMap<String, u64>,
}

impl Point {
    pub fn of(report: &Report, at: u64) -> Point {
        Point {
            at,
            bytes: report
                .backends
                .iter()
                .map(|b| (b.backend.clone(), b.bytes))
                .collect(),
        }
    }
}

#[derive(Debug)]
pub struct History {
    points: VecDeque<Point>,
    capacity: usize,
}

impl Default for History {
    fn default() -> Self {
        History::with_capacity(CAPACITY)
    }
}

impl History {
    pub fn with_capacity(capacity: usize) -> History {
        History {
            points: VecDeque::with_capacity(capacity.min(CAPACITY)),
            capacity: capacity.max(1),
        }
    }

    /// Adds a point; the oldest goes when the ring is full.
    pub fn record(&mut self, point: Point) {
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }

    /// The points, oldest first, then `now` (the figures being shown).
    pub fn with_now(&self, now: Point) -> Vec<Point> {
        let mut v: Vec<Point> = self.points.iter().cloned().collect();
        v.push(now);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: u64) -> Point {
        Point {
            at,
            bytes: BTreeMap::from([("eu".to_owned(), at * 10)]),
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_points() {
        let mut h = History::with_capacity(3);
        for at in 1..=5 {
            h.record(point(at));
        }
        let ats: Vec<u64> = h.with_now(point(9)).iter().map(|p| p.at).collect();
        assert_eq!(ats, vec![3, 4, 5, 9]);
    }
}
