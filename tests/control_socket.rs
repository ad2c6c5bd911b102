//! The control socket's hygiene against the real tcpvsd: it replaces only a
//! stale socket at its path and refuses to start over anything else, lets a
//! silent client go within seconds, and logs every edit with what it changed
//! and who asked.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{tcpvsd_command, tcpvsd_exit, Daemon, Scratch, START_TIMEOUT};
use common::tcpvsadm_path;

/// A configuration that starts with no service (tcpvsadm adds them).
const EMPTY: &str = "log_level = \"info\"\nallow_empty = true\n";

/// How long a new client may take to send its first request (the daemon's
/// `FIRST_REQUEST`), and the slack a loaded test machine gets beyond it.
const FIRST_REQUEST: Duration = Duration::from_secs(3);
const SLACK: Duration = Duration::from_secs(3);

/// Runs tcpvsd with its control socket at `socket`, to its end: it must
/// refuse to start. Returns its standard error.
fn refused_start(dir: &Scratch, socket: &Path) -> String {
    let config = dir.write("tcpvsd.toml", EMPTY);
    let output = tcpvsd_exit(&[
        "--config".as_ref(),
        config.as_os_str(),
        "--control-socket".as_ref(),
        socket.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("control socket {}:", socket.display())),
        "the message names the path: {stderr}"
    );
    assert!(stderr.contains("--control-socket PATH"), "{stderr}");
    stderr
}

