//! A stream with bytes already read off it put back in front: what the
//! PROXY header reader and the HTTP/1-or-HTTP/2 sniffer read past goes to
//! the next layer first. Reading (not peeking) is what lets both wait on
//! the socket's readiness instead of polling it.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The first read's size, and the buffer's smallest growth.
const FILL_STEP: usize = 4096;

pub struct Prefixed<S> {
    prefix: Vec<u8>,
    /// How much of `prefix` the next layer has consumed.
    pos: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> Prefixed<S> {
    pub fn new(inner: S, prefix: Vec<u8>) -> Prefixed<S> {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }

    /// The bytes read but not yet handed on.
    pub fn buffered(&self) -> &[u8] {
        &self.prefix[self.pos..]
    }

    /// Reads more from the stream into the buffer (at most `max` in all);
    /// 0 means the peer closed. Waits for readiness: never spins. The
    /// buffer grows as it fills (doubling from [`FILL_STEP`]), so a
    /// generous `max` costs memory only when the peer sends that much.
    pub async fn fill(&mut self, max: usize) -> io::Result<usize> {
        if self.pos > 0 {
            self.prefix.drain(..self.pos);
            self.pos = 0;
        }
        let len = self.prefix.len();
        let room = max.saturating_sub(len);
        if room == 0 {
            return Err(io::Error::other("buffer full"));
        }
        if self.prefix.capacity() == len {
            self.prefix.reserve_exact(room.min(len.max(FILL_STEP)));
        }
        // Straight into the buffer's spare room, not zeroed first.
        let spare = self.prefix.spare_capacity_mut();
        let room = room.min(spare.len());
        let spare = &mut spare[..room];
        let mut buf = ReadBuf::uninit(spare);
        std::future::poll_fn(|cx| Pin::new(&mut self.inner).poll_read(cx, &mut buf)).await?;
        let n = buf.filled().len();
        // SAFETY: the reader initialized the first `n` spare bytes.
        unsafe { self.prefix.set_len(len + n) };
        Ok(n)
    }

    /// Drops the first `n` buffered bytes (a header that was parsed).
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.prefix.len());
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                // Free the buffer once it is handed on.
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How much the sniffer reads at once: a whole request head in most cases,
/// so hyper finds it buffered and the first request costs one read, not
/// two (the preface's 24 bytes, then the rest).
const SNIFF_READ: usize = 4096;

/// The HTTP/2 connection preface (RFC 9113 section 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

/// Tells HTTP/1 from HTTP/2 (prior knowledge or after ALPN) by the first
/// bytes: HTTP/2 once the whole preface is in, HTTP/1 as soon as a byte
/// differs from it. `None`: the peer closed first. The caller bounds the
/// time (a client stalled inside the preface is cut off there).
pub async fn sniff<S: AsyncRead + Unpin>(io: &mut Prefixed<S>) -> io::Result<Option<Protocol>> {
    loop {
        let seen = io.buffered();
        let n = seen.len().min(H2_PREFACE.len());
        if seen[..n] != H2_PREFACE[..n] {
            return Ok(Some(Protocol::Http1));
        }
        if n == H2_PREFACE.len() {
            return Ok(Some(Protocol::Http2));
        }
        if io.fill(SNIFF_READ).await? == 0 {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const TEST_WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn bytes_read_past_come_first() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"world").await.unwrap();
        let mut io = Prefixed::new(server, b"hello ".to_vec());
        let mut got = vec![0u8; 11];
        tokio::time::timeout(TEST_WAIT, io.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"hello world");
    }

    #[tokio::test]
    async fn sniffing_http1_and_http2() {
        for (sent, want) in [
            (&b"GET / HTTP/1.1\r\n"[..], Some(Protocol::Http1)),
            (b"P", None),
            (b"PRI * HTTP/1.1\r\n", Some(Protocol::Http1)),
            (&H2_PREFACE[..], Some(Protocol::Http2)),
            (b"", None),
        ] {
            let (mut client, server) = tokio::io::duplex(64);
            client.write_all(sent).await.unwrap();
            drop(client);
            let mut io = Prefixed::new(server, Vec::new());
            let got = tokio::time::timeout(TEST_WAIT, sniff(&mut io))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(sent));
            if want.is_some() {
                // Nothing sniffed is lost.
                let mut rest = Vec::new();
                io.read_to_end(&mut rest).await.unwrap();
                assert_eq!(rest, sent);
            }
        }
    }

    #[tokio::test]
    async fn a_preface_in_pieces_is_waited_for() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = Prefixed::new(server, Vec::new());
        let sniffer = tokio::spawn(async move { sniff(&mut io).await.map(|p| (p, io)) });
        for piece in H2_PREFACE.chunks(5) {
            client.write_all(piece).await.unwrap();
            tokio::task::yield_now().await;
        }
        let (got, _) = tokio::time::timeout(TEST_WAIT, sniffer)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got, Some(Protocol::Http2));
    }
}
