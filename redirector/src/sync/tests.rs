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
