//! The serving threads. Each is a current-thread runtime that accepts on
//! its own listening socket and serves the connections it accepted on the
//! same thread: no connection is handed from an accepting thread to a
//! serving one (two futex wake-ups and an eventfd write each, on a
//! multi-threaded runtime), and no runtime's workers steal from each
//! other. The kernel spreads new connections over the sockets
//! (SO_REUSEPORT), as nginx's workers share theirs.
//!
//! Admin, health checks and reloads run on the caller's runtime, so a
//! reload never stalls a serving thread.

use std::{net::TcpListener, sync::Arc, thread};

use tokio::sync::{Semaphore, oneshot, watch};

use super::{accept::accept_loop, conn::Conns, metrics::Metrics, socket};

/// Caps glibc's malloc arenas at one per serving thread plus the main
/// one; call it before any thread starts. glibc otherwise gives each new
/// thread (control plane, blocking pool) an arena of its own up to eight
/// per CPU, each holding its own free memory: about 1.7 MiB of RSS here
/// with one worker (`bench http`). An operator's `MALLOC_ARENA_MAX`
/// wins.
pub fn cap_malloc_arenas(workers: usize) {
    #[cfg(target_env = "gnu")]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let arenas = libc::c_int::try_from(workers + 1).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only tunes the allocator; no thread is running.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    }
    #[cfg(not(target_env = "gnu"))]
    let _ = workers;
}

/// A timer that is always armed, at most a second ahead. tokio wakes a
/// runtime's driver (an eventfd write) whenever a new timer is due before
/// every armed one, as a connection's first deadline (handshake, idle)
/// is when no other timer is armed: one of a TLS handshake's 17 system
/// calls (strace). Deadlines more than a second away are then never the
/// earliest. Costs a wake-up a second.
async fn heartbeat() {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(1);

/// The running serving threads.
pub struct Workers {
    threads: Vec<thread::JoinHandle<()>>,
    /// One per thread: its accept loop has returned (its socket closed).
    accepting: Vec<oneshot::Receiver<()>>,
    /// Dropped with the value: the threads end then too.
    stop: watch::Sender<bool>,
}

impl Workers {
    /// A thread per listener, each accepting until `drain` turns true and
    /// serving until [`Workers::stop`]. Returns once every thread has
    /// its runtime and its socket registered, or with the first error.
    pub async fn start(
        listeners: Vec<TcpListener>,
        conns: Arc<Conns>,
        slots: Arc<Semaphore>,
        metrics: Arc<Metrics>,
        drain: watch::Receiver<bool>,
    ) -> std::io::Result<Workers> {
        let (stop, stopped) = watch::channel(false);
        let mut workers = Workers {
            threads: Vec::new(),
            accepting: Vec::new(),
            stop,
        };
        let mut started = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let (ready_tx, ready) = oneshot::channel();
            let (accepting_tx, accepting) = oneshot::channel();
            let (conns, slots, metrics) = (conns.clone(), slots.clone(), metrics.clone());
            let (drain, mut stopped) = (drain.clone(), stopped.clone());
            let run = move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => return drop(ready_tx.send(Err(e))),
                };
                runtime.block_on(async move {
                    let listener = match socket::Listener::new(listener) {
                        Ok(l) => l,
                        Err(e) => return drop(ready_tx.send(Err(e))),
                    };
                    let _ = ready_tx.send(Ok(()));
                    tokio::spawn(heartbeat());
                    accept_loop(
                        "public",
                        listener,
                        slots,
                        metrics,
                        drain,
                        move |stream, peer, slot| {
                            // Boxed: the task then holds a pointer, not a
                            // connection's whole state machine, which it
                            // would copy at each change of stage.
                            tokio::spawn(Box::pin(conns.clone().serve(stream, peer, slot)));
                        },
                    )
                    .await;
                    let _ = accepting_tx.send(());
                    // Connections in flight finish on this runtime; the
                    // caller says when the grace period is over.
                    let _ = stopped.wait_for(|s| *s).await;
                });
            };
            let thread = thread::Builder::new()
                .name(format!("steer-worker-{i}"))
                .spawn(run)?;
            workers.threads.push(thread);
            workers.accepting.push(accepting);
            started.push(ready);
        }
        for ready in started {
            match ready.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(std::io::Error::other("a serving thread ended at start")),
            }
        }
        Ok(workers)
    }

    /// Waits until every accept loop has returned (after the drain).
    pub async fn stopped_accepting(&mut self) {
        for accepting in self.accepting.drain(..) {
            let _ = accepting.await;
        }
    }

    /// Ends every serving thread: connections still open are dropped.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}
