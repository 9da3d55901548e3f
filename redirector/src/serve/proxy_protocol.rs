//! The PROXY protocol (HAProxy's, versions 1 and 2): a load balancer that
//! passes TCP through says who the client is in a header before the
//! client's bytes. On a listener that enables it, every connection must
//! start with one; a connection without a valid header is closed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::AsyncRead;

use super::prefixed::Prefixed;

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included.
const V1_MAX: usize = 107;
/// v2 address blocks past this are not expected from a load balancer.
const V2_MAX_LEN: usize = 512;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY header (the listener expects one on every connection)")]
    Missing,
    #[error("malformed PROXY v1 header")]
    BadV1,
    #[error("malformed PROXY v2 header")]
    BadV2,
    #[error("connection closed before the PROXY header ended")]
    Closed,
}

/// What a complete header says and how many bytes it takes.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    /// The client; None for `UNKNOWN` (v1) or `LOCAL` (v2): use the peer.
    pub source: Option<SocketAddr>,
    pub len: usize,
}

/// Parses the start of a connection. `Ok(None)`: not complete yet.
pub fn parse(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    if buf.len() >= 6 && buf.starts_with(b"PROXY ") {
        return parse_v1(buf);
    }
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return parse_v2(buf);
    }
    if buf.len() < 6 && b"PROXY "[..buf.len()] == *buf {
        return Ok(None);
    }
    Err(ProxyError::Missing)
}

fn parse_v1(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::BadV1)
        } else {
            Ok(None)
        };
    };
    let len = end + 2;
    if len > V1_MAX {
        return Err(ProxyError::BadV1);
    }
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| ProxyError::BadV1)?;
    let words: Vec<&str> = line.split(' ').collect();
    let source = match words[..] {
        ["PROXY", "UNKNOWN", ..] => None,
        ["PROXY", proto @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: IpAddr = src.parse().map_err(|_| ProxyError::BadV1)?;
            if ip.is_ipv4() != (proto == "TCP4") {
                return Err(ProxyError::BadV1);
            }
            let port: u16 = sport.parse().map_err(|_| ProxyError::BadV1)?;
            Some(SocketAddr::new(ip, port))
        }
        _ => return Err(ProxyError::BadV1),
    };
    Ok(Some(Header { source, len }))
}

fn parse_v2(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let (ver_cmd, family) = (buf[12], buf[13]);
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if ver_cmd >> 4 != 2 || body > V2_MAX_LEN {
        return Err(ProxyError::BadV2);
    }
    let len = 16 + body;
    if buf.len() < len {
        return Ok(None);
    }
    let a = &buf[16..len];
    let source = match (ver_cmd & 0x0f, family) {
        // LOCAL: the proxy's own connection (health checks).
        (0, _) => None,
        // PROXY over TCP or UDP: IPv4 then IPv6 address blocks.
        (1, 0x11 | 0x12) if a.len() >= 12 => {
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
        }
        (1, 0x21 | 0x22) if a.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let port = u16::from_be_bytes([a[32], a[33]]);
            Some(SocketAddr::new(Ipv6Addr::from(octets).into(), port))
        }
        // Unspecified or Unix families: nothing to classify.
        (1, 0x00 | 0x31 | 0x32) => None,
        _ => return Err(ProxyError::BadV2),
    };
    Ok(Some(Header { source, len }))
}

