//! `cargo xtask demo`: the end-to-end topology for a person to watch.
//! Builds the namespaces, pushes an image to a real registry, and pulls
//! it through the redirector from clients in AWS, GCP and no feed,
//! printing for each which server gave it its blobs; then a mirror
//! missing a blob and a mirror down, each failing over to the next
//! nearest mirror; and at the end `redirector report`: bytes, the share
//! mirrors served, cost and savings. Everything is torn down at the end
//! or on a failure. After a Ctrl-C the servers stop on the same signal,
//! and the namespaces, named after the process id, are removed by the
//! next run.

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode, time::Instant};

use steer_tests::{
    process::is_root,
    pulls::{
        CLIENTS, ImageSpec, MIRRORS, Options, REDIRECTOR, REDIRECTOR6, Server, Topology, UPSTREAM,
        clients::Containerd, redirector::sample,
    },
};

const USAGE: &str = "usage: steer-demo --redirector PATH [--feed KIND=FILE]... [--screenshot PNG]";

fn main() -> ExitCode {
    let mut redirector = None;
    let mut feeds = Vec::new();
    let mut screenshot = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--redirector", Some(p)) => redirector = Some(PathBuf::from(p)),
            ("--feed", Some(f)) => feeds.push(f),
            ("--screenshot", Some(p)) => screenshot = Some(PathBuf::from(p)),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(redirector) = redirector else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if !is_root() {
        eprintln!("error: the demo creates network namespaces and loads XDP: run it as root");
        return ExitCode::FAILURE;
    }
    demo(redirector, feeds, screenshot);
    ExitCode::SUCCESS
}

