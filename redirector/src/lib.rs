//! steer's HTTP redirector and operator CLI, as a library: the binary
//! (`main.rs`) only parses the command line and calls [`cli::run`].
//!
//! - [`config`]: the one config model (environment, file, flags);
//! - [`serve`]: the redirector, [`serve::Server`];
//! - [`routes`], [`backends`], [`forwarded`]: what a request asks for,
//!   where its blobs go, who the client is;
//! - [`reload`], [`control`], [`xdp`]: range reloads, the signal and timer
//!   loop, and XDP bring-up, shared by `serve` and `watch`;
//! - [`sync`], [`audit`], [`report`]: filling and checking the mirrors,
//!   and what their traffic cost and saved;
//! - [`cli`]: clap types and the front-end commands.

pub mod audit;
pub mod backends;
pub mod cli;
pub mod config;
pub mod control;
pub mod forwarded;
pub mod reload;
pub mod report;
pub mod routes;
pub mod routing;
pub mod serve;
pub mod sync;
pub mod xdp;
