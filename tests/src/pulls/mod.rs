//! The end-to-end topology: real pulls through the redirector across
//! network namespaces, as an operator would run it, with real parts only.
//!
//! ```text
//!   client namespaces (cloud or unlisted source addresses)
//!        |  |  |  |
//!   [lan: bridge br0] --- redirector (XDP on its veth, serve on :80)
//!        |  |  |
//!        |  |  +--------- upstream: docker-registry on :5000
//!        |  +------------ mirror eu-west-3: nginx on :80
//!        +--------------- mirror us-east-1: nginx on :80
//! ```
//!
//! Every host is a namespace with one veth into the `lan` namespace's
//! bridge; each has host addresses (/32, /128) and a default route onto
//! the bridge, which leads nowhere else. Cloud addresses exist only here.
//! Everything is removed on drop, panics included: processes first, then
//! the namespaces, then the temporary directory.

pub mod clients;
pub mod oci;
pub mod redirector;
pub mod servers;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use tempfile::TempDir;

use crate::netns::Netns;
use clients::skopeo;
use oci::Image;
use redirector::{Launch, Redirector};
use servers::{Access, Mirror, Registry};

/// The redirector's address; it serves on port 80.
pub const REDIRECTOR: &str = "192.0.2.1";
/// The redirector's IPv6 address, and the name clients reach it by over
/// IPv6 (skopeo takes no IPv6 literal in an image reference; the name is
/// in the `/etc/hosts` that skopeo sees, nowhere else).
pub const REDIRECTOR6: &str = "2001:db8::1";
pub const REDIRECTOR6_NAME: &str = "redirector6.steer.test";
/// The upstream registry's address; it serves on port 5000.
pub const UPSTREAM: &str = "192.0.2.10";

/// A regional mirror: its backend name in the redirector's config, its
/// address, and the classes it serves.
pub struct MirrorSpec {
    pub name: &'static str,
    pub addr: &'static str,
    pub serves: &'static str,
    /// Its `price_per_gb` (dollars).
    pub price_per_gb: f64,
}

/// `[cost] upstream_per_gb` of the topology's redirector; blobs sent
/// upstream are measured (`measure_upstream`).
pub const UPSTREAM_PER_GB: f64 = 0.12;

pub const MIRRORS: [MirrorSpec; 2] = [
    MirrorSpec {
        name: "eu-west-3",
        addr: "192.0.2.11",
        serves: "aws/eu-west-3",
        price_per_gb: 0.02,
    },
    // Also the nearest mirror of every AWS region without one.
    MirrorSpec {
        name: "us-east-1",
        addr: "192.0.2.12",
        serves: "aws/us-east-1",
        price_per_gb: 0.01,
    },
];

/// A client host: its address, the class the real feeds give it, and
/// where its blobs come from when every server is up.
pub struct ClientSpec {
    pub name: &'static str,
    pub addr: &'static str,
    /// An IPv6 address in the same class, for pulls over IPv6.
    pub addr6: Option<&'static str>,
    pub class: &'static str,
    pub expected: Server,
}

pub const CLIENTS: [ClientSpec; 4] = [
    // A region with a mirror of its own.
    ClientSpec {
        name: "aws-eu-west-3",
        addr: "35.180.1.1",
        addr6: Some("2a05:d012::1"),
        class: "aws/eu-west-3",
        expected: Server::Mirror(0),
    },
    // A region with only a nearest mirror.
    ClientSpec {
        name: "aws-us-east-2",
        addr: "3.5.100.7",
        addr6: None,
        class: "aws/us-east-2",
        expected: Server::Mirror(1),
    },
    ClientSpec {
        name: "gcp-africa-south1",
        addr: "34.35.1.1",
        addr6: None,
        class: "gcp/africa-south1",
        expected: Server::Upstream,
    },
    ClientSpec {
        name: "unlisted",
        addr: "198.51.100.7",
        addr6: None,
        class: "unknown",
        expected: Server::Upstream,
    },
];

/// An image the topology builds and pushes upstream.
pub struct ImageSpec {
    pub name: &'static str,
    pub tag: &'static str,
    pub seed: u64,
    pub layer_sizes: &'static [usize],
}

