//! `redirector explain <ip>...`: why an address is classified the way it
//! is, and where its blob pulls would go.

use std::{fmt::Write as _, net::IpAddr, path::PathBuf};

use anyhow::{Context as _, Result};
use steer_user::{CLASS_UNKNOWN, LiveMaps, ranges::Ranges};

use super::range_args::RangeArgs;
use crate::{
    backends::{Backends, Candidate, DEFAULT_AWS_BASE_URL, Why, client_key},
    config::{Config, Layer, rates::ClassRates},
    xdp::DEFAULT_PIN_DIR,
};

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Addresses to explain (IPv4 or IPv6).
    #[arg(required = true, value_name = "IP")]
    addrs: Vec<IpAddr>,
    /// Also show the answer of the live kernel maps of a running instance.
    #[arg(long)]
    kernel: bool,
    /// Where the running instance pinned its maps.
    #[arg(long, value_name = "DIR", env = "STEER_PIN_DIR", default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    /// Blob base URL for AWS regions without a bucket of their own.
    #[arg(long, value_name = "URL", env = "DEFAULT_AWS_BASE_URL", default_value = DEFAULT_AWS_BASE_URL)]
    default_aws_base_url: String,
    /// The `redirector serve` config file whose backends to show.
    #[arg(long, value_name = "FILE", env = "STEER_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Probe each candidate's health path and ownership proof now, from
    /// here (5 s each), and show what they answered.
    #[arg(long)]
    probe: bool,
    #[command(flatten)]
    ranges: RangeArgs,
}

pub fn run(args: ExplainArgs) -> Result<()> {
    let ranges = args
        .ranges
        .sources()
        .load(None)
        .context("loading ranges")?
        .ranges;
    let (backends, policy) = match &args.config {
        Some(path) => {
            let flags = Layer {
                file: Some(path.clone()),
                ..Layer::default()
            };
            let c = Config::resolve(|k| std::env::var(k).ok(), flags)?;
            let policy = ClassPolicy {
                drop: c.drop,
                syn: c.syn_limits,
                requests: c.settings.request_limits.clone(),
            };
            (c.settings.backends, policy)
        }
        None => (
            Backends::registry_k8s_io(&args.default_aws_base_url),
            ClassPolicy::default(),
        ),
    };
    let live = if args.kernel {
        Some(LiveMaps::open(&args.pin_dir).with_context(|| {
            format!(
                "--kernel: no running instance has its maps pinned at {} (start `redirector watch`, or pass --pin-dir)",
                args.pin_dir.display()
            )
        })?)
    } else {
        None
    };
    let agent = args.probe.then(super::explain_probe::agent);
    let mut out = String::new();
    for &addr in &args.addrs {
        explain(
            &mut out,
            addr,
            &ranges,
            &backends,
            &policy,
            live.as_ref(),
            agent.as_ref(),
        )?;
    }
    print!("{out}");
    Ok(())
}

fn explain(
    out: &mut String,
    addr: IpAddr,
    ranges: &Ranges,
    backends: &Backends,
    policy: &ClassPolicy,
    live: Option<&LiveMaps>,
    agent: Option<&ureq::Agent>,
) -> Result<()> {
    let table = &ranges.table;
    let found = table.longest_match(addr);
    let id = found.map_or(CLASS_UNKNOWN, |(_, id)| id);
    let class = table
        .class(id)
        .cloned()
        .unwrap_or_else(steer_user::Class::unknown);
    let _ = writeln!(out, "{addr}");
    match found {
        Some((net, _)) => {
            let info = table
                .prefix_info(net)
                .expect("the classifier holds only the table's prefixes");
            let origin = ranges
                .origin_of(info.feed)
                .map_or("", |f| f.origin.as_str());
            let _ = writeln!(out, "  prefix   {net}");
            let _ = writeln!(out, "  class    {class} (id {id})");
            let _ = writeln!(out, "  service  {}", or_dash(info.services));
            let _ = writeln!(
                out,
                "  feed     {}, created {}, from {origin}",
                info.feed.name,
                or_dash(&info.feed.created)
            );
        }
        None => {
            let _ = writeln!(out, "  prefix   none: no feed lists this address");
            let _ = writeln!(out, "  class    {class} (id {id})");
        }
    }
    let why = |c: &Candidate| match c.why {
        Why::Region => format!("serves {}", class.region),
        Why::Nearest => format!("nearest: no backend lists {class}"),
        Why::Geo { km } => format!("geo: {km:.0} km from {class}"),
        Why::Unknown => "clients in no feed".to_owned(),
    };
    let candidates = backends.candidates(&class, client_key(addr));
    let state = |c: &Candidate| super::explain_probe::state(c.backend, agent);
    let backend = match candidates.first() {
        Some(c) => format!(
            "{} {} ({}){}",
            c.backend.name,
            c.backend.base_url,
            why(c),
            state(c)
        ),
        None => "upstream registry".to_owned(),
    };
    let _ = writeln!(
        out,
        "  backend  {backend} for blobs; other requests go upstream"
    );
    // Where a blob the first lacks (or a first that is down) goes.
    let max = backends.max_candidates();
    for (i, c) in candidates.iter().enumerate().skip(1) {
        let note = if i < max {
            String::new()
        } else {
            format!("; not checked: max_candidates is {max}")
        };
        let _ = writeln!(
            out,
            "  then     {} {} ({}{note}){}",
            c.backend.name,
            c.backend.base_url,
            why(c),
            state(c)
        );
    }
    if !candidates.is_empty() {
        let _ = writeln!(out, "  then     upstream registry");
    }
    if policy.drop.contains(&class) {
        let _ = writeln!(out, "  policy   drop: XDP refuses its SYNs ([policy] drop)");
    } else if let Some(r) = policy.syn.of(&class) {
        let _ = writeln!(
            out,
            "  policy   SYNs: {}/s per source, {} at once; XDP drops the rest ([policy] syn_rate)",
            r.per_second, r.burst
        );
    }
    if let Some(r) = policy.requests.of(&class) {
        let _ = writeln!(
            out,
            "  policy   requests: {}/s per client, {} at once; then 429 ([policy] request_rate)",
            r.per_second, r.burst
        );
    }
    if let Some(live) = live {
        let k = live
            .lookup(addr)
            .with_context(|| format!("reading the live maps at {}", live.dir().display()))?;
        let kernel_class = k.name.clone().unwrap_or_else(steer_user::Class::unknown);
        let name = kernel_class.to_string();
        let agrees = kernel_class == class;
        let _ = writeln!(
            out,
            "  kernel   {name} (id {}, generation {}){}",
            k.class,
            k.generation,
            if agrees {
                ""
            } else {
                "  DIFFERS: the running instance has other ranges loaded"
            }
        );
        let p = k.policy;
        let in_force = if p.drop != 0 {
            "drop".to_owned()
        } else if p.limited() {
            format!(
                "{}/s per source, {} at once",
                p.syn_rate_milli as f64 / 1000.0,
                p.syn_burst
            )
        } else {
            "pass".to_owned()
        };
        let c = k.counters;
        let _ = writeln!(
            out,
            "  kernel   policy {in_force}; {} SYNs, {} dropped ({} over the limit) in generation {}",
            c.syns, c.dropped, c.rate_limited, k.generation
        );
    }
    Ok(())
}

/// What the config says each class may do.
#[derive(Default)]
struct ClassPolicy {
    drop: Vec<steer_user::Class>,
    syn: ClassRates,
    requests: ClassRates,
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}
