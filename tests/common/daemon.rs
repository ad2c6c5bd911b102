//! The tcpvsd binary as the end-to-end tests run it: one harness that starts it
//! in a scratch directory with a control socket of its own, waits until it
//! answers, keeps its output for failure messages, drives it with tcpvsadm and
//! kills it (by its pid) when dropped; and child processes run to their end
//! within a time limit.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::tcpvsadm_path;

/// How long tcpvsd may take to open its control socket or print a line (a
/// debug build on a loaded 2-core machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A directory of its own under the system's temporary directory, removed
/// when dropped.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("tcpvs-test-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to the file `name` in this directory; returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A running tcpvsd binary, killed by its pid and reaped when dropped.
pub struct Daemon {
    child: Child,
    /// `None` only after `stop` took it back.
    dir: Option<Scratch>,
    /// Its control socket, in its directory.
    pub socket: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Daemon {
    /// `tcpvsd --config FILE` with `config` as FILE, in a new directory.
    pub fn with_config(name: &str, config: &str) -> Daemon {
        Daemon::with_config_in(Scratch::new(name), config, &[])
    }

    /// `tcpvsd --config FILE ARGS...` with `config` as FILE, in `dir`.
    pub fn with_config_in(dir: Scratch, config: &str, args: &[&str]) -> Daemon {
        let file = dir.write("tcpvsd.toml", config);
        let mut all = vec![OsStr::new("--config"), file.as_os_str()];
        all.extend(args.iter().map(OsStr::new));
        Daemon::start_in(dir, &all)
    }

    /// `tcpvsd ARGS... --control-socket SOCKET` in `dir`, once its control
    /// socket accepts. Its standard output and error go to files in `dir`.
    pub fn start_in<S: AsRef<OsStr>>(dir: Scratch, args: &[S]) -> Daemon {
        let socket = dir.path().join(format!("control-{}.sock", next_run()));
        let mut daemon = Daemon::spawn(dir, args, socket);
        let socket = daemon.socket.clone();
        daemon.wait_until("its control socket accepts", || {
            UnixStream::connect(&socket).is_ok()
        });
        daemon
    }

    /// A new tcpvsd taking this one over (`tcpvsd --upgrade`, the same
    /// configuration file and control socket), once it printed that it
    /// took over. This one keeps running until it has drained.
    pub fn upgrade(&mut self) -> Daemon {
        let dir = self.dir.take().expect("a directory");
        let config = dir.path().join("tcpvsd.toml");
        let args = [
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--upgrade"),
        ];
        let mut new = Daemon::spawn(dir, &args, self.socket.clone());
        let stdout = new.stdout.clone();
        new.wait_until("it took over", || {
            std::fs::read_to_string(&stdout).is_ok_and(|out| out.contains("control socket"))
        });
        new
    }

    /// `with_config`, with at most `files` descriptors open (RLIMIT_NOFILE,
    /// set by prlimit(1) before tcpvsd starts).
    pub fn with_config_limited(name: &str, config: &str, files: usize) -> Daemon {
        let dir = Scratch::new(name);
        let file = dir.write("tcpvsd.toml", config);
        let socket = dir.path().join(format!("control-{}.sock", next_run()));
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={files}:{files}"))
            .arg(env!("CARGO_BIN_EXE_tcpvsd"));
        let args = [OsStr::new("--config"), file.as_os_str()];
        let mut daemon = Daemon::spawn_with(command, dir, &args, socket);
        let socket = daemon.socket.clone();
        daemon.wait_until("its control socket accepts", || {
            UnixStream::connect(&socket).is_ok()
        });
        daemon
    }

    fn spawn<S: AsRef<OsStr>>(dir: Scratch, args: &[S], socket: PathBuf) -> Daemon {
        let command = Command::new(env!("CARGO_BIN_EXE_tcpvsd"));
        Daemon::spawn_with(command, dir, args, socket)
    }

    fn spawn_with<S: AsRef<OsStr>>(
        mut command: Command,
        dir: Scratch,
        args: &[S],
        socket: PathBuf,
    ) -> Daemon {
        let n = next_run();
        let stdout = dir.path().join(format!("tcpvsd-{n}.out"));
        let stderr = dir.path().join(format!("tcpvsd-{n}.err"));
        let child = command
            .args(args)
            .arg("--control-socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start tcpvsd");
        Daemon {
            child,
            dir: Some(dir),
            socket,
            stdout,
            stderr,
        }
    }

    /// Polls `ready` until it holds; panics with tcpvsd's output if tcpvsd
    /// exits first or `START_TIMEOUT` passes.
    fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let started = Instant::now();
        loop {
            if ready() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "tcpvsd exited ({status}) before {what}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "tcpvsd: not {what} after {START_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first line of standard output containing `needle`, once printed.
    pub fn stdout_line(&mut self, needle: &str) -> String {
        let mut found = None;
        let path = self.stdout.clone();
        self.wait_until(&format!("printed {needle:?}"), || {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            found = text
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_string);
            found.is_some()
        });
        found.unwrap()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends it a signal by name (`HUP`, `TERM`...), with kill(1).
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{name} {}", self.pid());
    }

    /// Waits for it to exit, at most `limit`; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The configuration file `with_config` wrote.
    pub fn config_path(&self) -> PathBuf {
        self.dir().join("tcpvsd.toml")
    }

    /// What tcpvsd printed so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// What tcpvsd logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Its directory (configuration, socket, output).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills tcpvsd (by its pid), reaps it and hands its directory back.
    pub fn stop(mut self) -> Scratch {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir.take().unwrap()
    }

    /// `tcpvsadm --socket SOCKET` with `line` split at whitespace.
    pub fn adm(&self, line: &str) -> Output {
        self.adm_with(line, None)
    }

    /// `adm`, with `stdin` as its standard input.
    pub fn adm_with(&self, line: &str, stdin: Option<&str>) -> Output {
        let mut command = Command::new(tcpvsadm_path());
        command
            .arg("--socket")
            .arg(&self.socket)
            .args(line.split_whitespace());
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        wait_within(child, START_TIMEOUT)
            .into_output()
            .unwrap_or_else(|out| panic!("tcpvsadm {line}: still running: {out:?}"))
    }

    /// One JSON request line on the control socket (for verbs and fields
    /// tcpvsadm does not send); its reply line.
    pub fn control(&self, request: &str) -> String {
        let mut socket = UnixStream::connect(&self.socket).expect("the control socket");
        socket.write_all(format!("{request}\n").as_bytes()).unwrap();
        let mut reply = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(socket), &mut reply).unwrap();
        reply
    }

    /// Runs a tcpvsadm line that must succeed; returns its standard output.
    pub fn ok(&self, line: &str) -> String {
        let output = self.adm(line);
        assert!(
            output.status.success(),
            "tcpvsadm {line}: {}\ntcpvsd stderr:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.stderr()
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// The address service `ident` is bound to, from `-L -n -i ident`: the
    /// `(bound)` beside a port-0 listen address, or the listen address.
    pub fn bound(&self, ident: &str) -> SocketAddr {
        let listing = self.ok(&format!("-L -n -i {ident}"));
        let line = listing
            .lines()
            .find(|l| l.split_whitespace().next() == Some(ident))
            .unwrap_or_else(|| panic!("{ident} not listed:\n{listing}"));
        let addr = line
            .split(['(', ')'])
            .nth(1)
            .or_else(|| line.split_whitespace().nth(1))
            .unwrap();
        addr.parse()
            .unwrap_or_else(|_| panic!("no address in {line:?}"))
    }
}

/// `tcpvsd --config CONFIG --control-socket SOCKET` with no standard input,
/// for a test that runs it with standard output and error of its own.
pub fn tcpvsd_command(config: &Path, socket: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tcpvsd"));
    command
        .arg("--config")
        .arg(config)
        .arg("--control-socket")
        .arg(socket)
        .stdin(Stdio::null());
    command
}

/// A number of its own for each run, so that a restart or an upgrade in the
/// same directory keeps each run's output apart.
fn next_run() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a child run with `wait_within` ended.
#[derive(Debug)]
pub struct Finished {
    /// `None`: still running at the limit, so it was killed.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl Finished {
    /// Its output, or itself when it had to be killed.
    pub fn into_output(self) -> Result<Output, Finished> {
        match self.status {
            Some(status) => Ok(Output {
                status,
                stdout: self.stdout,
                stderr: self.stderr,
            }),
            None => Err(self),
        }
    }
}

/// Waits for `child` up to `limit`, killing it (by its pid) past that; its
/// piped output is read meanwhile, so a full pipe cannot stall it.
pub fn wait_within(mut child: Child, limit: Duration) -> Finished {
    let started = Instant::now();
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut out);
            }
            out
        })
    };
    let stdout = collect(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = collect(child.stderr.take().map(|p| Box::new(p) as _));
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    Finished {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        elapsed,
    }
}

/// Runs `command` (no input, output piped) to its end; fails after `limit`.
pub fn run_within(mut command: Command, limit: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    wait_within(child, limit).into_output().unwrap_or_else(|f| {
        panic!(
            "{command:?} still running after {limit:?}; stderr:\n{}",
            String::from_utf8_lossy(&f.stderr)
        )
    })
}

/// `tcpvsd ARGS...` run to its end (it must exit within `START_TIMEOUT`),
/// for the runs that stop at an error or at `--check`.
pub fn tcpvsd_exit<S: AsRef<OsStr>>(args: &[S]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tcpvsd"));
    command.args(args);
    run_within(command, START_TIMEOUT)
}
