//! The daemon's one health checker: a std thread (never a worker's ring)
//! that follows the running table, probes every server of every service that
//! asks for it (active check, agent) on a thread of its own per probe, and
//! writes the verdicts into each server's shared state, which every core's
//! schedulers read. It also notices passive marks coming and going, so that
//! the log says once that a server went down and once that it came back, and
//! it drives the slow-start ramp.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::agent_line;
use super::probe::{self, Passed, ProbeFailure};
use super::verdict::{self, AgentWords, DownBy, Status, Tracker};
use crate::server::FULL_SCALE;
use crate::table::{AdminState, RealServer, ServerAddr, Service, ServiceId, Table};

/// How often the checker looks at the table, its probes' results and the
/// passive marks: the resolution of slow start and of "back up" messages.
const TICK: Duration = Duration::from_millis(100);

/// How often, between ticks, probe results are looked for.
const POLL: Duration = Duration::from_millis(20);

/// The running checker; dropping it stops the thread (probes in flight end
/// by their own timeouts).
pub struct Checker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checker {
    /// Starts checking the servers of whatever table `table` holds.
    pub fn start(table: Arc<ArcSwap<Table>>) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = thread::Builder::new()
            .name("tcpvs-health".into())
            .spawn(move || run(&table, &stopping))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A server the checker watches: a service's server, by address.
type Key = (ServiceId, ServerAddr);

/// A probe's result, sent back by its thread.
enum Report {
    Check(Key, Result<Passed, ProbeFailure>),
    Agent(Key, Result<String, ProbeFailure>),
}

impl Report {
    fn key(&self) -> &Key {
        match self {
            Report::Check(key, _) | Report::Agent(key, _) => key,
        }
    }
}

/// What the checker keeps of one server between ticks.
struct Watch {
    service: Arc<Service>,
    server: Arc<RealServer>,
    tracker: Tracker,
    next_check: Instant,
    next_agent: Instant,
    check_running: bool,
    agent_running: bool,
    agent: AgentWords,
    /// An agent failure was logged; the next one is not, until it answers.
    agent_trouble: bool,
    last_check: Option<String>,
    last_agent: Option<String>,
    status: Status,
    /// When the server came back, while its slow start lasts.
    back_since: Option<Instant>,
}

impl Watch {
    fn new(service: Arc<Service>, server: Arc<RealServer>, now: Instant) -> Self {
        // Spread the first probes of many servers over the interval, by a
        // stable per-server offset, so that they do not all fire together.
        let spread = |interval: Duration| {
            let millis = interval.as_millis().max(1) as u64;
            now + Duration::from_millis(server.seed % millis)
        };
        let health = &service.health;
        let next_check = health.check.as_ref().map_or(now, |c| spread(c.interval));
        let next_agent = health.agent.as_ref().map_or(now, |a| spread(a.interval));
        Self {
            status: Status::of(&server),
            service,
            server,
            tracker: Tracker::default(),
            next_check,
            next_agent,
            check_running: false,
            agent_running: false,
            agent: AgentWords::default(),
            agent_trouble: false,
            last_check: None,
            last_agent: None,
            back_since: None,
        }
    }

    fn addr(&self) -> ServerAddr {
        self.server.addr
    }

    /// Starts the probes that are due, each on a thread of its own.
    fn start_due(&mut self, key: &Key, now: Instant, results: &Sender<Report>) {
        if self.server.admin == AdminState::Maint {
            return; // Not checked while the operator works on it.
        }
        let addr = self.addr().0;
        if let Some(check) = &self.service.health.check {
            if !self.check_running && now >= self.next_check {
                self.next_check = now + check.interval;
                let (kind, timeout, owner) = (check.kind.clone(), check.timeout, key.clone());
                let report = move || Report::Check(owner, probe::check(&kind, addr, timeout));
                self.check_running = spawn_probe(report, results, key);
            }
        }
        if let Some(agent) = &self.service.health.agent {
            if !self.agent_running && now >= self.next_agent {
                self.next_agent = now + agent.interval;
                let (at, timeout, owner) = (
                    SocketAddr::new(addr.ip(), agent.port),
                    agent.timeout,
                    key.clone(),
                );
                let report = move || Report::Agent(owner, probe::read_agent_line(at, timeout));
                self.agent_running = spawn_probe(report, results, key);
            }
        }
    }

