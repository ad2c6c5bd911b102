//! The active HTTP check against real nginx servers: one is stopped and
//! started again on its port, then made to answer its health page with 404
//! while its port stays open. The check takes it out and puts it back within
//! rise or fall checks, and a steady client loop never sees a failure: the
//! GETs that hit the dying server are retried on the other. In CI (CI set) a
//! missing nginx fails the test.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use tcpvs::health::verdict::{DownBy, Status};
use tcpvs::table::Settings;
use tcpvs_command::spec::SchedulerKind;
use tcpvs_command::{CheckKind, CheckSpec, HttpCheck};

const INTERVAL: Duration = Duration::from_millis(200);
const RISE: u32 = 2;
const FALL: u32 = 2;
/// Beyond rise or fall checks: a check under way, a slow machine.
const SLACK: Duration = Duration::from_millis(1600);
const HEALTH_PAGE: &str = "health.html";

/// An nginx serving `who.txt` (its name) and the health page from a
/// temporary directory, on a port it keeps across a stop and a start.
struct Nginx {
    name: &'static str,
    addr: SocketAddr,
    root: PathBuf,
    child: Option<Child>,
}

impl Nginx {
    fn start(name: &'static str) -> Nginx {
        let root =
            std::env::temp_dir().join(format!("tcpvs-health-nginx-{name}-{}", std::process::id()));
        let www = root.join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("who.txt"), name).unwrap();
        // The port is free when taken; nginx binds it again after a stop.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut nginx = Nginx {
            name,
            addr,
            root,
            child: None,
        };
        nginx.set_healthy(true);
        nginx.run();
        nginx
    }

    /// Starts the process (again) and waits until it accepts.
    fn run(&mut self) {
        let conf = format!(
            "daemon off; master_process off; worker_processes 1;\n\
             pid {root}/nginx.pid; error_log {root}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{ access_log off; client_body_temp_path {root}/body;\n\
             proxy_temp_path {root}/proxy; fastcgi_temp_path {root}/fastcgi;\n\
             uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;\n\
             server {{ listen {addr}; root {root}/www; }} }}\n",
            root = self.root.display(),
            addr = self.addr,
        );
        let conf_path = self.root.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let binary = ["/usr/sbin/nginx", "nginx"]
            .into_iter()
            .find(|b| Path::new(b).exists())
            .unwrap_or("nginx");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(&self.root)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(self.addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx {} did not start on {}",
                self.name,
                self.addr
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process and waits until it has exited.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Puts the health page in place, or removes it (nginx answers 404).
    fn set_healthy(&self, healthy: bool) {
        let page = self.root.join("www").join(HEALTH_PAGE);
        if healthy {
            std::fs::write(page, "OK\n").unwrap();
        } else {
            std::fs::remove_file(page).unwrap();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One GET of the client loop: when it was sent and who answered, or
/// what went wrong.
struct Answer {
    sent: Instant,
    outcome: Result<String, String>,
}

/// GETs on one keep-alive connection, one after another, from a thread of
/// its own until told to stop (and at most for a minute).
struct ClientLoop {
    answers: Arc<Mutex<Vec<Answer>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl ClientLoop {
    fn start(proxy: SocketAddr) -> ClientLoop {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopped) = (answers.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let began = Instant::now();
            let mut client = Client::connect(proxy);
            while !stopped.load(Ordering::Relaxed) && began.elapsed() < Duration::from_secs(60) {
                let sent = Instant::now();
                let outcome = ask(&mut client);
                let failed = outcome.is_err();
                log.lock().unwrap().push(Answer { sent, outcome });
                if failed {
                    // The connection is in an unknown state: a new one.
                    client = Client::connect(proxy);
                }
                thread::sleep(Duration::from_millis(2));
            }
        });
        ClientLoop {
            answers,
            stop,
            thread: Some(thread),
        }
    }

    /// Who answered the GETs sent after `since` (failures as `Err`).
    fn answered_since(&self, since: Instant) -> Vec<Result<String, String>> {
        let answers = self.answers.lock().unwrap();
        answers
            .iter()
            .filter(|a| a.sent >= since)
            .map(|a| a.outcome.clone())
            .collect()
    }

    /// Waits (at most `within`) until `count` GETs sent after `since` are
    /// answered, and returns who answered them.
    fn next_answers(&self, since: Instant, count: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let answers = self.answered_since(since);
            if answers.len() >= count || Instant::now() >= deadline {
                return answers
                    .into_iter()
                    .map(|a| a.unwrap_or_else(|e| format!("failed: {e}")))
                    .collect();
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the loop; the failures it saw.
    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("client loop");
        }
        let answers = self.answers.lock().unwrap();
        answers
            .iter()
            .filter_map(|a| a.outcome.clone().err())
            .collect()
    }
}

impl Drop for ClientLoop {
    /// Ends the loop before the proxy it talks to goes (a test that failed
    /// early drops both).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One GET of `/who.txt`: the body of a 200, or why not.
fn ask(client: &mut Client) -> Result<String, String> {
    client
        .try_send(b"GET /who.txt HTTP/1.1\r\nHost: test\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let response = client
        .try_read_response(false)
        .map_err(|e| format!("read: {e}"))?;
    match response.status {
        200 => Ok(response.text()),
        status => Err(format!("status {status}: {}", response.text())),
    }
}

/// How many of `answers` came from `name`.
fn from(answers: &[String], name: &str) -> usize {
    answers.iter().filter(|a| *a == name).count()
}

#[test]
#[cfg_attr(
    missing_nginx,
    ignore = "needs nginx (apt install nginx-light); .ci/run installs it"
)]
fn an_nginx_stopped_or_failing_its_health_page_leaves_and_comes_back() {
    if !(Path::new("/usr/sbin/nginx").exists() || require_tool("nginx")) {
        return;
    }
    let stays = Nginx::start("stays");
    let mut flaps = Nginx::start("flaps");
    let mut spec = service(&[(stays.addr, 1), (flaps.addr, 1)], &[]);
    spec.scheduler = SchedulerKind::Rr;
    spec.health.check = Some(CheckSpec {
        kind: CheckKind::Http(HttpCheck {
            path: format!("/{HEALTH_PAGE}"),
            ..HttpCheck::default()
        }),
        interval: INTERVAL,
        timeout: Duration::from_millis(100),
        rise: RISE,
        fall: FALL,
    });
    let proxy = start_proxy(spec, Settings::default());
    let flapping = flaps.addr;
    let status = || Status::of(&proxy.server(flapping));
    let down_within = INTERVAL * FALL + SLACK;
    let up_within = INTERVAL * RISE + SLACK;
    let client = ClientLoop::start(proxy.addr());

    let answers = client.next_answers(Instant::now(), 20, Duration::from_secs(5));
    assert!(
        from(&answers, "stays") > 0 && from(&answers, "flaps") > 0,
        "both serve at first: {answers:?}"
    );
    assert_eq!(status(), Status::Up);

    // The check takes it down within fall checks and only the other one
    // answers; it puts it back within rise checks and it answers again.
    let goes_down = |why: &str| {
        assert!(
            eventually(down_within, || status() == Status::Down(DownBy::Check)),
            "{why}: still {} after {down_within:?}",
            status()
        );
        let answers = client.next_answers(Instant::now(), 20, Duration::from_secs(5));
        let to_the_other = from(&answers, "stays");
        assert_eq!(to_the_other, answers.len(), "{why}: {answers:?}");
    };
    let comes_back = |why: &str| {
        assert!(
            eventually(up_within, || status() == Status::Up),
            "{why}: still {} after {up_within:?}",
            status()
        );
        let answers = client.next_answers(Instant::now(), 20, Duration::from_secs(5));
        assert!(from(&answers, "flaps") > 0, "{why}: {answers:?}");
    };

    flaps.stop();
    goes_down("an nginx stopped");
    flaps.run();
    comes_back("an nginx started again on its port");

    // Its port open but its health page a 404: an HTTP check, not a TCP one,
    // takes it down.
    flaps.set_healthy(false);
    goes_down("an nginx answering its health page with 404");
    let last_check = proxy.server(flapping).state.last_check();
    assert!(
        last_check.as_deref().unwrap_or("").contains("404"),
        "the last check says why: {last_check:?}"
    );
    flaps.set_healthy(true);
    comes_back("an nginx with its health page back");

    let failures = client.finish();
    assert!(
        failures.is_empty(),
        "GETs failed, though they are retried: {failures:?}"
    );
}
