//! The binary, run: it prints where it listens, answers each connection with
//! one agent-check line, and obeys its drain and maintenance files.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TIMEOUT: Duration = Duration::from_secs(5);

/// The agent under test, killed (by its pid) when the test ends, however it ends.
struct Agent {
    child: Child,
    address: SocketAddr,
}

impl Agent {
    fn start(extra: &[&str]) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tcpvs-agent"))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tcpvs-agent starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut first = String::new();
        // Ends at the first line or at EOF if the agent dies.
        let read = BufReader::new(stdout).read_line(&mut first);
        let mut agent = Agent {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        read.expect("the agent's stdout is readable");
        agent.address = first
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {first:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("first line {first:?}: {e}"));
        agent
    }

    /// One connection: everything the agent sent before closing.
    fn ask(&self) -> String {
        let mut stream = TcpStream::connect_timeout(&self.address, TIMEOUT).expect("connects");
        stream
            .set_read_timeout(Some(TIMEOUT))
            .expect("read timeout");
        let mut line = String::new();
        stream
            .read_to_string(&mut line)
            .expect("reads to the close");
        line
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory for the switch files, removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("tcpvs-agent-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The share in `ready up N%\n`, if the line is exactly that.
fn ready_percent(line: &str) -> Option<u32> {
    let digits = line.strip_prefix("ready up ")?.strip_suffix("%\n")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[test]
fn serves_the_free_share_then_obeys_the_switch_files() {
    let scratch = Scratch::new("switches");
    let drain = scratch.path("drain");
    let maint = scratch.path("maint");
    let agent = Agent::start(&[
        "--floor",
        "20",
        "--drain-file",
        drain.to_str().expect("UTF-8 path"),
        "--maint-file",
        maint.to_str().expect("UTF-8 path"),
    ]);

    let line = agent.ask();
    let percent = ready_percent(&line).unwrap_or_else(|| panic!("ready line {line:?}"));
    assert!((20..=100).contains(&percent), "{line:?}");

    std::fs::write(&drain, "").expect("drain file");
    assert_eq!(agent.ask(), "drain\n");
    std::fs::write(&maint, "").expect("maint file");
    assert_eq!(agent.ask(), "maint\n");
    std::fs::remove_file(&drain).expect("drain file removed");
    std::fs::remove_file(&maint).expect("maint file removed");
    assert!(ready_percent(&agent.ask()).is_some());
}

#[test]
fn a_floor_of_100_always_sends_the_full_weight() {
    let agent = Agent::start(&["--floor", "100"]);
    for _ in 0..3 {
        assert_eq!(agent.ask(), "ready up 100%\n");
    }
}

#[test]
fn help_and_mistakes() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tcpvs-agent"))
            .args(args)
            .output()
            .expect("tcpvs-agent runs")
    };
    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in ["--listen", "--floor", "--drain-file", "--maint-file"] {
        assert!(text.contains(flag), "--help names {flag}");
    }
    let wrong = run(&["--floor", "200"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("--floor"));
}
