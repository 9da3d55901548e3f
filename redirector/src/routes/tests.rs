//! The router against the OCI grammar: table cases and properties.

use proptest::prelude::*;

use super::*;

proptest! {
    /// Whatever the path, a route that leads to a redirect carries only
    /// a path the grammar made safe to put in a Location header.
    #[test]
    fn redirect_paths_are_always_safe(
        method in prop::sample::select(vec!["GET", "HEAD", "POST", "get", ""]),
        path in "(/v2/?)?([a-zA-Z0-9._:/%\\-]|\\.\\.|//|[\\x00-\\x1f ]|blobs/|blobs/uploads/|uploads/|manifests/|tags/list|sha256:){0,12}",
    ) {
        match route(method, &path) {
            Route::Upstream { rest } | Route::Signature { rest } => prop_assert!(is_safe_rest(rest), "{path:?} -> {rest:?}"),
            Route::Blob { name, digest } => {
                prop_assert!(is_name(name) && is_digest(digest));
                prop_assert!(is_safe_rest(&path[3..]));
            }
            _ => {}
        }
    }
}

proptest! {
    /// Whatever bytes a query holds, the Location built from it is
    /// printable ASCII, and printable queries pass unchanged.
    #[test]
    fn locations_are_ascii_whatever_the_query(query in "\\PC{0,40}") {
        let url = upstream_location("https://up.example", "p", "/a/manifests/v1", Some(&query));
        prop_assert!(url.bytes().all(|b| b.is_ascii_graphic()), "{url:?}");
        if query.bytes().all(|b| b.is_ascii_graphic()) && !query.is_empty() {
            let tail = format!("?{}", query);
            prop_assert!(url.ends_with(&tail), "{:?}", url);
        }
    }
}

#[test]
fn query_bytes_above_ascii_are_percent_encoded() {
    for (query, want) in [
        ("n=5&last=a", "n=5&last=a"),
        ("a=%C3%A9", "a=%C3%A9"),
        ("a=\u{e9}", "a=%C3%A9"),
        ("x=\u{85}", "x=%C2%85"),
        ("x=\u{2028}y", "x=%E2%80%A8y"),
    ] {
        let url = upstream_location("https://up.example", "", "/a/tags/list", Some(query));
        assert_eq!(
            url,
            format!("https://up.example/v2/a/tags/list?{want}"),
            "{query:?}"
        );
    }
}

/// A Location's String is allocated at its exact length, so the header
/// takes it over without copying; only an escaped query grows it.
#[test]
fn locations_are_allocated_at_their_length() {
    for (prefix, query) in [
        ("", None),
        ("p", None),
        ("", Some("")),
        ("p/q", Some("n=5")),
    ] {
        let url = upstream_location("https://up.example", prefix, "/a/manifests/v1", query);
        assert_eq!(url.capacity(), url.len(), "{prefix:?} {query:?}: {url}");
    }
    let url = blob_location("https://b.example", "sha256:ab");
    assert_eq!(url.capacity(), url.len(), "{url}");
}

#[test]
fn upload_ids_cannot_climb_out_of_the_prefix() {
    for ok in [
        "/v2/pause/blobs/uploads",
        "/v2/pause/blobs/uploads/",
        "/v2/pause/blobs/uploads/4f1c-aa_b.c=",
    ] {
        assert!(matches!(route("GET", ok), Route::Upstream { .. }), "{ok}");
    }
    for bad in [
        "/v2/pause/blobs/uploads/..",
        "/v2/pause/blobs/uploads/.",
        "/v2/pause/blobs/uploads/../../../../../other-project/x",
        "/v2/pause/blobs/uploads/a/b",
        "/v2/pause/blobs/uploads//x",
        "/v2/pause/blobs/uploadsx",
    ] {
        assert!(
            matches!(
                route("GET", bad),
                Route::Invalid {
                    code: "BLOB_UPLOAD_INVALID",
                    ..
                } | Route::Invalid {
                    code: "DIGEST_INVALID",
                    ..
                }
            ),
            "{bad}: {:?}",
            route("GET", bad)
        );
    }
}

const D: &str = "sha256:da86e6ba6ca197bf6bc5e9d900febd906b133eaa4750e6bed647b0fbe50ed43e";