/// What to build.
pub struct Options {
    /// The `redirector` binary.
    pub redirector: PathBuf,
    /// Raw provider feeds (`KIND=FILE`) replacing the embedded snapshot's.
    pub feeds: Vec<String>,
    pub images: Vec<ImageSpec>,
    /// Seconds a blob check may take before the client goes upstream.
    pub blob_check_timeout: &'static str,
    /// `[fallback] nearest = "geo"` (every mirror by distance, so a
    /// mirror down sends its clients to the other) instead of one nearest
    /// mirror for AWS regions without their own.
    pub geo: bool,
}

/// Where the log marks stood: requests logged after it are "since".
#[derive(Clone, Debug)]
pub struct Mark {
    upstream: usize,
    mirrors: Vec<usize>,
}

/// A server that answered a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Mirror(usize),
    Upstream,
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Server::Mirror(i) => write!(f, "mirror {} ({})", MIRRORS[*i].name, MIRRORS[*i].addr),
            Server::Upstream => write!(f, "upstream ({UPSTREAM}:5000)"),
        }
    }
}

pub struct Client {
    pub spec: &'static ClientSpec,
    pub ns: Netns,
}

/// The whole topology, up. Fields drop in order: processes, namespaces,
/// files.
pub struct Topology {
    /// Behind a lock so pull loops on other threads can share the
    /// topology while the test restarts the redirector.
    redirector: Mutex<Option<Redirector>>,
    pub registry: Registry,
    pub mirrors: Vec<Mirror>,
    launch: Launch,
    pub images: Vec<Image>,
    pub clients: Vec<Client>,
    pub mirror_ns: Vec<Netns>,
    pub upstream_ns: Netns,
    pub redirector_ns: Netns,
    /// The public socket, held as systemd's socket unit would hold it and
    /// handed to every redirector process: a restart refuses nothing.
    _socket: std::net::TcpListener,
    _lan: Netns,
    pub dir: TempDir,
}

impl Topology {
    /// Creates the namespaces, builds and pushes the images, fills both
    /// mirrors with every blob, and starts every server.
    pub fn build(options: Options) -> Topology {
        let dir = tempfile::Builder::new()
            .prefix("steer-pulls-")
            .tempdir()
            .expect("temporary directory");
        let lan = Netns::new("lan");
        lan.ip(&["link", "add", "br0", "type", "bridge"]);
        lan.ip(&["link", "set", "br0", "up"]);
        let mut port = 0;
        let mut host = |tag: &str, addrs: &[&str]| {
            let ns = Netns::new(tag);
            attach(&lan, &format!("p{port}"), &ns, addrs);
            port += 1;
            ns
        };
        let redirector_ns = host("redir", &[REDIRECTOR, REDIRECTOR6]);
        let upstream_ns = host("upstream", &[UPSTREAM]);
        let mirror_ns: Vec<Netns> = MIRRORS.iter().map(|m| host("mirror", &[m.addr])).collect();
        let clients: Vec<Client> = CLIENTS
            .iter()
            .map(|spec| Client {
                spec,
                ns: host(
                    "client",
                    &[Some(spec.addr), spec.addr6]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>(),
                ),
            })
            .collect();

        let registry = Registry::start(&upstream_ns, dir.path(), UPSTREAM);
        let images: Vec<Image> = options
            .images
            .iter()
            .map(|s| Image::build(dir.path(), s.name, s.tag, s.seed, s.layer_sizes))
            .collect();
        for image in &images {
            skopeo(
                &upstream_ns,
                dir.path(),
                &[
                    "copy".into(),
                    "--quiet".into(),
                    "--dest-tls-verify=false".into(),
                    // The upstream must hold the very manifest built here.
                    "--preserve-digests".into(),
                    format!("oci:{}:{}", image.layout.display(), image.tag),
                    format!("docker://{UPSTREAM}:5000/{}:{}", image.name, image.tag),
                ],
            )
            .unwrap_or_else(|e| panic!("pushing {} upstream: {e}", image.name));
            let upstream = registry.manifest_digest(&upstream_ns, &image.name, &image.tag);
            assert_eq!(
                upstream, image.manifest_digest,
                "the registry holds another manifest for {}:{}",
                image.name, image.tag
            );
        }

        let mut mirrors: Vec<Mirror> = MIRRORS
            .iter()
            .map(|m| Mirror::new(dir.path(), m.name, m.addr))
            .collect();
        for (mirror, ns) in mirrors.iter_mut().zip(&mirror_ns) {
            for blob in images.iter().flat_map(|i| &i.blobs) {
                mirror.put(&blob.digest, &blob.bytes);
            }
            mirror.start(ns);
        }

        let socket = redirector_ns
            .spawn(|| std::net::TcpListener::bind("[::]:80"))
            .join()
            .unwrap()
            .expect("the redirector's public socket");
        let mut launch = launch(dir.path(), &options);
        launch.listen_fd = Some(std::os::fd::AsRawFd::as_raw_fd(&socket));
        // exec keeps the shell's pid, so LISTEN_PID names the redirector.
        launch.wrapper = ["sh", "-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\""]
            .map(str::to_owned)
            .to_vec();
        let redirector = Some(Redirector::start(Some(&redirector_ns), &launch));
        Topology {
            redirector: Mutex::new(redirector),
            registry,
            mirrors,
            launch,
            images,
            clients,
            mirror_ns,
            upstream_ns,
            redirector_ns,
            _socket: socket,
            _lan: lan,
            dir,
        }
    }

