//! Per-source limits of a service (nginx's `limit_conn` and `limit_req`,
//! HAProxy's stick tables): the connections each client address holds open
//! and the rate of its requests, shared by every worker.
//!
//! An address gets an entry when it first connects. The entry goes when it
//! holds no connection and its bucket is full again (it would be refused
//! nothing an entry made anew would not refuse): entries are swept from a
//! shard when it doubles in size, and no shard holds more than
//! [`MAX_PER_SHARD`] (a flood of spoofed addresses cannot grow memory without
//! bound: past it, new addresses are refused until entries expire). A
//! service with no per-source limit has no table at all, and costs nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::server::now_ms;

/// Shards of the table: cores refusing or counting different addresses
/// rarely wait for one another.
const SHARDS: usize = 16;

/// The most addresses one shard tracks (16 shards: 256 Ki addresses, about
/// 20 MB at most per service).
pub const MAX_PER_SHARD: usize = 16 * 1024;

/// A shard is swept when it reaches this many entries at least.
const FIRST_SWEEP: usize = 64;
/// How often a full shard is swept, at most (milliseconds).
const FULL_SWEEP_EVERY_MS: u64 = 100;

/// One token, in the thousandths a bucket counts in.
const TOKEN: u64 = 1000;

/// A token bucket: `burst` requests at once, then `rate` per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Tokens left, in thousandths.
    milli: u64,
    /// When it was last filled ([`now_ms`]).
    at_ms: u64,
}

impl Bucket {
    /// A full bucket of `burst` tokens at `now`.
    pub fn full(burst: u32, now: u64) -> Self {
        Self {
            milli: u64::from(burst) * TOKEN,
            at_ms: now,
        }
    }

    /// Fills the bucket for the time passed since it was last filled.
    fn fill(&mut self, now: u64, rate: u32, burst: u32) {
        let elapsed = now.saturating_sub(self.at_ms);
        // `rate` tokens a second: `rate` thousandths a millisecond.
        let gained = elapsed.saturating_mul(u64::from(rate));
        self.milli = (self.milli.saturating_add(gained)).min(u64::from(burst) * TOKEN);
        self.at_ms = now;
    }

    /// Takes a token for one request at `now`, or says how long until one is
    /// there (whole seconds, at least 1: what `Retry-After` takes).
    pub fn take(&mut self, now: u64, rate: u32, burst: u32) -> Result<(), Duration> {
        self.fill(now, rate, burst);
        if self.milli >= TOKEN {
            self.milli -= TOKEN;
            return Ok(());
        }
        let missing_ms = (TOKEN - self.milli).div_ceil(u64::from(rate.max(1)));
        Err(Duration::from_secs(missing_ms.div_ceil(1000).max(1)))
    }

    /// Whether it is full at `now` (a new entry would have the same).
    fn is_full(&self, now: u64, rate: u32, burst: u32) -> bool {
        let mut filled = *self;
        filled.fill(now, rate, burst);
        filled.milli >= u64::from(burst) * TOKEN
    }
}

/// What one address holds.
#[derive(Debug)]
struct Entry {
    conns: u32,
    bucket: Bucket,
}

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<IpAddr, Entry>,
    /// The size at which it is swept next (at most [`MAX_PER_SHARD`]).
    sweep_at: usize,
    /// When it was last swept ([`now_ms`]).
    swept_ms: u64,
}

/// The limits the table applies, as the service has them now (a reload
/// that changes them applies to the next connection or request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerSource {
    /// Connections at once (0: not counted).
    pub max_conns: u32,
    /// Requests a second (0: not limited).
    pub rate: u32,
    pub burst: u32,
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It holds `max_conns` connections already.
    Connections,
    /// Over its rate: a token comes after this long.
    Rate(Duration),
    /// The table is full of other addresses.
    TableFull,
}

impl Refusal {
    /// How long the client should wait before it tries again.
    pub fn retry_after(self) -> Duration {
        match self {
            Refusal::Rate(wait) => wait,
            Refusal::Connections | Refusal::TableFull => Duration::from_secs(1),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Connections => "over max_conns_per_source",
            Refusal::Rate(_) => "over rate_per_source",
            Refusal::TableFull => "the per-source table is full",
        })
    }
}

/// A service's per-source table.
#[derive(Debug)]
pub struct Sources {
    shards: Vec<Mutex<Shard>>,
    hasher: ahash::RandomState,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: ahash::RandomState::new(),
        }
    }
}

/// One connection counted against its address, until dropped.
#[derive(Debug)]
pub struct SourceConn {
    sources: Arc<Sources>,
    addr: IpAddr,
}

impl Drop for SourceConn {
    fn drop(&mut self) {
        let mut shard = self.sources.shard(self.addr);
        if let Some(entry) = shard.entries.get_mut(&self.addr) {
            entry.conns = entry.conns.saturating_sub(1);
        }
    }
}

impl Sources {
    /// Counts a new connection from `addr`, or refuses it; with a rate but
    /// no connection limit it is not counted (`Ok(None)`).
    pub fn connect(
        self: &Arc<Self>,
        addr: IpAddr,
        limits: PerSource,
    ) -> Result<Option<SourceConn>, Refusal> {
        if limits.max_conns == 0 {
            return Ok(None);
        }
        let now = now_ms();
        let mut shard = self.shard(addr);
        let entry = shard.entry(addr, now, limits)?;
        if entry.conns >= limits.max_conns {
            return Err(Refusal::Connections);
        }
        entry.conns += 1;
        Ok(Some(SourceConn {
            sources: self.clone(),
            addr,
        }))
    }

