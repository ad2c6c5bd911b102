//! The /stats page as a person sees it: headless Chromium renders it from a
//! running tcpvsd with two services, and the rendered page shows every
//! server of the table with the requests it got; its script refreshes it
//! in the browser; a screenshot is kept as a test artifact. And the rate
//! it shows under load is the rate the clients made.
//!
//! Needs Chromium (Debian package `chromium`): a failure when CI is set and
//! it is missing.

mod admin_support;
mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use admin_support::start_with_admin;
use common::daemon::{wait_within, Scratch};
use common::{get, ok, require_tool, wait_for, Reply, TestServer};

/// How long Chromium may take to render one page (a cold start on a
/// loaded 2-core machine takes a few seconds).
const BROWSER_LIMIT: Duration = Duration::from_secs(60);

/// The Chromium on this machine, if any: `chromium-browser` where a
/// distribution names it so, else `chromium` (required in CI).
fn browser() -> Option<&'static str> {
    let on_path = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if on_path("chromium-browser") {
        return Some("chromium-browser");
    }
    require_tool("chromium").then_some("chromium")
}

/// Headless `browser` on `url` with `args`, in a profile of its own under
/// `scratch`, within [`BROWSER_LIMIT`]. Chromium and the processes it
/// starts are one process group of their own, killed by its id when the
/// run ends (and at the limit).
fn headless(browser: &str, scratch: &Path, args: &[&str], url: &str) -> Output {
    let mut command = Command::new(browser);
    command
        .args(["--headless", "--disable-gpu", "--no-first-run"])
        .args(["--disable-dev-shm-usage", "--hide-scrollbars"])
        // As root (CI) Chromium refuses to start without this.
        .arg("--no-sandbox")
        .arg(format!(
            "--user-data-dir={}",
            scratch.join("profile").display()
        ))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = command.spawn().unwrap_or_else(|e| panic!("{browser}: {e}"));
    let group = child.id();
    let finished = wait_within(child, BROWSER_LIMIT);
    // Its helpers (zygote, renderer) may outlive it: they are in its group.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
    finished.into_output().unwrap_or_else(|f| {
        panic!(
            "{browser} still running after {BROWSER_LIMIT:?}; stderr:\n{}",
            String::from_utf8_lossy(&f.stderr)
        )
    })
}

/// Where test artifacts are kept: `target/test-artifacts`.
fn artifacts() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The text of the first `<td class="{class}">` of the row of `server` in
/// the rendered `dom`.
fn cell<'d>(dom: &'d str, server: &str, class: &str) -> &'d str {
    let row_start = dom
        .find(&format!("data-server=\"{server}\""))
        .unwrap_or_else(|| panic!("no row for {server} in\n{dom}"));
    let row = &dom[row_start..];
    let row = &row[..row.find("</tr>").unwrap_or(row.len())];
    let open = format!("<td class=\"{class}\">");
    let start = row
        .find(&open)
        .unwrap_or_else(|| panic!("no {class} cell in {row}"))
        + open.len();
    &row[start..start + row[start..].find("</td>").unwrap()]
}