    fn checked(&mut self, result: Result<Passed, ProbeFailure>) {
        self.check_running = false;
        let Some(check) = &self.service.health.check else {
            return;
        };
        let passed = result.is_ok();
        self.last_check = Some(match &result {
            Ok(passed) => passed.to_string(),
            Err(failure) => failure.to_string(),
        });
        let state = &self.server.state;
        if let Some(up) = self.tracker.observe(passed, check.rise, check.fall) {
            state.set_checked_down(!up);
        }
        if passed && self.tracker.is_up() {
            // The check's verdict is the better one: a server it finds up
            // is not held out by failures of real traffic any longer.
            state.mark_ok();
        }
        self.publish_last_check();
    }

    fn agent_said(&mut self, result: Result<String, ProbeFailure>) {
        self.agent_running = false;
        let report = result
            .map_err(|failure| failure.to_string())
            .and_then(|line| {
                agent_line::parse(&line)
                    .map(|report| (line, report))
                    .map_err(|e| e.to_string())
            });
        match report {
            Ok((line, report)) => {
                self.agent.merge(&report);
                self.server.state.set_agent_asks(self.agent.asks());
                self.agent_trouble = false;
                self.last_agent = Some(format!("agent `{}`", line.trim()));
            }
            Err(trouble) => {
                // Garbage, a hang or a closed port changes nothing.
                if !self.agent_trouble {
                    tracing::warn!(
                        service = %self.service.ident,
                        server = %self.addr(),
                        "agent check: {trouble}; keeping the agent's last word"
                    );
                    self.agent_trouble = true;
                }
                self.last_agent = Some(format!("agent failed: {trouble}"));
            }
        }
        self.publish_last_check();
    }

    fn publish_last_check(&self) {
        let parts: Vec<&str> = [&self.last_check, &self.last_agent]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if !parts.is_empty() {
            self.server.state.set_last_check(parts.join("; "));
        }
    }

    /// Notices a change of status (logged once) and sets the weight scale
    /// from the agent and the slow-start ramp.
    fn settle(&mut self, now: Instant) {
        let status = Status::of(&self.server);
        if status != self.status {
            // Down by its failures, then by its checks: one outage, one line.
            if !(status.is_down() && self.status.is_down()) {
                self.log_change(&status);
            }
            let slowstart = self.service.health.slowstart;
            let back = matches!(self.status, Status::Down(_) | Status::Maint)
                && !matches!(status, Status::Down(_) | Status::Maint);
            if back && !slowstart.is_zero() {
                self.back_since = Some(now);
            }
            self.status = status;
        }
        let ramp = match self.back_since {
            Some(since) => verdict::ramp(now - since, self.service.health.slowstart),
            None => FULL_SCALE,
        };
        if ramp == FULL_SCALE {
            self.back_since = None;
        }
        let scale = verdict::weight_scale(self.agent.scale(self.server.weight), ramp);
        let state = &self.server.state;
        if state.weight_scale() != scale || state.ramp() != ramp {
            state.set_weight_scale(scale, ramp);
        }
    }

