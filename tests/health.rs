//! The cluster heals itself (issue #15), end to end: a backend that dies
//! leaves the scheduling by its checks and comes back ramping up; an agent
//! changes a server's share, drains it, and its garbage changes nothing; a
//! request is retried on another server only when that is safe; the log
//! says once that a server went down and once that it came back.

mod common;

use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{
    daemon::Daemon, dead_address, ok, read_head, service, start_proxy, wait_for, Client, Reply,
    TestServer,
};
use tcpvs::health::verdict::{health_label, Status};
use tcpvs::schedulers::SchedulerKind;
use tcpvs::table::{Settings, Weight};
use tcpvs_command::{AgentSpec, CheckKind, CheckSpec, HttpCheck, PassiveSpec};

fn settings() -> Settings {
    Settings {
        access_log: false,
        ..Settings::default()
    }
}

/// A real server that can crash (its listener and every connection closed
/// at once) and come back on the same address. It answers every request
/// with its name, after `delay` for targets starting with `/slow`.
struct Backend {
    addr: SocketAddr,
    name: &'static str,
    served: Arc<AtomicUsize>,
    running: Option<Running>,
}

struct Running {
    stop: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    accepting: JoinHandle<()>,
}

impl Backend {
    fn start(name: &'static str, ip: &str) -> Backend {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let mut backend = Backend {
            addr: listener.local_addr().unwrap(),
            name,
            served: Arc::new(AtomicUsize::new(0)),
            running: None,
        };
        backend.serve(listener);
        backend
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }

    fn serve(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (stopping, held, served, name) = (
            stop.clone(),
            connections.clone(),
            self.served.clone(),
            self.name,
        );
        let accepting = thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        held.lock().unwrap().push(stream.try_clone().unwrap());
                        let served = served.clone();
                        thread::spawn(move || answer(stream, name, &served));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        self.running = Some(Running {
            stop,
            connections,
            accepting,
        });
    }

    /// Crashes: nothing listens any more and every connection is cut.
    fn kill(&mut self) {
        let running = self.running.take().expect("running");
        running.stop.store(true, Ordering::Relaxed);
        running.accepting.join().unwrap();
        for connection in running.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }

    /// Comes back on the same address.
    fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).unwrap();
        self.serve(listener);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if self.running.is_some() {
            self.kill();
        }
    }
}

fn answer(stream: TcpStream, name: &str, served: &AtomicUsize) {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Ok(Some(head)) = read_head(&mut reader) {
        if head
            .split(' ')
            .nth(1)
            .is_some_and(|t| t.starts_with("/slow"))
        {
            thread::sleep(Duration::from_millis(1500));
        } else if head
            .split(' ')
            .nth(1)
            .is_some_and(|t| t.starts_with("/busy"))
        {
            thread::sleep(Duration::from_millis(20));
        }
        if writer.write_all(&ok(name)).is_err() {
            return;
        }
        served.fetch_add(1, Ordering::Relaxed);
    }
}

