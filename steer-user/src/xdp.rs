//! The XDP classifier in the kernel: load, attach, fill, read.
//!
//! [`Steer`] owns the loaded program and its maps. It keeps a shadow copy of
//! what it wrote (service ports, the loaded table) so it can answer "what is
//! loaded?" without reading maps back. Dropping it detaches every
//! attachment; because aya attaches through a bpf_link, the kernel also
//! detaches when the process dies without unwinding.

use std::{
    collections::BTreeSet,
    fmt,
    net::{IpAddr, SocketAddr},
    os::fd::AsFd,
    str::FromStr,
    time::Duration,
};

use aya::{
    Ebpf, include_bytes_aligned,
    maps::{Array, LpmTrie, Map, MapData, PerCpuArray, lpm_trie::Key},
    programs::{TestRun, TestRunOptions, Xdp, XdpMode, xdp::XdpLinkId},
};
use ipnet::{Ipv4Net, Ipv6Net};
use steer_ebpf::{FlowKey, map_names, program_names};
use tracing::{debug, info, warn};

use crate::{
    ClassCounters, Error, MAX_CLASSES, Outcome, PacketCounters, Policy, RangeTable,
    flow_slots::FlowSlots,
};

static CLASSIFIER_OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/steer-xdp"));
static BASELINE_OBJECT: &[u8] =
    include_bytes_aligned!(concat!(env!("OUT_DIR"), "/steer-xdp-baseline"));

/// How to attach to an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachMode {
    /// Native where the driver supports it, else generic (the kernel picks).
    #[default]
    Auto,
    /// In the driver; fails where the driver has no XDP support.
    Native,
    /// In the network stack (skb mode): works everywhere, slower.
    Generic,
}

impl AttachMode {
    fn xdp_mode(self) -> XdpMode {
        match self {
            AttachMode::Auto => XdpMode::Default,
            AttachMode::Native => XdpMode::Driver,
            AttachMode::Generic => XdpMode::Skb,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Auto => "auto",
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AttachMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(AttachMode::Auto),
            "native" | "driver" => Ok(AttachMode::Native),
            "generic" | "skb" => Ok(AttachMode::Generic),
            other => Err(format!(
                "unknown XDP mode `{other}` (expected auto, native or generic)"
            )),
        }
    }
}

/// How a table reached the kernel maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLoad {
    pub v4: usize,
    pub v6: usize,
    /// Prefixes of the previous table that the new one no longer has.
    pub removed: usize,
    /// Whether `BPF_MAP_UPDATE_BATCH` was used (else one write per prefix).
    pub batched: bool,
}

/// The loaded XDP classifier and its maps.
pub struct Steer {
    ebpf: Ebpf,
    flows: FlowSlots,
    links: Vec<(String, XdpLinkId)>,
    service_ports: BTreeSet<u16>,
    table: Option<RangeTable>,
}

impl Steer {
    /// Loads the classifier into the kernel (runs the verifier). Nothing is
    /// attached yet; all maps start empty, so every SYN reads unknown.
    pub fn load() -> Result<Steer, Error> {
        raise_memlock_limit();
        let mut ebpf = Ebpf::load(CLASSIFIER_OBJECT).map_err(Error::Load)?;
        load_xdp(&mut ebpf, program_names::CLASSIFIER)?;
        let name = map_names::FLOW_SLOTS;
        let flows = match ebpf.map(name) {
            Some(Map::Array(data)) => {
                FlowSlots::map(data.fd().as_fd()).map_err(|source| Error::MapSyscall {
                    name,
                    op: "mmap",
                    source,
                })?
            }
            _ => return Err(Error::MissingMap { name }),
        };
        Ok(Steer {
            ebpf,
            flows,
            links: Vec::new(),
            service_ports: BTreeSet::new(),
            table: None,
        })
    }

    fn program(&mut self) -> &mut Xdp {
        xdp_program(&mut self.ebpf, program_names::CLASSIFIER)
            .expect("the classifier was loaded in Steer::load")
    }

    /// Attaches to `iface` (in this thread's network namespace).
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<(), Error> {
        let link = self
            .program()
            .attach(iface, mode.xdp_mode())
            .map_err(|source| Error::Attach {
                iface: iface.to_owned(),
                mode: mode.as_str(),
                source,
            })?;
        info!(iface, %mode, "XDP attached");
        self.links.push((iface.to_owned(), link));
        Ok(())
    }

    /// Interfaces this instance is attached to.
    pub fn attached(&self) -> impl Iterator<Item = &str> {
        self.links.iter().map(|(iface, _)| iface.as_str())
    }

    /// Detaches from every interface. Also happens on drop.
    pub fn detach_all(&mut self) {
        for (iface, link) in std::mem::take(&mut self.links) {
            match self.program().detach(link) {
                Ok(()) => info!(iface, "XDP detached"),
                Err(e) => warn!(iface, error = %e, "XDP detach failed"),
            }
        }
    }