/// Reads the PROXY header off `io`, leaving the client's first byte next
/// in line (bytes read past the header stay buffered in `io`). Each read
/// waits for the socket to be readable: a stalled header costs nothing
/// while it waits. The caller bounds the time.
pub async fn read<S: AsyncRead + Unpin>(
    io: &mut Prefixed<S>,
) -> Result<Option<SocketAddr>, ProxyError> {
    loop {
        if let Some(header) = parse(io.buffered())? {
            io.consume(header.len);
            return Ok(header.source);
        }
        match io.fill(16 + V2_MAX_LEN).await {
            Ok(0) | Err(_) => return Err(ProxyError::Closed),
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(cmd: u8, family: u8, addrs: &[u8]) -> Vec<u8> {
        let mut b = V2_SIGNATURE.to_vec();
        b.push(0x20 | cmd);
        b.push(family);
        b.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
        b.extend_from_slice(addrs);
        b.extend_from_slice(b"GET / HTTP/1.1\r\n");
        b
    }

    #[test]
    fn version_1() {
        let h = parse(b"PROXY TCP4 35.180.1.1 192.0.2.1 40000 8080\r\nGET /")
            .unwrap()
            .unwrap();
        assert_eq!(h.source, Some("35.180.1.1:40000".parse().unwrap()));
        assert_eq!(h.len, 44);
        let h = parse(b"PROXY TCP6 2a05:d012::1 2001:db8::1 4 8080\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.source, Some("[2a05:d012::1]:4".parse().unwrap()));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().source, None);
        assert_eq!(
            parse(b"PROXY TCP4 35.180.1.1 192.0.2.1 40000 80"),
            Ok(None),
            "incomplete"
        );
        assert_eq!(parse(b"PRO"), Ok(None));
        for bad in [
            &b"PROXY TCP4 35.180.1.1 192.0.2.1 40000\r\n"[..],
            b"PROXY TCP4 2a05::1 192.0.2.1 1 2\r\n",
            b"PROXY TCP4 35.180.1.1 192.0.2.1 99999 2\r\n",
            b"PROXY SCTP 35.180.1.1 192.0.2.1 1 2\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(ProxyError::BadV1),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert_eq!(parse(&long), Err(ProxyError::BadV1));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::Missing));
    }

    #[test]
    fn version_2() {
        let v4 = [35, 180, 1, 1, 192, 0, 2, 1, 0x9c, 0x40, 0x1f, 0x90];
        let b = v2(1, 0x11, &v4);
        let h = parse(&b).unwrap().unwrap();
        assert_eq!(
            (h.source, h.len),
            (Some("35.180.1.1:40000".parse().unwrap()), 28)
        );
        let mut v6 = vec![0x2a, 0x05, 0xd0, 0x12];
        v6.resize(16, 0);
        v6[15] = 1;
        v6.extend_from_slice(&[0; 16]);
        v6.extend_from_slice(&[0, 7, 0, 80]);
        let h = parse(&v2(1, 0x21, &v6)).unwrap().unwrap();
        assert_eq!(h.source, Some("[2a05:d012::1]:7".parse().unwrap()));
        assert_eq!(
            parse(&v2(0, 0x00, &[])).unwrap().unwrap().source,
            None,
            "LOCAL"
        );
        assert_eq!(parse(&b[..20]), Ok(None), "incomplete");
        assert_eq!(
            parse(&v2(1, 0x11, &v4[..4])),
            Err(ProxyError::BadV2),
            "short block"
        );
        let mut wrong_version = b.clone();
        wrong_version[12] = 0x11;
        assert_eq!(parse(&wrong_version), Err(ProxyError::BadV2));
        let mut huge = b;
        huge[14..16].copy_from_slice(&4000u16.to_be_bytes());
        assert_eq!(parse(&huge), Err(ProxyError::BadV2));
    }

    #[tokio::test]
    async fn a_header_in_pieces_then_the_request() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(256);
        let mut io = Prefixed::new(server, Vec::new());
        let reader = tokio::spawn(async move { read(&mut io).await.map(|a| (a, io)) });
        for piece in [
            &b"PROXY TCP4 35.180.1.1 "[..],
            b"192.0.2.1 40000 8080\r",
            b"\nGET /",
        ] {
            client.write_all(piece).await.unwrap();
            tokio::task::yield_now().await;
        }
        drop(client);
        let wait = std::time::Duration::from_secs(5);
        let (addr, mut io) = tokio::time::timeout(wait, reader)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(addr, Some("35.180.1.1:40000".parse().unwrap()));
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"GET /");
        let (mut client, server) = tokio::io::duplex(256);
        client.write_all(b"PROXY TCP4 35.1").await.unwrap();
        drop(client);
        let mut io = Prefixed::new(server, Vec::new());
        assert_eq!(read(&mut io).await, Err(ProxyError::Closed));
    }
}
