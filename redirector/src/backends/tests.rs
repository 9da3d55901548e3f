//! Candidate order: registry.k8s.io's table, weights, and the
//! geographic fallback over the built-in region coordinates.

use std::collections::HashMap;

use steer_user::Class;

use super::{Backend, Backends, Nearest, Why, order::client_key};
use crate::{backends::DEFAULT_AWS_BASE_URL, routing::geo::Places};

fn class(s: &str) -> Class {
    let (provider, region) = s.split_once('/').unwrap();
    Class {
        provider: provider.into(),
        region: region.into(),
    }
}

fn first(b: &Backends, c: &Class) -> String {
    b.candidates(c, 1)
        .first()
        .map_or("upstream".into(), |c| c.backend.name.to_string())
}

#[test]
fn registry_k8s_io_table() {
    let b = Backends::registry_k8s_io(DEFAULT_AWS_BASE_URL);
    let url = |c: &str| {
        b.candidates(&class(c), 1)
            .first()
            .map_or("upstream".into(), |c| c.backend.base_url.clone())
    };
    assert_eq!(
        url("aws/eu-west-3"),
        "https://prod-registry-k8s-io-eu-west-3.s3.dualstack.eu-west-3.amazonaws.com"
    );
    assert_eq!(
        url("aws/cn-north-1"),
        "https://prod-registry-k8s-io-ap-east-1.s3.dualstack.ap-east-1.amazonaws.com"
    );
    assert!(url("aws/eu-west-2").starts_with("https://767373bb"));
    let global = b.candidates(&class("aws/GLOBAL"), 1);
    assert_eq!(
        (global[0].backend.base_url.as_str(), global[0].why),
        (DEFAULT_AWS_BASE_URL, Why::Nearest)
    );
    assert!(b.candidates(&class("gcp/europe-west1"), 1).is_empty());
    let unknown = b.candidates(&Class::unknown(), 1);
    assert_eq!(
        (&*unknown[0].backend.name, unknown[0].why),
        ("aws-default", Why::Unknown)
    );
    // As in the Go service: a region's own bucket, then upstream.
    assert_eq!(b.candidates(&class("aws/eu-west-3"), 1).len(), 1);
}

fn backend(name: &str, weight: u32, location: &str) -> Backend {
    Backend {
        weight,
        location: Some(class(location)),
        ..Backend::new(name, format!("http://{name}"))
    }
}

/// Three regional mirrors with geo fallback; `a` and `b` both list
/// sponsor/fra1, 70/30.
fn fleet() -> Backends {
    let backends = vec![
        backend("paris", 70, "aws/eu-west-3"),
        backend("virginia", 1, "aws/us-east-1"),
        backend("singapore", 1, "aws/ap-southeast-1"),
        backend("frankfurt", 30, "aws/eu-central-1"),
    ];
    let by_class = HashMap::from([
        (class("aws/eu-west-3"), vec![0]),
        (class("aws/us-east-1"), vec![1]),
        (class("aws/ap-southeast-1"), vec![2]),
        (class("sponsor/fra1"), vec![0, 3]),
    ]);
    let places = Places::new(HashMap::from([(
        class("sponsor/fra1"),
        crate::routing::geo::Point {
            lat: 50.1,
            lon: 8.7,
        },
    )]));
    Backends::new(backends, by_class, Nearest::Geo, None, 3, &places)
}

#[test]
fn geo_order_for_built_in_regions() {
    let b = fleet();
    let names = |c: &str| -> Vec<String> {
        b.candidates(&class(c), 7)
            .iter()
            .map(|c| c.backend.name.to_string())
            .collect()
    };
    let cases: &[(&str, &[&str])] = &[
        // Listed: itself first, then the rest by distance.
        (
            "aws/eu-west-3",
            &["paris", "frankfurt", "virginia", "singapore"],
        ),
        // Spain goes to Paris before Virginia.
        (
            "aws/eu-south-2",
            &["paris", "frankfurt", "virginia", "singapore"],
        ),
        (
            "aws/ca-central-1",
            &["virginia", "paris", "frankfurt", "singapore"],
        ),
        (
            "aws/ap-southeast-2",
            &["singapore", "virginia", "frankfurt", "paris"],
        ),
        (
            "gcp/asia-northeast1",
            &["singapore", "frankfurt", "paris", "virginia"],
        ),
        (
            "azure/westeurope",
            // Amsterdam: Frankfurt (about 360 km) before Paris (430).
            &["frankfurt", "paris", "virginia", "singapore"],
        ),
        // A region no table knows: only what lists it (nothing), upstream.
        ("aws/nowhere-1", &[]),
    ];
    for (c, want) in cases {
        assert_eq!(names(c), *want, "{c}");
    }
    let spain = b.candidates(&class("aws/eu-south-2"), 7);
    assert!(
        matches!(spain[0].why, Why::Geo { km } if (700.0..1000.0).contains(&km)),
        "{:?}",
        spain[0]
    );
}

#[test]
fn weights_split_clients_and_keep_each_one_in_place() {
    let b = fleet();
    let fra1 = class("sponsor/fra1");
    let mut paris = 0;
    for i in 0..2000u32 {
        let ip = std::net::IpAddr::from([10, (i >> 8) as u8, i as u8, 7]);
        let key = client_key(ip);
        let c = b.candidates(&fra1, key);
        // The same client always gets the same order.
        assert_eq!(c[0].index, b.candidates(&fra1, key)[0].index);
        assert_eq!(c[0].why, Why::Region);
        if &*c[0].backend.name == "paris" {
            paris += 1;
        }
    }
    let share = f64::from(paris) / 2000.0;
    assert!((0.65..=0.75).contains(&share), "paris got {share}");
}

#[test]
fn unknown_clients_and_provider_fallbacks() {
    let backends = vec![
        backend("iad", 1, "aws/us-east-1"),
        backend("lab", 1, "sponsor/lab1"),
    ];
    let by_class = HashMap::from([(class("aws/us-east-1"), vec![0])]);
    let nearest = Nearest::Providers(HashMap::from([("aws".to_owned(), 0)]));
    let b = Backends::new(backends, by_class, nearest, Some(1), 3, &Places::default());
    assert_eq!(first(&b, &class("aws/eu-west-3")), "iad");
    assert_eq!(
        b.candidates(&class("aws/eu-west-3"), 1)[0].why,
        Why::Nearest
    );
    assert_eq!(first(&b, &class("gcp/europe-west1")), "upstream");
    assert_eq!(first(&b, &Class::unknown()), "lab");
}
