//! One layer of settings: what the environment, the config file or the
//! command line says, each key optional. Layers stack (a later one wins
//! key by key) and the stack is resolved once, with the defaults, into a
//! [`Config`](super::Config).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use steer_user::Class;

use super::error::{ConfigError, TlsFiles};
use super::rates::ClassRates;
use super::settings::{DEFAULT_UPSTREAM, DEFAULT_UPSTREAM_PATH, base_url, plain_path};
use crate::{
    backends::{Backends, DEFAULT_AWS_BASE_URL},
    forwarded::Forwarded,
};

macro_rules! layer {
    ($( $(#[$doc:meta])* $field:ident: $ty:ty, )*) => {
        /// Every key optional; see the module docs.
        #[derive(Clone, Debug, Default)]
        pub struct Layer {
            $( $(#[$doc])* pub $field: Option<$ty>, )*
        }

        impl Layer {
            /// `top` over `self`: each key `top` sets wins.
            pub fn under(self, top: Layer) -> Layer {
                Layer { $( $field: top.$field.or(self.$field), )* }
            }

            /// Every key with its value, if this layer sets it.
            pub fn entries(&self) -> Vec<(&'static str, Option<String>)> {
                vec![ $( (stringify!($field), self.$field.as_ref().map(Show::show)), )* ]
            }
        }
    };
}

/// A value as `check-config` prints it.
trait Show {
    fn show(&self) -> String;
}

macro_rules! show_display {
    ($($ty:ty),*) => { $( impl Show for $ty { fn show(&self) -> String { self.to_string() } } )* };
}
show_display!(String, u64, usize, u32, bool, SocketAddr);

impl Show for Duration {
    fn show(&self) -> String {
        humantime::format_duration(*self).to_string()
    }
}

impl Show for Option<String> {
    fn show(&self) -> String {
        self.clone().unwrap_or_else(|| "none".to_owned())
    }
}

impl Show for PathBuf {
    fn show(&self) -> String {
        self.display().to_string()
    }
}

impl Show for Vec<Class> {
    fn show(&self) -> String {
        let names: Vec<String> = self.iter().map(Class::to_string).collect();
        format!("[{}]", names.join(", "))
    }
}

impl Show for ClassRates {
    fn show(&self) -> String {
        self.describe()
    }
}

impl Show for TlsFiles {
    fn show(&self) -> String {
        format!("cert {}, key {}", self.cert.display(), self.key.display())
    }
}

impl Show for Backends {
    fn show(&self) -> String {
        format!("{self:?}")
    }
}

impl Show for Forwarded {
    fn show(&self) -> String {
        match self {
            Forwarded::Peer => "peer".to_owned(),
            Forwarded::SecondToLast => "second-to-last".to_owned(),
            Forwarded::Trusted(nets) => {
                let nets: Vec<String> = nets.iter().map(ToString::to_string).collect();
                format!("trusted [{}]", nets.join(", "))
            }
        }
    }
}

layer! {
    /// Scheme and host of the upstream registry.
    upstream: String,
    /// Path prefix inside the upstream registry.
    upstream_path: String,
    /// Where cosign tags go; `Some(None)`: explicitly none.
    signature_upstream: Option<String>,
    info_url: String,
    privacy_url: String,
    /// A backend table (from the file); replaces registry.k8s.io's.
    backends: Backends,
    /// The registry.k8s.io table's base URL for AWS regions without a bucket.
    default_aws_base_url: String,
    blob_check_timeout: Duration,
    blob_cache_entries: u64,
    blob_found_ttl: Duration,
    blob_missing_ttl: Duration,
    max_blob_checks: usize,
    max_blob_checks_per_connection: usize,
    forwarded: Forwarded,
    /// HEAD blobs sent upstream too (cached), to count their bytes.
    measure_upstream: bool,
    /// What a GB from the upstream costs, in millionths of a dollar.
    upstream_micro_dollars_per_gb: u64,
    listen: SocketAddr,
    admin: SocketAddr,
    proxy_protocol: bool,
    /// Bind with SO_REUSEPORT, so a new process can bind beside this one.
    reuse_port: bool,
    /// Serving threads, each with its own listening socket.
    workers: usize,
    /// Where the JSON access log goes: a file, or `stderr`.
    access_log: PathBuf,
    tls: TlsFiles,
    handshake_timeout: Duration,
    header_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
    max_streams: u32,
    grace: Duration,
    reload_interval: Duration,
    /// Classes whose SYNs XDP drops.
    drop: Vec<Class>,
    /// SYNs per source address, by class (XDP).
    syn_rate: ClassRates,
    /// HTTP requests per client address, by class.
    request_rate: ClassRates,
    /// The config file this layer stack read (for reloads).
    file: PathBuf,
}

impl Layer {
    /// The registry Go service's variables: PORT,
    /// UPSTREAM_REGISTRY_ENDPOINT, UPSTREAM_REGISTRY_PATH,
    /// SIGNATURE_UPSTREAM_ENDPOINT and DEFAULT_AWS_BASE_URL. An error names
    /// the variable.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Layer, ConfigError> {
        let mut l = Layer::default();
        if let Some(p) = get("PORT") {
            let port: u16 = p
                .parse()
                .map_err(|_| ConfigError::new(format!("PORT: `{p}` is not a port")))?;
            l.listen = Some(SocketAddr::from(([0u16; 8], port)));
        }
        if let Some(u) = get("UPSTREAM_REGISTRY_ENDPOINT") {
            l.upstream = Some(base_url("UPSTREAM_REGISTRY_ENDPOINT", &u)?);
        }
        if let Some(p) = get("UPSTREAM_REGISTRY_PATH") {
            l.upstream_path = Some(plain_path("UPSTREAM_REGISTRY_PATH", &p)?);
        }
        if let Some(s) = get("SIGNATURE_UPSTREAM_ENDPOINT") {
            l.signature_upstream = Some(match s.as_str() {
                "" => None,
                s => Some(base_url("SIGNATURE_UPSTREAM_ENDPOINT", s)?),
            });
        }
        if let Some(d) = get("DEFAULT_AWS_BASE_URL") {
            l.default_aws_base_url = Some(base_url("DEFAULT_AWS_BASE_URL", &d)?);
        }
        Ok(l)
    }

    /// The backend table this stack resolves to.
    pub fn backend_table(&self) -> Backends {
        self.backends.clone().unwrap_or_else(|| {
            Backends::registry_k8s_io(
                self.default_aws_base_url
                    .as_deref()
                    .unwrap_or(DEFAULT_AWS_BASE_URL),
            )
        })
    }

    pub fn upstream_or_default(&self) -> String {
        self.upstream
            .clone()
            .unwrap_or_else(|| DEFAULT_UPSTREAM.to_owned())
    }

    pub fn upstream_path_or_default(&self) -> String {
        self.upstream_path
            .clone()
            .unwrap_or_else(|| DEFAULT_UPSTREAM_PATH.to_owned())
    }
}
