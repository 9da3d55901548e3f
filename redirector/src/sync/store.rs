//! A backend's object store, opened from its [`StoreSpec`]: a directory
//! (`file://`), S3 or an S3-compatible server (`s3://`), GCS (`gs://`) or
//! Azure (`az://`), all through object_store. Blobs live at
//! `<prefix>/containers/images/<digest>`, where the redirector's
//! Locations and blob checks point.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::TryStreamExt as _;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt as _, RetryConfig,
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    azure::{AzureConfigKey, MicrosoftAzureBuilder},
    gcp::{GoogleCloudStorageBuilder, GoogleConfigKey},
    local::LocalFileSystem,
    path::Path,
};

use super::digest::is_sha256;
use crate::backends::{Backend, StoreSpec};

/// A store call's time limit, and its retries (object_store's own, with
/// backoff), kept short so a store that is down is reported in seconds.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(60);
pub const STORE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const STORE_RETRIES: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("backend `{backend}`: store `{url}`: {reason}")]
    Open {
        backend: String,
        url: String,
        reason: String,
    },
    #[error("backend `{backend}`: {source}")]
    Io {
        backend: String,
        #[source]
        source: object_store::Error,
    },
}

/// One backend's store.
#[derive(Clone)]
pub struct Store {
    pub backend: Arc<str>,
    pub url: String,
    pub inner: Arc<dyn ObjectStore>,
    /// `<prefix>/containers/images`.
    dir: Path,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({} {})", self.backend, self.url)
    }
}

impl Store {
    /// Opens `backend`'s store, if it has one.
    pub fn open(backend: &Backend) -> Result<Option<Store>, StoreError> {
        let Some(spec) = &backend.store else {
            return Ok(None);
        };
        let fail = |reason: String| StoreError::Open {
            backend: backend.name.to_string(),
            url: spec.url.clone(),
            reason,
        };
        let url = url::Url::parse(&spec.url).map_err(|e| fail(e.to_string()))?;
        let (inner, prefix) = open_url(&url, spec).map_err(fail)?;
        Ok(Some(Store::new(
            backend.name.clone(),
            &spec.url,
            inner,
            &prefix,
        )))
    }

    /// A store over any object_store (tests use an in-memory one).
    pub fn new(backend: Arc<str>, url: &str, inner: Arc<dyn ObjectStore>, prefix: &str) -> Store {
        let prefix = prefix.trim_matches('/');
        let dir = if prefix.is_empty() {
            Path::from("containers/images")
        } else {
            Path::from(format!("{prefix}/containers/images"))
        };
        Store {
            backend,
            url: url.to_owned(),
            inner,
            dir,
        }
    }

    /// Where `digest` lives.
    pub fn key(&self, digest: &str) -> Path {
        self.dir.clone().join(digest)
    }

    /// Every blob the store holds, with its size (one listing, not a
    /// request per blob). Keys that are not digests are ignored.
    pub async fn inventory(&self) -> Result<HashMap<String, u64>, StoreError> {
        let mut found = HashMap::new();
        let mut list = self.inner.list(Some(&self.dir));
        while let Some(meta) = list.try_next().await.map_err(|e| self.io(e))? {
            if let Some(name) = meta.location.filename()
                && is_sha256(name)
                && meta
                    .location
                    .prefix_match(&self.dir)
                    .is_some_and(|mut p| p.nth(1).is_none())
            {
                found.insert(name.to_owned(), meta.size);
            }
        }
        Ok(found)
    }

    pub fn io(&self, source: object_store::Error) -> StoreError {
        StoreError::Io {
            backend: self.backend.to_string(),
            source,
        }
    }

    /// Removes a blob (for tests and repair; never used by `sync`).
    pub async fn delete(&self, digest: &str) -> Result<(), StoreError> {
        self.inner
            .delete(&self.key(digest))
            .await
            .map_err(|e| self.io(e))
    }
}

fn open_url(url: &url::Url, spec: &StoreSpec) -> Result<(Arc<dyn ObjectStore>, String), String> {
    let prefix = url.path().trim_matches('/').to_owned();
    let unknown = |k: &str| {
        format!(
            "store_options.{k}: not an option of a {} store",
            url.scheme()
        )
    };
    let retry = RetryConfig {
        max_retries: STORE_RETRIES,
        retry_timeout: STORE_TIMEOUT,
        ..RetryConfig::default()
    };
    let client = ClientOptions::new()
        .with_timeout(STORE_TIMEOUT)
        .with_connect_timeout(STORE_CONNECT_TIMEOUT);
    // The three cloud builders share their shape but no trait.
    macro_rules! cloud {
        ($builder:ty, $key:ty) => {{
            let mut b = <$builder>::from_env()
                .with_url(url.as_str())
                .with_retry(retry.clone())
                .with_client_options(client.clone());
            for (k, v) in &spec.options {
                let key: $key = k.parse().map_err(|_| unknown(k))?;
                b = b.with_config(key, v);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }};
    }
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "file" => {
            if let Some(k) = spec.options.keys().next() {
                return Err(unknown(k));
            }
            let root = url
                .to_file_path()
                .map_err(|()| "not a local path".to_owned())?;
            std::fs::create_dir_all(&root)
                .map_err(|e| format!("creating {}: {e}", root.display()))?;
            // Written to a temporary name, fsynced, then renamed: a
            // reader sees a whole blob or none.
            let fs = LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| e.to_string())?
                .with_fsync(true);
            return Ok((Arc::new(fs), String::new()));
        }
        // Client options first: the store's own options (allow_http, ...)
        // then adjust them.
        "s3" => cloud!(AmazonS3Builder, AmazonS3ConfigKey),
        "gs" => cloud!(GoogleCloudStorageBuilder, GoogleConfigKey),
        "az" | "abfs" | "abfss" => cloud!(MicrosoftAzureBuilder, AzureConfigKey),
        other => return Err(format!("scheme `{other}` is not supported")),
    };
    Ok((store, prefix))
}
