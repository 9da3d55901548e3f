//! The real parts of `redirector sync` and `audit` tests, all inside one
//! network namespace of the test's own on its loopback: Debian's
//! docker-registry as the upstream (seeded with a two-platform index, a
//! cosign-style signature tag and a plain image), nginx serving a
//! `file://` store, and moto's S3-compatible server with a public-read
//! bucket. Nothing leaves the namespace.

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::Duration,
};

pub mod proxy;

use crate::{
    netns::Netns,
    process::{Running, run_bounded},
    pulls::{
        clients::skopeo,
        oci::{Blob, Image, MultiArch, hex},
        servers::{Access, Mirror, Registry, run_in, wait_listening},
    },
};

pub const HOST: &str = "127.0.0.1";
/// moto's port and bucket in the namespace.
pub const S3_PORT: u16 = 9000;
pub const BUCKET: &str = "mirror";
/// A port nothing listens on in the namespace: an S3 endpoint that is down.
pub const DOWN_PORT: u16 = 9009;

/// The upstream, its images, and the two mirrors.
pub struct Fleet {
    pub ns: Netns,
    pub dir: tempfile::TempDir,
    pub registry: Registry,
    pub index: MultiArch,
    pub signature: Image,
    pub plain: Image,
    pub files: Mirror,
    pub s3: Moto,
}

impl Fleet {
    pub fn start() -> Fleet {
        let dir = tempfile::Builder::new()
            .prefix("steer-sync-")
            .tempdir()
            .expect("temporary directory");
        let ns = Netns::new("sync");
        let registry = Registry::start(&ns, dir.path(), HOST);
        let index = MultiArch::build(
            dir.path(),
            "steer/multi",
            "1.0",
            100,
            &[("linux", "amd64"), ("linux", "arm64")],
            &[40_000, 9_000],
        );
        let sig_tag = format!("sha256-{}.sig", hex(&index.index_digest));
        let signature = Image::build(dir.path(), "steer/multi", &sig_tag, 200, &[700]);
        let plain = Image::build(dir.path(), "steer/plain", "v2", 300, &[20_000]);
        push(&ns, dir.path(), &index.layout, &index.tag, &index.name);
        push(
            &ns,
            dir.path(),
            &signature.layout,
            &signature.tag,
            &signature.name,
        );
        push(&ns, dir.path(), &plain.layout, &plain.tag, &plain.name);
        let mut files = Mirror::new(dir.path(), "files", HOST);
        files.start(&ns);
        let s3 = Moto::start(&ns, dir.path());
        Fleet {
            ns,
            dir,
            registry,
            index,
            signature,
            plain,
            files,
            s3,
        }
    }

    /// Every blob of every image, signature included.
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut all: Vec<&Blob> = self.index.blobs.iter().collect();
        all.extend(&self.signature.blobs);
        all.extend(&self.plain.blobs);
        all
    }

    /// A config with the upstream and both mirrors as backends (`files`
    /// first, then `s3`), unknown clients sent to `unknown`; `s3_port`
    /// is moto's, or [`DOWN_PORT`].
    pub fn config(&self, name: &str, unknown: &str, s3_port: u16) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(
            &path,
            format!(
                r#"[upstream]
registry = "{registry}"
path = ""

[[backend]]
name = "files"
base_url = "{files}"
store = "file://{www}"

[[backend]]
name = "s3"
base_url = "http://{HOST}:{s3_port}/{BUCKET}"
store = "s3://{BUCKET}"
store_options = {{ endpoint = "http://{HOST}:{s3_port}", region = "us-east-1", allow_http = "true" }}

[fallback]
unknown = "{unknown}"
"#,
                registry = self.registry.url,
                files = self.files.url,
                www = self.files.www().display(),
            ),
        )
        .expect("config file");
        path
    }

    /// A config whose upstream is `registry` and whose one backend,
    /// `fresh`, has an empty `file://` store of its own; returns the
    /// config and the store's directory.
    pub fn fresh_config(&self, name: &str, registry: &str) -> (PathBuf, PathBuf) {
        let store = self.dir.path().join(format!("{name}-store"));
        let config = self.dir.path().join(format!("{name}.toml"));
        fs::write(
            &config,
            format!(
                "[upstream]\nregistry = \"{registry}\"\npath = \"\"\n\n[[backend]]\nname = \"fresh\"\nbase_url = \"http://{HOST}:1\"\nstore = \"file://{}\"\n",
                store.display()
            ),
        )
        .expect("config file");
        (config, store)
    }

    /// The images file naming all three images.
    pub fn images_file(&self) -> PathBuf {
        let path = self.dir.path().join("images.toml");
        fs::write(
            &path,
            "[[image]]\nname = \"steer/multi\"\ntags = [\"1.0\"]\n\n[[image]]\nname = \"steer/plain\"\nall_tags = true\n",
        )
        .expect("images file");
        path
    }

    /// `binary args...` run to its end inside the namespace, with moto's
    /// credentials in the environment.
    pub fn run(&self, binary: &Path, args: &[&str], limit: Duration) -> Output {
        self.run_with(binary, args, &[], limit)
    }

    /// [`Fleet::run`] with more variables in its environment.
    pub fn run_with(
        &self,
        binary: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        limit: Duration,
    ) -> Output {
        let mut cmd = self.ns.command(binary);
        cmd.args(args)
            .env("AWS_ACCESS_KEY_ID", "steer-test")
            .env("AWS_SECRET_ACCESS_KEY", "steer-test")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied());
        run_bounded(&mut cmd, limit)
            .unwrap_or_else(|o| panic!("{args:?} ran over {limit:?}: {}", crate::process::text(&o)))
    }

    /// The file a registry keeps a blob's bytes in.
    pub fn registry_blob(&self, digest: &str) -> PathBuf {
        let h = hex(digest);
        self.registry.data.join(format!(
            "docker/registry/v2/blobs/sha256/{}/{h}/data",
            &h[..2]
        ))
    }

    /// Pulls every platform of `name:tag` through the redirector at
    /// `redirector` with skopeo; Ok with its output directory.
    pub fn pull_all(
        &self,
        redirector: SocketAddr,
        name: &str,
        tag: &str,
    ) -> Result<PathBuf, String> {
        let out = self
            .dir
            .path()
            .join(format!("pulled-{}-{tag}", name.replace('/', "-")));
        let _ = fs::remove_dir_all(&out);
        skopeo(
            &self.ns,
            self.dir.path(),
            &[
                "copy".into(),
                "--quiet".into(),
                "--all".into(),
                "--src-tls-verify=false".into(),
                format!("docker://{redirector}/{name}:{tag}"),
                format!("oci:{}:{tag}", out.display()),
            ],
        )
        .map(|_| out)
    }
}

