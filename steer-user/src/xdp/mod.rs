//! The XDP classifier in the kernel: load, attach, fill, read.
//!
//! [`Steer`] owns the loaded program and its maps. It keeps a shadow copy of
//! what it wrote (service ports, the table of each map generation) so it can
//! answer "what is loaded?" without reading maps back. Dropping it detaches
//! every attachment; because aya attaches through a bpf_link, the kernel
//! also detaches when the process dies without unwinding.
//!
//! - [`generations`](self): tables go into the inactive map generation and
//!   are switched in with one write.
//! - `live`: the maps pinned in bpffs, read by other processes.

mod dir_maps;
mod generations;
mod kernel_maps;
mod live;
mod maps;
#[cfg(feature = "test-run")]
mod test_run;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::{IpAddr, SocketAddr},
    os::fd::AsFd,
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
};

use aya::{
    Ebpf, include_bytes_aligned,
    maps::{Array, Map, MapData, PerCpuArray},
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use steer_ebpf::{FlowKey, map_names, program_names};
use tracing::{debug, info, warn};

pub use generations::{CounterMaps, FlowClass, GenerationMaps, Generations, TableLoad, WriteMode};
pub use live::{LiveAnswer, LiveMaps};
#[cfg(feature = "test-run")]
pub use test_run::Baseline;

use crate::{
    Class, ClassCounters, Error, Outcome, PacketCounters, Policy, RangeTable, flow_slots::FlowSlots,
};
use maps::{typed_map, typed_map_mut};

static CLASSIFIER_OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/steer-xdp"));

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

/// The loaded XDP classifier and its maps.
pub struct Steer {
    ebpf: Ebpf,
    flows: FlowSlots,
    links: Vec<(String, XdpLinkId)>,
    service_ports: BTreeSet<u16>,
    /// What each map generation holds, and the rules for changing it.
    generations: Generations,
    pinned: Option<PathBuf>,
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
            generations: Generations::default(),
            pinned: None,
        })
    }

    pub(super) fn program(&mut self) -> &mut Xdp {
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

    /// Detaches from every interface. Also happens on drop.
    pub fn detach_all(&mut self) {
        for (iface, link) in std::mem::take(&mut self.links) {
            match self.program().detach(link) {
                Ok(()) => info!(iface, "XDP detached"),
                Err(e) => warn!(iface, error = %e, "XDP detach failed"),
            }
        }
    }

    /// Pins the maps that other processes read ([`LiveMaps`]) under `dir`
    /// (on bpffs), replacing pins a previous instance left there.
    pub fn pin(&mut self, dir: &Path) -> Result<(), Error> {
        live::pin(&self.ebpf, dir)?;
        self.pinned = Some(dir.to_owned());
        info!(dir = %dir.display(), "maps pinned");
        Ok(())
    }

    /// Removes the pins made by [`Steer::pin`]. Also happens on drop.
    pub fn unpin(&mut self) {
        if let Some(dir) = self.pinned.take() {
            live::unpin(&dir);
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

    /// Loads `table` into the inactive map generation and switches to it.
    ///
    /// Lookups use the previous table until the one write that switches;
    /// on error nothing switches and the previous table keeps serving.
    pub fn load_table(&mut self, table: Arc<RangeTable>) -> Result<TableLoad, Error> {
        self.load_table_using(table, WriteMode::Batch)
    }

    /// [`Steer::load_table`] with a chosen way of writing the tries.
    pub fn load_table_using(
        &mut self,
        table: Arc<RangeTable>,
        mode: WriteMode,
    ) -> Result<TableLoad, Error> {
        let mut maps = kernel_maps::KernelMaps(&mut self.ebpf);
        self.generations.load_table(&mut maps, table, mode)
    }

    /// Sets the policy of `class`, now and in every table loaded later.
    /// Policies are kept by name, so they survive reloads that renumber
    /// classes.
    pub fn set_policy(&mut self, class: &Class, policy: Policy) -> Result<(), Error> {
        let mut maps = kernel_maps::KernelMaps(&mut self.ebpf);
        self.generations.set_policy(&mut maps, class, policy)
    }

    /// Replaces every class's policy (see [`Generations::set_policies`]).
    pub fn set_policies(
        &mut self,
        default: Policy,
        policies: std::collections::BTreeMap<Class, Policy>,
    ) -> Result<(), Error> {
        let mut maps = kernel_maps::KernelMaps(&mut self.ebpf);
        self.generations.set_policies(&mut maps, default, policies)
    }

    /// The policy `class` gets (from [`Steer::set_policies`] or
    /// [`Steer::set_policy`]).
    pub fn policy_of(&self, class: &Class) -> Policy {
        self.generations.policy_of(class)
    }

    /// Whether the active generation's IPv4 lookups use the direct table
    /// (else the LPM trie: the table did not fit).
    pub fn dir_in_use(&self) -> Result<bool, Error> {
        dir_maps::ready(&self.ebpf, self.generations.generation() & 1)
    }

    /// Sends the active generation's IPv4 lookups to the LPM trie (the
    /// direct table's flag cleared) until the next table load: the
    /// bench's reference row.
    pub fn lpm_only(&mut self) -> Result<(), Error> {
        dir_maps::set_ready(&mut self.ebpf, self.generations.generation() & 1, false)
    }

    /// The class the active generation's LPM trie gives `addr`: the
    /// kernel's own longest-prefix match, asked through a map lookup (the
    /// reference the direct table is tested against).
    pub fn lpm_class(&self, addr: std::net::IpAddr) -> Result<u32, Error> {
        use aya::maps::{LpmTrie, MapError, lpm_trie::Key};
        let index = (self.generations.generation() & 1) as usize;
        let result = match addr.to_canonical() {
            std::net::IpAddr::V4(a) => {
                let name = steer_ebpf::map_names::LPM_V4[index];
                let trie: LpmTrie<&aya::maps::MapData, [u8; 4], u32> =
                    maps::typed_map(&self.ebpf, name)?;
                (name, trie.get(&Key::new(32, a.octets()), 0))
            }
            std::net::IpAddr::V6(a) => {
                let name = steer_ebpf::map_names::LPM_V6[index];
                let trie: LpmTrie<&aya::maps::MapData, [u8; 16], u32> =
                    maps::typed_map(&self.ebpf, name)?;
                (name, trie.get(&Key::new(128, a.octets()), 0))
            }
        };
        match result {
            (_, Ok(c)) => Ok(c),
            (_, Err(MapError::KeyNotFound)) => Ok(crate::CLASS_UNKNOWN),
            (name, Err(source)) => Err(Error::Map { name, source }),
        }
    }

    /// The active generation number (0 before any table was loaded).
    pub fn generation(&self) -> u32 {
        self.generations.generation()
    }

    /// The table of `generation`, while the maps still hold it: the active
    /// generation and the one before it.
    pub fn table_of(&self, generation: u32) -> Option<&Arc<RangeTable>> {
        self.generations.table_of(generation)
    }

    /// The class XDP recorded for the connection from `peer` to local port
    /// `local_port`, with the generation whose table the id belongs to.
    /// `None` when its SYN was not seen here, a later flow took its slot, or
    /// the generation is gone: callers then classify in userspace, with the
    /// same table. No syscall: one load from the shared mapping.
    pub fn flow_class(&self, peer: SocketAddr, local_port: u16) -> Option<FlowClass> {
        let found = self.flows.read(&flow_key(peer, local_port))?;
        let generation = self.generations.by_epoch(found.epoch)?;
        Some(FlowClass {
            generation,
            class: found.class,
        })
    }

    /// SYN counters per class name, summed over CPUs and over every
    /// generation since load (unknown is [`Class::unknown`]).
    pub fn class_counters(&self) -> Result<BTreeMap<Class, ClassCounters>, Error> {
        self.generations
            .class_counters(&kernel_maps::KernelView(&self.ebpf))
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
}

impl Drop for Steer {
    fn drop(&mut self) {
        self.detach_all();
        self.unpin();
    }
}

pub(super) fn load_xdp(ebpf: &mut Ebpf, name: &'static str) -> Result<(), Error> {
    let prog = xdp_program(ebpf, name)?;
    prog.load()
        .map_err(|source| Error::Program { name, source })
}

pub(super) fn xdp_program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut Xdp, Error> {
    ebpf.program_mut(name)
        .ok_or(aya::programs::ProgramError::NotLoaded)
        .and_then(|p| p.try_into())
        .map_err(|source| Error::Program { name, source })
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
pub(super) fn raise_memlock_limit() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid pointer to an initialised rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        debug!(error = %std::io::Error::last_os_error(), "could not raise RLIMIT_MEMLOCK");
    }
}