    /// Takes a token for a request from `addr`, or refuses it.
    pub fn request(&self, addr: IpAddr, limits: PerSource) -> Result<(), Refusal> {
        if limits.rate == 0 {
            return Ok(());
        }
        let now = now_ms();
        let mut shard = self.shard(addr);
        let entry = shard.entry(addr, now, limits)?;
        entry
            .bucket
            .take(now, limits.rate, limits.burst)
            .map_err(Refusal::Rate)
    }

    /// Addresses tracked, all shards together.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, addr: IpAddr) -> MutexGuard<'_, Shard> {
        lock(&self.shards[self.hasher.hash_one(addr) as usize % SHARDS])
    }
}

impl Shard {
    /// The entry of `addr`, made when it has none and there is room.
    fn entry(&mut self, addr: IpAddr, now: u64, limits: PerSource) -> Result<&mut Entry, Refusal> {
        if !self.entries.contains_key(&addr) {
            let len = self.entries.len();
            // Full, it is swept again now and then, not for every new
            // address: a flood of them must not sweep it under the lock each.
            let due = len < MAX_PER_SHARD || now >= self.swept_ms + FULL_SWEEP_EVERY_MS;
            if len >= self.sweep_at.max(FIRST_SWEEP) && due {
                self.sweep(now, limits);
            }
            if self.entries.len() >= MAX_PER_SHARD {
                return Err(Refusal::TableFull);
            }
        }
        Ok(self.entries.entry(addr).or_insert_with(|| Entry {
            conns: 0,
            bucket: Bucket::full(limits.burst, now),
        }))
    }

    /// Drops the entries that hold nothing: no connection, a full bucket.
    fn sweep(&mut self, now: u64, limits: PerSource) {
        self.entries
            .retain(|_, e| e.conns > 0 || !e.bucket.is_full(now, limits.rate, limits.burst));
        // Clamped: a shard full of live entries must be swept again once
        // they leave, or it would refuse new addresses for good.
        self.sweep_at = (self.entries.len() * 2).clamp(FIRST_SWEEP, MAX_PER_SHARD);
        self.swept_ms = now;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        // 2 a second, 4 at once.
        let mut bucket = Bucket::full(4, 0);
        for _ in 0..4 {
            assert_eq!(bucket.take(0, 2, 4), Ok(()));
        }
        assert_eq!(bucket.take(0, 2, 4), Err(Duration::from_secs(1)));
        assert_eq!(bucket.take(499, 2, 4), Err(Duration::from_secs(1)));
        assert_eq!(bucket.take(500, 2, 4), Ok(()), "one token per 500 ms");
        assert!(bucket.take(500, 2, 4).is_err());
        // Never more than the burst, however long it rested.
        assert!(bucket.is_full(1_000_000, 2, 4));
        for _ in 0..4 {
            assert_eq!(bucket.take(1_000_000, 2, 4), Ok(()));
        }
        assert!(bucket.take(1_000_000, 2, 4).is_err());
        // A slow rate: the wait is whole seconds, rounded up.
        let mut slow = Bucket::full(1, 0);
        assert_eq!(slow.take(0, 1, 1), Ok(()));
        assert_eq!(slow.take(100, 1, 1), Err(Duration::from_secs(1)));
    }

    fn limits(max_conns: u32, rate: u32) -> PerSource {
        PerSource {
            max_conns,
            rate,
            burst: rate,
        }
    }

    #[test]
    fn connections_per_address_are_counted_and_given_back() {
        let sources = Arc::new(Sources::default());
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let two = limits(2, 0);
        let held: Vec<_> = (0..2).map(|_| sources.connect(a, two).unwrap()).collect();
        assert_eq!(sources.connect(a, two).unwrap_err(), Refusal::Connections);
        assert!(sources.connect(b, two).is_ok(), "another address");
        drop(held);
        assert!(sources.connect(a, two).is_ok(), "given back");
        assert!(
            sources.connect(a, limits(0, 5)).unwrap().is_none(),
            "a rate alone counts no connection"
        );
    }

    #[test]
    fn entries_that_hold_nothing_are_swept_and_the_table_is_bounded() {
        let sources = Arc::new(Sources::default());
        let one = limits(1, 0);
        let held: Vec<_> = (0..SHARDS * MAX_PER_SHARD / 4)
            .map(|i| {
                let addr = IpAddr::from((i as u32 + 1).to_be_bytes());
                let conn = sources.connect(addr, one).unwrap();
                // Half leave at once: their entries may go.
                (i % 2 == 0).then_some(conn)
            })
            .collect();
        let kept = held.iter().flatten().count();
        assert!(
            sources.len() < kept + kept / 2 + SHARDS * FIRST_SWEEP,
            "not swept: {} entries for {kept} connections",
            sources.len()
        );
        drop(held);
        // Past the bound, new addresses are refused, never tracked.
        let mut refused = 0;
        let mut conns = Vec::new();
        for i in 0..(SHARDS * MAX_PER_SHARD + 1000) as u32 {
            match sources.connect(IpAddr::from((i | 0x8000_0000).to_be_bytes()), one) {
                Ok(conn) => conns.push(conn),
                Err(refusal) => {
                    assert_eq!(refusal, Refusal::TableFull);
                    refused += 1;
                }
            }
        }
        assert!(refused >= 1000, "{refused}");
        assert!(sources.len() <= SHARDS * MAX_PER_SHARD);
        // Once they leave, a full shard is swept again: new addresses are
        // tracked, not refused for good.
        drop(conns);
        std::thread::sleep(std::time::Duration::from_millis(FULL_SWEEP_EVERY_MS + 50));
        for i in 0..1000u32 {
            let addr = IpAddr::from((i | 0x4000_0000).to_be_bytes());
            assert!(
                sources.connect(addr, one).is_ok(),
                "new address {addr} refused"
            );
        }
    }
}
