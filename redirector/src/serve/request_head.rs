//! What the handler reads of a request: the method, the target's path
//! and query, the version, and header values. hyper's `Request` (HTTP/2,
//! and HTTP/1 requests the fast path leaves to hyper) and the fast path's
//! borrowed head ([`super::http1_wire::Parsed`]) both provide it, so one
//! handler serves both and the fast path builds no `HeaderMap` or `Uri`.

use http::{HeaderName, Method, Request, Version};

pub trait RequestHead {
    fn method(&self) -> &Method;
    /// The target's path (no query, no fragment).
    fn path(&self) -> &str;
    fn query(&self) -> Option<&str>;
    fn version(&self) -> Version;
    /// Every value of the header `name`, in the order they came.
    fn header_values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]>;
}

impl<B> RequestHead for Request<B> {
    fn method(&self) -> &Method {
        self.method()
    }

    fn path(&self) -> &str {
        self.uri().path()
    }

    fn query(&self) -> Option<&str> {
        self.uri().query()
    }

    fn version(&self) -> Version {
        self.version()
    }

    fn header_values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> {
        self.headers().get_all(name).iter().map(|v| v.as_bytes())
    }
}
