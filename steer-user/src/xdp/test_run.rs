//! BPF_PROG_TEST_RUN: crafted packets through the loaded classifier, and
//! the bare baseline program `bench xdp` measures it against. Behind the
//! `test-run` feature: for tests and benches, not for services.

use std::time::Duration;

use aya::{
    Ebpf, include_bytes_aligned,
    programs::{TestRun, TestRunOptions, Xdp},
};
use steer_ebpf::program_names;

use super::{Steer, load_xdp, raise_memlock_limit, xdp_program};
use crate::Error;

static BASELINE_OBJECT: &[u8] =
    include_bytes_aligned!(concat!(env!("OUT_DIR"), "/steer-xdp-baseline"));

impl Steer {
    /// Runs the classifier once on `packet` (BPF_PROG_TEST_RUN) and returns
    /// the XDP action. Maps and counters change as for a real packet.
    pub fn run_packet(&mut self, packet: &[u8]) -> Result<u32, Error> {
        Ok(test_run(self.program(), packet, 1)?.0)
    }

    /// Runs the classifier `repeat` times on `packet`; returns the kernel's
    /// mean time per run.
    pub fn time_packet(&mut self, packet: &[u8], repeat: u32) -> Result<Duration, Error> {
        Ok(test_run(self.program(), packet, repeat)?.1)
    }
}

/// The bare program that only returns XDP_PASS: the cost floor that
/// `cargo xtask bench xdp` compares the classifier against.
pub struct Baseline {
    ebpf: Ebpf,
}

impl Baseline {
    pub fn load() -> Result<Baseline, Error> {
        raise_memlock_limit();
        let mut ebpf = Ebpf::load(BASELINE_OBJECT).map_err(Error::Load)?;
        load_xdp(&mut ebpf, program_names::BASELINE)?;
        Ok(Baseline { ebpf })
    }

    /// Mean time per run of `repeat` runs on `packet`.
    pub fn time_packet(&mut self, packet: &[u8], repeat: u32) -> Result<Duration, Error> {
        let prog = xdp_program(&mut self.ebpf, program_names::BASELINE)
            .expect("the baseline was loaded in Baseline::load");
        Ok(test_run(prog, packet, repeat)?.1)
    }
}

fn test_run(prog: &Xdp, packet: &[u8], repeat: u32) -> Result<(u32, Duration), Error> {
    let result = prog
        .test_run(TestRunOptions {
            data_in: Some(packet),
            repeat,
            ..TestRunOptions::default()
        })
        .map_err(Error::TestRun)?;
    Ok((result.return_value, result.duration))
}
