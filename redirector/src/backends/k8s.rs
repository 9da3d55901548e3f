//! registry.k8s.io's own table: one S3 bucket per AWS region that has
//! one, a few regions mapped to a neighbour's bucket, every other AWS
//! region and every client in no feed to `DEFAULT_AWS_BASE_URL`, GCP
//! clients upstream. The default when no config names backends.

use std::collections::HashMap;

use steer_user::Class;

use super::backend::Backend;

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

/// The backends, which classes each serves, and the default bucket's
/// index (for regions without a bucket and clients in no feed).
pub fn table(default_aws_base_url: &str) -> (Vec<Backend>, HashMap<Class, Vec<usize>>, usize) {
    let mut backends = Vec::new();
    let mut by_class: HashMap<Class, Vec<usize>> = HashMap::new();
    for (region, extra) in K8S_BUCKETS {
        let base_url = match *region {
            "eu-west-2" => EU_WEST_2_BUCKET.to_owned(),
            r => format!("https://prod-registry-k8s-io-{r}.s3.dualstack.{r}.amazonaws.com"),
        };
        let index = backends.len();
        backends.push(Backend {
            location: Some(Class {
                provider: "aws".into(),
                region: (*region).into(),
            }),
            ..Backend::new(&format!("aws-{region}"), base_url)
        });
        for r in std::iter::once(region).chain(extra.iter()) {
            by_class.insert(
                Class {
                    provider: "aws".into(),
                    region: (*r).into(),
                },
                vec![index],
            );
        }
    }
    backends.push(Backend::new("aws-default", default_aws_base_url));
    let default = backends.len() - 1;
    (backends, by_class, default)
}
