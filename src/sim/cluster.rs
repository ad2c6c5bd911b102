//! The simulated cluster: N back-end nodes, each with an LRU cache, one disk
//! and one CPU served first come first served, under the cost model of the
//! LARD paper (Pai et al., ASPLOS 1998). A front end keeps a fixed number of
//! requests outstanding (closed loop) and hands each new one to the REAL
//! scheduler, whose pick holds the node's active count until the request
//! completes: exactly the load WLC and LARD read in tcpvsd.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::Serialize;

use super::lru::Lru;
use super::{Request, Workload};
use crate::schedulers::{pick_server, BuildScheduler, Pick, RequestInfo, SchedulerKind};
use crate::server::ServerState;
use crate::table::{RealServer, SchedOptions, ServerAddr, Weight};

/// Nanoseconds of simulated time.
type Nanos = u64;

/// What serving a request costs a node (the LARD paper's numbers by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostModel {
    /// CPU to accept and handle a connection.
    pub cpu_per_request: Nanos,
    /// CPU to send each 512 bytes.
    pub cpu_per_512_bytes: Nanos,
    /// Disk time to start reading a file that missed the cache.
    pub disk_per_read: Nanos,
    /// Disk time for each 4 KiB read.
    pub disk_per_4k: Nanos,
}

impl Default for CostModel {
    fn default() -> Self {
        Self {
            cpu_per_request: 145_000,
            cpu_per_512_bytes: 40_000,
            disk_per_read: 28_000_000,
            disk_per_4k: 410_000,
        }
    }
}

/// The cluster to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    pub nodes: usize,
    /// Each node's cache, in bytes.
    pub cache_bytes: u64,
    pub cost: CostModel,
    /// Requests the front end keeps in flight; `None`: the LARD paper's bound
    /// for T_low = 25 and T_high = 65, `(nodes - 1) * 65 + 25 - 1`.
    pub outstanding: Option<usize>,
    /// Share of the stream used to warm the caches before measuring.
    pub warmup_percent: u32,
}

impl ClusterSpec {
    pub fn new(nodes: usize, cache_bytes: u64) -> Self {
        Self {
            nodes,
            cache_bytes,
            cost: CostModel::default(),
            outstanding: None,
            warmup_percent: 20,
        }
    }

    fn outstanding(&self) -> usize {
        self.outstanding
            .unwrap_or((self.nodes.max(1) - 1) * 65 + 25 - 1)
            .max(1)
    }
}

/// What one scheduler achieved on one cluster, measured after the warm-up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub scheduler: String,
    pub nodes: usize,
    /// Share of requests served from the node's cache.
    pub hit_rate: f64,
    /// Requests completed per simulated second.
    pub throughput_rps: f64,
    /// The busiest node's time-averaged load over the mean of all nodes.
    pub imbalance: f64,
    /// Bytes read from the nodes' disks.
    pub disk_bytes: u64,
    /// Requests measured.
    pub requests: usize,
}

/// Runs `workload` through a cluster scheduled by `kind` (with `options`).
pub fn simulate(
    kind: SchedulerKind,
    options: &SchedOptions,
    spec: &ClusterSpec,
    workload: &Workload,
) -> Result<Report, String> {
    if workload.requests.is_empty() {
        return Err("the request stream is empty".into());
    }
    if spec.nodes == 0 {
        return Err("a cluster needs at least one node".into());
    }
    let scheduler = kind.build(options)?;
    let mut sim = Simulation::new(spec, workload);
    let warmup = workload.requests.len() * spec.warmup_percent.min(90) as usize / 100;
    let outstanding = spec.outstanding().min(workload.requests.len());
    for _ in 0..outstanding {
        sim.issue(&*scheduler, warmup);
    }
    while let Some(Reverse((time, _, event))) = sim.events.pop() {
        sim.advance(time);
        match event {
            Event::DiskDone(job) => sim.disk_done(job),
            Event::CpuDone(job) => {
                sim.complete(job);
                if sim.next < workload.requests.len() {
                    sim.issue(&*scheduler, warmup);
                }
            }
        }
    }
    Ok(sim.report(kind.name(), spec.nodes))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    DiskDone(usize),
    CpuDone(usize),
}

/// One request in service.
struct Job {
    node: usize,
    request: Request,
    /// Holds the node's active count, as in tcpvsd, until completion.
    pick: Option<Pick>,
    measured: bool,
}

/// A disk or a CPU: one job at a time, the others wait in order.
#[derive(Default)]
struct Resource {
    busy: bool,
    queue: VecDeque<usize>,
}

struct Node {
    cache: Lru,
    disk: Resource,
    cpu: Resource,
    /// Time integral of requests in service during the measurement.
    load_integral: u128,
    in_service: u64,
}

