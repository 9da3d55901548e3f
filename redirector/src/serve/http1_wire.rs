//! The wire side of the HTTP/1 fast path ([`super::http1_fast`]): which
//! request heads it answers itself, each read in place (no copy, no
//! `HeaderMap`) into what the handler reads ([`RequestHead`]), and an
//! answer written as hyper writes one.

use std::{
    cell::RefCell,
    mem::MaybeUninit,
    pin::Pin,
    task::{Context, Poll, Waker},
    time::{SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{HeaderName, Method, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Body as _;

use super::{request_head::RequestHead, target};

/// Header lines read from one request head; a head with more goes to
/// hyper (which takes up to 100).
pub const MAX_HEADERS: usize = 32;

/// A request head as the fast path read it: borrowed from the read
/// buffer, validated as hyper and the `http` crate validate one.
#[derive(Debug)]
pub struct Parsed<'h, 'b> {
    method: Method,
    path: &'b str,
    query: Option<&'b str>,
    headers: &'h [httparse::Header<'b>],
}

impl RequestHead for Parsed<'_, '_> {
    fn method(&self) -> &Method {
        &self.method
    }

    fn path(&self) -> &str {
        self.path
    }

    fn query(&self) -> Option<&str> {
        self.query
    }

    fn version(&self) -> Version {
        Version::HTTP_11
    }

    fn header_values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> {
        let name = name.as_str().as_bytes();
        self.headers
            .iter()
            .filter(move |h| {
                h.name.len() == name.len() && h.name.as_bytes().eq_ignore_ascii_case(name)
            })
            .map(|h| h.value)
    }
}

/// Header slots for [`parse`]: the caller's, so the parsed head can
/// borrow them while the handler runs; left uninitialized (httparse
/// writes those it fills).
pub type Slots<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

pub fn slots<'b>() -> Slots<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// What the buffered bytes start with.
#[derive(Debug)]
pub enum Head<'h, 'b> {
    /// A complete request this path answers, `len` bytes long; `close`:
    /// the client asked to close the connection after it.
    Simple {
        request: Parsed<'h, 'b>,
        len: usize,
        close: bool,
    },
    /// The head is not all in yet.
    Partial,
    /// Anything else is hyper's to answer (or refuse) as it always has;
    /// the reason is counted.
    Other(&'static str),
}

/// Reads the request head at the start of `buf`. Only a bodiless GET or
/// HEAD over HTTP/1.1 in origin form, with no upgrade, no `Expect` and
/// no `Connection` option but `close` and `keep-alive`, is
/// [`Head::Simple`]: a request with any framing question is hyper's.
pub fn parse<'h, 'b>(buf: &'b [u8], slots: &'h mut Slots<'b>) -> Head<'h, 'b> {
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(httparse::Error::TooManyHeaders) => return Head::Other("headers"),
        Err(_) => return Head::Other("malformed"),
    };
    let method = match req.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return Head::Other("method"),
    };
    if req.version != Some(1) {
        return Head::Other("version");
    }
    let Some(target) = req.path.filter(|p| p.starts_with('/')) else {
        return Head::Other("target");
    };
    let Some((path, query)) = target::split(target) else {
        return Head::Other("malformed");
    };
    let mut close = false;
    for h in req.headers.iter() {
        match framing(h.name.as_bytes()) {
            Framing::None => {}
            Framing::Other(reason) => return Head::Other(reason),
            Framing::Connection => match connection_options(h.value) {
                Some(asked) => close |= asked,
                None => return Head::Other("connection"),
            },
        }
    }
    Head::Simple {
        request: Parsed {
            method,
            path,
            query,
            headers: req.headers,
        },
        len,
        close,
    }
}

enum Framing {
    /// Nothing to do with framing or the connection.
    None,
    Connection,
    /// A body, an upgrade or an expectation: hyper's.
    Other(&'static str),
}

/// Sorted by length first: one comparison for most names.
fn framing(name: &[u8]) -> Framing {
    let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
    match name.len() {
        6 if is(b"expect") => Framing::Other("expect"),
        7 if is(b"upgrade") => Framing::Other("upgrade"),
        10 if is(b"connection") => Framing::Connection,
        14 if is(b"content-length") => Framing::Other("body"),
        17 if is(b"transfer-encoding") => Framing::Other("body"),
        _ => Framing::None,
    }
}

/// `Some(close)` when every option is `close` or `keep-alive`; `None`
/// for any other (an upgrade, hop-by-hop header names).
fn connection_options(value: &[u8]) -> Option<bool> {
    let mut close = false;
    for option in value.split(|b| *b == b',') {
        let option = option.trim_ascii();
        if option.eq_ignore_ascii_case(b"close") {
            close = true;
        } else if !option.eq_ignore_ascii_case(b"keep-alive") && !option.is_empty() {
            return None;
        }
    }
    Some(close)
}

/// Appends the answer to `out` as hyper writes it: the status line, the
/// handler's headers, `content-length`, `date`, `connection: close` when
/// the connection closes after it, and the body unless it answers a HEAD.
pub fn encode(response: Response<Full<Bytes>>, head: bool, close: bool, out: &mut Vec<u8>) {
    let (parts, body) = response.into_parts();
    let status = parts.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        status
            .canonical_reason()
            .unwrap_or("<unknown status code>")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        header_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let body = body_bytes(body);
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if !bodiless && !parts.headers.contains_key(http::header::CONTENT_LENGTH) {
        let mut digits = itoa::Buffer::new();
        header_line(out, b"content-length", digits.format(body.len()).as_bytes());
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    DATE.with_borrow_mut(|date| header_line(out, b"date", date.now().as_bytes()));
    out.extend_from_slice(b"\r\n");
    if !head && !bodiless {
        out.extend_from_slice(&body);
    }
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A `Full` body's bytes: it is ready at once and yields one frame at
/// most.
fn body_bytes(mut body: Full<Bytes>) -> Bytes {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}

/// The `date` header, formatted once a second per thread (hyper caches
/// it the same way).
struct CachedDate {
    second: u64,
    text: String,
}

impl CachedDate {
    fn now(&mut self) -> &str {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
        &self.text
    }
}

thread_local! {
    static DATE: RefCell<CachedDate> = const {
        RefCell::new(CachedDate { second: 0, text: String::new() })
    };
}

#[cfg(test)]
#[path = "http1_wire_tests.rs"]
mod tests;
