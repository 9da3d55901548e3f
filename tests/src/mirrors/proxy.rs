//! nginx in front of the upstream registry, pushing back as real
//! registries do: answering bursts with 429 and `Retry-After`, or asking
//! for basic credentials, or for a bearer token from a token endpoint it
//! serves itself (the challenge and the token exchange of the
//! distribution spec's token auth).

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use super::HOST;
use crate::{
    netns::Netns,
    process::Running,
    pulls::servers::{Access, start_nginx, wait_listening},
};

/// What the proxy asks of a client before passing a request on.
pub enum Gate {
    /// More than 5 requests a second (burst 2) get 429 and
    /// `Retry-After: 1`.
    RateLimit,
    /// `Authorization: Basic` with this user and password, else 401 with
    /// a `Basic` challenge.
    Basic { user: String, password: String },
    /// `Authorization: Bearer <token>`, else 401 with a `Bearer`
    /// challenge whose realm (`/token` on the proxy) hands out the token.
    Bearer { token: String },
}

pub struct Proxy {
    _process: Running,
    root: PathBuf,
    pub url: String,
}

impl Proxy {
    pub fn start(ns: &Netns, dir: &Path, port: u16, upstream: &str, gate: Gate) -> Proxy {
        let root = dir.join(format!("proxy-{port}"));
        fs::create_dir_all(root.join("logs")).expect("proxy directory");
        let upstream = upstream.trim_start_matches("http://");
        let url = format!("http://{HOST}:{port}");
        let pass = format!(
            "proxy_pass http://{upstream};\n      proxy_set_header Host $http_host;\n      proxy_set_header Authorization \"\";"
        );
        let (http_extra, locations) = match &gate {
            Gate::RateLimit => (
                "limit_req_zone $binary_remote_addr zone=upstream:1m rate=5r/s;".to_owned(),
                format!(
                    "location / {{\n      limit_req zone=upstream burst=2 nodelay;\n      limit_req_status 429;\n      error_page 429 @busy;\n      {pass}\n    }}\n    location @busy {{\n      add_header Retry-After 1 always;\n      return 429;\n    }}"
                ),
            ),
            Gate::Basic { user, password } => {
                fs::write(
                    root.join("htpasswd"),
                    format!("{user}:{{PLAIN}}{password}\n"),
                )
                .expect("htpasswd");
                (
                    String::new(),
                    format!(
                        "location / {{\n      auth_basic \"registry\";\n      auth_basic_user_file {}/htpasswd;\n      {pass}\n    }}",
                        root.display()
                    ),
                )
            }
            Gate::Bearer { token } => (
                format!(
                    "map $http_authorization $steer_denied {{ \"Bearer {token}\" 0; default 1; }}"
                ),
                format!(
                    "location = /token {{\n      default_type application/json;\n      return 200 '{{\"token\": \"{token}\", \"expires_in\": 300}}';\n    }}\n    location / {{\n      if ($steer_denied) {{ return 401; }}\n      {pass}\n    }}\n    error_page 401 @challenge;\n    location @challenge {{\n      add_header WWW-Authenticate 'Bearer realm=\"{url}/token\",service=\"steer-test\",scope=\"repository:steer/multi:pull\"' always;\n      return 401;\n    }}"
                ),
            ),
        };
        fs::write(
            root.join("nginx.conf"),
            format!(
                "user root;\nmaster_process off;\npid {root}/nginx.pid;\nerror_log {root}/logs/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log {root}/logs/access.log combined;\n  client_body_temp_path {root}/body;\n  proxy_temp_path {root}/proxy;\n  fastcgi_temp_path {root}/fastcgi;\n  uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n  {http_extra}\n  server {{\n    listen {HOST}:{port};\n    {locations}\n  }}\n}}\n",
                root = root.display()
            ),
        )
        .expect("proxy config");
        let process = start_nginx(ns, &root);
        wait_listening(
            ns,
            SocketAddr::new(HOST.parse().unwrap(), port),
            "the proxy",
        );
        Proxy {
            _process: process,
            root,
            url,
        }
    }

    /// Every request it logged.
    pub fn accesses(&self) -> Vec<Access> {
        fs::read_to_string(self.root.join("logs/access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(Access::parse)
            .collect()
    }

    /// How many requests it answered with `status`.
    pub fn answered(&self, status: u16) -> usize {
        self.accesses()
            .iter()
            .filter(|a| a.status == status)
            .count()
    }
}
