//! `redirector serve` in the test's own process: the same flags as the
//! binary, parsed by the same CLI types, the environment given here
//! rather than read from the process (tests run in parallel), and
//! `Server` started on a runtime of its own. For tests about the server,
//! not the binary; those use `steer_tests::loopback::Redirector`.
#![allow(dead_code)]

use std::{net::SocketAddr, path::Path, sync::mpsc, thread::JoinHandle};

use clap::Parser;
use redirector::{
    cli::{Cli, Command},
    serve::Server,
};
use steer_tests::loopback::{SERVE_ON_ANY_PORT, UPSTREAM, loopback_classes};

pub struct InProcess {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    pub dir: tempfile::TempDir,
}

impl InProcess {
    /// Serves with `bucket` as the default AWS base URL, the loopback
    /// classes and `flags` over them; returns once both listeners are bound.
    pub fn start(bucket: &str, flags: &[&str]) -> InProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let custom = loopback_classes(dir.path());
        let mut argv: Vec<String> = ["redirector"]
            .into_iter()
            .chain(SERVE_ON_ANY_PORT)
            .map(str::to_owned)
            .collect();
        argv.extend(["--snapshot", "/nonexistent/x", "--custom"].map(str::to_owned));
        argv.push(custom.display().to_string());
        argv.extend(flags.iter().map(|f| (*f).to_owned()));
        // Stopping waits for the drain; tests need not wait long.
        if !flags.contains(&"--grace") {
            argv.extend(["--grace", "1s"].map(str::to_owned));
        }
        let Command::Serve(args) = Cli::try_parse_from(&argv).expect("flags").command else {
            unreachable!("argv starts with serve");
        };
        let bucket = bucket.to_owned();
        let env = move |k: &str| match k {
            "UPSTREAM_REGISTRY_ENDPOINT" => Some(UPSTREAM.to_owned()),
            "UPSTREAM_REGISTRY_PATH" => Some("mirror".to_owned()),
            "DEFAULT_AWS_BASE_URL" => Some(bucket.clone()),
            _ => None,
        };
        let config = args.config_with_env(env).expect("config");
        let (bound_tx, bound) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let server = Server::bind(config).await.expect("bind");
                bound_tx
                    .send((server.local_addr(), server.admin_addr()))
                    .unwrap();
                server
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("run");
            });
        });
        let (addr, admin) = bound
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the server bound its listeners");
        InProcess {
            addr,
            admin,
            stop: Some(stop),
            thread: Some(thread),
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
