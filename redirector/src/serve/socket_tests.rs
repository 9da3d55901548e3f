use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

#[tokio::test]
async fn listeners_accept_once_the_first_bytes_are_in() {
    let std = TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = std.as_raw_fd();
    let _listener = Listener::new(std).unwrap();
    // The kernel reports the wait it rounded the seconds to.
    assert!(tcp_option(fd, libc::TCP_DEFER_ACCEPT) >= DEFER_ACCEPT_SECS);
}

async fn pair(addr: &str) -> (Socket, SocketAddr, TcpStream) {
    let std = TcpListener::bind(addr).unwrap();
    let local = std.local_addr().unwrap();
    let listener = Listener::new(std).unwrap();
    let client = TcpStream::connect(local).unwrap();
    let (socket, peer) = listener.accept().await.unwrap();
    (socket, peer, client)
}

#[tokio::test]
async fn one_request_and_close_never_registers() {
    let (mut socket, peer, mut client) = pair("127.0.0.1:0").await;
    assert_eq!(peer, client.local_addr().unwrap());
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    // The request is there before the first read, as it is when a
    // client writes right after connecting.
    std::thread::sleep(Duration::from_millis(50));
    let mut buf = [0u8; 1024];
    let n = socket.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n\r\n");
    socket.write_all(b"HTTP/1.1 307\r\n\r\n").await.unwrap();
    socket.shutdown().await.unwrap();
    assert!(!socket.registered());
    assert_eq!(
        nodelay(socket.stream().unwrap().as_raw_fd()),
        1,
        "accepted sockets inherit TCP_NODELAY from the listener"
    );
    drop(socket);
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).unwrap();
    assert_eq!(answer, b"HTTP/1.1 307\r\n\r\n");
}

fn nodelay(fd: libc::c_int) -> libc::c_int {
    tcp_option(fd, libc::TCP_NODELAY)
}

fn tcp_option(fd: libc::c_int, option: libc::c_int) -> libc::c_int {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one int through valid pointers.
    unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            option,
            (&raw mut v).cast(),
            &raw mut len,
        )
    };
    v
}

#[tokio::test]
async fn a_read_that_must_wait_registers_and_wakes_on_data() {
    let (mut socket, _, mut client) = pair("127.0.0.1:0").await;
    client.write_all(b"first").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut buf = [0u8; 64];
    let n = socket.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"first");
    // Short read: the next one waits for epoll, here for data written
    // from another thread a little later.
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        client.write_all(b"second").unwrap();
        client
    });
    let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf))
        .await
        .expect("woken by the second write")
        .unwrap();
    assert_eq!(&buf[..n], b"second");
    assert!(socket.registered());
    drop(writer.join().unwrap());
    let n = socket.read(&mut buf).await.unwrap();
    assert_eq!(n, 0, "the client's close is end of file");
}

#[tokio::test]
async fn a_full_send_buffer_waits_for_the_reader() {
    let (mut socket, _, mut client) = pair("[::1]:0").await;
    let big: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
    let expected = big.clone();
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        got
    });
    socket.write_all(&big).await.unwrap();
    assert!(socket.registered(), "8 MiB does not fit a send buffer");
    drop(socket);
    assert!(reader.join().unwrap() == expected);
}

#[test]
fn peer_addresses_of_both_families() {
    for addr in ["127.0.0.1:0", "[::1]:0"] {
        let l = TcpListener::bind(addr).unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_s, peer) = accept4(l.as_raw_fd()).unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
    }
}
