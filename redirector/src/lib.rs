//! The pure parts of the redirector, as a library so that fuzz targets
//! and benches can drive them without a server.

pub mod routes;
