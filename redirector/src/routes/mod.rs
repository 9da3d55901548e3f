//! What a request asks for: the registry's routes, with repository names,
//! references and digests checked against the OCI distribution grammar.
//!
//! Pure: no I/O, no config beyond one flag, so every route is a table test
//! and the fuzz target drives it directly. Anything that reaches a
//! `Location` header passes through here first; the grammar admits no
//! control bytes, spaces, `..` segments or empty segments, so a checked
//! path cannot steer a redirect to another host.

/// Longest request path accepted; real ones are far shorter (names are at
/// most 255 bytes by the distribution spec, digests 7 + 128).
pub const MAX_PATH: usize = 2048;

/// A routed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/`: the project's information page.
    Info,
    /// `/privacy...`: the privacy policy.
    Privacy,
    /// `/v2` and `/v2/`: the API version check.
    ApiBase,
    /// `/v2/<name>/blobs/<digest>`: may go to a regional backend.
    Blob { name: &'a str, digest: &'a str },
    /// A cosign signature or attestation tag, for the signature upstream.
    Signature { rest: &'a str },
    /// Any other API read (manifests, tag lists, referrers, upload
    /// status): to the upstream registry. `rest` is the path after `/v2`.
    Upstream { rest: &'a str },
    /// 404: `/v2/_catalog`, paths outside the API, unknown API shapes.
    NotFound,
    /// 405: anything but GET and HEAD.
    MethodNotAllowed,
    /// 400 with an OCI error code: a name, reference or digest that the
    /// grammar refuses, or a path too long to be real.
    Invalid {
        code: &'static str,
        what: &'static str,
    },
}

impl Route<'_> {
    /// A short name for logs and metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            Route::Info => "info",
            Route::Privacy => "privacy",
            Route::ApiBase => "api-base",
            Route::Blob { .. } => "blob",
            Route::Signature { .. } => "signature",
            Route::Upstream { .. } => "upstream",
            Route::NotFound => "not-found",
            Route::MethodNotAllowed => "method-not-allowed",
            Route::Invalid { .. } => "invalid",
        }
    }
}

/// Routes `path` (without the query) for `method`.
pub fn route<'a>(method: &str, path: &'a str) -> Route<'a> {
    if method != "GET" && method != "HEAD" {
        return Route::MethodNotAllowed;
    }
    if path.len() > MAX_PATH {
        return Route::Invalid {
            code: "NAME_INVALID",
            what: "path too long",
        };
    }
    match path {
        "/" => return Route::Info,
        "/v2" | "/v2/" => return Route::ApiBase,
        "/v2/_catalog" => return Route::NotFound,
        p if p.starts_with("/privacy") => return Route::Privacy,
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Route::NotFound;
    };
    // <name>/<kind>/<tail>: the name is everything before the last
    // `/blobs/`, `/manifests/`, `/tags/` or `/referrers/` segment.
    let Some((name, kind, tail)) = split_api(rest) else {
        return Route::NotFound;
    };
    if !is_name(name) {
        return Route::Invalid {
            code: "NAME_INVALID",
            what: "repository name",
        };
    }
    let rest = &path["/v2".len()..];
    match kind {
        "blobs" if tail.starts_with("uploads/") || tail == "uploads" => {
            // Upload status is a read, but only the upstream knows it.
            if is_upload_tail(tail) {
                Route::Upstream { rest }
            } else {
                Route::Invalid {
                    code: "BLOB_UPLOAD_INVALID",
                    what: "upload id",
                }
            }
        }
        "blobs" if is_digest(tail) => Route::Blob { name, digest: tail },
        "blobs" => Route::Invalid {
            code: "DIGEST_INVALID",
            what: "digest",
        },
        "manifests" if is_cosign_tag(tail) => Route::Signature { rest },
        "manifests" if is_tag(tail) || is_digest(tail) => Route::Upstream { rest },
        "manifests" => Route::Invalid {
            code: "MANIFEST_INVALID",
            what: "reference",
        },
        "tags" if tail == "list" => Route::Upstream { rest },
        "referrers" if is_digest(tail) => Route::Upstream { rest },
        "referrers" => Route::Invalid {
            code: "DIGEST_INVALID",
            what: "digest",
        },
        _ => Route::NotFound,
    }
}

/// What every path that reaches a Location header satisfies: absolute, no
/// empty, `.` or `..` segment, printable ASCII only. The property test
/// below and the fuzz target check the router against it.
pub fn is_safe_rest(rest: &str) -> bool {
    rest.starts_with('/')
        && !rest.contains("//")
        && !rest.split('/').any(|s| s == ".." || s == ".")
        && rest.bytes().all(|b| b.is_ascii_graphic())
}

/// Splits `<name>/<kind>/<tail>` at the last API keyword segment.
fn split_api(rest: &str) -> Option<(&str, &str, &str)> {
    // The last `/<kind>/` wins (a name may contain `blobs`); one backward
    // walk over the slashes instead of a substring search per kind.
    let b = rest.as_bytes();
    let mut end = b.len();
    while let Some(i) = b[..end].iter().rposition(|&c| c == b'/') {
        for kind in ["blobs", "manifests", "tags", "referrers"] {
            let after = i + 1 + kind.len();
            if b.get(i + 1..after) == Some(kind.as_bytes()) && b.get(after) == Some(&b'/') {
                return Some((&rest[..i], kind, &rest[after + 1..]));
            }
        }
        end = i;
    }
    None
}

