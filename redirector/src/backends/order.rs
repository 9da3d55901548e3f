//! Orders of backends: weighted rendezvous hashing among those listing a
//! class, and distance from a region for the geographic fallback.

use std::{collections::HashMap, net::IpAddr};

use steer_user::Class;

use super::backend::Backend;
use crate::routing::geo::{Places, distance_km};

/// splitmix64's finaliser: every input bit moves every output bit.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// FNV-1a: a name's hash, the same in every process and replica.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A client address as the key that spreads clients over backends. The
/// same address gives the same key in every replica (no random seed),
/// so replicas behind a load balancer agree.
pub fn client_key(ip: IpAddr) -> u64 {
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let bits = u128::from(v6);
    mix(mix(bits as u64) ^ (bits >> 64) as u64)
}

/// `listed` ordered for `client` by weighted rendezvous hashing: each
/// backend scores `-ln(u) / weight` with `u` uniform from the client and
/// the backend's name; lowest first. The first is a backend with
/// probability proportional to its weight, and removing one backend
/// moves only its own clients.
pub fn rendezvous(backends: &[Backend], listed: &[usize], client: u64) -> Vec<usize> {
    if listed.len() == 1 {
        return listed.to_vec();
    }
    let mut scored: Vec<(f64, usize)> = listed
        .iter()
        .map(|&i| {
            let b = &backends[i];
            let h = mix(client ^ name_hash(&b.name));
            // In (0, 1]: never ln(0).
            let u = ((h >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
            (-u.ln() / f64::from(b.weight.max(1)), i)
        })
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored.into_iter().map(|(_, i)| i).collect()
}

/// For every class with a place: each backend with a located place,
/// nearest first (ties in config order).
pub fn geo_order(backends: &[Backend], places: &Places) -> HashMap<Class, Vec<(usize, f64)>> {
    let located: Vec<(usize, crate::routing::geo::Point)> = backends
        .iter()
        .enumerate()
        .filter_map(|(i, b)| Some((i, places.of(b.location.as_ref()?)?)))
        .collect();
    places
        .classes()
        .into_iter()
        .filter_map(|class| {
            let here = places.of(&class)?;
            let mut order: Vec<(usize, f64)> = located
                .iter()
                .map(|&(i, p)| (i, distance_km(here, p)))
                .collect();
            order.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            Some((class, order))
        })
        .collect()
}