    fn log_change(&self, status: &Status) {
        let (service, server) = (&self.service.ident, self.addr());
        let why = match status {
            Status::Down(DownBy::Traffic) => {
                let passive = &self.service.health.passive;
                let window = passive.fail_timeout.as_secs_f64();
                format!(
                    "{} failure(s) of real traffic within {window}s",
                    passive.max_fails
                )
            }
            _ => self.server.state.last_check().unwrap_or_default(),
        };
        match status {
            Status::Down(_) => tracing::warn!(%service, %server, %why, "server is {status}"),
            Status::Up if self.status.is_down() => {
                tracing::info!(%service, %server, "server is up again")
            }
            _ => tracing::info!(%service, %server, "server is {status}"),
        }
    }
}

/// Runs `report` on a thread of its own, sending its result; whether it
/// started.
fn spawn_probe(
    report: impl FnOnce() -> Report + Send + 'static,
    results: &Sender<Report>,
    key: &Key,
) -> bool {
    let results = results.clone();
    let started = thread::Builder::new()
        .name("tcpvs-probe".into())
        .spawn(move || {
            let _ = results.send(report());
        });
    if let Err(e) = &started {
        tracing::warn!(service = %key.0, server = %key.1, "cannot start a check: {e}");
    }
    started.is_ok()
}

fn run(table: &ArcSwap<Table>, stop: &AtomicBool) {
    let (results, reports): (Sender<Report>, Receiver<Report>) = mpsc::channel();
    let mut watches: HashMap<Key, Watch> = HashMap::new();
    let mut followed = None;
    let mut next_tick = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_tick {
            next_tick = now + TICK;
            // A tick allocates nothing unless the table changed or a probe
            // starts: it runs beside the data plane's cores.
            let current = table.load();
            if followed != Some(current.generation) {
                follow(&mut watches, &current, now);
                followed = Some(current.generation);
            }
            for (key, watch) in &mut watches {
                watch.start_due(key, now, &results);
                watch.settle(now);
            }
        }
        // Results are taken in as they come, between ticks; polled, since a
        // blocking receive with a timeout allocates on every wait.
        for report in reports.try_iter() {
            let Some(watch) = watches.get_mut(report.key()) else {
                continue; // A server deleted while its probe ran.
            };
            match report {
                Report::Check(_, result) => watch.checked(result),
                Report::Agent(_, result) => watch.agent_said(result),
            }
            watch.settle(Instant::now());
        }
        thread::sleep(POLL.min(next_tick.saturating_duration_since(Instant::now())));
    }
}

/// Makes the watches follow the table: new servers watched, edited ones
/// seen through their new table entry, deleted ones forgotten.
fn follow(watches: &mut HashMap<Key, Watch>, table: &Table, now: Instant) {
    let mut seen = Vec::with_capacity(watches.len());
    for service in &table.services {
        for server in &service.servers {
            let key = (service.ident.clone(), server.addr);
            match watches.get_mut(&key) {
                Some(watch) => {
                    if !Arc::ptr_eq(&watch.service, service) {
                        let fresh = Watch::new(service.clone(), server.clone(), now);
                        refresh(watch, fresh);
                    }
                }
                None => {
                    let watch = Watch::new(service.clone(), server.clone(), now);
                    watches.insert(key.clone(), watch);
                }
            }
            seen.push(key);
        }
    }
    if seen.len() != watches.len() {
        watches.retain(|key, _| seen.contains(key));
    }
}

/// An edited table: the watch sees the new service and server entries; a
/// probe schedule that changed starts anew, the verdicts carry over (they
/// live in the server's shared state, which an edit keeps).
fn refresh(watch: &mut Watch, fresh: Watch) {
    let same_check = watch.service.health.check == fresh.service.health.check;
    let same_agent = watch.service.health.agent == fresh.service.health.agent;
    if !same_check {
        watch.next_check = fresh.next_check;
        watch.tracker = Tracker::default();
        if fresh.service.health.check.is_none() {
            watch.server.state.set_checked_down(false);
            watch.last_check = None;
        }
    }
    if !same_agent {
        watch.next_agent = fresh.next_agent;
        if fresh.service.health.agent.is_none() {
            watch.agent = AgentWords::default();
            watch.server.state.set_agent_asks(watch.agent.asks());
            watch.last_agent = None;
        }
    }
    watch.service = fresh.service;
    watch.server = fresh.server;
}
