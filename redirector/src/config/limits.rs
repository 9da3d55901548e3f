//! What one client may hold: the deadline of each phase of a connection
//! and how many connections and streams are served at once.
//! docs/configuration.md lists each limit, its default and what a client
//! sees when it hits it; /metrics counts each.

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// From accept to the first byte of the first request: the PROXY
    /// header, the TLS handshake and the HTTP/2 preface all fit in it.
    pub handshake_timeout: Duration,
    /// A request's headers, from its first byte; on HTTP/1 also the idle
    /// limit between kept-alive requests (hyper's header read timer).
    pub header_timeout: Duration,
    /// A connection with no request in flight this long is closed
    /// (HTTP/2: GOAWAY). Before its first request it gets only
    /// `header_timeout`.
    pub idle_timeout: Duration,
    /// Client connections served at once (lowered to what the file
    /// descriptors allow); more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_streams: 100,
        }
    }
}

/// The admin listener's limits: few, short connections from scrapers and
/// probes.
pub const ADMIN: Limits = Limits {
    handshake_timeout: Duration::from_secs(5),
    header_timeout: Duration::from_secs(5),
    idle_timeout: Duration::from_secs(30),
    max_connections: 64,
    max_streams: 1,
};