    /// Makes exactly `ports` the service ports: SYNs to them are classified.
    pub fn set_service_ports(&mut self, ports: &[u16]) -> Result<(), Error> {
        let name = map_names::SERVICE_PORTS;
        let wanted: BTreeSet<u16> = ports.iter().copied().collect();
        let mut map: Array<&mut MapData, u8> = typed_map_mut(&mut self.ebpf, name)?;
        for &port in wanted.difference(&self.service_ports) {
            map.set(u32::from(port), 1, 0)
                .map_err(|source| Error::Map { name, source })?;
        }
        for &port in self.service_ports.difference(&wanted) {
            map.set(u32::from(port), 0, 0)
                .map_err(|source| Error::Map { name, source })?;
        }
        self.service_ports = wanted;
        Ok(())
    }

    pub fn service_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.service_ports.iter().copied()
    }

    /// Sets the policy of one class.
    pub fn set_policy(&mut self, class: u32, policy: Policy) -> Result<(), Error> {
        let name = map_names::POLICY;
        let mut map: Array<&mut MapData, u32> = typed_map_mut(&mut self.ebpf, name)?;
        map.set(class, policy as u32, 0)
            .map_err(|source| Error::Map { name, source })
    }

    /// Loads `table` into the LPM tries, replacing the previous table.
    ///
    /// New prefixes are written before stale ones are removed, so an address
    /// covered by both tables never reads unknown in between.
    pub fn load_table(&mut self, table: &RangeTable) -> Result<TableLoad, Error> {
        if table.class_count() >= MAX_CLASSES as usize {
            return Err(Error::TooManyClasses {
                classes: table.class_count(),
                max: MAX_CLASSES - 1,
            });
        }
        let v4_keys: Vec<Key<[u8; 4]>> = table.v4().iter().map(|(n, _)| v4_key(n)).collect();
        let v4_vals: Vec<u32> = table.v4().iter().map(|&(_, c)| c).collect();
        let v6_keys: Vec<Key<[u8; 16]>> = table.v6().iter().map(|(n, _)| v6_key(n)).collect();
        let v6_vals: Vec<u32> = table.v6().iter().map(|&(_, c)| c).collect();
        let batched_v4 = self.write_lpm(map_names::LPM_V4, &v4_keys, &v4_vals)?;
        let batched_v6 = self.write_lpm(map_names::LPM_V6, &v6_keys, &v6_vals)?;

        // The shadow copy changes only after every kernel write succeeded,
        // so it never claims less than the maps hold.
        let (stale_v4, stale_v6) = match &self.table {
            Some(old) => (
                stale(old.v4(), table.v4(), v4_key),
                stale(old.v6(), table.v6(), v6_key),
            ),
            None => (Vec::new(), Vec::new()),
        };
        remove_lpm(&mut self.ebpf, map_names::LPM_V4, &stale_v4)?;
        remove_lpm(&mut self.ebpf, map_names::LPM_V6, &stale_v6)?;
        let removed = stale_v4.len() + stale_v6.len();
        self.table = Some(table.clone());
        let load = TableLoad {
            v4: v4_keys.len(),
            v6: v6_keys.len(),
            removed,
            batched: batched_v4 && batched_v6,
        };
        info!(
            v4 = load.v4,
            v6 = load.v6,
            removed,
            batched = load.batched,
            "range table loaded into XDP maps"
        );
        Ok(load)
    }

    /// The table last loaded with [`Steer::load_table`].
    pub fn table(&self) -> Option<&RangeTable> {
        self.table.as_ref()
    }

    /// Writes entries with one batch syscall, or one by one where the kernel
    /// has no batch update for the map. Returns whether the batch was used.
    fn write_lpm<K: aya::Pod>(
        &mut self,
        name: &'static str,
        keys: &[Key<K>],
        values: &[u32],
    ) -> Result<bool, Error> {
        let fd = map_data(&self.ebpf, name)?.fd().as_fd();
        match crate::map_batch::update(fd, keys, values) {
            Ok(()) => return Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTSUP | 524)) => {
                // 524 is the kernel-internal ENOTSUPP some kernels leak.
                debug!(map = name, error = %e, "no batch update; writing one by one");
            }
            Err(source) => {
                return Err(Error::MapSyscall {
                    name,
                    op: "BPF_MAP_UPDATE_BATCH",
                    source,
                });
            }
        }
        let mut trie: LpmTrie<&mut MapData, K, u32> = typed_map_mut(&mut self.ebpf, name)?;
        for (k, v) in keys.iter().zip(values) {
            trie.insert(k, v, 0)
                .map_err(|source| Error::Map { name, source })?;
        }
        Ok(false)
    }

    /// The class XDP recorded for the connection from `peer` to local port
    /// `local_port`. `None` when its SYN was not seen here, or a later flow
    /// took its slot: callers then classify in userspace, with the same
    /// table. No syscall: one load from the shared mapping.
    pub fn flow_class(&self, peer: SocketAddr, local_port: u16) -> Option<u32> {
        self.flows.class(&flow_key(peer, local_port))
    }

    /// Per-class counters summed over CPUs, for class ids `0..count`
    /// (0 is unknown).
    pub fn class_counters(&self, count: u32) -> Result<Vec<ClassCounters>, Error> {
        let name = map_names::CLASS_COUNTERS;
        let map: PerCpuArray<&MapData, ClassCounters> = typed_map(&self.ebpf, name)?;
        (0..count.min(MAX_CLASSES))
            .map(|i| {
                let per_cpu = map
                    .get(&i, 0)
                    .map_err(|source| Error::Map { name, source })?;
                Ok(per_cpu
                    .iter()
                    .fold(ClassCounters::default(), |a, c| ClassCounters {
                        syns: a.syns + c.syns,
                        bytes: a.bytes + c.bytes,
                        dropped: a.dropped + c.dropped,
                    }))
            })
            .collect()
    }

    /// Packets and bytes per outcome, summed over CPUs.
    pub fn outcome_counters(&self) -> Result<Vec<(Outcome, PacketCounters)>, Error> {
        let name = map_names::OUTCOME_COUNTERS;
        let map: PerCpuArray<&MapData, PacketCounters> = typed_map(&self.ebpf, name)?;
        Outcome::ALL
            .iter()
            .map(|&o| {
                let per_cpu = map
                    .get(&(o as u32), 0)
                    .map_err(|source| Error::Map { name, source })?;
                let sum = per_cpu
                    .iter()
                    .fold(PacketCounters::default(), |a, c| PacketCounters {
                        packets: a.packets + c.packets,
                        bytes: a.bytes + c.bytes,
                    });
                Ok((o, sum))
            })
            .collect()
    }

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

