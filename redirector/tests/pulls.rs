//! Real pulls end to end: a real registry upstream, two nginx mirrors,
//! `redirector serve` with XDP on its veth, and skopeo and containerd
//! pulling from namespaces whose addresses lie in real AWS and GCP
//! prefixes or in no feed. Access logs show who fetched what from where;
//! failures (a blob missing at a mirror, a mirror down, range reloads and
//! a restart during pull loops) lose no pull. Needs root and the servers
//! `cargo xtask setup` installs; every address exists only inside the
//! test's namespaces.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

#[path = "pulls/report.rs"]
mod report;

use steer_tests::{
    process::{root_or_skip, run_bounded, text},
    prometheus::Prometheus,
    pulls::{
        CLIENTS, DRAIN_LIMIT, ImageSpec, Mark, Options, REDIRECTOR, Server, Topology, UPSTREAM,
        clients::Containerd, redirector::sample,
    },
    ranges_dir,
};

/// The redirector's admin listener, inside its namespace.
const ADMIN: &str = "127.0.0.1:9102";

// Images: `app` for the ordinary pulls; each failure case has one of its
// own, whose blobs no redirector has checked before.
const APP: usize = 0;
const MISSING: usize = 1;
const DOWN: usize = 2;
const SLOW: usize = 3;

// Clients, as in `CLIENTS`.
const AWS_EU: usize = 0;
const AWS_NEAREST: usize = 1;
const GCP: usize = 2;

// Mirrors, as in `MIRRORS`.
const EU: usize = 0;
const US: usize = 1;

fn images() -> Vec<ImageSpec> {
    let image = |name, seed| ImageSpec {
        name,
        tag: "v1",
        seed,
        layer_sizes: &[200_000, 60_000, 5_000],
    };
    vec![
        image("steer/app", 1),
        image("steer/missing", 2),
        image("steer/down", 3),
        image("steer/slow", 4),
    ]
}

fn topology() -> Topology {
    let ranges = ranges_dir();
    Topology::build(Options {
        redirector: env!("CARGO_BIN_EXE_redirector").into(),
        feeds: vec![
            format!("aws={}", ranges.join("aws-ip-ranges.json").display()),
            format!("gcp={}", ranges.join("gcp-cloud.json").display()),
        ],
        images: images(),
        blob_check_timeout: "2s",
        geo: false,
    })
}

/// Every blob of `image` reached `client` `times` times since `since`,
/// each time from `from`.
fn assert_served(
    t: &Topology,
    since: &Mark,
    client: usize,
    image: usize,
    from: Server,
    times: usize,
) {
    let addr = CLIENTS[client].addr;
    for digest in t.images[image].blob_digests() {
        let got = t.served(since, addr, digest);
        assert_eq!(
            got,
            vec![from; times],
            "{} ({addr}) blob {digest}: served by {got:?}, expected {from} x{times}\nredirector log:\n{}",
            CLIENTS[client].name,
            t.redirector_log()
        );
    }
}

fn pull_ok(t: &Topology, client: usize, image: usize) {
    let digest = t.pull(client, image).unwrap_or_else(|e| {
        panic!(
            "{} pulling {}: {e}\nredirector log:\n{}",
            CLIENTS[client].name,
            t.reference(image),
            t.redirector_log()
        )
    });
    assert_eq!(
        digest,
        t.images[image].manifest_digest,
        "{} pulled {} with another manifest than the upstream's",
        CLIENTS[client].name,
        t.reference(image)
    );
}

