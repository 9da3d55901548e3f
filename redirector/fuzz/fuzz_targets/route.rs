//! Any bytes as a request line: the router never panics, and a route that
//! leads to a redirect carries only a path that is safe in a Location
//! header. Run with `cargo xtask fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redirector::routes::{Route, is_safe_rest, route};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (method, path) = text.split_once(' ').unwrap_or(("GET", text));
    match route(method, path) {
        Route::Upstream { rest } | Route::Signature { rest } => {
            assert!(is_safe_rest(rest), "{path:?}")
        }
        Route::Blob { .. } => assert!(is_safe_rest(&path[3..]), "{path:?}"),
        _ => {}
    }
});
