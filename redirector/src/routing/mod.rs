//! Where in the fleet a blob request may go: the places of regions and
//! the distances between them. The candidate order itself is
//! [`crate::backends::Backends::candidates`].

pub mod geo;
pub mod regions;
