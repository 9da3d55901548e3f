//! TCP clients for tests: a connection from a chosen source address
//! (one the test gave an interface in its namespace).

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpStream},
    time::Duration,
};

use socket2::{Domain, Socket, Type};

/// Connects to `to`, from `src` when given (else the kernel's choice),
/// within 5 s; reads on the stream time out after `read_timeout`.
/// Panics with the addresses when it cannot.
pub fn connect_from(src: Option<&str>, to: SocketAddr, read_timeout: Duration) -> TcpStream {
    let stream = try_connect_from(src, to, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect from {src:?} to {to}: {e}"));
    stream.set_read_timeout(Some(read_timeout)).unwrap();
    stream
}

/// Connects to `to` from `src` within `limit`; the error when it cannot
/// (a SYN dropped by policy times out).
pub fn try_connect_from(
    src: Option<&str>,
    to: SocketAddr,
    limit: Duration,
) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None).expect("client socket");
    if let Some(src) = src {
        let src: IpAddr = src.parse().expect("a source address");
        socket
            .bind(&SocketAddr::new(src, 0).into())
            .unwrap_or_else(|e| panic!("bind {src}: {e}"));
    }
    socket.connect_timeout(&to.into(), limit)?;
    Ok(socket.into())
}

/// `GET path` over HTTP/1.1 from `src` (when given) to `to`; the whole
/// answer, head and body, as text.
pub fn http_get(src: Option<&str>, to: SocketAddr, path: &str) -> String {
    let mut s = connect_from(src, to, Duration::from_secs(10));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: steer.test\r\nConnection: close\r\n\r\n"
    )
    .expect("sending a request");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
