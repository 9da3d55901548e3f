//! The public listening socket, made so that a restart drops nothing:
//!
//! - under systemd socket activation (`LISTEN_PID` is this process,
//!   `LISTEN_FDS` at least 1) the socket is fd 3, owned by the socket
//!   unit: it stays open while one process stops and the next starts, so
//!   connections wait in its backlog instead of being refused;
//! - with `reuse_port` it is bound with SO_REUSEPORT, so a new process
//!   binds beside the old one, which then stops accepting and drains.
//!   Connections the kernel had queued at the old socket move to the new
//!   one only with `net.ipv4.tcp_migrate_req = 1` (warned about when off).

use std::{
    io,
    net::SocketAddr,
    os::fd::{FromRawFd, RawFd},
};

use tokio::net::{TcpListener, TcpSocket};
use tracing::{info, warn};

/// The kernel's queue of connections not yet accepted.
const BACKLOG: u32 = 1024;

/// The systemd-passed socket if there is one, else `addr` bound (with
/// SO_REUSEPORT when `reuse_port`).
pub fn public(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    if let Some(listener) = from_systemd()? {
        info!(addr = ?listener.local_addr().ok(), "listening on the socket systemd passed");
        return Ok(listener);
    }
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
        if !migrates_requests() {
            warn!(
                "reuse_port is on but net.ipv4.tcp_migrate_req is not 1: connections queued at \
                 a stopping process are reset instead of moving to its successor"
            );
        }
    }
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The first socket systemd passed to this very process (sd-notify checks
/// LISTEN_PID, so variables inherited from a parent are ignored).
fn from_systemd() -> io::Result<Option<TcpListener>> {
    let Some(fd) = sd_notify::listen_fds()?.next() else {
        return Ok(None);
    };
    if !is_listening_tcp(fd) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("LISTEN_FDS: fd {fd} is not a listening TCP socket"),
        ));
    }
    // SAFETY: a listening socket systemd handed to this process, owned by
    // nothing else in it (sd-notify set it close-on-exec).
    let std = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    std.set_nonblocking(true)?;
    TcpListener::from_std(std).map(Some)
}

fn is_listening_tcp(fd: RawFd) -> bool {
    let get = |opt: libc::c_int| -> Option<libc::c_int> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes one int through valid pointers.
        let rc = unsafe {
            libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&raw mut v).cast(), &raw mut len)
        };
        (rc == 0).then_some(v)
    };
    get(libc::SO_ACCEPTCONN) == Some(1) && get(libc::SO_TYPE) == Some(libc::SOCK_STREAM)
}

fn migrates_requests() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").is_ok_and(|v| v.trim() == "1")
}