#[test]
fn anything_but_a_stale_socket_at_the_path_is_left_alone() {
    let dir = Scratch::new("occupied");
    // A regular file: still there, byte for byte.
    let file = dir.write("file.sock", "precious\n\0data");
    let stderr = refused_start(&dir, &file);
    assert!(
        stderr.contains("a regular file (14 bytes) is there"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"precious\n\0data");
    // A directory, with what it holds.
    let directory = dir.path().join("dir.sock");
    std::fs::create_dir(&directory).unwrap();
    std::fs::write(directory.join("inside"), "kept").unwrap();
    let stderr = refused_start(&dir, &directory);
    assert!(stderr.contains("a directory is there"), "{stderr}");
    assert_eq!(std::fs::read(directory.join("inside")).unwrap(), b"kept");
    // A symbolic link is not followed, even to a stale socket.
    let stale = dir.path().join("stale-target.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(&stale, &link).unwrap();
    let stderr = refused_start(&dir, &link);
    assert!(stderr.contains("a symbolic link (to "), "{stderr}");
    assert_eq!(std::fs::read_link(&link).unwrap(), stale);
    assert!(
        std::fs::symlink_metadata(&stale).is_ok(),
        "the target stays"
    );
    // A socket someone listens on: refused, and still served.
    let live = dir.path().join("live.sock");
    let listener = UnixListener::bind(&live).unwrap();
    let stderr = refused_start(&dir, &live);
    assert!(stderr.contains("is listening there"), "{stderr}");
    let _still_served = UnixStream::connect(&live).unwrap();
    listener.accept().unwrap();
}

/// tcpvsd started by hand (for a socket path of the test's choosing),
/// killed by its pid when dropped.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_stale_socket_is_replaced_and_served() {
    let dir = Scratch::new("stale");
    let socket = dir.path().join("control.sock");
    // A socket file nobody listens on, as a killed daemon leaves it.
    drop(UnixListener::bind(&socket).unwrap());
    assert!(UnixStream::connect(&socket).is_err());
    let config = dir.write("tcpvsd.toml", EMPTY);
    let stderr = dir.path().join("tcpvsd.err");
    let mut daemon = Spawned(
        tcpvsd_command(&config, &socket)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let listing = loop {
        let output = Command::new(tcpvsadm_path())
            .arg("--socket")
            .arg(&socket)
            .arg("-L")
            .output()
            .unwrap();
        if output.status.success() {
            break String::from_utf8(output.stdout).unwrap();
        }
        let log = std::fs::read_to_string(&stderr).unwrap_or_default();
        assert!(
            matches!(daemon.0.try_wait(), Ok(None)),
            "tcpvsd exited: {log}"
        );
        assert!(started.elapsed() < START_TIMEOUT, "not serving: {log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(listing.contains("tcpvs"), "{listing}");
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(log.contains("replaced a stale control socket"), "{log}");
}

#[test]
fn silent_clients_do_not_lock_tcpvsadm_out() {
    let daemon = Daemon::with_config("silent", EMPTY);
    // More silent clients than the daemon serves at once (32), until one
    // tcpvsadm is turned away. One round may not do: the connection that
    // found the daemon ready holds a place until its thread reads its EOF,
    // which can come after the crowd took the other places; tcpvsadm then
    // gets the place it frees.
    let mut silent: Vec<UnixStream> = Vec::new();
    let crowd_fills = |silent: &mut Vec<UnixStream>| {
        for _ in 0..3 {
            silent.extend((0..40).map(|_| UnixStream::connect(&daemon.socket).unwrap()));
            if !daemon.adm("-L").status.success() {
                return true;
            }
        }
        false
    };
    let crowded = Instant::now();
    assert!(
        crowd_fills(&mut silent),
        "120 silent clients never filled the places"
    );
    loop {
        let output = daemon.adm("-L");
        if output.status.success() {
            break;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("too many control clients"), "{stderr}");
        assert!(
            crowded.elapsed() < FIRST_REQUEST + SLACK,
            "tcpvsadm still turned away after {:?}",
            crowded.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let waited = crowded.elapsed();
    // A silent client is told why it is let go, then closed.
    let mut reader = BufReader::new(&silent[0]);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("no request line within 3s"), "{line}");
    line.clear();
    assert_eq!(reader.read_line(&mut line).unwrap(), 0, "closed: {line}");
    let crowd = silent.len();
    eprintln!("tcpvsadm -L served {waited:?} after {crowd} silent clients connected");

    // A client that sends its request in pieces, within the time allowed,
    // is served once a place is free. Connected only now: one connected
    // while tcpvsadm waited could have been given a place then, and its time
    // for a first request would have run out before its first byte.
    let started = Instant::now();
    let mut trickling = UnixStream::connect(&daemon.socket).unwrap();
    let mut trickling = loop {
        trickling
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = trickling.write_all(b"{\"id\": 5, \"verb\"");
        std::thread::sleep(Duration::from_millis(1000));
        let _ = trickling.write_all(b": \"list\"}\n");
        let mut answer = String::new();
        BufReader::new(&trickling).read_line(&mut answer).unwrap();
        if answer.contains("\"ok\":true") {
            break trickling;
        }
        // Turned away while the crowd still held the places: again.
        assert!(answer.contains("too many control clients"), "{answer}");
        assert!(started.elapsed() < FIRST_REQUEST + SLACK, "{answer}");
        trickling = UnixStream::connect(&daemon.socket).unwrap();
    };
    // After an answer, the same client has longer for its next request.
    std::thread::sleep(FIRST_REQUEST + Duration::from_millis(500));
    trickling
        .write_all(b"{\"id\": 6, \"verb\": \"list\"}\n")
        .unwrap();
    let mut answer = String::new();
    BufReader::new(&trickling).read_line(&mut answer).unwrap();
    assert!(answer.contains("\"id\":6,\"ok\":true"), "{answer}");
}

#[test]
fn edits_and_refused_edits_are_logged_with_the_peer() {
    let daemon = Daemon::with_config("edit-log", EMPTY);
    daemon.ok("-A -i web -l 127.0.0.1:0 -s rr");
    daemon.ok("-a -i web -r 127.0.0.1:9 -w 2");
    let refused = daemon.adm("-a -i web -r 127.0.0.1:9");
    assert_eq!(refused.status.code(), Some(1));
    daemon.ok("-L");
    let batch: String = (1..=600)
        .map(|n| format!("-a -i web -r 10.0.{}.{}:80\n", n / 250, n % 250 + 1))
        .collect();
    let restored = daemon.adm_with("-R", Some(&batch));
    assert!(restored.status.success(), "{restored:?}");

    let uid = format!("uid={}", rustix::process::geteuid().as_raw());
    let expected = [
        (
            "INFO",
            "control: add-service web listen=127.0.0.1:0 scheduler=rr",
        ),
        ("INFO", "control: add-server web 127.0.0.1:9 weight=2"),
        (
            "WARN",
            "control: refused add-server web 127.0.0.1:9 reason=\"server 127.0.0.1:9 \
             is already in service `web`\"",
        ),
        (
            "INFO",
            "control: batch of 600: add-server web 10.0.0.2:80; add-server web 10.0.0.3:80; \
             add-server web 10.0.0.4:80; and 597 more",
        ),
    ];
    let started = Instant::now();
    let log = loop {
        // Log lines may be written off the thread that logs them.
        let log = daemon.stderr();
        let logged = |(level, text): &(&str, &str)| {
            log.lines()
                .any(|l| l.contains(level) && l.contains(text) && l.contains(&uid))
        };
        if expected.iter().all(logged) {
            break log;
        }
        assert!(
            started.elapsed() < START_TIMEOUT,
            "missing {:?} in:\n{log}",
            expected.iter().filter(|e| !logged(e)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(log.contains(" pid="), "{log}");
    assert!(
        !log.contains("control: list"),
        "a listing is not logged at info:\n{log}"
    );
}