    /// `REDIRECTOR/NAME:TAG` of image `i`.
    pub fn reference(&self, image: usize) -> String {
        let i = &self.images[image];
        format!("{REDIRECTOR}/{}:{}", i.name, i.tag)
    }

    /// skopeo pulls image `image` through the redirector from client
    /// `client`; the manifest digest it got, or its error.
    pub fn pull(&self, client: usize, image: usize) -> Result<String, String> {
        clients::skopeo_pull(
            &self.clients[client].ns,
            self.dir.path(),
            &self.reference(image),
        )
    }

    /// As [`Topology::pull`], to the redirector's IPv6 address (the
    /// client's IPv6 address is the source).
    pub fn pull_v6(&self, client: usize, image: usize) -> Result<String, String> {
        let i = &self.images[image];
        clients::skopeo_pull(
            &self.clients[client].ns,
            self.dir.path(),
            &format!("{REDIRECTOR6_NAME}/{}:{}", i.name, i.tag),
        )
    }

    /// The running redirector (panics if it is not running).
    pub fn redirector(&self) -> MutexGuard<'_, Option<Redirector>> {
        self.redirector.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn metrics(&self) -> String {
        let admin = self
            .redirector()
            .as_ref()
            .expect("the redirector runs")
            .admin;
        redirector::fetch_metrics(&self.redirector_ns, admin)
    }

    /// Sends `signal` to the redirector.
    pub fn signal_redirector(&self, signal: i32) {
        self.redirector()
            .as_ref()
            .expect("the redirector runs")
            .signal(signal);
    }

    /// Waits (at most `limit`) for the redirector to exit by itself.
    pub fn wait_redirector_exit(&self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.redirector()
            .as_mut()
            .expect("the redirector runs")
            .wait_exit(limit)
    }

    /// Starts a new redirector with the same arguments (the old one, if
    /// still running, is killed first).
    pub fn restart_redirector(&self) {
        let mut r = self.redirector();
        *r = None;
        *r = Some(Redirector::start(Some(&self.redirector_ns), &self.launch));
    }

    /// Replaces the redirector's custom range list (read on SIGHUP).
    pub fn write_custom(&self, csv: &str) {
        std::fs::write(custom_path(self.dir.path()), csv).expect("custom list");
    }

