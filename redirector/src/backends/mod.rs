//! Which backend serves a client's blobs, by its class.
//!
//! The default is registry.k8s.io's own table: one S3 bucket per AWS region
//! that has one, a few regions mapped to a neighbour's bucket, every other
//! AWS region and every client in no feed to `DEFAULT_AWS_BASE_URL`, and
//! GCP clients upstream. A config file will replace it.

use std::collections::HashMap;

use steer_user::Class;

/// A place that serves blobs at `<base_url>/containers/images/<digest>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Shared with every metric series that names it.
    pub name: std::sync::Arc<str>,
    pub base_url: String,
    /// Where `redirector sync` writes this backend's blobs, if anywhere.
    pub store: Option<StoreSpec>,
}

/// A backend's object store as the config file names it: a URL
/// (`file:///srv/mirror`, `s3://bucket/prefix`, `gs://bucket/prefix`,
/// `az://container/prefix`) and the store's own options (region,
/// endpoint, ...), checked when `sync` opens it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSpec {
    pub url: String,
    pub options: std::collections::BTreeMap<String, String>,
}

/// Why a backend was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice<'a> {
    /// The backend lists the client's region.
    Region(&'a Backend),
    /// No backend lists the region; this is the provider's nearest fallback.
    Nearest(&'a Backend),
    /// The client is in no feed; this is the backend for such clients.
    Unknown(&'a Backend),
    /// Blobs go to the upstream registry.
    Upstream,
}

#[derive(Clone)]
pub struct Backends {
    backends: Vec<Backend>,
    by_class: HashMap<Class, usize>,
    /// Per provider: the backend for its regions that no backend lists.
    nearest: HashMap<String, usize>,
    /// For clients in no feed; None: upstream.
    unknown: Option<usize>,
}

/// One line a person can read (`check-config`, logs): each backend with
/// the classes it serves, then the fallbacks.
impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |i: usize| &*self.backends[i].name;
        let parts: Vec<String> = self
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut classes: Vec<String> = self
                    .by_class
                    .iter()
                    .filter(|(_, j)| **j == i)
                    .map(|(c, _)| c.to_string())
                    .collect();
                classes.sort();
                format!("{} {} [{}]", b.name, b.base_url, classes.join(", "))
            })
            .collect();
        let mut nearest: Vec<String> = self
            .nearest
            .iter()
            .map(|(p, &i)| format!("{p}: {}", name(i)))
            .collect();
        nearest.sort();
        let unknown = self.unknown.map_or("upstream", name);
        write!(
            f,
            "{}; nearest {{{}}}; unknown {unknown}",
            parts.join("; "),
            nearest.join(", ")
        )
    }
}

/// The base URL the Go service uses for AWS regions without a bucket.
pub const DEFAULT_AWS_BASE_URL: &str =
    "https://prod-registry-k8s-io-us-east-1.s3.dualstack.us-east-1.amazonaws.com";

/// (bucket region, other regions it serves); the bucket URL follows the
/// pattern below except where given.
const K8S_BUCKETS: &[(&str, &[&str])] = &[
    ("af-south-1", &[]),
    ("ap-east-1", &["ap-east-2", "cn-north-1", "cn-northwest-1"]),
    ("ap-northeast-1", &[]),
    ("ap-northeast-2", &[]),
    ("ap-northeast-3", &[]),
    ("ap-south-1", &[]),
    ("ap-south-2", &[]),
    ("ap-southeast-1", &[]),
    ("ap-southeast-2", &[]),
    ("ap-southeast-3", &[]),
    ("ap-southeast-4", &[]),
    ("ap-southeast-5", &[]),
    ("ap-southeast-6", &[]),
    ("ap-southeast-7", &[]),
    ("ca-central-1", &[]),
    ("ca-west-1", &[]),
    ("eu-central-1", &[]),
    ("eu-central-2", &[]),
    ("eu-north-1", &[]),
    ("eu-south-1", &[]),
    ("eu-south-2", &[]),
    ("eu-west-1", &[]),
    ("eu-west-2", &[]),
    ("eu-west-3", &[]),
    ("il-central-1", &[]),
    ("me-central-1", &[]),
    ("me-south-1", &[]),
    ("mx-central-1", &[]),
    ("sa-east-1", &[]),
    ("us-east-1", &[]),
    ("us-east-2", &[]),
    ("us-west-1", &[]),
    ("us-west-2", &[]),
];

