//! The fast path's loop over an in-memory stream: answers in order,
//! hand-offs with nothing lost, every deadline (on tokio's paused clock),
//! the head limit and drain.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, DuplexStream},
    sync::watch,
    task::JoinHandle,
};

use super::*;

const GET: &str = "GET /v2/ HTTP/1.1\r\nHost: registry.test\r\n\r\n";
/// Longer than every deadline of `Limits::default()` (instant on the
/// paused clock).
const TEST_WAIT: Duration = Duration::from_secs(30);

struct Served {
    client: DuplexStream,
    drain: watch::Sender<bool>,
    state: Arc<State>,
    task: JoinHandle<(Ended, Vec<u8>)>,
}

/// The fast path on one end of a pipe of `capacity` bytes; the task
/// returns how it ended and what it left buffered for hyper.
fn start(capacity: usize) -> Served {
    let (client, server) = tokio::io::duplex(capacity);
    let state = Arc::new(crate::serve::tests::state(&[], &[]));
    let (drain, mut drained) = watch::channel(false);
    let task = tokio::spawn({
        let state = state.clone();
        async move {
            let conn = crate::serve::tests::direct_conn(&state, "127.0.0.2");
            let mut io = Prefixed::new(server, Vec::new());
            let ended = serve(&mut io, &state, &conn, &Limits::default(), &mut drained).await;
            (ended, io.buffered().to_vec())
        }
    });
    Served {
        client,
        drain,
        state,
        task,
    }
}

impl Served {
    async fn send(&mut self, bytes: &str) {
        self.client.write_all(bytes.as_bytes()).await.unwrap();
    }

    /// Everything the server wrote until it closed or stopped writing
    /// for a moment (on the paused clock, until every task waits).
    async fn read_answers(&mut self) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let read = tokio::time::timeout(Duration::from_millis(50), self.client.read(&mut buf));
            match read.await {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => panic!("{e}"),
            }
        }
        String::from_utf8(out).unwrap()
    }

    async fn ended(self) -> (Ended, Vec<u8>, Arc<State>) {
        let (ended, rest) = tokio::time::timeout(TEST_WAIT, self.task)
            .await
            .expect("the fast path ended")
            .unwrap();
        (ended, rest, self.state)
    }
}

fn rejected(state: &State, reason: &'static str) -> u64 {
    state.metrics.connection_rejected("public", reason).get()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_then_hyper_gets_the_rest() {
    let mut s = start(64 * 1024);
    let post = "POST /v2/ HTTP/1.1\r\nHost: registry.test\r\nContent-Length: 2\r\n\r\nhi";
    s.send(&format!(
        "{GET}HEAD /v2/nope HTTP/1.1\r\nHost: registry.test\r\n\r\n{post}{GET}"
    ))
    .await;
    let answers = s.read_answers().await;
    let statuses: Vec<_> = answers
        .split("\r\n")
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .collect();
    assert_eq!(
        statuses,
        ["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found"],
        "{answers}"
    );
    // The HEAD's answer has its length but no body.
    assert!(answers.contains("\r\ncontent-length: 19\r\n"), "{answers}");
    assert!(answers.ends_with("\r\n\r\n"), "{answers}");
    assert!(!answers.contains("404 page not found"), "{answers}");
    let (ended, rest, state) = s.ended().await;
    assert_eq!(ended, Ended::ToHyper);
    assert_eq!(String::from_utf8(rest).unwrap(), format!("{post}{GET}"));
    assert_eq!(state.metrics.http1_handoff("method").get(), 1);
}

#[tokio::test]
async fn connection_close_is_answered_then_the_connection_ends() {
    let mut s = start(64 * 1024);
    s.send("GET /v2/ HTTP/1.1\r\nHost: registry.test\r\nConnection: close\r\n\r\n")
        .await;
    let answers = s.read_answers().await;
    assert!(answers.starts_with("HTTP/1.1 200 OK\r\n"), "{answers}");
    assert!(answers.contains("\r\nconnection: close\r\n"), "{answers}");
    assert_eq!(s.ended().await.0, Ended::Closed);
}

#[tokio::test]
async fn a_head_in_pieces_is_waited_for() {
    let mut s = start(64 * 1024);
    for piece in GET.as_bytes().chunks(7) {
        s.client.write_all(piece).await.unwrap();
        tokio::task::yield_now().await;
    }
    assert!(s.read_answers().await.starts_with("HTTP/1.1 200 OK\r\n"));
    drop(s.client);
    let (ended, rest) = tokio::time::timeout(TEST_WAIT, s.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((ended, rest), (Ended::Closed, Vec::new()));
}

#[tokio::test(start_paused = true)]
async fn idle_and_slow_heads_meet_the_header_deadline() {
    // Nothing sent at all.
    let s = start(64 * 1024);
    let (ended, _, state) = s.ended().await;
    assert_eq!(
        (ended, rejected(&state, "header_timeout")),
        (Ended::Closed, 1)
    );
    // One request, then a head that never completes: the deadline runs
    // from the end of the answer, not from accept.
    let mut s = start(64 * 1024);
    tokio::time::sleep(Duration::from_secs(8)).await;
    s.send(GET).await;
    assert!(s.read_answers().await.starts_with("HTTP/1.1 200 OK"));
    s.send("GET /v2/ HTTP/1.1\r\nHost: re").await;
    let before = tokio::time::Instant::now();
    let (ended, rest, state) = s.ended().await;
    assert_eq!(
        (ended, rejected(&state, "header_timeout")),
        (Ended::Closed, 1)
    );
    let waited = before.elapsed();
    assert!(waited >= Duration::from_secs(9), "{waited:?}");
    assert_eq!(rest, b"GET /v2/ HTTP/1.1\r\nHost: re");
}

#[tokio::test]
async fn a_head_over_the_limit_gets_431_and_the_connection_ends() {
    let mut s = start(256 * 1024);
    let big = format!(
        "GET /v2/ HTTP/1.1\r\nHost: registry.test\r\nX-Big: {}",
        "b".repeat(MAX_HEADER_BYTES)
    );
    s.send(&big).await;
    let answers = s.read_answers().await;
    assert!(
        answers.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{answers}"
    );
    let (ended, _, state) = s.ended().await;
    assert_eq!((ended, rejected(&state, "header_size")), (Ended::Closed, 1));
}

#[tokio::test(start_paused = true)]
async fn an_answer_the_client_does_not_take_is_cut_off() {
    // A pipe too small for the answers of the requests sent, and a client
    // that never reads.
    let mut s = start(256);
    s.send(&GET.repeat(4)).await;
    let (ended, _, state) = s.ended().await;
    assert_eq!(
        (ended, rejected(&state, "write_timeout")),
        (Ended::Closed, 1)
    );
}

#[tokio::test]
async fn drain_closes_an_idle_connection_but_lets_a_first_request_in() {
    // Served one already: closed at the drain.
    let mut s = start(64 * 1024);
    s.send(GET).await;
    assert!(s.read_answers().await.starts_with("HTTP/1.1 200 OK"));
    s.drain.send(true).unwrap();
    assert_eq!(s.ended().await.0, Ended::Closed);
    // Accepted just before the drain: its first request is answered, with
    // `connection: close`.
    let mut s = start(64 * 1024);
    s.drain.send(true).unwrap();
    tokio::task::yield_now().await;
    s.send(GET).await;
    let answers = s.read_answers().await;
    assert!(answers.starts_with("HTTP/1.1 200 OK"), "{answers}");
    assert!(answers.contains("\r\nconnection: close\r\n"), "{answers}");
    assert_eq!(s.ended().await.0, Ended::Closed);
}
