//! The servers compared by `cargo xtask bench http`, each configured from
//! the same compiled ranges to give the same redirects: nginx with `geo`
//! and `realip`, HAProxy with `map_ip` and `set-src`, and `redirector
//! serve` with `--trusted-proxy`.
//!
//! The policy written into nginx and HAProxy is the one in the
//! redirector's config file: a class some backend serves goes to that
//! backend; any other AWS class to the nearest backend; everything else
//! upstream. The bench's correctness pass checks that all of them answer
//! every request of the set with the same Location.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use steer_user::RangeTable;

/// The upstream registry every non-blob request (and every blob of a
/// client no backend serves) is sent to. Never contacted.
pub const UPSTREAM: &str = "http://upstream.steer.test";

/// A backend: its name, the class it serves, and its base URL.
pub struct Backend {
    pub name: &'static str,
    pub serves: &'static str,
    pub base_url: String,
}

/// Backends for a handful of AWS regions; the first is the nearest for
/// every other AWS region.
pub const BACKEND_REGIONS: [(&str, &str); 6] = [
    ("us-east-1", "aws/us-east-1"),
    ("eu-west-3", "aws/eu-west-3"),
    ("eu-central-1", "aws/eu-central-1"),
    ("us-west-2", "aws/us-west-2"),
    ("ap-northeast-1", "aws/ap-northeast-1"),
    ("ap-south-1", "aws/ap-south-1"),
];

/// The base URL a client of `class` gets its blobs from, or `None` for
/// upstream: the rule the redirector's config states.
pub fn blob_base<'a>(backends: &'a [Backend], provider: &str, region: &str) -> Option<&'a str> {
    let class = format!("{provider}/{region}");
    if let Some(b) = backends.iter().find(|b| b.serves == class) {
        return Some(&b.base_url);
    }
    (provider == "aws").then(|| backends[0].base_url.as_str())
}

/// Every prefix of the table with the base URL its clients' blobs go to
/// ("" for upstream), longest prefixes included as they are: both peers
/// match the longest prefix themselves.
fn prefix_values<'a>(
    table: &'a RangeTable,
    backends: &'a [Backend],
) -> impl Iterator<Item = (String, &'a str)> + 'a {
    let value = move |class: u32| {
        table
            .class(class)
            .and_then(|c| blob_base(backends, &c.provider, &c.region))
            .unwrap_or("")
    };
    let v4 = table
        .v4()
        .iter()
        .map(move |(n, c)| (n.to_string(), value(*c)));
    let v6 = table
        .v6()
        .iter()
        .map(move |(n, c)| (n.to_string(), value(*c)));
    v4.chain(v6)
}

/// How a server of the bench runs: its workers (nginx processes, HAProxy
/// threads, tokio workers) and, for the TLS mode, a certificate and key.
#[derive(Clone, Debug)]
pub struct Shape {
    pub workers: u32,
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// The TLS session nginx and the redirector must both negotiate with
/// wrk's OpenSSL client: TLS 1.3 (Debian's nginx 1.22 offers at most 1.2
/// unless told) and AES-128-GCM chosen over the client's order, as the
/// redirector chooses it (`serve/tls.rs`).
const NGINX_TLS: &str = "ssl_protocols TLSv1.3;
    ssl_prefer_server_ciphers on;
    ssl_conf_command Ciphersuites \
TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;";

/// nginx: `geo` on the address `realip` took from X-Forwarded-For (sent by
/// the trusted 127.0.0.1), and `return 307`. One worker runs without a
/// master process: one process to pin, trace and count.
pub fn nginx_config(
    dir: &Path,
    port: u16,
    table: &RangeTable,
    backends: &[Backend],
    shape: &Shape,
) -> String {
    let mut geo = String::new();
    for (net, value) in prefix_values(table, backends) {
        if !value.is_empty() {
            let _ = writeln!(geo, "{net} \"{value}\";");
        } else {
            let _ = writeln!(geo, "{net} \"\";");
        }
    }
    fs::write(dir.join("nginx-geo.conf"), geo).expect("nginx geo file");
    let d = dir.display();
    let workers = shape.workers;
    let master = if workers == 1 { "off" } else { "on" };
    let (listen, tls) = match &shape.tls {
        None => (format!("127.0.0.1:{port}"), String::new()),
        Some((cert, key)) => (
            format!("127.0.0.1:{port} ssl"),
            format!(
                "ssl_certificate {};\n    ssl_certificate_key {};\n    {NGINX_TLS}",
                cert.display(),
                key.display()
            ),
        ),
    };
    format!(
        r#"worker_processes {workers};
master_process {master};
pid {d}/nginx-{port}.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/nginx-body;
  proxy_temp_path {d}/nginx-proxy;
  fastcgi_temp_path {d}/nginx-fastcgi;
  uwsgi_temp_path {d}/nginx-uwsgi;
  scgi_temp_path {d}/nginx-scgi;
  keepalive_requests 100000000;
  set_real_ip_from 127.0.0.1;
  real_ip_header X-Forwarded-For;
  real_ip_recursive on;
  geo $mirror {{
    default "";
    include {d}/nginx-geo.conf;
  }}
  server {{
    listen {listen};
    {tls}
    location = /v2/ {{
      add_header Docker-Distribution-Api-Version registry/2.0;
      return 200;
    }}
    location ~ "^/v2/.+/blobs/(sha256:[a-f0-9]{{64}})$" {{
      if ($mirror) {{
        return 307 $mirror/containers/images/$1;
      }}
      return 307 {UPSTREAM}$request_uri;
    }}
    location /v2/ {{
      return 307 {UPSTREAM}$request_uri;
    }}
    location / {{
      return 404;
    }}
  }}
}}
"#
    )
}

