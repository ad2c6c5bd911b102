//! LVS persistence (`ipvsadm -p`): a client's requests keep going to the
//! server that served it first, through any scheduler. A template client ->
//! server expires `timeout` after its last use, but never while it still has
//! requests in flight. Templates live in a bounded, sharded map, so a flood
//! of clients cannot grow memory past the bound.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::lard_map::TargetMap;
use super::{pick_server, Pick, RequestInfo, Scheduler};
use crate::table::{RealServer, ServerAddr};

/// Client templates remembered at most.
const TEMPLATES: usize = 1_000_000;

#[derive(Debug)]
struct Template {
    server: ServerAddr,
    expires: Instant,
    in_flight: Arc<AtomicU32>,
}

/// Counts a request in flight on a template until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicU32>);

impl InFlight {
    fn new(counter: &Arc<AtomicU32>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The client -> server templates of one service.
#[derive(Debug)]
pub struct Persistence {
    timeout: Duration,
    templates: TargetMap<Template>,
    hasher: ahash::RandomState,
}

impl Persistence {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            templates: TargetMap::new(TEMPLATES),
            hasher: ahash::RandomState::new(),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The client's template server when it may take this request, else the
    /// scheduler's pick, which then becomes the client's template.
    pub fn pick(
        &self,
        scheduler: &dyn Scheduler,
        request: &RequestInfo<'_>,
        candidates: &[Arc<RealServer>],
        exclude: &[ServerAddr],
    ) -> Option<Pick> {
        self.pick_at(Instant::now(), scheduler, request, candidates, exclude)
    }

    fn pick_at(
        &self,
        now: Instant,
        scheduler: &dyn Scheduler,
        request: &RequestInfo<'_>,
        candidates: &[Arc<RealServer>],
        exclude: &[ServerAddr],
    ) -> Option<Pick> {
        let key = self.hasher.hash_one(client_key(request.client));
        self.templates.entry(key, |template| {
            let live = template
                .as_ref()
                .filter(|t| now < t.expires || t.in_flight.load(Ordering::Relaxed) > 0);
            if let Some(t) = live {
                // Only the template's server: a one-element candidate set.
                let home = candidates
                    .iter()
                    .position(|s| s.addr == t.server)
                    .map_or(&[][..], |i| std::slice::from_ref(&candidates[i]));
                if let Some(pick) = pick_server(scheduler, request, home, exclude) {
                    let in_flight = t.in_flight.clone();
                    if let Some(t) = template.as_mut() {
                        t.expires = now + self.timeout;
                    }
                    return Some(pick.holding(InFlight::new(&in_flight)));
                }
            }
            // No template, an expired one, or its server cannot take the
            // request (drained, failed, not allowed by the rules): reschedule.
            let pick = pick_server(scheduler, request, candidates, exclude)?;
            let in_flight = Arc::new(AtomicU32::new(0));
            let guard = InFlight::new(&in_flight);
            *template = Some(Template {
                server: pick.server.addr,
                expires: now + self.timeout,
                in_flight,
            });
            Some(pick.holding(guard))
        })
    }
}

/// IPv4 clients mapped into IPv6 count as the same client.
fn client_key(client: IpAddr) -> [u8; 16] {
    match client {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{SchedOptions, SchedulerKind};
    use super::*;

    fn from(ip: [u8; 4]) -> RequestInfo<'static> {
        RequestInfo::new("/", IpAddr::from(ip))
    }

    #[test]
    fn a_client_sticks_until_its_template_expires() {
        let servers = servers(&[1, 1, 1]);
        let rr = SchedulerKind::Rr.build(&SchedOptions::new()).unwrap();
        let persist = Persistence::new(Duration::from_secs(300));
        let t0 = Instant::now();
        let first = persist
            .pick_at(t0, &*rr, &from([10, 0, 0, 1]), &servers, &[])
            .unwrap()
            .server
            .addr;
        for _ in 0..5 {
            let again = persist
                .pick_at(t0, &*rr, &from([10, 0, 0, 1]), &servers, &[])
                .unwrap();
            assert_eq!(again.server.addr, first);
        }
        // Another client is scheduled on its own (rr moves on).
        let other = persist
            .pick_at(t0, &*rr, &from([10, 0, 0, 2]), &servers, &[])
            .unwrap();
        assert_ne!(other.server.addr, first);
        // After the timeout, with nothing in flight, the client is rescheduled.
        let later = t0 + Duration::from_secs(301);
        let picks: Vec<ServerAddr> = (0..3)
            .map(|_| {
                let p = persist
                    .pick_at(later, &*rr, &from([10, 0, 0, 9]), &servers, &[])
                    .unwrap();
                p.server.addr
            })
            .collect();
        assert!(picks.iter().all(|a| *a == picks[0]));
    }

    #[test]
    fn a_template_in_use_does_not_expire() {
        let servers = servers(&[1, 1, 1]);
        let rr = SchedulerKind::Rr.build(&SchedOptions::new()).unwrap();
        let persist = Persistence::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let client = from([10, 0, 0, 1]);
        let held = persist.pick_at(t0, &*rr, &client, &servers, &[]).unwrap();
        let much_later = t0 + Duration::from_secs(3600);
        let again = persist
            .pick_at(much_later, &*rr, &client, &servers, &[])
            .unwrap();
        assert_eq!(again.server.addr, held.server.addr);
    }

    #[test]
    fn a_drained_template_server_is_left() {
        let servers = servers(&[1, 1]);
        let rr = SchedulerKind::Rr.build(&SchedOptions::new()).unwrap();
        let persist = Persistence::new(Duration::from_secs(300));
        let t0 = Instant::now();
        let client = from([10, 0, 0, 1]);
        let first = persist
            .pick_at(t0, &*rr, &client, &servers, &[])
            .unwrap()
            .server
            .addr;
        let moved = persist
            .pick_at(t0, &*rr, &client, &servers, &[first])
            .unwrap()
            .server
            .addr;
        assert_ne!(moved, first);
        // The new server is the template now.
        assert_eq!(
            persist
                .pick_at(t0, &*rr, &client, &servers, &[])
                .unwrap()
                .server
                .addr,
            moved
        );
    }
}
