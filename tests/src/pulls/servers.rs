//! The real servers of the end-to-end topology, each started inside its
//! own namespace on files under the test's temporary directory: the
//! upstream registry (Debian's `docker-registry`, the CNCF distribution
//! server) and nginx as a regional mirror. Both write access logs that
//! the tests read to see who fetched what from where.

use std::{
    fs,
    net::{IpAddr, SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use crate::{
    netns::Netns,
    process::{Running, run_bounded},
};

/// One line of an access log (combined log format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub client: IpAddr,
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl Access {
    /// `ADDR - - [time] "METHOD PATH PROTO" STATUS ...`; other lines
    /// (the registry's own log) give `None`.
    pub fn parse(line: &str) -> Option<Access> {
        let client = line.split(' ').next()?.parse().ok()?;
        let (_, rest) = line.split_once('"')?;
        let (request, rest) = rest.split_once('"')?;
        let mut request = request.split(' ');
        let method = request.next()?.to_owned();
        let path = request.next()?.to_owned();
        let status = rest.split_whitespace().next()?.parse().ok()?;
        Some(Access {
            client,
            method,
            path,
            status,
        })
    }
}

fn read_log(path: &Path) -> Vec<Access> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(Access::parse)
        .collect()
}

/// Waits (at most 20 s) until `addr` accepts TCP connections from inside
/// `ns`.
pub fn wait_listening(ns: &Netns, addr: SocketAddr, what: &str) {
    let ok = listening_within(ns, addr, Duration::from_secs(20));
    assert!(ok, "{what} did not start listening on {addr} within 20 s");
}

/// Whether `addr` in `ns` accepts a connection within `limit`.
pub fn listening_within(ns: &Netns, addr: SocketAddr, limit: Duration) -> bool {
    ns.spawn(move || {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    })
    .join()
    .unwrap()
}

/// The upstream: a distribution registry on `addr:5000`, storing under
/// `dir`.
pub struct Registry {
    _process: Running,
    log: PathBuf,
    pub url: String,
    /// Its storage root (`docker/registry/v2/...` below).
    pub data: PathBuf,
}

impl Registry {
    pub fn start(ns: &Netns, dir: &Path, addr: &str) -> Registry {
        let root = dir.join("registry");
        fs::create_dir_all(&root).expect("registry directory");
        let config = root.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: false\nhttp:\n  addr: {addr}:5000\n",
                root.join("data").display()
            ),
        )
        .expect("registry config");
        let log = root.join("access.log");
        let out = fs::File::create(&log).expect("registry log");
        let child = ns
            .command("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("starting docker-registry (cargo xtask setup installs it)");
        let process = Running(child);
        let sock = SocketAddr::new(addr.parse().expect("registry address"), 5000);
        wait_listening(ns, sock, "docker-registry");
        Registry {
            _process: process,
            log,
            url: format!("http://{sock}"),
            data: root.join("data"),
        }
    }

    /// The digest the registry gives for `name:tag` (its
    /// `Docker-Content-Digest`), asked with curl from inside `ns`.
    pub fn manifest_digest(&self, ns: &Netns, name: &str, tag: &str) -> String {
        let url = format!("{}/v2/{name}/manifests/{tag}", self.url);
        let head = run_in(
            ns,
            "curl",
            &[
                "-sSf",
                "--max-time",
                "10",
                "-I",
                "-H",
                "Accept: application/vnd.oci.image.manifest.v1+json",
                &url,
            ],
            Duration::from_secs(15),
        );
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("docker-content-digest")
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no Docker-Content-Digest for {url}: {head}"))
    }

    /// Every request the registry has logged so far.
    pub fn accesses(&self) -> Vec<Access> {
        read_log(&self.log)
    }
}

/// A regional mirror: nginx serving `<url>/containers/images/<digest>`
/// from a directory, as a bucket would.
pub struct Mirror {
    pub name: String,
    pub addr: String,
    pub url: String,
    root: PathBuf,
    process: Option<Running>,
}

