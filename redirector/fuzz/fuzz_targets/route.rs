//! Any bytes as a request line: the router never panics, and a route that
//! leads to a redirect carries only a path that is safe in a Location
//! header. Run with `cargo xtask fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redirector::routes::{Route, route};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (method, path) = text.split_once(' ').unwrap_or(("GET", text));
    let safe = |rest: &str| {
        rest.starts_with('/')
            && !rest.contains("//")
            && !rest.split('/').any(|s| s == ".." || s == ".")
            && rest.bytes().all(|b| b.is_ascii_graphic())
    };
    match route(method, path) {
        Route::Upstream { rest } | Route::Signature { rest } => assert!(safe(rest), "{path:?}"),
        Route::Blob { .. } => assert!(safe(&path[3..]), "{path:?}"),
        _ => {}
    }
});