fn push(ns: &Netns, dir: &Path, layout: &Path, tag: &str, name: &str) {
    skopeo(
        ns,
        dir,
        &[
            "copy".into(),
            "--quiet".into(),
            "--all".into(),
            "--dest-tls-verify=false".into(),
            // The upstream must hold the very manifests built here.
            "--preserve-digests".into(),
            format!("oci:{}:{tag}", layout.display()),
            format!("docker://{HOST}:5000/{name}:{tag}"),
        ],
    )
    .unwrap_or_else(|e| panic!("pushing {name}:{tag} upstream: {e}"));
}

/// moto's S3-compatible server in the namespace, with one bucket that
/// anyone may read (as a mirror bucket must be: clients and blob checks
/// fetch without credentials).
pub struct Moto {
    _process: Running,
    log: PathBuf,
}

/// Where `cargo xtask setup` installs moto when the machine has none.
pub const MOTO_VENV: &str = "/opt/steer-moto";

pub fn moto_server() -> PathBuf {
    let venv = Path::new(MOTO_VENV).join("bin/moto_server");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("moto_server")
    }
}

impl Moto {
    pub fn start(ns: &Netns, dir: &Path) -> Moto {
        let log = dir.join("moto.log");
        let out = fs::File::create(&log).expect("moto log");
        let child = ns
            .command(moto_server())
            .args(["-H", HOST, "-p", &S3_PORT.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("starting moto_server (cargo xtask setup installs it)");
        let process = Running(child);
        wait_listening(
            ns,
            SocketAddr::new(HOST.parse().unwrap(), S3_PORT),
            "moto_server",
        );
        run_in(
            ns,
            "curl",
            &[
                "-sSf",
                "--max-time",
                "10",
                "-X",
                "PUT",
                "-H",
                "x-amz-acl: public-read",
                &format!("http://{HOST}:{S3_PORT}/{BUCKET}"),
            ],
            Duration::from_secs(15),
        );
        Moto {
            _process: process,
            log,
        }
    }

    /// Every request moto has logged (werkzeug's access lines).
    pub fn accesses(&self) -> Vec<Access> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(Access::parse)
            .collect()
    }
}

impl Fleet {
    /// The S3 object at a blob's key, read as clients do (unsigned, over
    /// the bucket's public URL); `None` when moto has none.
    pub fn s3_object(&self, digest: &str) -> Option<Vec<u8>> {
        let out = self.dir.path().join("s3-object");
        let _ = fs::remove_file(&out);
        let mut cmd = self.ns.command("curl");
        cmd.args(["-s", "--max-time", "10", "-o"])
            .arg(&out)
            .args(["-w", "%{http_code}"])
            .arg(format!(
                "http://{HOST}:{S3_PORT}/{BUCKET}/containers/images/{digest}"
            ));
        let o = run_bounded(&mut cmd, Duration::from_secs(15)).expect("curl to moto");
        (String::from_utf8_lossy(&o.stdout) == "200").then(|| fs::read(&out).expect("object"))
    }

    /// The blob at the file mirror's final key, if there is one.
    pub fn file_object(&self, digest: &str) -> Option<Vec<u8>> {
        fs::read(self.files.www().join("containers/images").join(digest)).ok()
    }
}
