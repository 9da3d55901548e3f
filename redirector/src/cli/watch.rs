//! `redirector watch`: the XDP classifier on one interface, with live
//! counters. What `cargo xtask run` starts on `lo`.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use steer_user::{
    AttachMode, Class, ClassCounters, Outcome, Steer,
    ranges::{RangeSources, Ranges},
};

use super::range_args::RangeArgs;
use crate::{
    control::{Control, Event},
    reload::Reload,
    xdp::{self, DEFAULT_PIN_DIR, parse_mode},
};

#[derive(clap::Args)]
pub struct WatchArgs {
    /// Interface to attach to.
    #[arg(long, default_value = "lo")]
    iface: String,
    /// XDP mode: auto (native where the driver has it), native or generic.
    #[arg(long, default_value = "auto", value_parser = parse_mode)]
    mode: AttachMode,
    /// Service ports: SYNs to these are classified. Repeatable.
    #[arg(long = "port", default_values_t = [80, 443, 8080])]
    ports: Vec<u16>,
    /// Time between counter prints (seconds, or a duration such as 500ms).
    #[arg(long, value_name = "DURATION", default_value = "1", value_parser = crate::config::duration::positive_flag)]
    interval: Duration,
    /// Time between range reloads (0: only on SIGHUP). A reload that
    /// finds nothing changed leaves the kernel maps alone.
    #[arg(long, value_name = "DURATION", default_value = "300", value_parser = crate::config::duration::flag)]
    reload_interval: Duration,
    /// Pin the maps here (on bpffs) for `redirector explain --kernel`.
    #[arg(long, value_name = "DIR", env = "STEER_PIN_DIR", default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    /// Do not pin the maps.
    #[arg(long)]
    no_pin: bool,
    #[command(flatten)]
    ranges: RangeArgs,
}

pub fn run(args: WatchArgs) -> Result<()> {
    let sources = args.ranges.sources();
    let mut ranges = sources.load(None).context("loading ranges")?.ranges;
    let pin_dir = (!args.no_pin).then_some(args.pin_dir.as_path());
    let mut steer = xdp::bring_up(
        ranges.table.clone(),
        &args.ports,
        &args.iface,
        args.mode,
        pin_dir,
    )?;
    let interval = args.interval.max(Duration::from_millis(100));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let mut control =
            Control::new(args.reload_interval).context("installing signal handlers")?;
        // Announced only once the handlers are in: a signal right after
        // the banner detaches cleanly.
        let table = &ranges.table;
        println!(
            "steer: XDP on {} ({} mode), {} IPv4 + {} IPv6 prefixes in {} classes, service ports {:?}. Ctrl-C to stop.",
            args.iface,
            args.mode,
            table.v4().len(),
            table.v6().len(),
            table.class_count(),
            args.ports,
        );

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
                event = control.next() => match event {
                    Event::Reload(why) => reload(&sources, &mut ranges, &mut steer, why),
                    Event::Stop => break,
                },
            }
        }
        anyhow::Ok(())
    })?;
    // Explicit, so the log says it happened before we exit.
    steer.detach_all();
    steer.unpin();
    Ok(())
}

/// Reloads the sources; on any failure the current table keeps serving.
/// The outcome goes to stdout too, where people and tests watch for it.
fn reload(sources: &RangeSources, ranges: &mut Ranges, steer: &mut Steer, why: &str) {
    let (outcome, kept) = crate::reload::reload(sources, ranges, why, |table| {
        steer.load_table(table.clone()).map(Some)
    });
    for e in kept {
        println!("ranges: kept the last good copy: {e}");
    }
    match outcome {
        Reload::Unchanged => println!("ranges unchanged ({why})"),
        Reload::Failed(e) => println!("ranges reload failed, current ranges kept: {e}"),
        Reload::Reloaded { ranges: new, load } => {
            if let Some(load) = load {
                println!(
                    "ranges reloaded ({why}): generation {}, {} IPv4 + {} IPv6 prefixes in {} classes, {:.1} ms",
                    load.generation,
                    load.v4,
                    load.v6,
                    new.table.class_count(),
                    load.elapsed.as_secs_f64() * 1e3
                );
            }
            *ranges = new;
        }
    }
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
