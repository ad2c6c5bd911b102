//! Request rates for the /stats page: the admin thread samples every
//! server's request counter once a second and keeps the last few samples;
//! a rate is what the counter gained since the oldest of them, per second.
//! Sampled off the workers from one relaxed load per server, so the page
//! shows a rate that is right under load (and without JavaScript) at no
//! cost to the requests.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::table::{ServerAddr, ServiceId, Table};

/// How often the counters are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How far back a rate looks: long enough to smooth a burst, short enough
/// to follow a change of load within seconds (ipvsadm's estimator looks 2 s
/// back; HAProxy's `rate` 1 s).
const WINDOW: Duration = Duration::from_secs(5);

/// A server of a service, as the samples know it.
type Key = (ServiceId, ServerAddr);

/// One sample: when, and each server's requests since start.
#[derive(Debug)]
struct Sample {
    at: Instant,
    requests: HashMap<Key, u64>,
}

/// The recent samples of every server's request counter.
#[derive(Debug, Default)]
pub struct RequestRates {
    samples: Mutex<VecDeque<Sample>>,
}

impl RequestRates {
    /// Samples every server of `table` as of `at`; samples older than the
    /// window (but the newest such, the window's start) are dropped.
    pub fn sample(&self, table: &Table, at: Instant) {
        let requests = table
            .services
            .iter()
            .flat_map(|service| {
                service.servers.iter().map(|server| {
                    let key = (service.ident.clone(), server.addr);
                    (key, server.state.requests())
                })
            })
            .collect();
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.push_back(Sample { at, requests });
        while samples
            .get(1)
            .is_some_and(|next| at.duration_since(next.at) >= WINDOW)
        {
            samples.pop_front();
        }
    }

    /// Requests per second of `server` of `service`, whose counter reads
    /// `requests` at `now`: since the oldest sample that knew it. `None`
    /// before a sample of it is at least a tenth of a second old.
    pub fn rate(
        &self,
        service: &ServiceId,
        server: ServerAddr,
        requests: u64,
        now: Instant,
    ) -> Option<f64> {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (service.clone(), server);
        let (at, then) = samples
            .iter()
            .find_map(|sample| Some((sample.at, *sample.requests.get(&key)?)))?;
        let seconds = now.checked_duration_since(at)?.as_secs_f64();
        if seconds < 0.1 {
            return None;
        }
        // A counter zeroed since (`tcpvsadm -Z`) counts from 0.
        let gained = requests.checked_sub(then).unwrap_or(requests);
        Some(gained as f64 / seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::tests::table_from;
    use crate::table::RealServer;
    use std::sync::Arc;

    /// A table of one service `web` with one server, and the two.
    fn web() -> (Table, ServiceId, Arc<RealServer>) {
        let table = table_from(
            "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
             [[service.server]]\naddress = \"127.0.0.1:9001\"\n",
        );
        let service = &table.services[0];
        let (ident, server) = (service.ident.clone(), service.servers[0].clone());
        (table, ident, server)
    }

    #[test]
    fn a_rate_is_what_the_counter_gained_per_second_over_the_window() {
        let (table, web, server) = web();
        let rates = RequestRates::default();
        let t0 = Instant::now();
        assert_eq!(rates.rate(&web, server.addr, 0, t0), None, "no sample yet");
        rates.sample(&table, t0);
        assert_eq!(rates.rate(&web, server.addr, 5, t0), None, "too recent");
        for _ in 0..200 {
            server.state.count_request();
        }
        let t2 = t0 + Duration::from_secs(2);
        let rate = rates.rate(&web, server.addr, server.state.requests(), t2);
        assert_eq!(rate, Some(100.0));
        // Samples older than the window stop counting: the rate follows
        // the load down.
        for second in 1..=7 {
            rates.sample(&table, t0 + Duration::from_secs(second));
        }
        let t8 = t0 + Duration::from_secs(8);
        let rate = rates.rate(&web, server.addr, server.state.requests(), t8);
        assert_eq!(rate, Some(0.0), "idle for the whole window");
    }

    #[test]
    fn a_zeroed_counter_counts_from_zero() {
        let (table, web, server) = web();
        let rates = RequestRates::default();
        for _ in 0..50 {
            server.state.count_request();
        }
        let t0 = Instant::now();
        rates.sample(&table, t0);
        server.state.zero();
        let rate = rates.rate(&web, server.addr, 10, t0 + Duration::from_secs(1));
        assert_eq!(rate, Some(10.0));
    }
}
