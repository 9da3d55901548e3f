//! What can go wrong talking to the upstream; each error names the URL.

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {reason}")]
    Invalid { url: String, reason: String },
}

impl RegistryError {
    pub fn invalid(url: &str, reason: impl Into<String>) -> RegistryError {
        RegistryError::Invalid {
            url: url.to_owned(),
            reason: reason.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, RegistryError>;