/// Polls the redirector's metrics (at most 20 s) until `series` reaches
/// `at_least`; returns the metrics.
fn wait_metric(t: &Topology, series: &str, at_least: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = t.metrics();
        if sample(&m, series) >= at_least {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{series} stayed below {at_least}:\n{m}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pulls_end_to_end() {
    if !root_or_skip("pulls_end_to_end") {
        return;
    }
    let started = Instant::now();
    let mut t = topology();
    // A real Prometheus scraping the redirector's admin listener through
    // the whole test, as an operator's would.
    let prometheus = Prometheus::start(&t.redirector_ns, t.dir.path(), &[ADMIN]);

    // 1. Every client pulls with skopeo; its blobs come from its nearest
    // copy, and the kernel counted its SYNs under its class.
    for (c, spec) in CLIENTS.iter().enumerate() {
        let since = t.mark();
        pull_ok(&t, c, APP);
        assert_served(&t, &since, c, APP, spec.expected, 1);
    }
    let metrics = t.metrics();
    for spec in &CLIENTS {
        let (provider, region) = spec.class.split_once('/').unwrap_or(("unknown", "unknown"));
        let syns = sample(
            &metrics,
            &format!(r#"steer_xdp_syns_total{{provider="{provider}",region="{region}"}}"#),
        );
        assert!(syns >= 1.0, "no SYN of {} counted:\n{metrics}", spec.name);
        // Every request of the client was answered from XDP's record.
        assert!(
            !metrics
                .lines()
                .any(|l| l.starts_with("steer_requests_total")
                    && l.contains(&format!(r#"provider="{provider}",region="{region}""#))
                    && !l.contains(r#"source="xdp""#)),
            "{} classified outside XDP:\n{metrics}",
            spec.name
        );
    }

    // 1b. The same region over IPv6: XDP classifies the IPv6 SYN (the
    // redirector's log names the client and the source of its class).
    let since = t.mark();
    let digest = t
        .pull_v6(AWS_EU, APP)
        .unwrap_or_else(|e| panic!("IPv6 pull: {e}"));
    assert_eq!(digest, t.images[APP].manifest_digest, "IPv6 pull");
    // The mirrors have only IPv4: the blobs go there from the IPv4 address.
    assert_served(&t, &since, AWS_EU, APP, Server::Mirror(EU), 1);
    let addr6 = CLIENTS[AWS_EU].addr6.unwrap();
    let log = t.redirector_log();
    let decisions: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("client={addr6} ")))
        .collect();
    assert!(!decisions.is_empty(), "no request from {addr6}:\n{log}");
    for d in &decisions {
        assert!(
            d.contains("class=aws/eu-west-3") && d.contains(r#"source="xdp""#),
            "{d}"
        );
    }

    // 1c. containerd's ctr, a second real client, from the same region.
    {
        let containerd = Containerd::start(&t.clients[AWS_EU].ns, t.dir.path())
            .unwrap_or_else(|e| panic!("containerd: {e}"));
        let since = t.mark();
        let digest = containerd
            .pull(&t.clients[AWS_EU].ns, &t.reference(APP))
            .unwrap_or_else(|e| panic!("ctr pull: {e}\n{}", t.redirector_log()));
        assert_eq!(digest, t.images[APP].manifest_digest, "ctr pull");
        assert_served(&t, &since, AWS_EU, APP, Server::Mirror(EU), 1);
    }

    // 1d. What it cost: `report` from Prometheus and from /metrics, and
    // the /report page in a real browser, give the exact bytes of the
    // blobs pulled, and the savings the configured prices imply.
    let app_bytes: u64 = t.images[APP]
        .blobs
        .iter()
        .map(|b| b.bytes.len() as u64)
        .sum();
    let pulled = [
        // skopeo over IPv4 and IPv6, and ctr.
        ("eu-west-3", "aws", "eu-west-3", 3 * app_bytes),
        ("us-east-1", "aws", "us-east-2", app_bytes),
        ("upstream", "gcp", "africa-south1", app_bytes),
        ("upstream", "unknown", "unknown", app_bytes),
    ];
    let eu_before = report::check_after_pulls(&t, &prometheus, &pulled);

    // 2. A mirror without one blob (not synced yet): that blob comes
    // from upstream, the rest from the mirror, and the pull succeeds.
    let absent = t.images[MISSING].blobs[1].digest.clone();
    t.mirrors[EU].remove(&absent);
    let since = t.mark();
    pull_ok(&t, AWS_EU, MISSING);
    for digest in t.images[MISSING].blob_digests() {
        let want = if digest == absent {
            Server::Upstream
        } else {
            Server::Mirror(EU)
        };
        assert_eq!(
            t.served(&since, CLIENTS[AWS_EU].addr, digest),
            vec![want],
            "{digest}"
        );
    }
    let redirector_ip: std::net::IpAddr = REDIRECTOR.parse().unwrap();
    assert!(
        t.mirrors[EU]
            .accesses()
            .iter()
            .any(|a| a.client == redirector_ip
                && a.method == "HEAD"
                && a.status == 404
                && a.path.ends_with(&absent)),
        "the mirror never answered the redirector's check with 404"
    );

    // 3. A mirror down (connections refused): its clients get every blob
    // from upstream.
    t.mirrors[US].stop();
    let since = t.mark();
    pull_ok(&t, AWS_NEAREST, DOWN);
    assert_served(&t, &since, AWS_NEAREST, DOWN, Server::Upstream, 1);

    // 4. Ranges reloaded again and again during a pull loop. Each reload
    // moves a custom class from the first class id to the last and back,
    // so every class id changes meaning at every switch; no pull fails and
    // every blob still comes from the right place.
    let since = t.mark();
    let reloads_before = sample(&t.metrics(), "steer_ranges_reloads");
    let pulls = [AWS_EU, GCP, AWS_EU, GCP, AWS_EU, GCP];
    let done = AtomicBool::new(false);
    let reloaded = std::sync::atomic::AtomicUsize::new(0);
    let reloads = thread::scope(|s| {
        let looper = s.spawn(|| {
            let mut results = Vec::new();
            for (i, &c) in pulls.iter().enumerate() {
                // The last pull waits (at most 30 s) until two reloads
                // happened during the loop, so a fast machine cannot
                // finish the loop between two reloads.
                if i + 1 == pulls.len() {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while reloaded.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
                        thread::sleep(Duration::from_millis(20));
                    }
                }
                results.push((c, t.pull(c, APP)));
            }
            done.store(true, Ordering::SeqCst);
            results
        });
        let mut reloads = 0;
        // Bounded: at most 40 reloads, whatever the loop does.
        while !done.load(Ordering::SeqCst) && reloads < 40 {
            let provider = if reloads % 2 == 0 { "zeta" } else { "acme" };
            t.write_custom(&format!("203.0.113.0/24,{provider},lab\n"));
            t.signal_redirector(libc::SIGHUP);
            reloads += 1;
            wait_metric(&t, "steer_ranges_reloads", reloads_before + reloads as f64);
            reloaded.store(reloads, Ordering::SeqCst);
        }
        for (c, result) in looper.join().unwrap() {
            let digest = result
                .unwrap_or_else(|e| panic!("pull during reloads by {}: {e}", CLIENTS[c].name));
            assert_eq!(digest, t.images[APP].manifest_digest);
        }
        reloads
    });
    assert!(
        reloads >= 2,
        "only {reloads} reloads happened during the pull loop"
    );
    assert_served(&t, &since, AWS_EU, APP, Server::Mirror(EU), 3);
    assert_served(&t, &since, GCP, APP, Server::Upstream, 3);

    // 5. SIGTERM and a restart during a pull loop. The other mirror is
    // unplugged, so a blob request from its region waits on a check that
    // cannot answer: a request in flight when SIGTERM comes. It must
    // still get its answer; the old process exits cleanly; the public
    // socket is held across the restart (as systemd's socket unit holds
    // it), so connections made while no process runs wait in its backlog
    // and no pull fails.
    t.unplug_mirror(US);
    let slow_blob = t.images[SLOW].blobs[0].digest.clone();
    let slow_url = format!(
        "http://{REDIRECTOR}/v2/{}/blobs/{slow_blob}",
        t.images[SLOW].name
    );
    let stop = AtomicBool::new(false);
    let log: Mutex<Vec<Pulled>> = Mutex::new(Vec::new());
    let (term, ready) = thread::scope(|s| {
        s.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(120);
            // Bounded: 60 pulls or two minutes.
            for _ in 0..60 {
                if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                    break;
                }
                let begun = Instant::now();
                let result = t.pull(AWS_EU, APP);
                let failed = result.is_err();
                log.lock().unwrap().push(Pulled {
                    begun,
                    ended: Instant::now(),
                    result,
                });
                if failed {
                    // As a real client would, back off a little.
                    thread::sleep(Duration::from_millis(250));
                }
            }
        });
        // The loop is under way: two pulls done.
        let deadline = Instant::now() + Duration::from_secs(60);
        while log.lock().unwrap().len() < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        let checks = sample(&t.metrics(), "steer_blob_check_requests_total");
        let curl = s.spawn(|| {
            let mut cmd = t.clients[AWS_NEAREST].ns.command("curl");
            cmd.args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{redirect_url}",
                "--max-time",
                "30",
                &slow_url,
            ]);
            run_bounded(&mut cmd, Duration::from_secs(40))
                .unwrap_or_else(|o| panic!("curl ran over: {}", text(&o)))
        });
        // The check of the slow blob has been sent: its request is in
        // flight.
        wait_metric(&t, "steer_blob_check_requests_total", checks + 1.0);
        let term = Instant::now();
        t.signal_redirector(libc::SIGTERM);
        let answer = curl.join().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&answer.stdout),
            format!(
                "307 http://{UPSTREAM}:5000/v2/{}/blobs/{slow_blob}",
                t.images[SLOW].name
            ),
            "the request in flight at SIGTERM: {}",
            text(&answer)
        );
        let status = t
            .wait_redirector_exit(DRAIN_LIMIT)
            .unwrap_or_else(|| panic!("no exit within {DRAIN_LIMIT:?} of SIGTERM"));
        assert!(
            status.success(),
            "redirector exited with {status} after SIGTERM"
        );
        t.restart_redirector();
        let ready = Instant::now();
        // Two pulls that begin after the restart, then the loop stops.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let after = log
                .lock()
                .unwrap()
                .iter()
                .filter(|p| p.begun >= ready)
                .count();
            if after >= 2 {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::SeqCst);
        (term, ready)
    });
    let log = log.into_inner().unwrap();
    let after: Vec<&Pulled> = log.iter().filter(|p| p.begun >= ready).collect();
    let timeline: Vec<String> = log
        .iter()
        .map(|p| {
            let at = |i: Instant| {
                i.saturating_duration_since(term).as_secs_f64()
                    - term.saturating_duration_since(i).as_secs_f64()
            };
            format!("{:+.2}s..{:+.2}s {:?}", at(p.begun), at(p.ended), p.result)
        })
        .collect();
    assert!(
        after.len() >= 2,
        "only {} pulls began after the restart ({:?} after SIGTERM); pulls:\n{}",
        after.len(),
        ready - term,
        timeline.join("\n")
    );
    let failed: Vec<String> = log
        .iter()
        .zip(&timeline)
        .filter(|(p, _)| p.result.is_err())
        .map(|(_, line)| line.clone())
        .collect();
    assert!(
        failed.is_empty(),
        "pulls failed across the restart:\n{}",
        timeline.join("\n")
    );
    for p in &log {
        if let Ok(digest) = &p.result {
            assert_eq!(digest, &t.images[APP].manifest_digest);
        }
    }
    // 6. Prometheus saw both processes: the report over the window
    // counts the old one's bytes and the new one's, across the reset.
    report::check_across_restart(&t, &prometheus, eu_before);

    eprintln!(
        "pulls_end_to_end: {} pulls in the restart loop, none failed; whole test {:?}",
        log.len(),
        started.elapsed()
    );
}

/// One pull of a loop: when it began and ended, what it got.
struct Pulled {
    begun: Instant,
    ended: Instant,
    result: Result<String, String>,
}
