//! The public listener's sockets, made to cost as few system calls as
//! nginx's.
//!
//! A client connection is registered with the runtime's epoll only when
//! it first has to wait. A client that opens a connection, sends one
//! request and reads the redirect (the common case: a pull opens several
//! such connections) costs accept4, recvfrom, writev and close, and none
//! of epoll_ctl's add and delete that a `tokio::net::TcpStream` pays on
//! creation and drop. Kept-alive connections register on their first
//! wait and from then on behave as tokio's own streams do, including the
//! rule that a short read means the socket is drained (edge-triggered
//! epoll reports any later data).
//!
//! Nagle is turned off on the listening socket, where accepted sockets
//! inherit it, instead of one setsockopt per connection. Shutdown is not
//! a system call of its own: the connection is closed right after, and
//! close sends the FIN.

use std::{
    io::{self, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::{AsRawFd, FromRawFd},
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, unix::AsyncFd};

/// A listening socket whose accepted connections are [`Socket`]s.
pub struct Listener {
    io: AsyncFd<TcpListener>,
}

impl Listener {
    /// Takes over a bound, listening socket (non-blocking from here on).
    pub fn new(listener: TcpListener) -> io::Result<Listener> {
        listener.set_nonblocking(true)?;
        // Inherited by every accepted socket.
        set_tcp(&listener, libc::TCP_NODELAY, 1)?;
        // Accept a connection once its first bytes are in (or after a
        // second without any), so a client that sends its request with
        // the handshake, as every HTTP and TLS client does, is read at
        // once: no EAGAIN read, no epoll registration and deregistration
        // (perf stat under bench http's new-connection load: 2.4 system
        // calls per connection). Silent clients wait in the kernel, not
        // in a connection slot, then meet the handshake deadline.
        set_tcp(&listener, libc::TCP_DEFER_ACCEPT, DEFER_ACCEPT_SECS)?;
        // SAFETY: the listener owns its descriptor for as long as the
        // AsyncFd holds it.
        let io = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) }?;
        Ok(Listener { io })
    }

    /// The next connection, non-blocking and close-on-exec from accept4
    /// itself.
    pub async fn accept(&self) -> io::Result<(Socket, SocketAddr)> {
        self.io
            .async_io(Interest::READABLE, |l| accept4(l.as_raw_fd()))
            .await
            .map(|(stream, peer)| (Socket::new(stream), peer))
    }
}

/// TCP_DEFER_ACCEPT's wait for a connection's first bytes, in seconds.
pub const DEFER_ACCEPT_SECS: libc::c_int = 1;

fn set_tcp(listener: &TcpListener, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt reads one int through a valid pointer.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            option,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn accept4(fd: libc::c_int) -> io::Result<(TcpStream, SocketAddr)> {
    // SAFETY: an all-zero sockaddr_storage is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: accept4 writes at most `len` bytes of address into storage.
    let rc = unsafe {
        libc::accept4(
            fd,
            (&raw mut storage).cast(),
            &raw mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 returned a new socket that nothing else owns.
    let stream = unsafe { TcpStream::from_raw_fd(rc) };
    Ok((stream, peer_addr(&storage)?))
}

fn peer_addr(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(storage as *const _ as *const _) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Ok(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(storage as *const _ as *const _) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Ok(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        family => Err(io::Error::other(format!("accept: address family {family}"))),
    }
}

/// An accepted connection: plain system calls on the socket until one
/// would block, then registered with the runtime.
pub struct Socket {
    state: State,
}

enum State {
    /// Not registered. `drained`: the last read was short, so the next
    /// one would block; it registers without trying.
    Direct {
        stream: TcpStream,
        drained: bool,
    },
    Registered(AsyncFd<TcpStream>),
    /// Only while moving from one to the other.
    Moving,
}

impl Socket {
    fn new(stream: TcpStream) -> Socket {
        Socket {
            state: State::Direct {
                stream,
                drained: false,
            },
        }
    }

    /// Whether the socket has been registered with the runtime.
    #[cfg(test)]
    pub fn registered(&self) -> bool {
        matches!(self.state, State::Registered(_))
    }

    fn register(&mut self) -> io::Result<&AsyncFd<TcpStream>> {
        if let State::Direct { .. } = self.state {
            let State::Direct { stream, .. } = std::mem::replace(&mut self.state, State::Moving)
            else {
                unreachable!("checked above")
            };
            // Registration fails only when the kernel is out of memory:
            // the connection ends with the error.
            // SAFETY: the stream owns its descriptor for as long as the
            // AsyncFd holds it.
            self.state = State::Registered(unsafe { AsyncFd::register(stream) }?);
        }
        match &self.state {
            State::Registered(fd) => Ok(fd),
            _ => Err(io::Error::other("socket lost while registering")),
        }
    }

    fn stream(&self) -> io::Result<&TcpStream> {
        match &self.state {
            State::Direct { stream, .. } => Ok(stream),
            State::Registered(fd) => Ok(fd.get_ref()),
            State::Moving => Err(io::Error::other("socket lost while registering")),
        }
    }

    /// The write `op`, at once (the send buffer is rarely full), else
    /// registered and polled until it does not block.
    fn poll_write_op(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        match op(self.stream()?) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            done => return Poll::Ready(done),
        }
        let fd = self.register()?;
        loop {
            let mut guard = ready!(fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| op(fd.get_ref())) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }
}

/// recv into the unfilled part of `buf` without initializing it first.
fn recv(stream: &TcpStream, buf: &mut ReadBuf<'_>) -> io::Result<usize> {
    // SAFETY: recv only writes into the unfilled bytes, and exactly the
    // count it returns is marked initialized.
    unsafe {
        let unfilled = buf.unfilled_mut();
        let n = libc::recv(
            stream.as_raw_fd(),
            unfilled.as_mut_ptr().cast(),
            unfilled.len(),
            0,
        );
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        buf.assume_init(n);
        buf.advance(n);
        Ok(n)
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let room = buf.remaining();
        if let State::Direct { stream, drained } = &mut this.state
            && !*drained
        {
            match recv(stream, buf) {
                Ok(n) => {
                    *drained = n < room;
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let fd = this.register()?;
        loop {
            let mut guard = ready!(fd.poll_read_ready(cx))?;
            match recv(fd.get_ref(), buf) {
                Ok(n) => {
                    // A short read drained the socket: clear the
                    // readiness (as tokio's own streams do), so the next
                    // read waits for epoll instead of hearing EAGAIN.
                    if n > 0 && n < room {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_op(cx, |mut s| s.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_op(cx, |mut s| s.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The connection is dropped (closed) right after: see the module docs.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
#[path = "socket_tests.rs"]
mod tests;
