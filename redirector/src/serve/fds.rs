//! File descriptors: the soft limit raised to the hard one at start, and
//! a connection cap that keeps everything the process may open under it.

use tracing::{info, warn};

use crate::config::limits::ADMIN;

/// Descriptors kept back from client connections for everything else:
/// stdio, listeners, the runtime's epoll and eventfd, the XDP program and
/// its maps, snapshot and config files, feed downloads.
pub const RESERVED_FDS: u64 = 128;

/// Raises the soft limit on open files to the hard limit (as nginx's
/// `worker_rlimit_nofile` would be set by hand) and returns the soft limit
/// now in force.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        warn!(error = %std::io::Error::last_os_error(), "reading the open-file limit");
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit through a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            info!(
                from = lim.rlim_cur,
                to = lim.rlim_max,
                "raised the open-file limit"
            );
            lim.rlim_cur = lim.rlim_max;
        } else {
            warn!(error = %std::io::Error::last_os_error(), "raising the open-file limit");
        }
    }
    lim.rlim_cur
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the open-file limit ({fd_limit}) leaves no descriptor for client connections after \
     {reserved} for blob checks, the admin listener and files; raise it (ulimit -n, LimitNOFILE=)"
)]
pub struct FdLimitTooLow {
    pub fd_limit: u64,
    pub reserved: u64,
}

/// The connection cap that keeps every descriptor the process may need
/// within `fd_limit`: each client connection takes one, each blob check
/// one, each pooled idle connection to a backend one.
pub fn connection_cap(
    requested: usize,
    fd_limit: u64,
    outbound: u64,
) -> Result<usize, FdLimitTooLow> {
    let reserved = RESERVED_FDS + ADMIN.max_connections as u64 + outbound;
    let room = fd_limit.saturating_sub(reserved);
    if room == 0 {
        return Err(FdLimitTooLow { fd_limit, reserved });
    }
    let cap = usize::try_from(room).unwrap_or(usize::MAX).min(requested);
    if cap < requested {
        warn!(
            requested,
            cap, fd_limit, reserved, "connection cap lowered to fit the open-file limit"
        );
    }
    Ok(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_descriptors() {
        let reserved = RESERVED_FDS + 64 + 300;
        for (requested, fd_limit, want) in [
            (10_000, 1_048_576, Ok(10_000)),
            (10_000, 1024, Ok(1024 - reserved as usize)),
            (8, 1024, Ok(8)),
            (
                10_000,
                400,
                Err(FdLimitTooLow {
                    fd_limit: 400,
                    reserved,
                }),
            ),
        ] {
            assert_eq!(
                connection_cap(requested, fd_limit, 300),
                want,
                "{requested} {fd_limit}"
            );
        }
    }
}