/// Clients sending `GET path` on keep-alive connections until stopped (or
/// 30 s pass), counting answers that are not 200.
struct Load {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(proxy: SocketAddr, clients: usize, path: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let clients = (0..clients)
            .map(|_| {
                let (stop, failed, done) = (stop.clone(), failed.clone(), done.clone());
                thread::spawn(move || {
                    let started = Instant::now();
                    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
                    let mut client = Client::connect(proxy);
                    while !stop.load(Ordering::Relaxed)
                        && started.elapsed() < Duration::from_secs(30)
                    {
                        client.send(request.as_bytes());
                        match client.try_read_response(false) {
                            Ok(response) if response.status == 200 => {}
                            _ => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                client = Client::connect(proxy);
                            }
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load {
            stop,
            failed,
            done,
            clients,
        }
    }

    /// Stops the clients: (requests, failed).
    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.join().unwrap();
        }
        (
            self.done.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

fn http_check(interval_ms: u64, rise: u32, fall: u32) -> CheckSpec {
    CheckSpec {
        kind: CheckKind::Http(HttpCheck::default()),
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(150),
        rise,
        fall,
    }
}

#[test]
fn a_dead_backend_leaves_by_its_checks_and_comes_back_ramping_up() {
    let mut backends = [
        Backend::start("a", "127.0.0.1"),
        Backend::start("b", "127.0.0.1"),
        Backend::start("c", "127.0.0.1"),
    ];
    let weights: Vec<(SocketAddr, u16)> = backends.iter().map(|b| (b.addr, 10)).collect();
    let mut spec = service(&weights, &[]);
    let (interval, rise, fall) = (200, 2, 3);
    spec.health.check = Some(http_check(interval, rise, fall));
    spec.health.slowstart = Duration::from_secs(2);
    let proxy = start_proxy(spec, settings());
    let load = Load::start(proxy.addr(), 4, "/busy");
    thread::sleep(Duration::from_millis(800));
    assert!(backends[1].served() > 0, "b took no work before it died");

    let b = proxy.server(backends[1].addr);
    backends[1].kill();
    // Passive marks may take it out at once; the checks' verdict comes
    // within fall checks (and one interval of phase, one timeout).
    let detection = wait_for(Duration::from_secs(3), "b down by its checks", || {
        b.state.is_checked_down()
    });
    let checks = Duration::from_millis(interval * (u64::from(fall) + 1) + 150);
    assert!(
        detection <= checks + Duration::from_millis(300),
        "{detection:?}"
    );
    assert!(Status::of(&b).is_down());
    let failures = b.state.failures();
    thread::sleep(Duration::from_millis(600));
    assert_eq!(b.state.failures(), failures, "requests still tried on b");

    let served_before = backends[1].served();
    backends[1].restart();
    let back = wait_for(Duration::from_secs(3), "b up again", || {
        !Status::of(&b).is_down()
    });
    let rise_time = Duration::from_millis(interval * (u64::from(rise) + 1) + 150);
    assert!(back <= rise_time + Duration::from_millis(300), "{back:?}");
    // Slow start: its weight ramps up from a little.
    let early = b.effective_weight();
    assert!(early.0 < 10, "no ramp: {early:?}");
    assert!(
        health_label(&b).starts_with("slowstart"),
        "{}",
        health_label(&b)
    );
    wait_for(Duration::from_secs(3), "b at full weight", || {
        b.effective_weight() == Weight(10)
    });
    assert_eq!(health_label(&b), "up");
    thread::sleep(Duration::from_millis(300));
    assert!(
        backends[1].served() > served_before,
        "no work since b came back"
    );

    let (requests, failed) = load.finish();
    assert!(requests > 100, "only {requests} requests");
    assert_eq!(failed, 0, "{failed} of {requests} GETs failed");
}

/// A fake agent on `addr`: answers what `says` holds when a director
/// connects.
#[derive(Clone)]
enum Says {
    Line(&'static str),
    /// Connects and says nothing for 3 s.
    Hang,
}

fn start_agent(listener: TcpListener, says: Arc<Mutex<Says>>) {
    thread::spawn(move || {
        for stream in listener.incoming().flatten().take(1000) {
            let says = says.lock().unwrap().clone();
            thread::spawn(move || {
                let mut stream = stream;
                match says {
                    Says::Line(line) => {
                        let _ = stream.write_all(format!("{line}\n").as_bytes());
                    }
                    Says::Hang => thread::sleep(Duration::from_secs(3)),
                }
            });
        }
    });
}

#[test]
fn an_agent_changes_the_share_drains_and_its_garbage_changes_nothing() {
    // Two servers on two loopback addresses: the agent port is the same for
    // every server of a service, as in HAProxy. Only `a` runs an agent; `b`'s
    // port is closed, which changes nothing for `b`.
    let a = Backend::start("a", "127.0.0.1");
    let b = Backend::start("b", "127.0.0.2");
    let agent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = agent.local_addr().unwrap().port();
    let says = Arc::new(Mutex::new(Says::Line("up 100%")));
    start_agent(agent, says.clone());
    let mut spec = service(&[(a.addr, 2), (b.addr, 2)], &[("^/slow", &[a.addr])]);
    spec.scheduler = SchedulerKind::Wlc;
    spec.health.agent = Some(AgentSpec {
        port,
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(150),
    });
    let proxy = start_proxy(spec, settings());
    let server_a = proxy.server(a.addr);
    let server_b = proxy.server(b.addr);
    let share_of_a = || {
        let (a0, b0) = (a.served(), b.served());
        let load = Load::start(proxy.addr(), 6, "/busy");
        thread::sleep(Duration::from_millis(1500));
        let (_, failed) = load.finish();
        assert_eq!(failed, 0);
        let (da, db) = (a.served() - a0, b.served() - b0);
        da as f64 / (da + db) as f64
    };
    wait_for(Duration::from_secs(2), "the agent read", || {
        server_a
            .state
            .last_check()
            .is_some_and(|c| c.contains("100%"))
    });
    let even = share_of_a();
    assert!((0.4..=0.6).contains(&even), "a's share {even:.2} at 100%");

    *says.lock().unwrap() = Says::Line("up 50%");
    wait_for(Duration::from_secs(2), "a at half weight", || {
        server_a.effective_weight() == Weight(1)
    });
    let halved = share_of_a();
    assert!(
        (0.2..=0.42).contains(&halved),
        "a's share {halved:.2} at 50% (was {even:.2})"
    );

    // Garbage, a hang, a closed port: nothing changes.
    for trouble in [Says::Line("fine thanks"), Says::Hang] {
        *says.lock().unwrap() = trouble;
        thread::sleep(Duration::from_millis(700));
        assert_eq!(server_a.effective_weight(), Weight(1));
        assert_eq!(Status::of(&server_a), Status::Up);
    }
    assert_eq!(server_b.effective_weight(), Weight(2));
    assert_eq!(Status::of(&server_b), Status::Up);

    // Drain: a request in flight on `a` finishes; no new one goes to it.
    *says.lock().unwrap() = Says::Line("up 100%");
    wait_for(Duration::from_secs(2), "a at full weight", || {
        server_a.effective_weight() == Weight(2)
    });
    let proxy_addr = proxy.addr();
    let slow = thread::spawn(move || common::get(proxy_addr, "/slow"));
    wait_for(Duration::from_secs(2), "the slow request on a", || {
        server_a.state.active() == 1
    });
    *says.lock().unwrap() = Says::Line("drain");
    wait_for(Duration::from_secs(2), "a drained", || {
        Status::of(&server_a) == Status::Drain
    });
    let before = a.served();
    let load = Load::start(proxy.addr(), 2, "/");
    thread::sleep(Duration::from_millis(500));
    let (requests, failed) = load.finish();
    assert_eq!((failed, a.served()), (0, before), "{requests} requests");
    let slow = slow.join().unwrap();
    assert_eq!((slow.status, slow.text().as_str()), (200, "a"));
    // Only `a` may serve /slow: drained, it gets nothing new (503).
    assert_eq!(common::get(proxy.addr(), "/slow").status, 503);
}

#[test]
fn a_post_is_never_sent_twice_and_a_get_is_retried_elsewhere() {
    let closer = TestServer::start(|_| Reply::Close);
    let good = TestServer::named("good");
    let mut spec = service(&[(closer.addr, 1), (good.addr, 1)], &[]);
    spec.scheduler = SchedulerKind::Rr;
    // Keep the closer in the rotation: every other request tries it first.
    spec.health.passive = PassiveSpec {
        max_fails: 0,
        ..PassiveSpec::default()
    };
    let proxy = start_proxy(spec, settings());
    let requests = 8;
    let mut refused = 0;
    for _ in 0..requests {
        let response = Client::connect(proxy.addr()).exchange(
            "POST /order HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        );
        match response.status {
            200 => {}
            502 => refused += 1,
            other => panic!("POST answered {other}"),
        }
    }
    let posts = |server: &TestServer| {
        server
            .heads()
            .iter()
            .filter(|h| h.starts_with("POST"))
            .count()
    };
    assert_eq!(posts(&closer) + posts(&good), requests, "a POST went twice");
    assert_eq!(
        refused,
        posts(&closer),
        "each POST the closer dropped is a 502"
    );
    assert!(refused > 0, "the closer never had a POST");

    for _ in 0..requests {
        let response = common::get(proxy.addr(), "/page");
        assert_eq!((response.status, response.text().as_str()), (200, "good"));
    }
    let gets = |server: &TestServer| {
        server
            .heads()
            .iter()
            .filter(|h| h.starts_with("GET"))
            .count()
    };
    assert_eq!(gets(&good), requests);
    assert!(gets(&closer) > 0, "no GET was ever tried on the closer");
    let table = proxy.table();
    assert_eq!(table.services[0].state.retried(), gets(&closer) as u64);
}

/// The same failure a hundred times is one line in the log, and its end
/// one more: not a warning per failed try.
#[test]
fn the_log_says_once_that_a_server_went_down_and_once_that_it_came_back() {
    let live = TestServer::named("live");
    let dead = dead_address();
    let config = format!(
        "log_level = \"info\"\naccess_log = false\n\
         [[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\nscheduler = \"rr\"\n\
         [service.passive]\nmax_fails = 1\nfail_timeout = \"2s\"\n\
         [[service.server]]\naddress = \"{dead}\"\n\
         [[service.server]]\naddress = \"{}\"\n",
        live.addr
    );
    let daemon = Daemon::with_config("health-log", &config);
    let listen = daemon.bound("web");
    // Well within the 2 s the failure holds the dead server out.
    for _ in 0..10 {
        assert_eq!(common::get(listen, "/").status, 200);
    }
    let down_lines = |log: &str| log.lines().filter(|l| l.contains("server is down")).count();
    wait_for(Duration::from_secs(3), "the down line", || {
        down_lines(&daemon.stderr()) == 1
    });
    wait_for(Duration::from_secs(6), "the up line", || {
        daemon.stderr().contains("server is up again")
    });
    let log = daemon.stderr();
    assert_eq!(down_lines(&log), 1, "{log}");
    assert_eq!(log.matches("server is up again").count(), 1, "{log}");
    assert!(!log.contains("connect failed"), "a line per try: {log}");
    let listing = String::from_utf8_lossy(&daemon.adm("-L").stdout).to_string();
    assert!(listing.contains("up"), "{listing}");
}

/// The operator's states through tcpvsadm: a drained server gets no new
/// request, `-L` shows it, and `ready` brings it back; a server down by
/// its checks is listed down with the check's result.
#[test]
fn tcpvsadm_drains_a_server_and_lists_its_health() {
    let one = TestServer::named("one");
    let two = TestServer::named("two");
    let dead = dead_address();
    let config = format!(
        "log_level = \"warn\"\naccess_log = false\n\
         [[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\nscheduler = \"rr\"\n\
         [service.check]\ntype = \"tcp\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\nfall = 1\n\
         [[service.server]]\naddress = \"{}\"\n\
         [[service.server]]\naddress = \"{}\"\n\
         [[service.server]]\naddress = \"{dead}\"\n",
        one.addr, two.addr
    );
    let daemon = Daemon::with_config("health-adm", &config);
    let listen = daemon.bound("web");
    let line_of = |addr: SocketAddr| {
        let listing = daemon.ok("-L -n");
        let found = listing.lines().find(|l| l.contains(&addr.to_string()));
        found
            .unwrap_or_else(|| panic!("{addr} not in {listing}"))
            .to_string()
    };
    wait_for(
        Duration::from_secs(3),
        "the dead server listed down",
        || line_of(dead).contains("down"),
    );
    assert!(line_of(dead).contains("L4CON"), "{}", line_of(dead));
    // Checks are spread over the interval: the live server's comes in turn.
    wait_for(Duration::from_secs(3), "the live server checked", || {
        line_of(one.addr).contains("L4OK")
    });

    daemon.ok(&format!("-e -i web -r {} --state drain", one.addr));
    assert!(line_of(one.addr).contains("drain"), "{}", line_of(one.addr));
    let before = one.requests().len();
    for _ in 0..6 {
        let response = common::get(listen, "/");
        assert_eq!((response.status, response.text().as_str()), (200, "two"));
    }
    assert_eq!(one.requests().len(), before, "a drained server got work");
    assert!(daemon.ok("-S").contains("--state drain"));

    daemon.ok(&format!("-e -i web -r {} --state ready", one.addr));
    let names: Vec<String> = (0..4).map(|_| common::get(listen, "/").text()).collect();
    assert!(names.iter().any(|n| n == "one"), "{names:?}");
}
