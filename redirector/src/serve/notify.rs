//! Telling systemd where the server is (`Type=notify`): `READY=1` once it
//! serves, `STOPPING=1` when it drains, and `WATCHDOG=1` at half the
//! interval the unit asks for, until the process ends (the drain
//! included). Without `NOTIFY_SOCKET` each is a no-op.
//!
//! Messages go out on a non-blocking datagram socket: if the manager's
//! queue is full the message is dropped (and logged), never waited for,
//! since a blocking send would stall a runtime worker. (sd-notify's own
//! `notify` blocks; its environment parsing is used.)

use std::{
    io,
    os::{linux::net::SocketAddrExt, unix::net::UnixDatagram},
};

use tracing::warn;

/// Says ready and starts the watchdog pings, if the unit wants them.
pub fn ready() {
    send("READY=1\n");
    if let Some(every) = sd_notify::watchdog_enabled() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every / 2);
            loop {
                tick.tick().await;
                send("WATCHDOG=1\n");
            }
        });
    }
}

pub fn stopping() {
    send("STOPPING=1\n");
}

fn send(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send_to(&path, message) {
        warn!(error = %e, message = message.trim_end(), "notifying systemd");
    }
}

fn send_to(path: &std::ffi::OsStr, message: &str) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        // An abstract socket (Linux).
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name)?,
        None => std::os::unix::net::SocketAddr::from_pathname(path)?,
    };
    socket.send_to_addr(message.as_bytes(), &addr)?;
    Ok(())
}
