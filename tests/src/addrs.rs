//! Addresses the tests use, with what the real feeds say about them.
//! Cloud addresses exist only inside the tests' own namespaces.

/// Server side: documentation ranges, in no feed.
pub const SERVER4: &str = "192.0.2.1";
pub const SERVER6: &str = "2001:db8::1";
/// In AWS eu-west-3 (35.180.0.0/16 and 2a05:d012::/36 in the real feed).
pub const AWS4: &str = "35.180.1.1";
pub const AWS6: &str = "2a05:d012::1";
/// The class both AWS addresses belong to.
pub const AWS_CLASS: &str = "aws/eu-west-3";
/// In GCP africa-south1 (34.35.0.0/16).
pub const GCP4: &str = "34.35.1.1";
pub const GCP_CLASS: &str = "gcp/africa-south1";
/// In no feed (documentation ranges).
pub const UNLISTED4: &str = "198.51.100.7";
pub const UNLISTED6: &str = "2001:db8::10";
