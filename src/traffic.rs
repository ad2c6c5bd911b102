//! The traffic `tcpvsadm -L --stats` and `-L --rate` and the /stats page
//! show, worked out off the workers from counters that only ever grow: the
//! workers' exchange counts (`admin::counters`) and each server's live state.
//!
//! `-Z` does not reset those counters (/metrics must stay monotonic, as
//! Prometheus expects): it records them as a baseline that listings
//! subtract. Rates come from a sampler thread that reads the counters every
//! [`SAMPLE_INTERVAL`], as ipvsadm's estimator does; the workers do nothing
//! for it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tcpvs_command::view::{RateView, Responses, TrafficView};

use crate::admin::counters::{self, CODE_CLASSES};
use crate::table::{ServerAddr, Table};
use crate::worker::Workers;

/// How often the sampler reads the counters; rates are over this interval.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// Whose traffic: a server of a service, or (`None`) the service's own, the
/// requests no server got.
pub type Key = (String, Option<ServerAddr>);

/// The counters of one [`Key`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests sent to the server (a pick whose connect failed is not one).
    pub sent: u64,
    /// Exchanges finished, by the class of their status ([`CODE_CLASSES`]).
    pub by_class: [u64; CODE_CLASSES.len()],
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub failures: u64,
    /// Requests the service retried on another server (its own key only).
    pub retried: u64,
}

impl Counts {
    /// Field by field, `f(self, other)`.
    fn combine(&self, other: &Counts, f: impl Fn(u64, u64) -> u64) -> Counts {
        Counts {
            sent: f(self.sent, other.sent),
            by_class: std::array::from_fn(|i| f(self.by_class[i], other.by_class[i])),
            in_bytes: f(self.in_bytes, other.in_bytes),
            out_bytes: f(self.out_bytes, other.out_bytes),
            failures: f(self.failures, other.failures),
            retried: f(self.retried, other.retried),
        }
    }

    /// What was counted since `earlier` (0 where a counter started over,
    /// as a server removed and added again does).
    pub fn since(&self, earlier: &Counts) -> Counts {
        self.combine(earlier, u64::saturating_sub)
    }

    pub fn add(&mut self, other: &Counts) {
        *self = self.combine(other, u64::saturating_add);
    }

    /// As the listing shows them.
    pub fn view(&self) -> TrafficView {
        TrafficView {
            requests: self.by_class.iter().sum(),
            responses: Responses::from_classes(self.by_class),
            in_bytes: self.in_bytes,
            out_bytes: self.out_bytes,
            failures: self.failures,
        }
    }

    /// Per second, had these been counted over `interval`.
    fn rate(&self, interval: Duration) -> RateView {
        let seconds = interval.as_secs_f64().max(f64::EPSILON);
        let per_second = |n: u64| (n as f64 / seconds).round() as u64;
        RateView {
            requests: per_second(self.by_class.iter().sum()),
            in_bytes: per_second(self.in_bytes),
            out_bytes: per_second(self.out_bytes),
            errors: per_second(self.failures),
        }
    }
}

/// Each key's rates over the last interval sampled.
pub type Rates = BTreeMap<Key, RateView>;

/// Every key's counters at one moment.
pub type Snapshot = BTreeMap<Key, Counts>;

/// The counters of `table` now, all workers together.
pub fn snapshot(table: &Table, workers: &Workers) -> Snapshot {
    let mut snapshot = Snapshot::new();
    for (service, servers) in counters::sum(table, workers.counters()) {
        for (server, exchanges) in servers {
            let counts = snapshot.entry((service.clone(), server)).or_default();
            for (sum, n) in counts.by_class.iter_mut().zip(exchanges.by_class) {
                *sum += n;
            }
            counts.in_bytes += exchanges.request_bytes;
            counts.out_bytes += exchanges.body_bytes;
        }
    }
    for service in &table.services {
        let ident = service.ident.to_string();
        let own = snapshot.entry((ident.clone(), None)).or_default();
        own.retried = service.state.retried();
        for server in &service.servers {
            let counts = snapshot
                .entry((ident.clone(), Some(server.addr)))
                .or_default();
            counts.sent = server.state.requests();
            counts.failures = server.state.failures();
        }
    }
    snapshot
}

/// The two latest samples.
#[derive(Default)]
struct Samples {
    previous: Option<(Instant, Snapshot)>,
    latest: Option<(Instant, Snapshot)>,
}

/// The baseline of `-Z` and the samples of the rates.
#[derive(Default)]
pub struct Traffic {
    baseline: Mutex<Snapshot>,
    samples: Mutex<Samples>,
}

