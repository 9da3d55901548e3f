//! `redirector watch`: the XDP classifier on one interface, with live
//! counters. What `cargo xtask run` starts on `lo`.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use steer_user::{AttachMode, Class, ClassCounters, Outcome, Steer};
use tokio::signal::unix::{SignalKind, signal};

use crate::{RangeArgs, parse_mode};

#[derive(clap::Args)]
pub struct Args {
    /// Interface to attach to.
    #[arg(long, default_value = "lo")]
    iface: String,
    /// XDP mode: auto (native where the driver has it), native or generic.
    #[arg(long, default_value = "auto", value_parser = parse_mode)]
    mode: AttachMode,
    /// Service ports: SYNs to these are classified. Repeatable.
    #[arg(long = "port", default_values_t = [80, 443, 8080])]
    ports: Vec<u16>,
    /// Seconds between counter prints.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    #[command(flatten)]
    ranges: RangeArgs,
}

pub fn run(args: Args) -> Result<()> {
    let table = std::sync::Arc::new(args.ranges.load()?);
    let mut steer = Steer::load().context("loading the XDP classifier (needs root or CAP_BPF)")?;
    steer
        .load_table(table.clone())
        .context("loading ranges into the XDP maps")?;
    steer
        .set_service_ports(&args.ports)
        .context("setting service ports")?;
    steer
        .attach(&args.iface, args.mode)
        .with_context(|| match args.mode {
            AttachMode::Native => format!(
                "{} may have no native XDP support (lo never has): try --mode auto or generic",
                args.iface
            ),
            _ => format!("attaching to {}", args.iface),
        })?;
    println!(
        "steer: XDP on {} ({} mode), {} IPv4 + {} IPv6 prefixes in {} classes, service ports {:?}. Ctrl-C to stop.",
        args.iface,
        args.mode,
        table.v4().len(),
        table.v6().len(),
        table.class_count(),
        args.ports,
    );

    let interval = Duration::from_secs_f64(args.interval.max(0.1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut ticker = tokio::time::interval(interval);
        let mut last = Snapshot::read(&steer)?;
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let now = Snapshot::read(&steer)?;
                    print!("{}", now.report(&last));
                    last = now;
                }
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        anyhow::Ok(())
    })?;
    // Explicit, so the log says it happened before we exit.
    steer.detach_all();
    Ok(())
}

struct Snapshot {
    at: Instant,
    classes: BTreeMap<Class, ClassCounters>,
    outcomes: Vec<(Outcome, steer_user::PacketCounters)>,
}

impl Snapshot {
    fn read(steer: &Steer) -> Result<Snapshot> {
        Ok(Snapshot {
            at: Instant::now(),
            classes: steer.class_counters()?,
            outcomes: steer.outcome_counters()?,
        })
    }

    /// Classes that saw SYNs (total, rate since `last`), then packets per outcome.
    fn report(&self, last: &Snapshot) -> String {
        let secs = self.at.duration_since(last.at).as_secs_f64().max(1e-9);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<28} {:>10} {:>9} {:>9}",
            "class", "SYNs", "SYN/s", "dropped"
        );
        for (class, now) in &self.classes {
            if now.syns == 0 {
                continue;
            }
            let before = last.classes.get(class).map_or(0, |c| c.syns);
            let name = class.to_string();
            let rate = (now.syns - before) as f64 / secs;
            let _ = writeln!(
                out,
                "{name:<28} {:>10} {rate:>9.1} {:>9}",
                now.syns, now.dropped
            );
        }
        let packets: Vec<String> = self
            .outcomes
            .iter()
            .filter(|(_, c)| c.packets > 0)
            .map(|(o, c)| format!("{} {}", o.name(), c.packets))
            .collect();
        let _ = writeln!(
            out,
            "packets: {}\n",
            if packets.is_empty() {
                "none yet".to_owned()
            } else {
                packets.join(", ")
            }
        );
        out
    }
}