/// `<base>/v2/<prefix><rest>[?query]`: where a request goes upstream.
/// `rest` (from [`Route::Upstream`], [`Route::Signature`] or a blob path
/// after `/v2`) starts with `/`; an empty `prefix` adds nothing. The query
/// is passed on with every byte outside printable ASCII percent-encoded:
/// a Location must be ASCII (the URI parser admits raw bytes above 0x7F,
/// such as NEL or U+2028, in a query).
pub fn upstream_location(base: &str, prefix: &str, rest: &str, query: Option<&str>) -> String {
    let query = query.filter(|q| !q.is_empty());
    // Exactly the length (unless the query needs escapes): a full String
    // becomes the Location header's bytes without another allocation.
    let prefix_len = if prefix.is_empty() {
        0
    } else {
        prefix.len() + 1
    };
    let mut url = String::with_capacity(
        base.len() + "/v2".len() + prefix_len + rest.len() + query.map_or(0, |q| q.len() + 1),
    );
    url.push_str(base);
    url.push_str("/v2");
    if !prefix.is_empty() {
        url.push('/');
        url.push_str(prefix);
    }
    url.push_str(rest);
    if let Some(q) = query {
        url.push('?');
        push_query(&mut url, q);
    }
    url
}

fn push_query(url: &mut String, query: &str) {
    if query.bytes().all(|b| b.is_ascii_graphic()) {
        url.push_str(query);
        return;
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in query.bytes() {
        if b.is_ascii_graphic() {
            url.push(char::from(b));
        } else {
            url.push('%');
            url.push(char::from(HEX[usize::from(b >> 4)]));
            url.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// `<base>/containers/images/<digest>`: where a backend keeps a blob (the
/// layout of registry.k8s.io's buckets).
pub fn blob_location(base: &str, digest: &str) -> String {
    const MIDDLE: &str = "/containers/images/";
    let mut url = String::with_capacity(base.len() + MIDDLE.len() + digest.len());
    url.push_str(base);
    url.push_str(MIDDLE);
    url.push_str(digest);
    url
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
/// at most 255 bytes.
pub fn is_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.split('/').all(is_name_component)
}

fn is_name_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    // Separators: one `.`, one or two `_`, or any run of `-`.
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        match &b[start..i] {
            b"." | b"_" | b"__" => {}
            sep if sep.iter().all(|&x| x == b'-') => {}
            _ => return false,
        }
    }
    true
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && all_bytes(&tag[1..], |x| {
            x.is_ascii_alphanumeric() | matches!(x, b'.' | b'_' | b'-')
        })
}

fn is_lower_hex(x: u8) -> bool {
    x.is_ascii_digit() | (b'a'..=b'f').contains(&x)
}

/// Whether every byte passes `ok`, looking at all of them: without the
/// early exit of `Iterator::all` the loop vectorizes (these run on every
/// request's path: callgrind, `is_digest` went from about 600 to 170
/// instructions per request of bench http's mix).
fn all_bytes(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    s.bytes().fold(true, |all, x| all & ok(x))
}

/// `algorithm ":" encoded`, with the registered algorithms' exact forms:
/// sha256 is 64 and sha512 128 lowercase hex digits. Other algorithms
/// follow the general grammar.
pub fn is_digest(digest: &str) -> bool {
    let Some((alg, encoded)) = digest.split_once(':') else {
        return false;
    };
    let hex = |n: usize| encoded.len() == n && all_bytes(encoded, is_lower_hex);
    match alg {
        "sha256" => hex(64),
        "sha512" => hex(128),
        _ => {
            is_algorithm(alg)
                && !encoded.is_empty()
                && encoded.len() <= 256
                && encoded
                    .bytes()
                    .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'=' | b'_' | b'-'))
        }
    }
}

/// `[a-z0-9]+([+._-][a-z0-9]+)*`.
fn is_algorithm(alg: &str) -> bool {
    !alg.is_empty()
        && alg.len() <= 32
        && alg.split(['+', '.', '_', '-']).all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit())
        })
}

/// `sha256-<64 hex>.sig` or `.att`: cosign's tags for a digest.
fn is_cosign_tag(tag: &str) -> bool {
    let Some(body) = tag
        .strip_suffix(".sig")
        .or_else(|| tag.strip_suffix(".att"))
    else {
        return false;
    };
    body.strip_prefix("sha256-")
        .is_some_and(|h| h.len() == 64 && all_bytes(h, is_lower_hex))
}

/// `uploads`, `uploads/` or `uploads/<id>`: the id is one segment (the
/// spec's `<reference>`, a UUID in practice), never `.` or `..`, which a
/// client resolving dot segments would turn into a climb out of the
/// upstream path prefix.
fn is_upload_tail(tail: &str) -> bool {
    let id = match tail.strip_prefix("uploads") {
        Some("") => return true,
        Some(rest) => match rest.strip_prefix('/') {
            Some(id) => id,
            None => return false,
        },
        None => return false,
    };
    id.is_empty()
        || (id != "."
            && id != ".."
            && id
                .bytes()
                .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'-' | b'_' | b'.' | b'=')))
}

#[cfg(test)]
mod tests;
