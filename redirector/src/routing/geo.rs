//! Distances between regions: the built-in coordinates of cloud regions
//! ([`super::regions`]) and the config's `[[location]]` entries, and the
//! great-circle distance between two of them.

use std::{collections::HashMap, sync::LazyLock};

use steer_user::Class;

use super::regions::REGIONS;

/// A place on Earth, in degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
}

/// The mean Earth radius (IUGG), in kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0;

/// Great-circle distance (haversine), in kilometres.
pub fn distance_km(a: Point, b: Point) -> f64 {
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

static BUILT_IN: LazyLock<HashMap<(&'static str, &'static str), Point>> = LazyLock::new(|| {
    REGIONS
        .iter()
        .map(|&(p, r, lat, lon)| ((p, r), Point { lat, lon }))
        .collect()
});

/// Where each class is: the config's locations over the built-in table.
#[derive(Clone, Debug, Default)]
pub struct Places {
    overrides: HashMap<Class, Point>,
}

impl Places {
    pub fn new(overrides: HashMap<Class, Point>) -> Places {
        Places { overrides }
    }

    pub fn of(&self, class: &Class) -> Option<Point> {
        self.overrides.get(class).copied().or_else(|| {
            BUILT_IN
                .get(&(class.provider.as_str(), class.region.as_str()))
                .copied()
        })
    }

    /// Every class with a place, built in or configured.
    pub fn classes(&self) -> Vec<Class> {
        let mut all: Vec<Class> = BUILT_IN
            .keys()
            .map(|(p, r)| Class {
                provider: (*p).to_owned(),
                region: (*r).to_owned(),
            })
            .collect();
        all.extend(self.overrides.keys().cloned());
        all.sort_by(|a, b| (&a.provider, &a.region).cmp(&(&b.provider, &b.region)));
        all.dedup();
        all
    }
}

/// A latitude and longitude in range.
pub fn valid(lat: f64, lon: f64) -> bool {
    (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Class {
        let (provider, region) = s.split_once('/').unwrap();
        Class {
            provider: provider.into(),
            region: region.into(),
        }
    }

    #[test]
    fn distances_are_great_circles() {
        let paris = Point {
            lat: 48.9,
            lon: 2.4,
        };
        let nyc = Point {
            lat: 40.7,
            lon: -74.0,
        };
        let d = distance_km(paris, nyc);
        assert!((5800.0..5900.0).contains(&d), "{d}");
        assert_eq!(distance_km(paris, paris), 0.0);
        // Across the antimeridian: Auckland to Fiji is short.
        let d = distance_km(
            Point {
                lat: -36.8,
                lon: 174.8,
            },
            Point {
                lat: -18.1,
                lon: 178.4,
            },
        );
        assert!(d < 2200.0, "{d}");
    }

    #[test]
    fn table_is_sane_and_overrides_win() {
        for &(p, r, lat, lon) in REGIONS {
            assert!(valid(lat, lon), "{p}/{r}");
        }
        let mut seen = std::collections::HashSet::new();
        for &(p, r, ..) in REGIONS {
            assert!(seen.insert((p, r)), "{p}/{r} twice");
        }
        let fra = Point {
            lat: 50.1,
            lon: 8.7,
        };
        let places = Places::new(HashMap::from([
            (c("sponsor/fra1"), fra),
            (c("aws/us-east-1"), fra),
        ]));
        assert_eq!(places.of(&c("sponsor/fra1")), Some(fra));
        assert_eq!(places.of(&c("aws/us-east-1")), Some(fra));
        assert_eq!(
            places.of(&c("aws/eu-west-3")),
            Some(Point {
                lat: 48.9,
                lon: 2.4
            })
        );
        assert_eq!(places.of(&c("aws/nowhere-1")), None);
        assert!(places.classes().contains(&c("sponsor/fra1")));
    }
}