fn demo(redirector: PathBuf, feeds: Vec<String>, screenshot: Option<PathBuf>) {
    let started = Instant::now();
    println!("Building the topology: one network namespace per host, all on one bridge.");
    let images = ["steer/demo", "steer/fresh", "steer/new"]
        .iter()
        .zip(1..)
        .map(|(&name, seed)| ImageSpec {
            name,
            tag: "v1",
            seed,
            layer_sizes: &[300_000, 80_000, 4_000],
        })
        .collect();
    let t = Topology::build(Options {
        redirector,
        feeds,
        images,
        blob_check_timeout: "2s",
        // Every mirror by distance: a mirror down fails over to the next.
        geo: true,
    });
    println!("  upstream   docker-registry  http://{UPSTREAM}:5000");
    for m in &MIRRORS {
        println!(
            "  mirror     nginx            http://{:<13} serves {}",
            m.addr, m.serves
        );
    }
    println!(
        "  redirector steer serve      http://{REDIRECTOR}:80, XDP on its veth; every client's region tries the mirrors nearest first (nearest = \"geo\")"
    );
    let image = &t.images[0];
    println!(
        "  image      {}:{} pushed upstream: {} blobs, manifest {}",
        image.name,
        image.tag,
        image.blobs.len(),
        image.manifest_digest
    );
    println!();

    println!(
        "skopeo copy docker://{} dir:... from each client:",
        t.reference(0)
    );
    println!(
        "  {:<19} {:<14} {:<19} {:<6} blobs from",
        "client", "address", "class", "pull"
    );
    for (c, spec) in CLIENTS.iter().enumerate() {
        let since = t.mark();
        let result = t.pull(c, 0);
        let pulled = match &result {
            Ok(d) if *d == image.manifest_digest => "ok",
            Ok(_) => "WRONG",
            Err(_) => "FAILED",
        };
        let mut from: BTreeMap<String, usize> = BTreeMap::new();
        for d in image.blob_digests() {
            for s in t.served(&since, spec.addr, d) {
                *from.entry(s.to_string()).or_default() += 1;
            }
        }
        let from: Vec<String> = from.iter().map(|(s, n)| format!("{n} from {s}")).collect();
        println!(
            "  {:<19} {:<14} {:<19} {:<6} {}",
            spec.name,
            spec.addr,
            spec.class,
            pulled,
            from.join(", ")
        );
        if let Err(e) = result {
            println!("    {e}");
        }
    }

    let aws = &t.clients[0];
    let since = t.mark();
    let result = t.pull_v6(0, 0);
    let n = image
        .blob_digests()
        .iter()
        .filter(|d| t.served(&since, aws.spec.addr, d) == vec![Server::Mirror(0)])
        .count();
    println!(
        "  {:<19} {:<14} {:<19} {:<6} {n} from mirror {} (over IPv6 to [{REDIRECTOR6}])",
        aws.spec.name,
        aws.spec.addr6.unwrap_or_default(),
        aws.spec.class,
        match &result {
            Ok(d) if *d == image.manifest_digest => "ok",
            Ok(_) => "WRONG",
            Err(_) => "FAILED",
        },
        MIRRORS[0].name,
    );
    if let Err(e) = result {
        println!("    {e}");
    }

    let metrics = t.metrics();
    println!();
    println!("SYNs the XDP program classified (steer_xdp_syns_total):");
    for spec in &CLIENTS {
        let (provider, region) = spec.class.split_once('/').unwrap_or(("unknown", "unknown"));
        let series = format!(r#"steer_xdp_syns_total{{provider="{provider}",region="{region}"}}"#);
        println!("  {:<19} {}", spec.class, sample(&metrics, &series));
    }

    println!();
    match Containerd::start(&aws.ns, t.dir.path()) {
        Ok(containerd) => {
            let since = t.mark();
            let r = containerd.pull(&aws.ns, &t.reference(0));
            let n = image
                .blob_digests()
                .iter()
                .filter(|d| t.served(&since, aws.spec.addr, d) == vec![Server::Mirror(0)])
                .count();
            match r {
                Ok(d) if d == image.manifest_digest => println!(
                    "ctr images pull from {}: ok, {n} of {} blobs from mirror {}",
                    aws.spec.name,
                    image.blobs.len(),
                    MIRRORS[0].name
                ),
                Ok(d) => println!("ctr images pull from {}: wrong digest {d}", aws.spec.name),
                Err(e) => println!("ctr images pull from {}: {e}", aws.spec.name),
            }
        }
        Err(e) => println!("containerd does not run here: {e}"),
    }

    println!();
    let fresh = &t.images[1];
    let absent = &fresh.blobs[1].digest;
    t.mirrors[0].remove(absent);
    println!(
        "Mirror {} lacks one blob of {}:{} ({absent}):",
        MIRRORS[0].name, fresh.name, fresh.tag
    );
    failure_pull(&t, 0, 1);

    let mut t = t;
    t.mirrors[1].stop();
    println!(
        "Mirror {} is down (its clients fail over to the next nearest):",
        MIRRORS[1].name
    );
    failure_pull(&t, 1, 2);

    println!();
    println!("What it cost and saved (redirector report --metrics http://127.0.0.1:9102):");
    match t.redirector_command(&["report", "--metrics", "http://127.0.0.1:9102"]) {
        Ok(report) => {
            for line in report.lines() {
                if line.is_empty() {
                    println!();
                } else {
                    println!("  {line}");
                }
            }
        }
        Err(e) => println!("  report failed: {e}"),
    }
    if let Some(png) = screenshot {
        // The admin listener's page, in the browser the tests use.
        let url = "http://127.0.0.1:9102/report";
        steer_tests::browser::screenshot(&t.redirector_ns, t.dir.path(), url, &png, 1280, 1200);
        println!("  {url} rendered by Chromium: {}", png.display());
    }
    println!();
    println!(
        "Done in {:.1} s; tearing everything down.",
        started.elapsed().as_secs_f64()
    );
}

/// Pulls `image` from `client` and says where each blob came from.
fn failure_pull(t: &Topology, client: usize, image: usize) {
    let spec = &CLIENTS[client];
    let since = t.mark();
    let result = t.pull(client, image);
    let ok = matches!(&result, Ok(d) if *d == t.images[image].manifest_digest);
    println!(
        "  {} pulls {}: {}",
        spec.name,
        t.reference(image),
        if ok { "ok" } else { "FAILED" }
    );
    for d in t.images[image].blob_digests() {
        let from: Vec<String> = t
            .served(&since, spec.addr, d)
            .iter()
            .map(|s| s.to_string())
            .collect();
        println!("    {}... from {}", &d[..19], from.join(", "));
    }
    if let Err(e) = result {
        println!("    {e}");
    }
}