#[test]
#[cfg_attr(
    missing_chromium,
    ignore = "needs chromium (apt install chromium); .ci/run installs it"
)]
fn chromium_renders_every_server_of_the_table_with_its_counts() {
    let Some(browser) = browser() else { return };
    let (a, b) = (TestServer::named("a"), TestServer::named("b"));
    let (c, d) = (TestServer::named("c"), TestServer::named("d"));
    // Holds its requests until released: active requests and a load bar.
    let released = Arc::new(AtomicBool::new(false));
    let holding = {
        let released = released.clone();
        TestServer::start(move |_| {
            let held = Instant::now();
            while !released.load(Ordering::Relaxed) && held.elapsed() < BROWSER_LIMIT {
                std::thread::sleep(Duration::from_millis(10));
            }
            Reply::Send(ok("held"))
        })
    };
    let services = format!(
        "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\nscheduler = \"rr\"\n\
         [[service.server]]\naddress = \"{}\"\n[[service.server]]\naddress = \"{}\"\n\
         [[service]]\nident = \"img\"\nlisten = \"127.0.0.1:0\"\nscheduler = \"wlc\"\n\
         [[service.server]]\naddress = \"{}\"\nweight = 3\n\
         [[service.server]]\naddress = \"{}\"\n\
         [[service.rule]]\npattern = \"^/thumbs/<b>\"\nservers = [\"{}\"]\n\
         [[service]]\nident = \"hold\"\nlisten = \"127.0.0.1:0\"\n\
         [[service.server]]\naddress = \"{}\"\nmax_conns = 4\n",
        a.addr, b.addr, c.addr, d.addr, c.addr, holding.addr
    );
    let (daemon, admin) = start_with_admin("admin-stats-chromium", &services);
    let (web, img) = (daemon.bound("web"), daemon.bound("img"));
    let hold = daemon.bound("hold");
    let in_flight: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || get(hold, "/held").status))
        .collect();
    wait_for(Duration::from_secs(10), "2 requests held", || {
        holding.requests().len() == 2
    });
    for _ in 0..9 {
        assert_eq!(get(web, "/page").status, 200);
    }
    for _ in 0..4 {
        assert_eq!(get(img, "/x.png").status, 200);
    }
    let scratch = Scratch::new("admin-stats-browser");
    let url = format!("http://{admin}/stats");
    // Virtual time runs 5 s once the page is idle: its 2 s refresh runs
    // (a real fetch from tcpvsd) before the DOM is dumped.
    let dumped = headless(
        browser,
        scratch.path(),
        &["--dump-dom", "--virtual-time-budget=5000"],
        &url,
    );
    let dom = String::from_utf8_lossy(&dumped.stdout);
    assert!(
        dom.contains("tcpvsd statistics"),
        "no page rendered; stderr:\n{}\n{dom}",
        String::from_utf8_lossy(&dumped.stderr)
    );
    for (server, backend) in [(&a, "web"), (&b, "web"), (&c, "img"), (&d, "img")] {
        let shown = cell(&dom, &server.addr.to_string(), "requests");
        let got = server.requests().len();
        assert_eq!(shown, got.to_string(), "{} of {backend}", server.addr);
        assert_eq!(cell(&dom, &server.addr.to_string(), "state"), "up");
    }
    assert_eq!(a.requests().len() + b.requests().len(), 9);
    assert!(dom.contains("data-service=\"web\"") && dom.contains("data-service=\"img\""));
    // The rule's pattern is text, not markup.
    assert!(dom.contains("<code>^/thumbs/&lt;b&gt;</code>"), "{dom}");
    assert!(
        dom.contains("data-refreshes=\""),
        "the page's script did not refresh it:\n{dom}"
    );
    // Two of its max_conns 4: half a bar.
    let held = holding.addr.to_string();
    assert_eq!(cell(&dom, &held, "active"), "2 / 4");
    assert!(cell(&dom, &held, "load").contains("width:50.0%"), "{dom}");

    let screenshot = artifacts().join("stats.png");
    let _ = std::fs::remove_file(&screenshot);
    let shot = format!("--screenshot={}", screenshot.display());
    let taken = headless(
        browser,
        scratch.path(),
        &[&shot, "--window-size=1280,900"],
        &url,
    );
    let size = std::fs::metadata(&screenshot).map_or(0, |m| m.len());
    println!(
        "screenshot of /stats: {} ({size} bytes)",
        screenshot.display()
    );
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes; stderr:\n{}",
        screenshot.display(),
        String::from_utf8_lossy(&taken.stderr)
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    released.store(true, Ordering::Relaxed);
    for request in in_flight {
        assert_eq!(request.join().unwrap(), 200);
    }
}

#[test]
fn the_rate_shown_under_load_is_the_rate_the_clients_made() {
    /// Several of the 2 s sampling intervals, so the rate shown covers load
    /// only.
    const LOADED: Duration = Duration::from_secs(5);
    let backend = TestServer::named("a");
    let service = format!(
        "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [[service.server]]\naddress = \"{}\"\n",
        backend.addr
    );
    let (daemon, admin) = start_with_admin("admin-stats-rate", &service);
    let web = daemon.bound("web");
    // One client at about 200 requests a second: a steady rate, and few
    // enough connections that the machine's other tests keep their ports.
    let started = Instant::now();
    let (stop, client) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let paced = {
        let (stop, sent) = (stop.clone(), client.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) && started.elapsed() < 2 * LOADED {
                assert_eq!(get(web, "/x").status, 200);
                sent.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(4));
            }
        })
    };
    std::thread::sleep(LOADED);
    let stats = get(admin, "/stats.json");
    let requests = client.load(Ordering::Relaxed);
    let made = requests as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    paced.join().expect("every request answered 200");
    assert_eq!(stats.status, 200);
    assert_eq!(stats.header("content-type"), ["application/json"]);
    let json: serde_json::Value = serde_json::from_str(&stats.text()).unwrap();
    let server = &json["services"][0]["servers"][0];
    assert_eq!(server["address"], backend.addr.to_string());
    let shown = server["rate"]
        .as_f64()
        .unwrap_or_else(|| panic!("no rate in {json}"));
    assert!(
        made > 20.0 && (shown - made).abs() < made * 0.35,
        "shown {shown:.1}/s, made {made:.1}/s ({requests} requests)"
    );
    assert_eq!(json["services"][0]["rate"], server["rate"]);
    // The rate of the last interval, not an average since start: back to 0
    // within two intervals once the load has stopped.
    wait_for(Duration::from_secs(7), "the rate back to 0", || {
        let json: serde_json::Value =
            serde_json::from_str(&get(admin, "/stats.json").text()).unwrap();
        json["services"][0]["servers"][0]["rate"].as_f64() == Some(0.0)
    });
}
