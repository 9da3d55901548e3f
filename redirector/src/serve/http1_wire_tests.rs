use http::HeaderValue;

use super::*;

/// What the handler would read of a simple head: method, path, query,
/// the Host and X-Forwarded-For values; its length and `close`.
type Read = (
    Method,
    String,
    Option<String>,
    Vec<String>,
    Vec<String>,
    usize,
    bool,
);

fn simple(raw: &[u8]) -> Read {
    let mut slots = slots();
    match parse(raw, &mut slots) {
        Head::Simple {
            request,
            len,
            close,
        } => {
            let values = |name: &HeaderName| -> Vec<String> {
                request
                    .header_values(name)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect()
            };
            (
                request.method().clone(),
                request.path().to_owned(),
                request.query().map(str::to_owned),
                values(&http::header::HOST),
                values(&HeaderName::from_static("x-forwarded-for")),
                len,
                close,
            )
        }
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
    }
}

fn other(raw: &[u8]) -> &'static str {
    let mut slots = slots();
    match parse(raw, &mut slots) {
        Head::Other(reason) => reason,
        got => panic!("{:?}: {got:?}", String::from_utf8_lossy(raw)),
    }
}

#[test]
fn a_pull_request_is_read_as_hyper_reads_it() {
    let raw = b"GET /v2/pause/blobs/sha256:abc?x=1 HTTP/1.1\r\nHost: r.example\r\nX-Forwarded-For: 35.180.1.1, 10.0.0.1\r\nx-forwarded-for: 34.1.1.1\r\n\r\nGET / HTTP/1.1\r\n";
    let (method, path, query, host, xff, len, close) = simple(raw);
    assert_eq!(&raw[len - 4..len], b"\r\n\r\n");
    assert!(!close);
    assert_eq!(method, Method::GET);
    assert_eq!(path, "/v2/pause/blobs/sha256:abc");
    assert_eq!(query.as_deref(), Some("x=1"));
    assert_eq!(host, ["r.example"]);
    assert_eq!(xff, ["35.180.1.1, 10.0.0.1", "34.1.1.1"]);
}

#[test]
fn heads_the_fast_path_takes() {
    for (name, raw, close) in [
        ("head", &b"HEAD /v2/ HTTP/1.1\r\nHost: a\r\n\r\n"[..], false),
        (
            "no host (the handler's 400)",
            b"GET / HTTP/1.1\r\n\r\n",
            false,
        ),
        (
            "connection close",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            true,
        ),
        (
            "keep-alive and close, any case",
            b"GET / HTTP/1.1\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
            true,
        ),
        (
            "keep-alive",
            b"GET / HTTP/1.1\r\nconnection: keep-alive\r\n\r\n",
            false,
        ),
    ] {
        let (.., len, asked) = simple(raw);
        assert_eq!(len, raw.len(), "{name}");
        assert_eq!(asked, close, "{name}");
    }
}

#[test]
fn heads_left_to_hyper() {
    for (name, raw, reason) in [
        ("post", &b"POST / HTTP/1.1\r\nHost: a\r\n\r\n"[..], "method"),
        ("http/1.0", b"GET / HTTP/1.0\r\n\r\n", "version"),
        ("absolute form", b"GET http://a/ HTTP/1.1\r\n\r\n", "target"),
        ("asterisk", b"OPTIONS * HTTP/1.1\r\n\r\n", "method"),
        (
            "content-length",
            b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "body",
        ),
        (
            "chunked",
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "body",
        ),
        (
            "expect",
            b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "expect",
        ),
        (
            "h2c upgrade",
            b"GET / HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n",
            "connection",
        ),
        (
            "upgrade alone",
            b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
            "upgrade",
        ),
        (
            "a space in the name",
            b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
            "malformed",
        ),
        (
            "not http",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            "malformed",
        ),
        (
            "uri the http crate refuses",
            b"GET /a` HTTP/1.1\r\n\r\n",
            "malformed",
        ),
    ] {
        assert_eq!(other(raw), reason, "{name}");
    }
    let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
    let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert_eq!(other(raw.as_bytes()), "headers");
}

#[test]
fn a_head_in_pieces_is_partial() {
    let raw = b"GET /v2/ HTTP/1.1\r\nHost: a\r\n\r\n";
    for cut in 0..raw.len() {
        let mut slots = slots();
        let got = parse(&raw[..cut], &mut slots);
        assert!(matches!(got, Head::Partial), "cut at {cut}: {got:?}");
    }
}

fn answer(response: Response<Full<Bytes>>, head: bool, close: bool) -> String {
    let mut out = Vec::new();
    encode(response, head, close, &mut out);
    String::from_utf8(out).unwrap()
}

/// The answer without its `date` line, which the test cannot know.
fn without_date(text: &str) -> String {
    text.split("\r\n")
        .filter(|l| !l.starts_with("date: "))
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[test]
fn answers_are_written_as_hyper_writes_them() {
    let mut redirect = Response::new(Full::default());
    *redirect.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    redirect
        .headers_mut()
        .insert("location", HeaderValue::from_static("http://m.example/b"));
    let text = answer(redirect, false, false);
    assert_eq!(
        without_date(&text),
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://m.example/b\r\ncontent-length: 0\r\n\r\n"
    );
    let date = text
        .split("\r\n")
        .find_map(|l| l.strip_prefix("date: "))
        .expect("a date");
    assert!(httpdate::parse_http_date(date).is_ok(), "{date}");

    let body = || {
        let mut r = Response::new(Full::from("404 page not found\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    };
    assert_eq!(
        without_date(&answer(body(), false, true)),
        "HTTP/1.1 404 Not Found\r\ncontent-length: 19\r\nconnection: close\r\n\r\n404 page not found\n"
    );
    // A HEAD is told the length of what a GET would get, without it.
    assert_eq!(
        without_date(&answer(body(), true, false)),
        "HTTP/1.1 404 Not Found\r\ncontent-length: 19\r\n\r\n"
    );
}

#[test]
fn lengths_in_decimal() {
    for n in [0, 7, 10, 19, 123456] {
        let text = answer(
            Response::new(Full::new(Bytes::from(vec![b'x'; n]))),
            true,
            false,
        );
        let line = format!("\r\ncontent-length: {n}\r\n");
        assert!(text.contains(&line), "{n}: {text:?}");
    }
}
