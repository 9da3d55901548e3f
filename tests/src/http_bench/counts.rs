//! The deterministic half of `bench http`: system calls (strace -f -c)
//! and userspace instructions (callgrind's Ir) per request, counts that
//! do not move with whatever else the machine runs.
//!
//! Each count is the difference of two runs of a fresh server, one
//! serving `n` requests and one `2n`, divided by `n`: start-up, loading
//! the table and the first-seen work cancel. The requests come one at a
//! time from a plain client pinned to the other CPU, on one kept-alive
//! connection or on a new connection each, after the whole request set
//! once (so every blob check is cached in both runs).

use std::{
    collections::BTreeMap,
    ffi::OsString,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    time::Duration,
};

use super::{
    Request,
    load::process_tree,
    servers::{CLIENT_CPU, Launch, SERVER_CPU, Server, pin_thread},
};
use crate::netns::Netns;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Strace,
    Callgrind,
}

/// One kept-alive connection for all requests, or a new one per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conn {
    KeepAlive,
    New,
}

/// A marginal count: per request (or connection), in all and by name
/// (system calls by name; callgrind has only the total).
#[derive(Clone, Debug, Default)]
pub struct Count {
    pub total: f64,
    pub by_name: BTreeMap<String, f64>,
}

/// What is counted: the server `launch` starts in `ns`, listening on
/// `socket`, sent requests from `requests`; the tools write under `dir`.
pub struct Subject<'a> {
    pub ns: &'a Netns,
    pub launch: &'a Launch,
    pub socket: SocketAddr,
    pub requests: &'a [Request],
    pub dir: &'a Path,
}

impl Subject<'_> {
    /// `tool`'s figure per request: two fresh runs, `n` and `2n`
    /// requests, their difference over `n`.
    pub fn marginal(&self, tool: Tool, n: usize, conn: Conn) -> Count {
        let one = self.run(tool, n, conn);
        let two = self.run(tool, 2 * n, conn);
        let mut by_name = BTreeMap::new();
        for (name, calls) in &two.by_name {
            let d = calls - one.by_name.get(name).copied().unwrap_or(0.0);
            if d != 0.0 {
                by_name.insert(name.clone(), d / n as f64);
            }
        }
        Count {
            total: (two.total - one.total) / n as f64,
            by_name,
        }
    }

    /// One run: start under the tool, serve `n` requests, SIGTERM, read
    /// the tool's output.
    fn run(&self, tool: Tool, n: usize, conn: Conn) -> Count {
        let (ns, socket) = (self.ns, self.socket);
        let name = self.launch.argv[0].to_string_lossy().into_owned();
        let stem = format!("{}-{tool:?}-{conn:?}-{n}", socket.port());
        let out = self.dir.join(format!("{stem}.out"));
        let wrapper: Vec<OsString> = match tool {
            Tool::Strace => vec![
                "strace".into(),
                "-f".into(),
                "-c".into(),
                "-o".into(),
                out.clone().into(),
            ],
            Tool::Callgrind => vec![
                "valgrind".into(),
                "-q".into(),
                "--tool=callgrind".into(),
                format!("--callgrind-out-file={}", out.display()).into(),
            ],
        };
        let cmd = self.launch.command(ns, Some(SERVER_CPU), &wrapper);
        let log = self.dir.join(format!("{stem}.log"));
        let server = Server::start(ns, &name, socket, cmd, &log);
        let reqs = self.requests.to_vec();
        ns.spawn(move || {
            pin_thread(CLIENT_CPU);
            // The whole set once, in both runs: blob checks and caches
            // are warm before the counted requests.
            send(socket, &reqs, reqs.len(), Conn::KeepAlive)?;
            send(socket, &reqs, n, conn)
        })
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("{name} under {tool:?}: {e}"));
        // strace runs the server as its child; valgrind is the server.
        let target = match tool {
            Tool::Strace => *process_tree(server.pid())
                .get(1)
                .unwrap_or_else(|| panic!("strace has no child running {name}")),
            Tool::Callgrind => server.pid(),
        };
        server.stop(ns, target);
        let text = std::fs::read_to_string(&out)
            .unwrap_or_else(|e| panic!("{} from {tool:?}: {e}", out.display()));
        let count = match tool {
            Tool::Strace => strace_summary(&text),
            Tool::Callgrind => callgrind_summary(&text).map(|total| Count {
                total,
                by_name: BTreeMap::new(),
            }),
        };
        count.unwrap_or_else(|| panic!("{} does not parse:\n{text}", out.display()))
    }
}

/// Sends `n` requests of the set in turn, one at a time, reading each
/// answer whole.
pub fn send(server: SocketAddr, requests: &[Request], n: usize, conn: Conn) -> Result<(), String> {
    let connect = || -> Result<TcpStream, String> {
        let s = TcpStream::connect_timeout(&server, Duration::from_secs(30))
            .map_err(|e| format!("connect {server}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        s.set_nodelay(true).ok();
        Ok(s)
    };
    let mut kept = None;
    for r in requests.iter().cycle().take(n) {
        let head = r.head(conn == Conn::New);
        match conn {
            Conn::New => {
                let mut s = connect()?;
                s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
                let mut answer = Vec::new();
                s.read_to_end(&mut answer).map_err(|e| e.to_string())?;
                if !answer.starts_with(b"HTTP/1.1 ") {
                    return Err(format!("answered {:?}", String::from_utf8_lossy(&answer)));
                }
            }
            Conn::KeepAlive => {
                if kept.is_none() {
                    kept = Some(connect()?);
                }
                let s = kept.as_mut().expect("connected");
                s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
                read_answer(s)?;
            }
        }
    }
    Ok(())
}

/// Reads one HTTP/1.1 answer: the head, then Content-Length bytes.
fn read_answer(s: &mut TcpStream) -> Result<(), String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let k = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if k == 0 {
            return Err("closed before the answer's head".into());
        }
        buf.extend_from_slice(&chunk[..k]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Content-Length in {head:?}"))?;
    let mut have = buf.len() - end;
    while have < length {
        let k = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if k == 0 {
            return Err("closed inside the body".into());
        }
        have += k;
    }
    Ok(())
}

/// strace -c's table: calls by system call, and their total.
fn strace_summary(text: &str) -> Option<Count> {
    let mut by_name = BTreeMap::new();
    let mut total = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors,] name.
        if f.len() < 5 || f[0].parse::<f64>().is_err() {
            continue;
        }
        let calls: f64 = f[3].parse().ok()?;
        let name = f[f.len() - 1];
        if name == "total" {
            total = Some(calls);
        } else {
            *by_name.entry(name.to_owned()).or_insert(0.0) += calls;
        }
    }
    Some(Count {
        total: total?,
        by_name,
    })
}

/// callgrind's `summary:` (or `totals:`) line: the Ir of the whole run.
fn callgrind_summary(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_table() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
------ ----------- ----------- --------- --------- ----------------\n\
 40.00    0.000400           4       100           epoll_wait\n\
 30.00    0.000300           3       100        50 accept4\n\
100.00    0.001000           5       200        50 total\n";
        let c = strace_summary(text).unwrap();
        assert_eq!(c.total, 200.0);
        assert_eq!(c.by_name["accept4"], 100.0);
        assert_eq!(c.by_name["epoll_wait"], 100.0);
    }

    #[test]
    fn callgrind_line() {
        assert_eq!(
            callgrind_summary("events: Ir\nsummary: 12345\n"),
            Some(12345.0)
        );
        assert_eq!(callgrind_summary("events: Ir\n"), None);
    }
}
