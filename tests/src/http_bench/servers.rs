//! Starting and stopping the servers `bench http` compares: a command
//! line run inside the bench's namespace, maybe pinned to a CPU, maybe
//! under a counting tool (strace, callgrind), and the guard that kills
//! the whole process tree.

use std::{
    ffi::{OsStr, OsString},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::load::process_tree;
use crate::{netns::Netns, pulls::servers::listening_within};

/// The CPU servers are pinned to; the load generator gets the next one.
pub const SERVER_CPU: usize = 0;
pub const CLIENT_CPU: usize = 1;

/// How long a server may take to listen: long enough for one that loads
/// the whole table under valgrind.
const START_LIMIT: Duration = Duration::from_secs(120);
/// How long a stopped server (and the tool around it) may take to exit.
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// A server's command line and environment.
#[derive(Clone, Debug)]
pub struct Launch {
    pub argv: Vec<OsString>,
    pub env: Vec<(String, String)>,
}

impl Launch {
    pub fn new(program: impl AsRef<OsStr>) -> Launch {
        Launch {
            argv: vec![program.as_ref().to_owned()],
            env: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Launch {
        self.argv.push(a.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Launch {
        self.argv
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Launch {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    /// The command in `ns`: pinned to `cpu` when given, behind `wrapper`
    /// (a tool and its arguments) when not empty.
    pub fn command(&self, ns: &Netns, cpu: Option<usize>, wrapper: &[OsString]) -> Command {
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(cpu) = cpu {
            argv.extend(["taskset".into(), "-c".into(), cpu.to_string().into()]);
        }
        argv.extend(wrapper.iter().cloned());
        argv.extend(self.argv.iter().cloned());
        let mut cmd = ns.command(&argv[0]);
        cmd.args(&argv[1..]);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }
}

/// A running server; dropping it kills its whole tree (nginx's workers
/// outlive a killed master), children first.
pub struct Server {
    pub name: String,
    pub socket: SocketAddr,
    child: Option<Child>,
}

impl Server {
    /// Starts `cmd` (stderr to `log`) and waits until `socket` accepts.
    pub fn start(
        ns: &Netns,
        name: &str,
        socket: SocketAddr,
        mut cmd: Command,
        log: &Path,
    ) -> Server {
        let log_file = std::fs::File::create(log).expect("server log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let mut s = Server {
            name: name.to_owned(),
            socket,
            child: Some(child),
        };
        if !listening_within(ns, socket, START_LIMIT) || s.exited() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{name} did not start listening on {socket}: {log}");
        }
        s
    }

    /// The pid of the started command (the server itself, or the tool
    /// that runs it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Sends SIGTERM to `target` (the server, inside a tool's tree) and
    /// waits for the started command to exit. Under valgrind a signal
    /// that lands outside a system call waits for the next one, and a
    /// server asleep in epoll_wait makes none: a connection now and then
    /// wakes it.
    pub fn stop(mut self, ns: &Netns, target: u32) {
        // SAFETY: kill on a process this server started.
        unsafe { libc::kill(target as i32, libc::SIGTERM) };
        let mut child = self.child.take().expect("a started server");
        let deadline = Instant::now() + STOP_LIMIT;
        let mut poke = Instant::now() + Duration::from_secs(1);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() >= poke {
                let socket = self.socket;
                ns.spawn(move || TcpStream::connect_timeout(&socket, Duration::from_millis(200)))
                    .join()
                    .ok();
                poke = Instant::now() + Duration::from_secs(1);
            }
            if Instant::now() >= deadline {
                let tree = process_tree(child.id());
                let _ = child.kill();
                panic!(
                    "{} did not exit within {STOP_LIMIT:?} of SIGTERM to {target} (tree {tree:?})",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        for pid in process_tree(child.id()).into_iter().rev() {
            // SAFETY: kill on processes this server started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let _ = child.wait();
    }
}

/// Pins the calling thread to `cpu` (the load generator's side).
pub fn pin_thread(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and
    // sched_setaffinity get valid pointers to it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
