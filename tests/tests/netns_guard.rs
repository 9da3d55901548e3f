//! The namespace guard removes what it made, even when the test panics.

use std::path::Path;

use steer_tests::netns::{Netns, veth};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn namespaces_are_removed_when_a_test_panics() {
    if !is_root() {
        assert_ne!(
            std::env::var(steer_tests::REQUIRE_XDP).as_deref(),
            Ok("1"),
            "namespace tests need root"
        );
        eprintln!("SKIPPED namespaces_are_removed_when_a_test_panics: needs root");
        return;
    }
    let names = std::panic::catch_unwind(|| {
        let a = Netns::new("guard-a");
        let b = Netns::new("guard-b");
        veth(&a, "g-a", &["192.0.2.1"], &b, "g-b", &["192.0.2.2"]);
        let names = (a.name().to_owned(), b.name().to_owned());
        assert!(Path::new(&format!("/run/netns/{}", names.0)).exists());
        std::panic::panic_any(names)
    })
    .expect_err("the closure panics")
    .downcast::<(String, String)>()
    .expect("names carried by the panic");
    for name in [&names.0, &names.1] {
        assert!(
            !Path::new(&format!("/run/netns/{name}")).exists(),
            "{name} survived the panic"
        );
    }
}