#[test]
fn routes_as_the_registry_does() {
    let sig = "/v2/pause/manifests/sha256-da86e6ba6ca197bf6bc5e9d900febd906b133eaa4750e6bed647b0fbe50ed43e.sig";
    let blob = format!("/v2/pause/blobs/{D}");
    let nested_blob = format!("/v2/kubernetes/pause/blobs/{D}");
    let cases: Vec<(&str, &str, Route)> = vec![
        ("GET", "/", Route::Info),
        ("GET", "/privacy", Route::Privacy),
        ("GET", "/privacy/anything", Route::Privacy),
        ("GET", "/v3/", Route::NotFound),
        ("GET", "/v2/", Route::ApiBase),
        ("GET", "/v2", Route::ApiBase),
        ("HEAD", "/v2", Route::ApiBase),
        ("POST", "/v2/", Route::MethodNotAllowed),
        ("PUT", &blob, Route::MethodNotAllowed),
        ("DELETE", "/", Route::MethodNotAllowed),
        ("get", "/v2/", Route::MethodNotAllowed),
        ("GET", "/v2/_catalog", Route::NotFound),
        ("GET", "/v2/pause", Route::NotFound),
        ("GET", "/v2/pause/something/else", Route::NotFound),
        ("GET", "/v2/pause/tags/other", Route::NotFound),
        (
            "GET",
            "/v2/pause/manifests/latest",
            Route::Upstream {
                rest: "/pause/manifests/latest",
            },
        ),
        (
            "GET",
            "/v2/pause/tags/list",
            Route::Upstream {
                rest: "/pause/tags/list",
            },
        ),
        (
            "GET",
            &blob,
            Route::Blob {
                name: "pause",
                digest: D,
            },
        ),
        (
            "HEAD",
            &nested_blob,
            Route::Blob {
                name: "kubernetes/pause",
                digest: D,
            },
        ),
        ("GET", sig, Route::Signature { rest: &sig[3..] }),
        (
            "GET",
            "/v2/pause/blobs/uploads/4f1c-aa",
            Route::Upstream {
                rest: "/pause/blobs/uploads/4f1c-aa",
            },
        ),
    ];
    for (method, path, want) in cases {
        assert_eq!(route(method, path), want, "{method} {path}");
    }
}

#[test]
fn refuses_what_the_grammar_refuses() {
    let bad = [
        ("/v2/Pause/manifests/latest", "NAME_INVALID"),
        ("/v2/pau..se/manifests/latest", "NAME_INVALID"),
        ("/v2/../etc/manifests/latest", "NAME_INVALID"),
        ("/v2//pause/manifests/latest", "NAME_INVALID"),
        ("/v2/pause/blobs/sha256:abc", "DIGEST_INVALID"),
        (
            "/v2/pause/blobs/sha256:DA86E6BA6CA197BF6BC5E9D900FEBD906B133EAA4750E6BED647B0FBE50ED43E",
            "DIGEST_INVALID",
        ),
        ("/v2/pause/blobs/md5", "DIGEST_INVALID"),
        ("/v2/pause/manifests/-latest", "MANIFEST_INVALID"),
        ("/v2/pause/manifests/la\r\ntest", "MANIFEST_INVALID"),
        ("/v2/pause/referrers/latest", "DIGEST_INVALID"),
    ];
    for (path, code) in bad {
        match route("GET", path) {
            Route::Invalid { code: c, .. } => assert_eq!(c, code, "{path}"),
            other => panic!("{path}: {other:?}"),
        }
    }
    let long = format!("/v2/{}/manifests/latest", "a/".repeat(MAX_PATH));
    assert!(matches!(route("GET", &long), Route::Invalid { .. }));
}

#[test]
fn grammar_pieces() {
    for ok in [
        "a",
        "pause",
        "kube-apiserver",
        "a.b",
        "a_b",
        "a__b",
        "a---b",
        "k8s/pause",
        "a/b/c",
    ] {
        assert!(is_name(ok), "{ok}");
    }
    for bad in [
        "", "A", "a_", "_a", "a___b", "a._b", "a/", "/a", "a//b", "a b", "a:b",
    ] {
        assert!(!is_name(bad), "{bad:?}");
    }
    assert!(is_digest(D));
    assert!(is_digest(&format!("sha512:{}", "ab".repeat(64))));
    assert!(
        !is_digest(&format!("sha256:{}", "ab".repeat(64))),
        "sha256 is exactly 64"
    );
    assert!(is_digest(
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"
    ));
    assert!(!is_digest("sha256"));
    assert!(!is_digest(":abc"));
    assert!(is_tag("v1.2.3") && is_tag("_x") && is_tag(&"a".repeat(128)));
    assert!(!is_tag(".x") && !is_tag(&"a".repeat(129)) && !is_tag("a/b"));
}