struct Simulation<'a> {
    spec: &'a ClusterSpec,
    workload: &'a Workload,
    servers: Vec<Arc<RealServer>>,
    index: HashMap<ServerAddr, usize>,
    nodes: Vec<Node>,
    jobs: Vec<Job>,
    free_jobs: Vec<usize>,
    events: BinaryHeap<Reverse<(Nanos, u64, Event)>>,
    sequence: u64,
    now: Nanos,
    next: usize,
    /// When measurement started (the first measured request was issued) and
    /// stopped (the last request was issued: the loop is no longer closed).
    window: (Option<Nanos>, Option<Nanos>),
    measured: usize,
    completed_in_window: usize,
    hits: usize,
    disk_bytes: u64,
}

impl<'a> Simulation<'a> {
    fn new(spec: &'a ClusterSpec, workload: &'a Workload) -> Self {
        let servers: Vec<Arc<RealServer>> = (0..spec.nodes)
            .map(|i| {
                let addr = SocketAddr::from(([10, 1, (i / 250) as u8, (i % 250) as u8 + 1], 80));
                Arc::new(RealServer::new(
                    ServerAddr(addr),
                    Weight(1),
                    Arc::new(ServerState::default()),
                ))
            })
            .collect();
        let index = servers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.addr, i))
            .collect();
        let nodes = (0..spec.nodes)
            .map(|_| Node {
                cache: Lru::new(spec.cache_bytes),
                disk: Resource::default(),
                cpu: Resource::default(),
                load_integral: 0,
                in_service: 0,
            })
            .collect();
        Self {
            spec,
            workload,
            servers,
            index,
            nodes,
            jobs: Vec::new(),
            free_jobs: Vec::new(),
            events: BinaryHeap::new(),
            sequence: 0,
            now: 0,
            next: 0,
            window: (None, None),
            measured: 0,
            completed_in_window: 0,
            hits: 0,
            disk_bytes: 0,
        }
    }

    fn measuring(&self) -> bool {
        self.window.0.is_some() && self.window.1.is_none()
    }

    /// Moves the clock, accounting each node's load over the elapsed time.
    fn advance(&mut self, time: Nanos) {
        if self.measuring() {
            let elapsed = u128::from(time - self.now);
            for node in &mut self.nodes {
                node.load_integral += elapsed * u128::from(node.in_service);
            }
        }
        self.now = time;
    }

    /// Sends the next request of the stream to the node the scheduler picks.
    fn issue(&mut self, scheduler: &dyn crate::schedulers::Scheduler, warmup: usize) {
        let request = self.workload.requests[self.next];
        let measured = self.next >= warmup;
        if measured && self.window.0.is_none() {
            self.window.0 = Some(self.now);
        }
        self.next += 1;
        if self.next == self.workload.requests.len() {
            self.window.1 = Some(self.now);
        }
        let path = &self.workload.paths[request.file as usize];
        let client = IpAddr::from([192, 168, (self.next >> 8) as u8, self.next as u8]);
        let info = RequestInfo::new(path, client);
        let pick = pick_server(scheduler, &info, &self.servers, &[]);
        let node = pick.as_ref().map_or(0, |p| self.index[&p.server.addr]);
        let job = Job {
            node,
            request,
            pick,
            measured,
        };
        let id = match self.free_jobs.pop() {
            Some(id) => {
                self.jobs[id] = job;
                id
            }
            None => {
                self.jobs.push(job);
                self.jobs.len() - 1
            }
        };
        self.nodes[node].in_service += 1;
        let hit = self.nodes[node].cache.access(request.file, request.size);
        if measured {
            self.measured += 1;
            self.hits += usize::from(hit);
        }
        if hit {
            self.enqueue(id, Stage::Cpu);
        } else {
            if measured {
                self.disk_bytes += request.size;
            }
            self.enqueue(id, Stage::Disk);
        }
    }

    /// What `stage` costs for a request of `size` bytes.
    fn service_time(&self, stage: Stage, size: u64) -> Nanos {
        let cost = &self.spec.cost;
        match stage {
            Stage::Disk => cost.disk_per_read + cost.disk_per_4k * size.div_ceil(4096),
            Stage::Cpu => cost.cpu_per_request + cost.cpu_per_512_bytes * size.div_ceil(512),
        }
    }

    /// Queues job `id` on its node's `stage`, starting it if that is free.
    fn enqueue(&mut self, id: usize, stage: Stage) {
        let node = self.jobs[id].node;
        let resource = self.nodes[node].resource(stage);
        if resource.busy {
            resource.queue.push_back(id);
        } else {
            resource.busy = true;
            self.start(id, stage);
        }
    }

    fn start(&mut self, id: usize, stage: Stage) {
        let time = self.now + self.service_time(stage, self.jobs[id].request.size);
        let event = match stage {
            Stage::Disk => Event::DiskDone(id),
            Stage::Cpu => Event::CpuDone(id),
        };
        self.sequence += 1;
        self.events.push(Reverse((time, self.sequence, event)));
    }

    /// `stage` of `node` finished a job: it takes the next one waiting.
    fn release(&mut self, node: usize, stage: Stage) {
        let resource = self.nodes[node].resource(stage);
        match resource.queue.pop_front() {
            Some(next) => self.start(next, stage),
            None => resource.busy = false,
        }
    }

    /// The file is read from disk: the request goes on to the CPU.
    fn disk_done(&mut self, id: usize) {
        self.release(self.jobs[id].node, Stage::Disk);
        self.enqueue(id, Stage::Cpu);
    }

    fn complete(&mut self, id: usize) {
        let node = self.jobs[id].node;
        self.release(node, Stage::Cpu);
        self.nodes[node].in_service -= 1;
        if self.measuring() && self.jobs[id].measured {
            self.completed_in_window += 1;
        }
        // Ends the scheduler's count of this request, as the end of a relay does.
        self.jobs[id].pick = None;
        self.free_jobs.push(id);
    }

    fn report(&self, scheduler: &str, nodes: usize) -> Report {
        let start = self.window.0.unwrap_or(0);
        let end = self.window.1.unwrap_or(self.now).max(start + 1);
        let seconds = (end - start) as f64 / 1e9;
        let loads: Vec<f64> = self.nodes.iter().map(|n| n.load_integral as f64).collect();
        let mean = loads.iter().sum::<f64>() / loads.len() as f64;
        let max = loads.iter().copied().fold(0.0, f64::max);
        Report {
            scheduler: scheduler.to_string(),
            nodes,
            hit_rate: round(self.hits as f64 / self.measured.max(1) as f64),
            throughput_rps: round(self.completed_in_window as f64 / seconds),
            imbalance: round(if mean > 0.0 { max / mean } else { 1.0 }),
            disk_bytes: self.disk_bytes,
            requests: self.measured,
        }
    }
}