impl Drop for Steer {
    fn drop(&mut self) {
        self.detach_all();
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

fn load_xdp(ebpf: &mut Ebpf, name: &'static str) -> Result<(), Error> {
    let prog = xdp_program(ebpf, name)?;
    prog.load()
        .map_err(|source| Error::Program { name, source })
}

fn xdp_program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, Error> {
    ebpf.program_mut(name)
        .ok_or(aya::programs::ProgramError::NotLoaded)
        .and_then(|p| p.try_into())
        .map_err(|source| Error::Program { name, source })
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

fn map_data<'a>(ebpf: &'a Ebpf, name: &'static str) -> Result<&'a MapData, Error> {
    match ebpf.map(name) {
        Some(Map::LpmTrie(data)) => Ok(data),
        _ => Err(Error::MissingMap { name }),
    }
}

fn typed_map<'a, T>(ebpf: &'a Ebpf, name: &'static str) -> Result<T, Error>
where
    T: TryFrom<&'a Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map(name).ok_or(Error::MissingMap { name })?;
    T::try_from(map).map_err(|source| Error::Map { name, source })
}

fn typed_map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, Error>
where
    T: TryFrom<&'a mut Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map_mut(name).ok_or(Error::MissingMap { name })?;
    T::try_from(map).map_err(|source| Error::Map { name, source })
}

fn remove_lpm<K: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    keys: &[Key<K>],
) -> Result<(), Error> {
    let mut trie: LpmTrie<&mut MapData, K, u32> = typed_map_mut(ebpf, name)?;
    for k in keys {
        match trie.remove(k) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(source) => return Err(Error::Map { name, source }),
        }
    }
    Ok(())
}

/// Keys of `old` prefixes that `new` (sorted) no longer has.
fn stale<N: Ord, K>(old: &[(N, u32)], new: &[(N, u32)], key: fn(&N) -> K) -> Vec<K> {
    old.iter()
        .filter(|(n, _)| new.binary_search_by(|(m, _)| m.cmp(n)).is_err())
        .map(|(n, _)| key(n))
        .collect()
}

fn v4_key(net: &Ipv4Net) -> Key<[u8; 4]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
}

fn v6_key(net: &Ipv6Net) -> Key<[u8; 16]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
}

/// The flow-map key for a connection, as the XDP program writes it.
pub fn flow_key(peer: SocketAddr, local_port: u16) -> FlowKey {
    let addr = match peer.ip().to_canonical() {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    };
    FlowKey {
        addr,
        // The program stores ports as they sit in the header.
        src_port: u16::from_ne_bytes(peer.port().to_be_bytes()),
        dst_port: u16::from_ne_bytes(local_port.to_be_bytes()),
    }
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; newer ones use
/// memory cgroups and ignore it. Best effort either way.
fn raise_memlock_limit() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid pointer to an initialised rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        debug!(error = %std::io::Error::last_os_error(), "could not raise RLIMIT_MEMLOCK");
    }
}
