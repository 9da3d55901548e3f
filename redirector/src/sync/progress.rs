//! Progress while blobs move: a bar per backend (blobs and bytes) when
//! stderr is a terminal, else one plain line per blob and backend, which
//! logs and CI keep readably.

use std::collections::HashMap;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::report::bytes;

pub struct Progress {
    bars: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
}

impl Progress {
    /// `backends`: each backend's name, blob count and byte count to do.
    pub fn new(backends: &[(String, u64, u64)], terminal: bool) -> Progress {
        if !terminal {
            return Progress { bars: None };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {msg} {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bars = backends
            .iter()
            .map(|(name, blobs, total)| {
                let bar = multi.add(ProgressBar::new(*total));
                bar.set_style(style.clone());
                bar.set_prefix(name.clone());
                bar.set_message(format!("0/{blobs} blobs"));
                (name.clone(), bar)
            })
            .collect();
        Progress {
            bars: Some((multi, bars)),
        }
    }

    /// One blob is done at one backend: `what` is `copied` or `failed`.
    pub fn blob(&self, backend: &str, digest: &str, size: u64, what: &str, done: u64, of: u64) {
        match &self.bars {
            Some((_, bars)) => {
                if let Some(bar) = bars.get(backend) {
                    bar.inc(size);
                    bar.set_message(format!("{done}/{of} blobs"));
                }
            }
            None => eprintln!(
                "sync: {backend}: {what} {digest} ({}) [{done}/{of}]",
                bytes(size)
            ),
        }
    }

    pub fn finish(&self) {
        if let Some((_, bars)) = &self.bars {
            for bar in bars.values() {
                bar.finish();
            }
        }
    }
}
