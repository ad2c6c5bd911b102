//! Per-worker counters for /metrics: each worker writes only its own
//! [`WorkerCounters`] (aligned to a cache line of its own, so no line is
//! written per request by two cores); the admin thread sums them on read.
//!
//! The exchange counts sit behind a mutex that only its worker takes per
//! exchange: uncontended but for the instant a scrape copies them out.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::table::{ServerAddr, Table};

/// Upper bounds of the request duration histogram, in seconds (Prometheus'
/// default buckets: from a cached answer to a slow backend).
pub const DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The status classes counted: 1xx to 5xx, and the exchanges that ended
/// before any status was sent.
pub const CODE_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// What one worker counted.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerCounters {
    /// Client connections open now.
    pub open: AtomicUsize,
    /// Client connections accepted since start.
    pub accepted: AtomicU64,
    exchanges: Mutex<Exchanges>,
}

/// Exchange counts by service, then by the server that got the request
/// (`None`: no server did).
pub type Exchanges = HashMap<String, HashMap<Option<ServerAddr>, ExchangeCounts>>;

/// The counts of the exchanges of one service and server.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ExchangeCounts {
    /// By [`CODE_CLASSES`].
    pub by_class: [u64; CODE_CLASSES.len()],
    /// Exchanges that took at most each of [`DURATION_BUCKETS`] (not
    /// cumulative: the page sums them).
    pub by_duration: [u64; DURATION_BUCKETS.len()],
    /// Seconds, all exchanges together.
    pub seconds: f64,
    /// Response body bytes sent to clients (as the access log's, nginx's
    /// `$body_bytes_sent`).
    pub body_bytes: u64,
    /// Request bytes received from clients: heads and bodies (nginx's
    /// `$request_length`).
    pub request_bytes: u64,
}

/// What one finished exchange adds to the counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exchange {
    pub status: Option<u16>,
    pub took: Duration,
    pub request_bytes: u64,
    pub body_bytes: u64,
}

impl ExchangeCounts {
    /// All exchanges counted.
    pub fn total(&self) -> u64 {
        self.by_class.iter().sum()
    }

    fn count(&mut self, exchange: Exchange) {
        self.by_class[class_index(exchange.status)] += 1;
        self.body_bytes += exchange.body_bytes;
        self.request_bytes += exchange.request_bytes;
        let seconds = exchange.took.as_secs_f64();
        if let Some(bucket) = DURATION_BUCKETS.iter().position(|&le| seconds <= le) {
            self.by_duration[bucket] += 1;
        }
        self.seconds += seconds;
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &ExchangeCounts) {
        for (sum, n) in self.by_class.iter_mut().zip(other.by_class) {
            *sum += n;
        }
        for (sum, n) in self.by_duration.iter_mut().zip(other.by_duration) {
            *sum += n;
        }
        self.seconds += other.seconds;
        self.body_bytes += other.body_bytes;
        self.request_bytes += other.request_bytes;
    }
}

/// Where a status falls in [`CODE_CLASSES`].
fn class_index(status: Option<u16>) -> usize {
    match status {
        Some(code @ 100..=599) => usize::from(code / 100 - 1),
        _ => CODE_CLASSES.len() - 1,
    }
}

impl WorkerCounters {
    /// Counts one finished exchange of `service`.
    pub fn count_exchange(&self, service: &str, server: Option<ServerAddr>, exchange: Exchange) {
        let mut exchanges = self
            .exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The service's key is allocated once, at its first exchange.
        let servers = match exchanges.get_mut(service) {
            Some(servers) => servers,
            None => exchanges.entry(service.to_string()).or_default(),
        };
        servers.entry(server).or_default().count(exchange);
    }

    /// A copy of the exchange counts so far.
    pub fn exchanges(&self) -> Exchanges {
        self.exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Exchange counts by service and server, all workers together.
pub type Summed = BTreeMap<String, BTreeMap<Option<ServerAddr>, ExchangeCounts>>;

/// The workers' `counters` summed; every server of `table` is there, counted
/// or not, so that its series exist (at 0) from the first read.
pub fn sum(table: &Table, counters: &[Arc<WorkerCounters>]) -> Summed {
    let mut sum = Summed::new();
    for service in &table.services {
        let servers = sum.entry(service.ident.to_string()).or_default();
        for server in &service.servers {
            servers.entry(Some(server.addr)).or_default();
        }
    }
    for worker in counters {
        for (service, servers) in worker.exchanges() {
            let into = sum.entry(service).or_default();
            for (server, counts) in servers {
                into.entry(server).or_default().add(&counts);
            }
        }
    }
    sum
}

thread_local! {
    /// The counters of the worker running on this thread; `None` off the
    /// workers (tests, tools), where nothing is counted.
    static THIS_WORKER: RefCell<Option<Arc<WorkerCounters>>> = const { RefCell::new(None) };
}

/// Makes `counters` the ones [`count_exchange`] writes on this thread.
pub fn install(counters: Arc<WorkerCounters>) {
    THIS_WORKER.with(|this| *this.borrow_mut() = Some(counters));
}

/// Counts a finished exchange into the counters of this thread's worker.
pub fn count_exchange(service: &str, server: Option<ServerAddr>, exchange: Exchange) {
    THIS_WORKER.with(|this| {
        if let Some(counters) = &*this.borrow() {
            counters.count_exchange(service, server, exchange);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(status: Option<u16>, took: Duration, body_bytes: u64) -> Exchange {
        Exchange {
            status,
            took,
            request_bytes: 0,
            body_bytes,
        }
    }

    #[test]
    fn statuses_fall_in_their_class_and_durations_in_their_bucket() {
        let counters = WorkerCounters::default();
        let server = Some(ServerAddr("127.0.0.1:9001".parse().unwrap()));
        counters.count_exchange(
            "web",
            server,
            exchange(Some(200), Duration::from_millis(3), 100),
        );
        counters.count_exchange(
            "web",
            server,
            exchange(Some(503), Duration::from_millis(30), 20),
        );
        counters.count_exchange("web", None, exchange(None, Duration::from_secs(60), 100));
        let exchanges = counters.exchanges();
        let by_server = &exchanges["web"];
        let served = &by_server[&server];
        assert_eq!(served.by_class, [0, 1, 0, 0, 1, 0]);
        assert_eq!(served.by_duration[0], 1, "3 ms is within 5 ms");
        assert_eq!(served.by_duration[3], 1, "30 ms is within 50 ms");
        assert_eq!(served.total(), 2);
        assert_eq!(served.body_bytes, 120);
        let unserved = &by_server[&None];
        assert_eq!(unserved.by_class, [0, 0, 0, 0, 0, 1]);
        assert_eq!(
            unserved.by_duration.iter().sum::<u64>(),
            0,
            "past every bucket: +Inf only"
        );
        assert!((unserved.seconds - 60.0).abs() < 1e-9);
    }

    #[test]
    fn nothing_is_counted_off_the_workers() {
        // No panic, no counters: a thread with none installed.
        count_exchange("web", None, exchange(Some(200), Duration::ZERO, 0));
        let counters = Arc::new(WorkerCounters::default());
        std::thread::scope(|s| {
            s.spawn(|| {
                install(counters.clone());
                count_exchange("web", None, exchange(Some(404), Duration::ZERO, 0));
            });
        });
        assert_eq!(counters.exchanges()["web"][&None].by_class[3], 1);
    }
}