/// The London bucket predates the naming pattern.
const EU_WEST_2_BUCKET: &str = "https://767373bbdcb8270361b96548387bf2a9ad0d48758c35-eu-west-2.s3.dualstack.eu-west-2.amazonaws.com";

impl Backends {
    /// A table from a config file: `by_class` and the fallbacks index
    /// into `backends`.
    pub fn new(
        backends: Vec<Backend>,
        by_class: HashMap<Class, usize>,
        nearest: HashMap<String, usize>,
        unknown: Option<usize>,
    ) -> Backends {
        Backends {
            backends,
            by_class,
            nearest,
            unknown,
        }
    }

    /// registry.k8s.io's table, with `default_aws_base_url` for AWS regions
    /// that have no bucket.
    pub fn registry_k8s_io(default_aws_base_url: &str) -> Backends {
        let mut backends = Vec::new();
        let mut by_class = HashMap::new();
        for (region, extra) in K8S_BUCKETS {
            let base_url = match *region {
                "eu-west-2" => EU_WEST_2_BUCKET.to_owned(),
                r => format!("https://prod-registry-k8s-io-{r}.s3.dualstack.{r}.amazonaws.com"),
            };
            let index = backends.len();
            backends.push(Backend {
                store: None,
                name: format!("aws-{region}").into(),
                base_url,
            });
            for r in std::iter::once(region).chain(extra.iter()) {
                by_class.insert(
                    Class {
                        provider: "aws".into(),
                        region: (*r).into(),
                    },
                    index,
                );
            }
        }
        backends.push(Backend {
            store: None,
            name: "aws-default".into(),
            base_url: default_aws_base_url.to_owned(),
        });
        let default = backends.len() - 1;
        Backends {
            backends,
            by_class,
            nearest: HashMap::from([("aws".to_owned(), default)]),
            // The Go service checks the default bucket for every client it
            // cannot place, GCP aside.
            unknown: Some(default),
        }
    }

    /// Every backend, in config order.
    pub fn list(&self) -> &[Backend] {
        &self.backends
    }

    /// How many backends there are (each a host the blob checks may
    /// keep connections to).
    pub fn hosts(&self) -> usize {
        self.backends.len()
    }

    pub fn choose(&self, class: &Class) -> Choice<'_> {
        if class.is_unknown() {
            return match self.unknown {
                Some(i) => Choice::Unknown(&self.backends[i]),
                None => Choice::Upstream,
            };
        }
        if let Some(&i) = self.by_class.get(class) {
            return Choice::Region(&self.backends[i]);
        }
        match self.nearest.get(&class.provider) {
            Some(&i) => Choice::Nearest(&self.backends[i]),
            None => Choice::Upstream,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(provider: &str, region: &str) -> Class {
        Class {
            provider: provider.into(),
            region: region.into(),
        }
    }

    #[test]
    fn registry_k8s_io_table() {
        let b = Backends::registry_k8s_io(DEFAULT_AWS_BASE_URL);
        let url = |c: Choice| match c {
            Choice::Region(b) | Choice::Nearest(b) | Choice::Unknown(b) => b.base_url.clone(),
            Choice::Upstream => "upstream".into(),
        };
        assert_eq!(
            url(b.choose(&class("aws", "eu-west-3"))),
            "https://prod-registry-k8s-io-eu-west-3.s3.dualstack.eu-west-3.amazonaws.com"
        );
        assert_eq!(
            url(b.choose(&class("aws", "cn-north-1"))),
            "https://prod-registry-k8s-io-ap-east-1.s3.dualstack.ap-east-1.amazonaws.com"
        );
        assert!(url(b.choose(&class("aws", "eu-west-2"))).starts_with("https://767373bb"));
        assert!(matches!(
            b.choose(&class("aws", "GLOBAL")),
            Choice::Nearest(b) if b.base_url == DEFAULT_AWS_BASE_URL
        ));
        assert_eq!(b.choose(&class("gcp", "europe-west1")), Choice::Upstream);
        assert!(matches!(
            b.choose(&Class::unknown()),
            Choice::Unknown(b) if &*b.name == "aws-default"
        ));
    }
}