impl Mirror {
    pub fn new(dir: &Path, name: &str, addr: &str) -> Mirror {
        let root = dir.join(format!("mirror-{name}"));
        fs::create_dir_all(root.join("www/containers/images")).expect("mirror directory");
        fs::create_dir_all(root.join("logs")).expect("mirror log directory");
        let host = if addr.contains(':') {
            format!("[{addr}]")
        } else {
            addr.to_owned()
        };
        // One process (no master), so killing it takes the mirror down;
        // as root, since the temporary directory is not readable by
        // nobody. Every path nginx writes is under this mirror's root.
        fs::write(
            root.join("nginx.conf"),
            format!(
                "user root;\nmaster_process off;\npid {root}/nginx.pid;\nerror_log {root}/logs/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log {root}/logs/access.log combined;\n  client_body_temp_path {root}/body;\n  proxy_temp_path {root}/proxy;\n  fastcgi_temp_path {root}/fastcgi;\n  uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n  server {{\n    listen {host}:80;\n    root {root}/www;\n    default_type application/octet-stream;\n    location / {{ return 404; }}\n    location /containers/images/ {{ }}\n  }}\n}}\n",
                root = root.display()
            ),
        )
        .expect("nginx config");
        Mirror {
            name: name.to_owned(),
            addr: addr.to_owned(),
            url: format!("http://{host}"),
            root,
            process: None,
        }
    }

    /// Starts nginx in `ns` and waits until it listens.
    pub fn start(&mut self, ns: &Netns) {
        assert!(self.process.is_none(), "mirror {} already runs", self.name);
        self.process = Some(start_nginx(ns, &self.root));
        let sock = SocketAddr::new(self.addr.parse().expect("mirror address"), 80);
        wait_listening(ns, sock, &format!("nginx for mirror {}", self.name));
    }

    /// Stops nginx (the mirror is down: connections are refused).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
    }

    /// Puts a blob where a client fetching `<url>/containers/images/<digest>`
    /// finds it.
    pub fn put(&self, digest: &str, bytes: &[u8]) {
        fs::write(self.blob_path(digest), bytes).expect("mirror blob");
    }

    pub fn remove(&self, digest: &str) {
        fs::remove_file(self.blob_path(digest)).expect("removing a mirror blob");
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.www().join("containers/images").join(digest)
    }

    /// The directory nginx serves: a `file://` store for `sync`.
    pub fn www(&self) -> PathBuf {
        self.root.join("www")
    }

    /// Every request nginx has logged so far.
    pub fn accesses(&self) -> Vec<Access> {
        read_log(&self.root.join("logs/access.log"))
    }
}

/// nginx in `ns` on `root/nginx.conf`, in the foreground (the config
/// keeps every path it writes under `root`).
pub fn start_nginx(ns: &Netns, root: &Path) -> Running {
    let child = ns
        .command("nginx")
        .arg("-p")
        .arg(root)
        .arg("-c")
        .arg(root.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting nginx (cargo xtask setup installs it)");
    Running(child)
}

/// Runs `ns`'s `program args` to its end within `limit`, for short setup
/// steps; panics with its output when it fails.
pub fn run_in(ns: &Netns, program: &str, args: &[&str], limit: Duration) -> String {
    let mut cmd = ns.command(program);
    cmd.args(args);
    let out = run_bounded(&mut cmd, limit).unwrap_or_else(|o| {
        panic!(
            "`{program} {}` ran over {limit:?}: {}",
            args.join(" "),
            crate::process::text(&o)
        )
    });
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        crate::process::text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `read()` (an access log) once its length has held still for 300 ms,
/// at most 5 s: servers write a log line after they answered, so a line
/// can land after its client is done.
pub fn settled<T>(read: impl Fn() -> Vec<T>) -> Vec<T> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = read();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = read();
        if now.len() == last.len() || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}