#[derive(Clone, Copy)]
enum Stage {
    Disk,
    Cpu,
}

impl Node {
    fn resource(&mut self, stage: Stage) -> &mut Resource {
        match stage {
            Stage::Disk => &mut self.disk,
            Stage::Cpu => &mut self.cpu,
        }
    }
}

/// Rounds to 4 decimals, so reports print (and compare) the same everywhere.
fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 400 files of 64 KiB, requested in a fixed pseudo-random order with a
    /// skew toward low ids (a stand-in for Zipf that needs no generator).
    fn stream(requests: usize) -> Workload {
        let files = 400u32;
        let mut state = 12345u64;
        let requests = (0..requests)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (state >> 33) as u32 % files;
                let v = (state >> 13) as u32 % files;
                Request {
                    file: u.min(v),
                    size: 64 * 1024,
                }
            })
            .collect();
        Workload {
            paths: (0..files).map(|i| format!("/f/{i}")).collect(),
            requests,
        }
    }

    fn run(kind: SchedulerKind, nodes: usize, workload: &Workload) -> Report {
        // Each node caches a quarter of the 25 MiB working set.
        let spec = ClusterSpec::new(nodes, 400 * 64 * 1024 / 4);
        simulate(kind, &SchedOptions::new(), &spec, workload).unwrap()
    }

    #[test]
    fn lard_beats_round_robin_when_the_working_set_exceeds_a_node() {
        let workload = stream(20_000);
        let wrr = run(SchedulerKind::Wrr, 4, &workload);
        let lard = run(SchedulerKind::Lard, 4, &workload);
        assert!(lard.hit_rate > 0.9, "{lard:?}");
        assert!(wrr.hit_rate < 0.6, "{wrr:?}");
        assert!(
            lard.throughput_rps > 2.0 * wrr.throughput_rps,
            "{lard:?} vs {wrr:?}"
        );
        assert!(lard.imbalance < 1.5, "{lard:?}");
        // Bounded-load hashing keeps most of the locality without shared state.
        let chash = run(SchedulerKind::Chash, 4, &workload);
        assert!(
            chash.throughput_rps >= 0.8 * lard.throughput_rps,
            "{chash:?} vs {lard:?}"
        );
    }

    #[test]
    fn one_node_is_the_same_for_every_scheduler() {
        let workload = stream(5_000);
        let reports: Vec<Report> = SchedulerKind::ALL
            .iter()
            .map(|&k| run(k, 1, &workload))
            .collect();
        for report in &reports[1..] {
            assert_eq!(report.hit_rate, reports[0].hit_rate);
            assert_eq!(report.throughput_rps, reports[0].throughput_rps);
            assert_eq!(report.imbalance, 1.0);
        }
    }

    #[test]
    fn deterministic() {
        let workload = stream(5_000);
        for &kind in SchedulerKind::ALL {
            assert_eq!(run(kind, 3, &workload), run(kind, 3, &workload), "{kind}");
        }
    }

    #[test]
    fn empty_stream_is_an_error() {
        let spec = ClusterSpec::new(2, 1 << 20);
        let empty = Workload::default();
        assert!(simulate(SchedulerKind::Lard, &SchedOptions::new(), &spec, &empty).is_err());
    }
}