/// HAProxy: `set-src` from the last X-Forwarded-For entry when the peer
/// is the trusted 127.0.0.1, `map_ip` (longest match), `redirect`.
pub fn haproxy_config(
    dir: &Path,
    port: u16,
    table: &RangeTable,
    backends: &[Backend],
    shape: &Shape,
) -> String {
    let mut map = String::new();
    for (net, value) in prefix_values(table, backends) {
        // A prefix that leads upstream maps to "-", so that it still
        // hides a shorter prefix that leads to a backend.
        let value = if value.is_empty() { "-" } else { value };
        let _ = writeln!(map, "{net} {value}");
    }
    let map_path = dir.join("haproxy.map");
    fs::write(&map_path, map).expect("haproxy map file");
    format!(
        r#"global
  nbthread {threads}
  maxconn 8000
  pidfile {d}/haproxy-{port}.pid
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s
frontend redirects
  bind 127.0.0.1:{port}
  http-request set-src hdr_ip(x-forwarded-for,-1) if {{ src 127.0.0.1 }}
  http-request return status 200 hdr Docker-Distribution-Api-Version registry/2.0 if {{ path /v2/ }}
  acl blob path_reg ^/v2/.+/blobs/sha256:[a-f0-9]{{64}}$
  http-request set-var(txn.mirror) src,map_ip({map}) if blob
  acl mirrored var(txn.mirror) -m reg ^http
  http-request redirect code 307 location %[var(txn.mirror)]/containers/images/%[path,regsub(^.*/blobs/,)] if blob mirrored
  http-request redirect code 307 location {UPSTREAM}%[url] if {{ path_beg /v2/ }}
  http-request return status 404
"#,
        d = dir.display(),
        threads = shape.workers,
        map = map_path.display(),
    )
}

/// The redirector's config file with the same backends and rule.
pub fn redirector_config(backends: &[Backend]) -> String {
    let mut c = format!(
        "[upstream]\nregistry = \"{UPSTREAM}\"\npath = \"\"\nsignature = \"\"\ninfo_url = \"{UPSTREAM}/\"\nprivacy_url = \"{UPSTREAM}/\"\n\n"
    );
    for b in backends {
        let _ = write!(
            c,
            "[[backend]]\nname = \"{}\"\nbase_url = \"{}\"\nserves = [\"{}\"]\n\n",
            b.name, b.base_url, b.serves
        );
    }
    let _ = write!(
        c,
        "[fallback]\nnearest = {{ aws = \"{}\" }}\nunknown = \"upstream\"\n\n[client]\ntrusted_proxies = [\"127.0.0.1/32\"]\nforwarded = \"trusted\"\n",
        backends[0].name
    );
    c
}
