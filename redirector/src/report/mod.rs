//! What the blob traffic cost and saved: `redirector report` and the
//! admin listener's `/report` page.
//!
//! - [`exposition`]: samples from a `/metrics` page;
//! - [`sources`], [`prometheus`]: scraping instances, or asking a
//!   Prometheus server for increases over a window;
//! - [`figures`]: the one computation of requests, bytes, shares, cost
//!   and savings per client class and per backend;
//! - [`text`], [`page`]: the figures as a table, and as an HTML page with
//!   inline SVG charts.

pub mod exposition;
pub mod figures;
pub mod history;
pub mod page;
pub mod prometheus;
pub mod sources;
pub mod text;
