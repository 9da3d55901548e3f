//! Stores over object_store's in-memory store: where blobs land and what
//! a listing counts as present.

use std::sync::Arc;

use object_store::{ObjectStoreExt as _, memory::InMemory, path::Path};

use super::{digest::sha256, store::Store};

#[tokio::test]
async fn blobs_land_where_locations_point_and_only_digests_count() {
    let mem = Arc::new(InMemory::new());
    let store = Store::new("eu".into(), "memory:///", mem.clone(), "/mirror/");
    let blob = sha256(b"layer");
    assert_eq!(
        store.key(&blob).as_ref(),
        format!("mirror/containers/images/{blob}")
    );
    mem.put(&store.key(&blob), b"layer".to_vec().into())
        .await
        .unwrap();
    // Not blobs: a staging name, a nested key, a key outside the prefix.
    for other in [
        format!("mirror/containers/images/{blob}#1"),
        format!("mirror/containers/images/x/{blob}"),
        format!("containers/images/{}", sha256(b"elsewhere")),
    ] {
        mem.put(&Path::from(other), b"x".to_vec().into())
            .await
            .unwrap();
    }
    let found = store.inventory().await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[&blob], 5);
    store.delete(&blob).await.unwrap();
    assert!(store.inventory().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_empty_prefix_is_the_store_root() {
    let store = Store::new("x".into(), "memory:///", Arc::new(InMemory::new()), "");
    let d = sha256(b"");
    assert_eq!(store.key(&d).as_ref(), format!("containers/images/{d}"));
    assert!(store.inventory().await.unwrap().is_empty());
}

fn backend(store: &str, options: &[(&str, &str)]) -> crate::backends::Backend {
    crate::backends::Backend {
        store: Some(crate::backends::StoreSpec {
            url: store.into(),
            options: options
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }),
        ..crate::backends::Backend::new("b", "http://127.0.0.1:1")
    }
}

#[test]
fn stores_open_from_their_specs_and_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mirror");
    let opened = Store::open(&backend(&format!("file://{}", root.display()), &[]))
        .unwrap()
        .unwrap();
    assert!(root.is_dir(), "a file store creates its directory");
    assert_eq!(
        opened.key("sha256:ab").as_ref(),
        "containers/images/sha256:ab"
    );
    // Opening builds clients only; nothing is sent anywhere.
    let s3 = backend(
        "s3://bucket/k8s",
        &[
            ("region", "eu-west-1"),
            ("endpoint", "http://127.0.0.1:1"),
            ("allow_http", "true"),
        ],
    );
    let opened = Store::open(&s3).unwrap().unwrap();
    assert_eq!(
        opened.key("sha256:ab").as_ref(),
        "k8s/containers/images/sha256:ab"
    );
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            "s3://bucket",
            &[("colour", "red")],
            "store_options.colour: not an option of a s3 store",
        ),
        (
            "gs://bucket",
            &[("colour", "red")],
            "store_options.colour: not an option of a gs store",
        ),
        (
            "az://container",
            &[("colour", "red")],
            "store_options.colour",
        ),
        ("file:///tmp/x", &[("region", "x")], "store_options.region"),
    ];
    for (url, options, want) in cases {
        let err = Store::open(&backend(url, options)).unwrap_err().to_string();
        assert!(
            err.contains(want) && err.contains("backend `b`"),
            "{url}: {err}"
        );
    }
    let plain = crate::backends::Backend {
        store: None,
        ..backend("file:///x", &[])
    };
    assert!(Store::open(&plain).unwrap().is_none());
}
