//! The public listening sockets, one per worker, made so that a restart
//! drops nothing:
//!
//! - under systemd socket activation (`LISTEN_PID` is this process,
//!   `LISTEN_FDS` at least 1) the socket is fd 3, owned by the socket
//!   unit: it stays open while one process stops and the next starts, so
//!   connections wait in its backlog instead of being refused;
//! - with `reuse_port` it is bound with SO_REUSEPORT, so a new process
//!   binds beside the old one, which then stops accepting and drains.
//!   Connections the kernel had queued at the old socket move to the new
//!   one only with `net.ipv4.tcp_migrate_req = 1` (warned about when off).
//!
//! Several workers each get a socket of their own, bound with
//! SO_REUSEPORT so the kernel spreads connections over them; the socket
//! systemd passed is shared instead (each worker accepts from its own
//! duplicate of it). Without `reuse_port`, the port is first bound
//! without SO_REUSEPORT, so that a port another process holds is still
//! an error rather than a silently shared one.

use std::{
    io,
    net::SocketAddr,
    os::fd::{FromRawFd, RawFd},
};

use std::net::TcpListener;

use tokio::net::TcpSocket;
use tracing::{info, warn};

/// The kernel's queue of connections not yet accepted.
const BACKLOG: u32 = 1024;

/// `workers` listening sockets: the systemd-passed one shared, else
/// `addr` bound once per worker (with SO_REUSEPORT when there are
/// several, or when `reuse_port`).
pub fn public(addr: SocketAddr, reuse_port: bool, workers: usize) -> io::Result<Vec<TcpListener>> {
    if let Some(listener) = from_systemd()? {
        info!(addr = ?listener.local_addr().ok(), "listening on the socket systemd passed");
        let mut all = Vec::with_capacity(workers);
        for _ in 1..workers {
            all.push(listener.try_clone()?);
        }
        all.push(listener);
        return Ok(all);
    }
    let shared = reuse_port || workers > 1;
    if reuse_port && !migrates_requests() {
        warn!(
            "reuse_port is on but net.ipv4.tcp_migrate_req is not 1: connections queued at \
             a stopping process are reset instead of moving to its successor"
        );
    }
    if shared && !reuse_port && addr.port() != 0 {
        // Fails with EADDRINUSE if anyone listens there already.
        drop(bind(addr, false)?);
    }
    let first = bind(addr, shared)?;
    // Port 0: the others join the port the kernel picked for the first.
    let addr = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..workers {
        all.push(bind(addr, true)?);
    }
    Ok(all)
}

fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(reuse_port)?;
    socket.bind(addr)?;
    // Each worker registers its socket with its own runtime.
    socket.listen(BACKLOG)?.into_std()
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
    Ok(Some(unsafe { TcpListener::from_raw_fd(fd) }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn workers_get_a_socket_each_on_one_port() {
        let all = public("127.0.0.1:0".parse().unwrap(), false, 3).unwrap();
        assert_eq!(all.len(), 3);
        let port = all[0].local_addr().unwrap().port();
        assert!(all.iter().all(|l| l.local_addr().unwrap().port() == port));
    }

    #[tokio::test]
    async fn a_port_someone_holds_is_still_an_error() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        for workers in [1, 2] {
            let e = public(addr, false, workers).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{workers} workers");
        }
    }
}
