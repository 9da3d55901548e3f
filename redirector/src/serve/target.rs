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
/// Valid if the whole target is UTF-8.
const HIGH: u8 = 4;

/// Byte classes of a path (`http`'s, after the WHATWG URL path state).
const PATH: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            b'?' => QUERY,
            b'#' => FRAGMENT,
            0x21 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7A | 0x7C | 0x7E => VALID,
            b'"' | b'{' | b'}' => VALID,
            0x80..=0xFF => HIGH,
            _ => INVALID,
        };
        i += 1;
    }
    t
};

/// Byte classes of a query (the WHATWG URL query state).
const QUERY_BYTES: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            b'#' => FRAGMENT,
            0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E => VALID,
            0x80..=0xFF => HIGH,
            _ => INVALID,
        };
        i += 1;
    }
    t
};

/// The path and query of `target`, which starts with `/`; `None` where
/// `http` refuses it.
pub fn split(target: &[u8]) -> Option<(&str, Option<&str>)> {
    if target.first() != Some(&b'/') || target.len() > MAX_LEN {
        return None;
    }
    let (mut query, mut end) = (None, target.len());
    let mut i = 0;
    while i < target.len() {
        match PATH[target[i] as usize] {
            VALID => {}
            QUERY => {
                query = Some(i);
                break;
            }
            FRAGMENT => {
                end = i;
                break;
            }
            HIGH => {}
            _ => return None,
        }
        i += 1;
    }
    if let Some(q) = query {
        for (j, &b) in target.iter().enumerate().skip(q + 1) {
            match QUERY_BYTES[b as usize] {
                VALID => {}
                FRAGMENT => {
                    end = j;
                    break;
                }
                HIGH => {}
                _ => return None,
            }
        }
    }
    let kept = &target[..end];
    // A byte past ASCII is valid where the whole is UTF-8 (quick to check
    // on ASCII).
    let kept = std::str::from_utf8(kept).ok()?;
    Some(match query {
        Some(q) => (&kept[..q], Some(&kept[q + 1..])),
        None => (kept, None),
    })
}

#[cfg(test)]
mod tests {
    use http::uri::PathAndQuery;
    use proptest::prelude::*;

    use super::*;

    fn http_split(target: &[u8]) -> Option<(String, Option<String>)> {
        let pq = PathAndQuery::try_from(target).ok()?;
        Some((pq.path().to_owned(), pq.query().map(str::to_owned)))
    }

    fn ours(target: &[u8]) -> Option<(String, Option<String>)> {
        split(target).map(|(p, q)| (p.to_owned(), q.map(str::to_owned)))
    }

    #[test]
    fn named_targets() {
        for (name, target, want) in [
            ("root", &b"/"[..], Some(("/", None))),
            (
                "blob",
                b"/v2/pause/blobs/sha256:ab",
                Some(("/v2/pause/blobs/sha256:ab", None)),
            ),
            ("query", b"/v2/?a=1&b=/?", Some(("/v2/", Some("a=1&b=/?")))),
            ("empty query", b"/x?", Some(("/x", Some("")))),
            ("fragment dropped", b"/x#frag", Some(("/x", None))),
            ("fragment after a query", b"/x?q#f", Some(("/x", Some("q")))),
            ("json in the path", b"/{\"a\"}", Some(("/{\"a\"}", None))),
            ("utf-8", "/caf\u{e9}".as_bytes(), Some(("/caf\u{e9}", None))),
            ("not utf-8", b"/caf\xe9", None),
            ("backtick", b"/a`b", None),
            ("angle bracket", b"/a<b", None),
            ("quote in a query", b"/a?\"", None),
            ("control byte", b"/a\x7f", None),
            ("space", b"/a b", None),
            ("no slash", b"a", None),
        ] {
            assert_eq!(
                split(target),
                want,
                "{name}: {:?}",
                String::from_utf8_lossy(target)
            );
            assert_eq!(ours(target), http_split(target), "{name}");
        }
    }

    #[test]
    fn the_length_limit_is_http_s() {
        let long = format!("/{}", "a".repeat(MAX_LEN));
        assert_eq!(split(long.as_bytes()), None);
        assert!(http_split(long.as_bytes()).is_none());
        let most = format!("/{}", "a".repeat(MAX_LEN - 1));
        assert!(split(most.as_bytes()).is_some());
    }

    proptest! {
        /// Whatever the bytes, the same answer as `http`.
        #[test]
        fn agrees_with_http(
            rest in prop::collection::vec(
                prop_oneof![
                    4 => prop::sample::select(b"/?#azAZ09-._~%:@!$&'()*+,;=\"{}`<>\\^| ".to_vec()),
                    1 => any::<u8>(),
                ],
                0..40,
            )
        ) {
            let mut target = vec![b'/'];
            target.extend(rest);
            prop_assert_eq!(ours(&target), http_split(&target));
        }
    }
}