impl Traffic {
    /// Starts sampling `table` every [`SAMPLE_INTERVAL`] on a thread of its
    /// own, which ends when the returned `Traffic` is dropped.
    pub fn start(table: Arc<ArcSwap<Table>>, workers: Arc<Workers>) -> Arc<Self> {
        let traffic = Arc::new(Traffic::default());
        let weak = Arc::downgrade(&traffic);
        let sampler = move || sample_until_dropped(&weak, &table, &workers);
        if let Err(e) = std::thread::Builder::new()
            .name("tcpvs-rates".into())
            .spawn(sampler)
        {
            // Listings still work; only their rates stay at 0.
            tracing::warn!(
                "no rates for tcpvsadm -L --rate and /stats: cannot start a thread: {e}"
            );
        }
        traffic
    }

    /// `-Z`: what `now` holds of the keys `zeroed` picks is what listings
    /// count from.
    pub fn zero(&self, now: Snapshot, zeroed: impl Fn(&Key) -> bool) {
        let mut baseline = self.baseline.lock().unwrap_or_else(PoisonError::into_inner);
        baseline.extend(now.into_iter().filter(|(key, _)| zeroed(key)));
    }

    /// What `now` counted since `-Z` (or since start).
    pub fn since_zero(&self, now: &Snapshot) -> Snapshot {
        let baseline = self.baseline.lock().unwrap_or_else(PoisonError::into_inner);
        now.iter()
            .map(|(key, counts)| {
                let base = baseline.get(key).copied().unwrap_or_default();
                (key.clone(), counts.since(&base))
            })
            .collect()
    }

    /// Each key's rates over the last interval sampled (none before two
    /// samples).
    pub fn rates(&self) -> Rates {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let (Some((then, earlier)), Some((now, latest))) = (&samples.previous, &samples.latest)
        else {
            return BTreeMap::new();
        };
        let interval = now.duration_since(*then);
        latest
            .iter()
            .map(|(key, counts)| {
                let before = earlier.get(key).copied().unwrap_or_default();
                (key.clone(), counts.since(&before).rate(interval))
            })
            .collect()
    }

    fn push(&self, at: Instant, snapshot: Snapshot) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.previous = samples.latest.replace((at, snapshot));
    }
}

fn sample_until_dropped(traffic: &Weak<Traffic>, table: &ArcSwap<Table>, workers: &Workers) {
    loop {
        let Some(traffic) = traffic.upgrade() else {
            return;
        };
        traffic.push(Instant::now(), snapshot(&table.load(), workers));
        drop(traffic);
        std::thread::sleep(SAMPLE_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> Key {
        (
            "web".to_string(),
            Some(ServerAddr(([127, 0, 0, 1], port).into())),
        )
    }

    fn counts(requests: u64, bytes: u64, failures: u64) -> Counts {
        Counts {
            sent: requests,
            by_class: [0, requests, 0, 0, 0, 0],
            in_bytes: bytes,
            out_bytes: 2 * bytes,
            failures,
            retried: 0,
        }
    }

    #[test]
    fn zero_sets_a_baseline_and_leaves_the_counters_alone() {
        let traffic = Traffic::default();
        let before: Snapshot = [(key(1), counts(10, 100, 1)), (key(2), counts(5, 50, 0))].into();
        traffic.zero(before, |k| *k == key(1));
        let now: Snapshot = [(key(1), counts(13, 130, 1)), (key(2), counts(6, 60, 0))].into();
        let since = traffic.since_zero(&now);
        assert_eq!(since[&key(1)], counts(3, 30, 0));
        assert_eq!(since[&key(2)], counts(6, 60, 0), "not zeroed");
        let view = since[&key(1)].view();
        assert_eq!((view.requests, view.responses.success), (3, 3));
        assert_eq!((view.in_bytes, view.out_bytes), (30, 60));
    }

    #[test]
    fn a_counter_started_over_counts_from_zero() {
        assert_eq!(
            counts(2, 20, 0).since(&counts(10, 100, 1)),
            Counts::default()
        );
    }

    #[test]
    fn rates_are_over_the_last_two_samples() {
        let traffic = Traffic::default();
        assert!(traffic.rates().is_empty(), "one interval needs two samples");
        let start = Instant::now();
        traffic.push(start, [(key(1), counts(10, 1000, 0))].into());
        traffic.push(
            start + Duration::from_secs(2),
            [(key(1), counts(30, 3000, 4))].into(),
        );
        let rate = traffic.rates()[&key(1)];
        assert_eq!(
            rate,
            RateView {
                requests: 10,
                in_bytes: 1000,
                out_bytes: 2000,
                errors: 2
            }
        );
        traffic.push(
            start + Duration::from_secs(4),
            [(key(1), counts(30, 3000, 4))].into(),
        );
        assert_eq!(traffic.rates()[&key(1)], RateView::default(), "stopped");
    }
}
