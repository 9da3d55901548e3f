//! `cargo xtask bench http`: the redirector against what operators would
//! run instead, nginx `geo` and HAProxy `map_ip`, configured from the
//! same compiled ranges, side by side in one run. See
//! `tests/benches/http.rs` for the run itself.

pub mod counts;
pub mod load;
pub mod peers;
pub mod report;
pub mod servers;

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpStream},
    time::Duration,
};

use steer_user::RangeTable;

use crate::sample::{Rng, random_addr};

/// One request of the set: the client address a proxy would put in
/// `X-Forwarded-For` (none: the connection's own address), and the path.
#[derive(Clone, Debug)]
pub struct Request {
    pub client: Option<IpAddr>,
    pub path: String,
}

/// `n` requests from a seeded mix: clients in listed prefixes (60%) and
/// in none (40%), a quarter of each IPv6; 70% blob paths over 16 digests
/// and 4 repositories, the rest manifests.
pub fn request_set(table: &RangeTable, n: usize, seed: u64) -> Vec<Request> {
    let mut rng = Rng(seed);
    let repos = ["pause", "coredns/coredns", "kube-proxy", "etcd"];
    let digests: Vec<String> = (0..16)
        .map(|_| {
            let mut d = String::from("sha256:");
            for _ in 0..4 {
                d.push_str(&format!("{:016x}", rng.next_u64()));
            }
            d
        })
        .collect();
    (0..n)
        .map(|_| {
            let listed = rng.below(10) < 6;
            let v6 = rng.below(4) == 0;
            let client = random_addr(table, &mut rng, v6, listed);
            let repo = repos[rng.below(repos.len())];
            let path = if rng.below(10) < 7 {
                format!("/v2/{repo}/blobs/{}", digests[rng.below(digests.len())])
            } else {
                format!("/v2/{repo}/manifests/v1.{}", rng.below(30))
            };
            Request {
                client: Some(client),
                path,
            }
        })
        .collect()
}

impl Request {
    /// The request as HTTP/1.1 bytes, with `Connection: close` when
    /// `close`.
    pub fn head(&self, close: bool) -> String {
        let xff = self
            .client
            .map(|c| format!("X-Forwarded-For: {c}\r\n"))
            .unwrap_or_default();
        let close = if close { "Connection: close\r\n" } else { "" };
        format!(
            "GET {} HTTP/1.1\r\nHost: registry.steer.test\r\n{xff}{close}\r\n",
            self.path
        )
    }
}

/// Sends `request` to `server` on a new connection; its status and
/// Location. Call from inside the namespace the server listens in.
pub fn ask(server: SocketAddr, request: &Request) -> Result<(u16, Option<String>), String> {
    let mut s = TcpStream::connect_timeout(&server, Duration::from_secs(5))
        .map_err(|e| format!("connect {server}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(request.head(true).as_bytes())
        .map_err(|e| format!("send to {server}: {e}"))?;
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{server} answered {answer:?}"))?;
    let location = answer.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("location")
            .then(|| v.trim().to_owned())
    });
    Ok((status, location))
}
