//! Which address a request is from: the TCP peer, or what a trusted proxy
//! says in `X-Forwarded-For`.
//!
//! A header value that is odd (not addresses), too long, or from a peer
//! that is not trusted never fails a request: the peer address is used.

use std::net::IpAddr;

use ipnet::IpNet;

/// Longest `X-Forwarded-For` (all lines together) that is parsed.
pub const MAX_XFF_BYTES: usize = 4096;
/// Most entries looked at.
pub const MAX_XFF_ENTRIES: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Forwarded {
    /// The TCP peer is the client (the default: nothing to spoof).
    #[default]
    Peer,
    /// Peers in these networks are proxies: the client is the rightmost
    /// `X-Forwarded-For` entry that is not a trusted proxy.
    Trusted(Vec<IpNet>),
    /// The registry's Go service rule, for deployments behind Google's
    /// load balancer: the second-to-last entry when there are at least
    /// two, else the peer. Trusts any peer: only for a server that is
    /// reachable through that load balancer alone.
    SecondToLast,
}

impl Forwarded {
    /// The client address for a request from `peer` with these
    /// `X-Forwarded-For` values; the bool says whether it came from the
    /// header.
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> (IpAddr, bool) {
        let peer = peer.to_canonical();
        match self {
            Forwarded::Peer => (peer, false),
            Forwarded::Trusted(proxies) => {
                let trusted = |a: &IpAddr| proxies.iter().any(|n| n.contains(a));
                if !trusted(&peer) {
                    return (peer, false);
                }
                // The rightmost untrusted entry, else the first one.
                let (mut first, mut untrusted) = (None, None);
                let whole = each_entry(values, |a| {
                    first.get_or_insert(a);
                    if !trusted(&a) {
                        untrusted = Some(a);
                    }
                });
                match whole.and(untrusted.or(first)) {
                    Some(a) => (a, true),
                    None => (peer, false),
                }
            }
            Forwarded::SecondToLast => {
                let mut last_two = [None, None];
                let whole = each_entry(values, |a| last_two = [last_two[1], Some(a)]);
                match whole.and(last_two[0]) {
                    Some(a) => (a, true),
                    None => (peer, false),
                }
            }
        }
    }
}

/// Calls `seen` with every entry of every `X-Forwarded-For` line, in
/// order, without collecting them (this runs for every request). None
/// when the header is absent, too long, or any entry is not an address:
/// the caller then ignores what it was given.
fn each_entry<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    mut seen: impl FnMut(IpAddr),
) -> Option<()> {
    let (mut total, mut count) = (0, 0);
    for value in values {
        total += value.len();
        if total > MAX_XFF_BYTES {
            return None;
        }
        // Split as bytes: a `str` split on a char costs a searcher per
        // value, and only ASCII can be an address.
        for part in value.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() {
                continue;
            }
            if count == MAX_XFF_ENTRIES {
                return None;
            }
            count += 1;
            seen(parse_entry(part)?.to_canonical());
        }
    }
    (count > 0).then_some(())
}

/// `1.2.3.4`, `2001:db8::1`, and the `1.2.3.4:567` / `[2001:db8::1]:567`
/// forms some proxies write.
fn parse_entry(b: &[u8]) -> Option<IpAddr> {
    if let Some(a) = colon_hex(b) {
        return Some(IpAddr::V6(a));
    }
    let s = std::str::from_utf8(b).ok()?;
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    None
}

/// An IPv6 address in plain colon-hex form, read in one pass: std's
/// parser spends about 2,000 instructions on one (callgrind), a tenth of
/// a request. Anything else (an embedded IPv4 address, a zone, a port,
/// odd input) is left to std: this accepts only what std accepts, as the
/// same address.
fn colon_hex(s: &[u8]) -> Option<std::net::Ipv6Addr> {
    let (head, tail) = match s.windows(2).position(|w| w == b"::") {
        Some(i) => (&s[..i], Some(&s[i + 2..])),
        None => (s, None),
    };
    let mut groups = [0u16; 8];
    let n = hex_groups(head, &mut groups)?;
    if let Some(tail) = tail {
        // "::" stands for at least one group of zeros.
        let mut last = [0u16; 8];
        let m = hex_groups(tail, &mut last)?;
        if n + m > 7 {
            return None;
        }
        groups[8 - m..].copy_from_slice(&last[..m]);
    } else if n != 8 {
        return None;
    }
    Some(groups.into())
}

