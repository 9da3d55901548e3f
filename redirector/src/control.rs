//! The control loop of a long-running command (`serve`, `watch`): SIGHUP
//! and the reload timer ask for a reload, SIGTERM and Ctrl-C for a stop.
//! One place for both commands, so they behave alike.

use std::time::Duration;

use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    time::{Interval, MissedTickBehavior},
};

/// What the caller should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Reload, for this reason ("SIGHUP" or "timer").
    Reload(&'static str),
    Stop,
}

pub struct Control {
    term: Signal,
    int: Signal,
    hup: Signal,
    timer: Option<Interval>,
}

impl Control {
    /// Installs the signal handlers, all at once, so a signal that comes
    /// any time after this is handled; `reload_every` zero means reloads
    /// on SIGHUP only. Periods under a second are raised to one.
    pub fn new(reload_every: Duration) -> std::io::Result<Control> {
        let timer = (!reload_every.is_zero()).then(|| {
            let period = reload_every.max(Duration::from_secs(1));
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        Ok(Control {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            timer,
        })
    }

    pub async fn next(&mut self) -> Event {
        let timer = async {
            match &mut self.timer {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.hup.recv() => Event::Reload("SIGHUP"),
            _ = timer => Event::Reload("timer"),
            _ = self.term.recv() => Event::Stop,
            _ = self.int.recv() => Event::Stop,
        }
    }
}