    /// `redirector ARGS`, a one-shot command such as `report`, run to its
    /// end (at most a minute) in the redirector's namespace: its output,
    /// or what went wrong.
    pub fn redirector_command(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = self.redirector_ns.command(&self.launch.binary);
        cmd.args(args);
        match crate::process::run_bounded(&mut cmd, Duration::from_secs(60)) {
            Ok(out) if out.status.success() => {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            Ok(out) | Err(out) => Err(crate::process::text(&out)),
        }
    }

    /// The redirector's log so far (every decision at info).
    pub fn redirector_log(&self) -> String {
        std::fs::read_to_string(&self.launch.log).unwrap_or_default()
    }

    /// Takes mirror `i` off the network: its link goes down, so packets
    /// to it vanish and checks time out, as for a dead host.
    pub fn unplug_mirror(&self, i: usize) {
        self.mirror_ns[i].ip(&["link", "set", "nic", "down"]);
    }

    pub fn mark(&self) -> Mark {
        Mark {
            upstream: self.registry.accesses().len(),
            mirrors: self.mirrors.iter().map(|m| m.accesses().len()).collect(),
        }
    }

    /// Which servers answered `client`'s GETs of blob `digest` with 200
    /// since `mark` (one entry per answer).
    pub fn served(&self, since: &Mark, client: &str, digest: &str) -> Vec<Server> {
        let client: std::net::IpAddr = client.parse().expect("client address");
        let upstream_path = format!("/blobs/{digest}");
        let mirror_path = format!("/containers/images/{digest}");
        let ok = |a: &Access, path: &str| {
            a.client == client && a.method == "GET" && a.status == 200 && a.path.ends_with(path)
        };
        let mut out = Vec::new();
        for (i, m) in self.mirrors.iter().enumerate() {
            let n = m.accesses()[since.mirrors[i]..]
                .iter()
                .filter(|a| ok(a, &mirror_path))
                .count();
            out.extend(std::iter::repeat_n(Server::Mirror(i), n));
        }
        let n = self.registry.accesses()[since.upstream..]
            .iter()
            .filter(|a| ok(a, &upstream_path))
            .count();
        out.extend(std::iter::repeat_n(Server::Upstream, n));
        out
    }
}

/// Connects `host` to the lan bridge through a veth (`port` on the bridge
/// side, `nic` inside) and gives it `addrs` as host addresses and a
/// default route per family onto the bridge.
fn attach(lan: &Netns, port: &str, host: &Netns, addrs: &[&str]) {
    lan.ip(&[
        "link",
        "add",
        port,
        "type",
        "veth",
        "peer",
        "nic",
        "netns",
        host.name(),
    ]);
    lan.ip(&["link", "set", port, "master", "br0", "up"]);
    host.ip(&["link", "set", "nic", "up"]);
    for addr in addrs {
        let (len, family) = if addr.contains(':') {
            ("128", "-6")
        } else {
            ("32", "-4")
        };
        host.ip(&[
            "addr",
            "add",
            &format!("{addr}/{len}"),
            "dev",
            "nic",
            "nodad",
        ]);
        if host
            .ip_output(&[family, "route", "show", "default"])
            .is_empty()
        {
            host.ip(&[family, "route", "add", "default", "dev", "nic"]);
        }
    }
}

fn custom_path(dir: &Path) -> PathBuf {
    dir.join("custom.csv")
}

/// The redirector's config file, custom list and command line.
fn launch(dir: &Path, options: &Options) -> Launch {
    let mut config = format!(
        "[upstream]\nregistry = \"http://{UPSTREAM}:5000\"\npath = \"\"\nsignature = \"\"\ninfo_url = \"http://{UPSTREAM}:5000/\"\nprivacy_url = \"http://{UPSTREAM}:5000/\"\n\n"
    );
    for m in &MIRRORS {
        config.push_str(&format!(
            "[[backend]]\nname = \"{}\"\nbase_url = \"http://{}\"\nserves = [\"{}\"]\nprice_per_gb = {}\n\n",
            m.name, m.addr, m.serves, m.price_per_gb
        ));
    }
    let nearest = if options.geo {
        "\"geo\"".to_owned()
    } else {
        format!("{{ aws = \"{}\" }}", MIRRORS[1].name)
    };
    config.push_str(&format!(
        "[cost]\nmeasure_upstream = true\nupstream_per_gb = {UPSTREAM_PER_GB}\n\n"
    ));
    config.push_str(&format!(
        "[fallback]\nnearest = {nearest}\nunknown = \"upstream\"\n\n[blob_check]\ntimeout = \"{}\"\n\n[server]\nlisten = \"[::]:80\"\nadmin = \"127.0.0.1:9102\"\n",
        options.blob_check_timeout
    ));
    let config_path = dir.join("steer.toml");
    std::fs::write(&config_path, config).expect("redirector config");
    // A custom list the reload tests rewrite; it names a documentation
    // network no client uses.
    std::fs::write(custom_path(dir), "203.0.113.0/24,acme,lab\n").expect("custom list");
    let mut args: Vec<String> = [
        "serve",
        "--config",
        &config_path.display().to_string(),
        "--xdp-iface",
        "nic",
        "--xdp-mode",
        "native",
        "--no-pin",
        "--reload-interval",
        "0",
        "--snapshot",
        &dir.join("no-snapshot").display().to_string(),
        "--custom",
        &custom_path(dir).display().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for f in &options.feeds {
        args.push("--feed".into());
        args.push(f.clone());
    }
    Launch {
        binary: options.redirector.clone(),
        args,
        log: dir.join("redirector.log"),
        ..Launch::default()
    }
}

/// How long the redirector may take to drain after SIGTERM in the tests.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(15);