/// `h16 *(":" h16)` into `out`, or nothing at all; the count.
fn hex_groups(s: &[u8], out: &mut [u16; 8]) -> Option<usize> {
    if s.is_empty() {
        return Some(0);
    }
    let mut n = 0;
    for part in s.split(|&b| b == b':') {
        if part.is_empty() || part.len() > 4 || n == 8 {
            return None;
        }
        let mut value = 0u16;
        for &b in part {
            value = value << 4 | u16::from(char::from(b).to_digit(16)? as u8);
        }
        out[n] = value;
        n += 1;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header's lines, as the handler passes them.
    fn headers<'a>(values: &[&'a str]) -> Vec<&'a [u8]> {
        values.iter().map(|v| v.as_bytes()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn trusted_proxies_rightmost_untrusted() {
        let mode = Forwarded::Trusted(vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]);
        let proxy = ip("10.1.1.1");
        let cases: &[(&[&str], IpAddr, &str, bool)] = &[
            (&["35.180.1.1"], proxy, "35.180.1.1", true),
            (
                &["1.1.1.1, 35.180.1.1, 10.0.0.5"],
                proxy,
                "35.180.1.1",
                true,
            ),
            (&["1.1.1.1", "35.180.1.1"], proxy, "35.180.1.1", true),
            (&["35.180.1.1:4711"], proxy, "35.180.1.1", true),
            (&["[2a05:d012::1]:443"], proxy, "2a05:d012::1", true),
            (&["::ffff:35.180.1.1"], proxy, "35.180.1.1", true),
            (&["10.0.0.9, 10.0.0.5"], proxy, "10.0.0.9", true),
            // Not from a trusted proxy: the header is ignored.
            (&["35.180.1.1"], ip("192.0.2.7"), "192.0.2.7", false),
            // Odd values fall back to the peer, never an error.
            (&["unknown"], proxy, "10.1.1.1", false),
            (&["35.180.1.1, garbage"], proxy, "10.1.1.1", false),
            (&[""], proxy, "10.1.1.1", false),
            (&[], proxy, "10.1.1.1", false),
        ];
        for (values, peer, want, from_header) in cases {
            assert_eq!(
                mode.client(*peer, headers(values)),
                (ip(want), *from_header),
                "{values:?} from {peer}"
            );
        }
        let long = vec!["1.2.3.4"; MAX_XFF_ENTRIES + 1].join(",");
        assert_eq!(mode.client(proxy, headers(&[&long])), (proxy, false));
        let huge = "1".repeat(MAX_XFF_BYTES + 1);
        assert_eq!(mode.client(proxy, headers(&[&huge])), (proxy, false));
    }

    proptest::proptest! {
        /// The fast reader never disagrees with std: what it accepts, std
        /// reads as the same address; every address std writes without
        /// a dot, it reads.
        #[test]
        fn colon_hex_reads_as_std_reads_it(
            s in "[0-9a-fA-F:]{0,42}",
            groups: [u16; 8],
            zeros in 0usize..8,
        ) {
            if let Some(fast) = colon_hex(s.as_bytes()) {
                proptest::prop_assert_eq!(Some(fast), s.parse().ok(), "{}", s);
            }
            let mut groups = groups;
            groups[zeros..].iter_mut().take(3).for_each(|g| *g = 0);
            let addr = std::net::Ipv6Addr::from(groups);
            let text = addr.to_string();
            if !text.contains('.') {
                proptest::prop_assert_eq!(colon_hex(text.as_bytes()), Some(addr), "{}", text);
            }
        }
    }

    #[test]
    fn colon_hex_cases() {
        for ok in [
            "::",
            "::1",
            "1::",
            "2a05:d012::1",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "ABCD::ef",
        ] {
            assert_eq!(colon_hex(ok.as_bytes()), ok.parse().ok(), "{ok}");
            assert!(colon_hex(ok.as_bytes()).is_some(), "{ok}");
        }
        for no in [
            "",
            ":",
            ":::",
            "1::2::3",
            ":1::",
            "1:2:3:4:5:6:7:8::",
            "1:2:3:4::5:6:7:8",
            "12345::",
            "1:2:3:4:5:6:7",
            "::ffff:1.2.3.4",
            "g::",
            "[::1]:80",
        ] {
            assert_eq!(colon_hex(no.as_bytes()), None, "{no}");
        }
    }

    #[test]
    fn second_to_last_like_the_go_service() {
        let peer = ip("192.0.2.1");
        let mode = Forwarded::SecondToLast;
        assert_eq!(
            mode.client(peer, headers(&["35.180.1.1, 34.1.1.1"])),
            (ip("35.180.1.1"), true)
        );
        assert_eq!(
            mode.client(peer, headers(&["9.9.9.9, 35.180.1.1, 34.1.1.1"])),
            (ip("35.180.1.1"), true)
        );
        assert_eq!(mode.client(peer, headers(&["35.180.1.1"])), (peer, false));
        assert_eq!(mode.client(peer, headers(&["x, y"])), (peer, false));
        assert_eq!(
            Forwarded::Peer.client(peer, headers(&["35.180.1.1, 1.1.1.1"])),
            (peer, false)
        );
    }
}
