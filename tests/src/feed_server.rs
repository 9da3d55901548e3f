//! A tiny HTTP server on loopback that serves files with validators: feeds
//! for `redirector ranges update` tests, blobs for `redirector serve`'s
//! blob checks. It answers GET with 200 and the
//! body, or 304 when `If-None-Match` names the current ETag (or, for a
//! file served without one, when `If-Modified-Since` is its
//! [`LAST_MODIFIED`]), and records every request.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

/// What one request asked and got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    pub method: String,
    pub path: String,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub status: u16,
}

/// The `Last-Modified` every file is served with.
pub const LAST_MODIFIED: &str = "Wed, 29 Jul 2026 08:27:05 GMT";

#[derive(Default)]
struct State {
    files: HashMap<String, (String, String)>,
    log: Vec<Served>,
    delay: Duration,
}

/// Stops and joins the server thread on drop.
pub struct FeedServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FeedServer {
    pub fn start() -> FeedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        serve(conn, &state);
                    }
                }
            })
        };
        FeedServer {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// Serves `body` at `/<path>` with ETag `etag` (quoted by the caller;
    /// empty for none).
    pub fn set(&self, path: &str, body: &str, etag: &str) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(format!("/{path}"), (body.to_owned(), etag.to_owned()));
    }

    /// Waits this long before answering each request (bounded by the
    /// caller; for timeout and coalescing tests).
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// Requests served so far, oldest first.
    pub fn log(&self) -> Vec<Served> {
        self.state.lock().unwrap().log.clone()
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop. From another network namespace the wake-up
        // cannot reach it: then the thread is left to end with the process
        // rather than joined forever.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let Some(t) = self.thread.take()
            && woke
        {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut words = request_line.split_whitespace();
    let method = words.next().unwrap_or("GET").to_owned();
    let path = words.next().unwrap_or("/").to_owned();
    let mut if_none_match = None;
    let mut if_modified_since = None;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {
                if let Some((name, value)) = line.split_once(':') {
                    let value = Some(value.trim().to_owned());
                    if name.eq_ignore_ascii_case("if-none-match") {
                        if_none_match = value;
                    } else if name.eq_ignore_ascii_case("if-modified-since") {
                        if_modified_since = value;
                    }
                }
            }
        }
    }
    let delay = state.lock().unwrap().delay;
    thread::sleep(delay);
    let mut st = state.lock().unwrap();
    let (status, head, body) = match st.files.get(&path) {
        None => (404, String::new(), String::new()),
        Some((body, etag)) => {
            let mut head = format!("Last-Modified: {LAST_MODIFIED}\r\n");
            if !etag.is_empty() {
                head.push_str(&format!("ETag: {etag}\r\n"));
            }
            let fresh = if etag.is_empty() {
                if_modified_since.as_deref() == Some(LAST_MODIFIED)
            } else {
                if_none_match.as_deref() == Some(etag.as_str())
            };
            if fresh {
                (304, head, String::new())
            } else {
                (200, head, body.clone())
            }
        }
    };
    let head_only = method == "HEAD";
    st.log.push(Served {
        method,
        path,
        if_none_match,
        if_modified_since,
        status,
    });
    drop(st);
    let reason = match status {
        200 => "OK",
        304 => "Not Modified",
        _ => "Not Found",
    };
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\n{head}Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        if head_only { "" } else { body.as_str() }
    );
}
