//! What the program does with a class's SYNs: pass, drop, or limit each
//! source with a token bucket. The bucket arithmetic is plain integer
//! code that the kernel and the host tests run alike.

/// Per-class policy in the policy array, indexed like the counters. All
/// zero (the array's start) passes every SYN.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Policy {
    /// Non-zero: drop every SYN of the class.
    pub drop: u32,
    /// SYNs a source may send at once: its bucket's size. 0: no limit.
    pub syn_burst: u32,
    /// The bucket's refill, in thousandths of a SYN per second (so
    /// 100/min is 1,667); 0: no limit. At most [`MAX_SYN_RATE_MILLI`].
    pub syn_rate_milli: u64,
}

impl Policy {
    pub const PASS: Policy = Policy {
        drop: 0,
        syn_burst: 0,
        syn_rate_milli: 0,
    };
    pub const DROP: Policy = Policy {
        drop: 1,
        syn_burst: 0,
        syn_rate_milli: 0,
    };

    /// A SYN limit per source: `rate_milli` thousandths of a SYN per
    /// second, `burst` at once.
    pub const fn limit(rate_milli: u64, burst: u32) -> Policy {
        Policy {
            drop: 0,
            syn_burst: burst,
            syn_rate_milli: rate_milli,
        }
    }

    /// Whether SYNs of the class go through a source's bucket.
    #[inline(always)]
    pub const fn limited(&self) -> bool {
        self.syn_burst != 0 && self.syn_rate_milli != 0
    }
}

/// The fastest SYN limit: a million per second per source. Bounds the
/// refill arithmetic (microseconds times the rate stays in a u64 for
/// [`MAX_REFILL_MICROS`]).
pub const MAX_SYN_RATE_MILLI: u64 = 1_000_000_000;

/// The longest gap a bucket refills over at once: about five hours. A
/// source silent for longer gets that much refill, which is a full bucket
/// for every limit of at least `burst` SYNs per five hours.
pub const MAX_REFILL_MICROS: u64 = u64::MAX / MAX_SYN_RATE_MILLI;

/// A bucket holds this many nano-tokens per SYN.
pub const NANO_TOKENS: u64 = 1_000_000_000;

/// Slots of the SYN bucket array (a power of two). Direct-mapped by a
/// hash of the source, like the flow slots: a source whose slot another
/// source took since starts again with a full bucket, so a flood from a
/// few sources stays limited, and a spoofed flood from many new sources
/// would get a full bucket each under any per-source scheme.
pub const SYN_BUCKETS: u32 = 1 << 16;

/// One source's SYN bucket, in the slot its address hashes to (IPv4 as
/// its /32, IPv6 as its /64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynBucket {
    /// Which source the slot holds: the tag of its hash (never 0).
    pub tag: u64,
    /// Tokens left, in [`NANO_TOKENS`] per SYN.
    pub nano_tokens: u64,
    /// When it was last refilled (`bpf_ktime_get_ns`).
    pub last_ns: u64,
}

impl SynBucket {
    /// A bucket met for the first time at `now`: full, less this SYN.
    #[inline(always)]
    pub fn first(policy: &Policy, now: u64, tag: u64) -> SynBucket {
        SynBucket {
            tag,
            nano_tokens: (policy.syn_burst as u64).saturating_sub(1) * NANO_TOKENS,
            last_ns: now,
        }
    }

    /// Refills for the time since `last_ns`, then takes one SYN if a
    /// whole token is there. Kernel and userspace tests run this same
    /// code.
    #[inline(always)]
    pub fn take(&mut self, policy: &Policy, now: u64) -> bool {
        let mut micros = now.saturating_sub(self.last_ns) / 1000;
        if micros > MAX_REFILL_MICROS {
            micros = MAX_REFILL_MICROS;
        }
        let mut rate = policy.syn_rate_milli;
        if rate > MAX_SYN_RATE_MILLI {
            rate = MAX_SYN_RATE_MILLI;
        }
        // Microseconds times thousandths per second are nano-tokens.
        let cap = policy.syn_burst as u64 * NANO_TOKENS;
        let mut tokens = self.nano_tokens.saturating_add(micros * rate);
        if tokens > cap {
            tokens = cap;
        }
        // Only whole microseconds were credited: the rest stays owed.
        self.last_ns += micros * 1000;
        if self.last_ns > now {
            self.last_ns = now;
        }
        let ok = tokens >= NANO_TOKENS;
        self.nano_tokens = if ok { tokens - NANO_TOKENS } else { tokens };
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_passes_its_burst_then_its_rate() {
        // 10 a second, 3 at once.
        let p = Policy::limit(10_000, 3);
        let s = 1_000_000_000;
        let mut b = SynBucket::first(&p, s, 1);
        let took: [bool; 3] = core::array::from_fn(|_| b.take(&p, s));
        assert_eq!(took, [true, true, false], "the first SYN made the bucket");
        // 99 ms later: not yet a token; at 100 ms, one.
        assert!(!b.take(&p, s + 99_000_000));
        assert!(b.take(&p, s + 100_000_000));
        assert!(!b.take(&p, s + 100_000_000));
        // A long silence refills to the burst, not beyond.
        let later = s + 3_600 * s;
        assert_eq!((0..5).filter(|_| b.take(&p, later)).count(), 3);
        // A clock that reads earlier (another CPU) takes nothing away.
        assert!(!b.take(&p, s));
    }

    #[test]
    fn the_slowest_and_fastest_limits_do_not_overflow() {
        let s = 1_000_000_000u64;
        for (name, p) in [
            // One a day is 1000 / 86,400 thousandths a second: rounded up, 1.
            ("one a day", Policy::limit(1, 1)),
            (
                "a million a second",
                Policy::limit(MAX_SYN_RATE_MILLI, u32::MAX),
            ),
            ("past the maximum", Policy::limit(u64::MAX, u32::MAX)),
        ] {
            let mut b = SynBucket::first(&p, s, 1);
            for t in [s, s + 1, u64::MAX / 2, u64::MAX] {
                let _ = b.take(&p, t);
                assert!(b.nano_tokens <= p.syn_burst as u64 * NANO_TOKENS, "{name}");
            }
        }
        assert!(!Policy::PASS.limited() && !Policy::DROP.limited());
        assert!(Policy::limit(1, 1).limited());
    }
}
