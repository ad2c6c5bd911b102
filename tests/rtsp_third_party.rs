//! RTSP through the real tcpvsd binary with real software on both sides: the
//! GStreamer RTSP server (tests/support/rtsp_origin.py, through python3-gi)
//! as origins, ffmpeg and ffprobe as clients, tcpvsadm for the session count.
//!
//! Origin A serves only /live/cam and origin B only /vod/film, so a request
//! the proxy sends to the wrong one fails with 404.
//!
//! The tools come from .ci/run (ffmpeg, python3-gi, gir1.2-gst-rtsp-server-1.0,
//! gstreamer1.0-plugins-base/-good). Without them a test fails when `CI` is set
//! and shows as ignored, with the reason, otherwise (build/third_party_tools.rs).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::daemon::{run_within, wait_within, Daemon};

/// The python with gi: the `python3` on PATH may be another one (pyenv).
const PYTHON: &str = "/usr/bin/python3";

/// Whether ffmpeg, ffprobe and the GStreamer RTSP server are there; fails
/// when `CI` is set and one is missing.
fn tools_ready() -> bool {
    let mut missing = Vec::new();
    for tool in ["ffmpeg", "ffprobe"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            missing.push(tool.to_string());
        }
    }
    let check = "import gi\n\
                 gi.require_version('Gst', '1.0')\n\
                 gi.require_version('GstRtspServer', '1.0')\n\
                 from gi.repository import Gst, GstRtspServer\n\
                 Gst.init(None)\n\
                 for name in ('videotestsrc', 'jpegenc', 'rtpjpegpay'):\n    \
                     assert Gst.ElementFactory.find(name), name\n";
    let gst = Command::new(PYTHON)
        .args(["-c", check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !gst {
        missing.push(format!(
            "{PYTHON} with gi, GstRtspServer and the GStreamer elements \
             videotestsrc, jpegenc, rtpjpegpay"
        ));
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "required in CI (installed by .ci/run) but missing: {}",
        missing.join(", ")
    );
    eprintln!(
        "skipping: missing {} (set CI=1 to make this a failure)",
        missing.join(", ")
    );
    false
}

/// A child process of this test, killed (by its pid) and reaped when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A GStreamer RTSP origin serving `mount` on 127.0.0.1 (a free port).
struct Origin {
    proc: Proc,
    addr: SocketAddr,
}

impl Origin {
    fn start(mount: &str) -> Origin {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/rtsp_origin.py");
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .args(["0", mount])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the GStreamer RTSP origin");
        let stdout = child.stdout.take().unwrap();
        let proc = Proc(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut reader = BufReader::new(stdout);
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep the pipe open as long as the origin runs.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the origin did not print `ready PORT` within 20 s");
        let port: u16 = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("origin for {mount} said {line:?}"));
        Origin {
            proc,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

/// A tcpvsd binary with one RTSP service `media`: `^/live/` to A, `^/vod/` to B.
struct Media {
    daemon: Daemon,
    addr: SocketAddr,
}

impl Media {
    fn start(name: &str, a: SocketAddr, b: SocketAddr) -> Media {
        let daemon = Daemon::with_config(
            &format!("rtsp-{name}"),
            &format!(
                "log_level = \"warn\"\n\
                 [[service]]\n\
                 ident = \"media\"\n\
                 listen = \"127.0.0.1:0\"\n\
                 protocol = \"rtsp\"\n\
                 [[service.server]]\n\
                 address = \"{a}\"\n\
                 [[service.server]]\n\
                 address = \"{b}\"\n\
                 [[service.rule]]\n\
                 pattern = \"^/live/\"\n\
                 servers = [\"{a}\"]\n\
                 [[service.rule]]\n\
                 pattern = \"^/vod/\"\n\
                 servers = [\"{b}\"]\n"
            ),
        );
        let addr = daemon.bound("media");
        Media { daemon, addr }
    }

    /// `tcpvsadm --socket S -L -i media`.
    fn listing(&self) -> String {
        self.daemon.ok("-L -i media")
    }

    /// The `  sessions N` line under the service.
    fn sessions(&self) -> u64 {
        let listing = self.listing();
        listing
            .lines()
            .find_map(|l| l.trim().strip_prefix("sessions "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `sessions N` line:\n{listing}"))
    }

    /// Polls until the session count is `n`; false after `within`.
    fn wait_sessions(&self, n: u64, within: Duration) -> bool {
        let started = Instant::now();
        loop {
            if self.sessions() == n {
                return true;
            }
            if started.elapsed() > within {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        self.daemon.stderr()
    }

    fn url(&self, path: &str) -> String {
        format!("rtsp://{}{path}", self.addr)
    }
}

fn ffprobe(url: &str) -> Output {
    let mut command = Command::new("ffprobe");
    command.args([
        "-v",
        "error",
        "-rtsp_transport",
        "tcp",
        "-show_streams",
        url,
    ]);
    run_within(command, Duration::from_secs(20))
}

fn assert_mjpeg(url: &str, output: &Output, daemon: &Media) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("codec_name=mjpeg"),
        "ffprobe {url}: {}\nstdout:\n{stdout}\nstderr:\n{}\ntcpvsd log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        daemon.log()
    );
}

/// `ffmpeg -v error [transport args] -i URL -t SECONDS -f null -`.
fn ffmpeg(transport: &[&str], url: &str, seconds: u32) -> Command {
    let mut command = Command::new("ffmpeg");
    command
        .args(["-nostdin", "-v", "error"])
        .args(transport)
        .args(["-i", url, "-t", &seconds.to_string(), "-f", "null", "-"]);
    command
}

#[test]
#[cfg_attr(
    any(missing_ffmpeg, missing_gst_rtsp_server),
    ignore = "needs ffmpeg, ffprobe and the GStreamer RTSP server (apt install ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good); .ci/run installs them"
)]
fn ffprobe_and_ffmpeg_reach_each_mount_on_its_own_origin() {
    if !tools_ready() {
        return;
    }
    let a = Origin::start("/live/cam");
    let b = Origin::start("/vod/film");
    let daemon = Media::start("probe", a.addr, b.addr);

    for path in ["/live/cam", "/vod/film"] {
        let url = daemon.url(path);
        assert_mjpeg(&url, &ffprobe(&url), &daemon);
    }
    // The other origin does not have it: routing by path is what made it work.
    let wrong = daemon.url("/live/film");
    let output = ffprobe(&wrong);
    assert!(!output.status.success(), "{wrong} found");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Three seconds of decoding from each, at once.
    let runs: Vec<_> = ["/live/cam", "/vod/film"]
        .into_iter()
        .map(|path| {
            let url = daemon.url(path);
            let child = ffmpeg(&["-rtsp_transport", "tcp"], &url, 3)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (
                url,
                std::thread::spawn(move || wait_within(child, Duration::from_secs(25))),
            )
        })
        .collect();
    for (url, run) in runs {
        let common::daemon::Finished {
            status,
            stderr,
            elapsed,
            ..
        } = run.join().unwrap();
        assert!(
            status.is_some_and(|s| s.success()),
            "ffmpeg {url}: {status:?} after {elapsed:?}\n{}\ntcpvsd log:\n{}",
            String::from_utf8_lossy(&stderr),
            daemon.log()
        );
        assert!(
            elapsed >= Duration::from_millis(2500),
            "{url}: only {elapsed:?}"
        );
    }
    assert!(
        daemon.wait_sessions(0, Duration::from_secs(5)),
        "{}",
        daemon.listing()
    );
}

#[test]
#[cfg_attr(
    any(missing_ffmpeg, missing_gst_rtsp_server),
    ignore = "needs ffmpeg, ffprobe and the GStreamer RTSP server (apt install ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good); .ci/run installs them"
)]
fn ffmpeg_offering_udp_first_falls_back_to_tcp_after_461() {
    if !tools_ready() {
        return;
    }
    let a = Origin::start("/live/cam");
    let b = Origin::start("/vod/film");
    let daemon = Media::start("fallback", a.addr, b.addr);
    let url = daemon.url("/live/cam");
    // Default transports: UDP is offered first, the proxy answers 461, and
    // ffmpeg 5.1 retries the SETUP with interleaved TCP on the same
    // connection (its debug log shows "method SETUP failed: 461 Unsupported
    // transport", then the stream decodes).
    let mut command = Command::new("ffmpeg");
    command.args([
        "-nostdin", "-v", "debug", "-i", &url, "-t", "2", "-f", "null", "-",
    ]);
    let output = run_within(command, Duration::from_secs(25));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: String = stderr.lines().rev().take(30).collect::<Vec<_>>().join("\n");
    assert!(
        output.status.success(),
        "ffmpeg without -rtsp_transport: {}\n{tail}\ntcpvsd log:\n{}",
        output.status,
        daemon.log()
    );
    assert!(
        stderr.contains("SETUP failed: 461"),
        "ffmpeg did not see the 461:\n{tail}"
    );
    let decoded: u64 = stderr
        .lines()
        .find_map(|l| l.strip_suffix(" frames successfully decoded, 0 decoding errors"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no clean decode summary:\n{tail}"));
    assert!(
        decoded >= 10,
        "only {decoded} frames decoded in 2 s at 10 fps"
    );
    assert!(
        daemon.wait_sessions(0, Duration::from_secs(5)),
        "{}",
        daemon.listing()
    );
}

#[test]
#[cfg_attr(
    any(missing_ffmpeg, missing_gst_rtsp_server),
    ignore = "needs ffmpeg, ffprobe and the GStreamer RTSP server (apt install ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good); .ci/run installs them"
)]
fn killing_the_origin_mid_stream_ends_the_client_and_its_session() {
    if !tools_ready() {
        return;
    }
    let mut a = Origin::start("/live/cam");
    let b = Origin::start("/vod/film");
    let mut daemon = Media::start("kill", a.addr, b.addr);

    // `-progress pipe:1`: ffmpeg reports `frame=N` on its standard output.
    let mut viewer = ffmpeg(&["-rtsp_transport", "tcp"], &daemon.url("/live/cam"), 30)
        .args(["-progress", "pipe:1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let viewer_pid = viewer.id();
    let frames = frame_counts(viewer.stdout.take().unwrap());
    assert!(
        daemon.wait_sessions(1, Duration::from_secs(15)),
        "no session while ffmpeg plays (pid {viewer_pid}):\n{}",
        daemon.listing()
    );
    // Once frames flow through the proxy, kill origin A (our child, by its pid).
    let started = Instant::now();
    loop {
        match frames.recv_timeout(Duration::from_secs(15).saturating_sub(started.elapsed())) {
            Ok(n) if n >= 5 => break,
            Ok(_) => {}
            Err(e) => panic!(
                "ffmpeg decoded fewer than 5 frames in 15 s ({e}); tcpvsd log:\n{}",
                daemon.log()
            ),
        }
    }
    let _ = a.proc.0.kill();
    let _ = a.proc.0.wait();
    let killed = Instant::now();

    let common::daemon::Finished { status, stderr, .. } =
        wait_within(viewer, Duration::from_secs(10));
    assert!(
        status.is_some(),
        "ffmpeg still running 10 s after its origin died:\n{}\ntcpvsd log:\n{}",
        String::from_utf8_lossy(&stderr),
        daemon.log()
    );
    eprintln!(
        "ffmpeg ended {:?} after the origin died: {status:?}",
        killed.elapsed()
    );
    assert!(
        daemon.wait_sessions(0, Duration::from_secs(3)),
        "the dead origin's session is still listed:\n{}",
        daemon.listing()
    );
    assert!(daemon.daemon.alive(), "tcpvsd died:\n{}", daemon.log());
    let vod = daemon.url("/vod/film");
    assert_mjpeg(&vod, &ffprobe(&vod), &daemon);
    assert!(daemon.daemon.alive(), "tcpvsd died:\n{}", daemon.log());
}

#[test]
#[cfg_attr(
    any(missing_ffmpeg, missing_gst_rtsp_server),
    ignore = "needs ffmpeg, ffprobe and the GStreamer RTSP server (apt install ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good); .ci/run installs them"
)]
fn a_rule_edited_while_a_client_waits_applies_to_its_first_request() {
    if !tools_ready() {
        return;
    }
    let a = Origin::start("/live/cam");
    let b = Origin::start("/vod/film");
    let daemon = Media::start("edit", a.addr, b.addr);
    // A client connects and says nothing yet. The listener defers accepts
    // until a client speaks (TCP_DEFER_ACCEPT, 1 s): the kernel completes
    // this one after about a second, then tcpvsd accepts it...
    let mut idle = std::net::TcpStream::connect(daemon.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let client = idle.local_addr().unwrap();
    let started = Instant::now();
    while !accepted(daemon.addr, client) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "tcpvsd did not accept the idle client within 15 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...while /vod/ is sent to A, which does not have the film.
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());
    let adm = &daemon.daemon;
    adm.ok(&format!("--del-rule -i media -p ^/vod/ -r {b_addr}"));
    adm.ok(&format!("--add-rule -i media -p ^/vod/ -r {a_addr}"));
    let describe = format!(
        "DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n",
        daemon.url("/vod/film")
    );
    std::io::Write::write_all(&mut idle, describe.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(idle.read(&mut byte).unwrap(), 1, "closed after {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(
        head.starts_with("RTSP/1.0 404 "),
        "routed by the old table: {head}"
    );
    // And a new client as well.
    let output = ffprobe(&daemon.url("/vod/film"));
    assert!(!output.status.success(), "/vod/film still reaches B");
}

/// The frame counts ffmpeg reports with `-progress` on `stdout`, as they come.
fn frame_counts(stdout: std::process::ChildStdout) -> mpsc::Receiver<u64> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line
                .strip_prefix("frame=")
                .and_then(|n| n.trim().parse().ok())
            {
                if tx.send(n).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Whether tcpvsd, listening on `listen`, has accepted the connection from
/// `client`: in /proc/net/tcp its end is ESTABLISHED (the handshake is done)
/// and no socket listening on `listen` holds a connection in its accept
/// queue (`rx_queue` of a LISTEN line).
fn accepted(listen: SocketAddr, client: SocketAddr) -> bool {
    let hex = |addr: SocketAddr| match addr.ip() {
        std::net::IpAddr::V4(ip) => {
            format!(
                "{:08X}:{:04X}",
                u32::from_le_bytes(ip.octets()),
                addr.port()
            )
        }
        std::net::IpAddr::V6(_) => panic!("IPv4 only: {addr}"),
    };
    let (listen, client) = (hex(listen), hex(client));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let (mut established, mut listeners, mut queued) = (false, 0, 0);
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, local, remote, state, queues, ..] = fields[..] else {
            continue;
        };
        if local == listen && remote == client && state == "01" {
            established = true;
        }
        if local == listen && state == "0A" {
            listeners += 1;
            let rx_queue = queues.split_once(':').expect("tx:rx").1;
            queued += u64::from_str_radix(rx_queue, 16).expect("hex rx_queue");
        }
    }
    assert!(
        listeners > 0,
        "nothing listens on {listen} in /proc/net/tcp"
    );
    established && queued == 0
}
