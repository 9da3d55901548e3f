//! An origin-form request target split into path and query exactly as
//! the `http` crate's `PathAndQuery` splits it (the same bytes refused,
//! a fragment dropped), but in place: hyper's copy of the target and its
//! parse were about 1,400 instructions of a kept-alive request.

/// The `http` crate's limit on a URI.
const MAX_LEN: usize = u16::MAX as usize - 1;

const INVALID: u8 = 0;
const VALID: u8 = 1;
const QUERY: u8 = 2;
const FRAGMENT: u8 = 3;
/// Not ASCII: valid in a target that is UTF-8, as httparse's is.
const HIGH: u8 = 4;

/// Byte classes of a path (`http`'s, after the WHATWG URL path state).
const PATH: [u8; 256] = classes(true);
/// Byte classes of a query (the WHATWG URL query state).
const QUERY_BYTES: [u8; 256] = classes(false);

const fn classes(path: bool) -> [u8; 256] {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match (path, i as u8) {
            (true, b'?') => QUERY,
            (_, b'#') => FRAGMENT,
            (true, 0x21 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7A | 0x7C | 0x7E) => VALID,
            (true, b'"' | b'{' | b'}') => VALID,
            (false, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E) => VALID,
            (_, 0x80..=0xFF) => HIGH,
            _ => INVALID,
        };
        i += 1;
    }
    t
}

/// Path bytes that need no second look: every `VALID` one of [`PATH`]
/// (as range tests, so a whole chunk is checked at once).
fn plain_path(b: u8) -> bool {
    // `&`, not `&&`: no branch per byte, so the chunk test vectorizes.
    (b.wrapping_sub(0x21) < 0x5E)
        & (b != b'#')
        & (b != b'<')
        & (b != b'>')
        & (b != b'?')
        & (b != b'`')
}

/// How many bytes at the start of `bytes` are [`plain_path`], in chunks
/// of 16 that the compiler checks as vectors.
fn plain_prefix(bytes: &[u8]) -> usize {
    let mut n = 0;
    for chunk in bytes.chunks_exact(16) {
        if !chunk.iter().fold(true, |all, &b| all & plain_path(b)) {
            break;
        }
        n += 16;
    }
    n
}

/// The path and query of `target`, which starts with `/` (httparse's
/// request target: already UTF-8); `None` where `http` refuses it.
pub fn split(target: &str) -> Option<(&str, Option<&str>)> {
    let bytes = target.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.len() > MAX_LEN {
        return None;
    }
    let (mut query, mut end) = (None, bytes.len());
    let mut i = plain_prefix(bytes);
    while i < bytes.len() {
        match PATH[bytes[i] as usize] {
            VALID | HIGH => {}
            QUERY => {
                query = Some(i);
                break;
            }
            FRAGMENT => {
                end = i;
                break;
            }
            _ => return None,
        }
        i += 1;
    }
    if let Some(q) = query {
        for (j, &b) in bytes.iter().enumerate().skip(q + 1) {
            match QUERY_BYTES[b as usize] {
                VALID | HIGH => {}
                FRAGMENT => {
                    end = j;
                    break;
                }
                _ => return None,
            }
        }
    }
    // Cut only at ASCII bytes: char boundaries.
    Some(match query {
        Some(q) => (&target[..q], Some(&target[q + 1..end])),
        None => (&target[..end], None),
    })
}

#[cfg(test)]
mod tests {
    use http::uri::PathAndQuery;
    use proptest::prelude::*;

    use super::*;

    fn http_split(target: &str) -> Option<(String, Option<String>)> {
        let pq = PathAndQuery::try_from(target).ok()?;
        Some((pq.path().to_owned(), pq.query().map(str::to_owned)))
    }

    fn ours(target: &str) -> Option<(String, Option<String>)> {
        split(target).map(|(p, q)| (p.to_owned(), q.map(str::to_owned)))
    }

    #[test]
    fn named_targets() {
        for (name, target, want) in [
            ("root", "/", Some(("/", None))),
            (
                "blob",
                "/v2/pause/blobs/sha256:ab",
                Some(("/v2/pause/blobs/sha256:ab", None)),
            ),
            ("query", "/v2/?a=1&b=/?", Some(("/v2/", Some("a=1&b=/?")))),
            ("empty query", "/x?", Some(("/x", Some("")))),
            ("fragment dropped", "/x#frag", Some(("/x", None))),
            ("fragment after a query", "/x?q#f", Some(("/x", Some("q")))),
            ("json in the path", "/{\"a\"}", Some(("/{\"a\"}", None))),
            ("utf-8", "/caf\u{e9}", Some(("/caf\u{e9}", None))),
            (
                "a long plain run, then a query",
                "/v2/library/some/long/name/blobs/sha256:0123456789abcdef?q=<",
                None,
            ),
            ("a bad byte after 16 plain ones", "/0123456789abcdef<", None),
            ("backtick", "/a`b", None),
            ("angle bracket", "/a<b", None),
            ("quote in a query", "/a?\"", None),
            ("control byte", "/a\x7f", None),
            ("space", "/a b", None),
            ("no slash", "a", None),
        ] {
            assert_eq!(split(target), want, "{name}: {target:?}");
            assert_eq!(ours(target), http_split(target), "{name}");
        }
    }

    #[test]
    fn the_length_limit_is_http_s() {
        let long = format!("/{}", "a".repeat(MAX_LEN));
        assert_eq!(split(&long), None);
        assert!(http_split(&long).is_none());
        let most = format!("/{}", "a".repeat(MAX_LEN - 1));
        assert!(split(&most).is_some());
    }

    proptest! {
        /// Whatever the bytes, the same answer as `http`.
        #[test]
        fn agrees_with_http(
            rest in prop::collection::vec(
                prop_oneof![
                    8 => prop::sample::select("/?#azAZ09-._~%:@!$&'()*+,;=\"{}`<>\\^| ".chars().collect::<Vec<_>>()),
                    1 => any::<char>(),
                ],
                0..60,
            )
        ) {
            let target: String = std::iter::once('/').chain(rest).collect();
            prop_assert_eq!(ours(&target), http_split(&target));
        }
    }
}
