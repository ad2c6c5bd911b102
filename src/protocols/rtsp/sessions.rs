//! Which real server owns each RTSP session, shared by every worker: learned
//! from SETUP responses, so that a later request carrying the Session (on the
//! same connection or a new one) reaches the server that issued it.
//!
//! An entry lives while a connection that learned it is open, and `timeout`
//! after its last use once none is (RFC 2326 12.37: the server keeps a session
//! that long without a request). TEARDOWN removes it. The table is split into
//! locked shards and bounded: when a shard is full, expired entries go first,
//! then the least recently used one that no open connection holds.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::table::ServerAddr;

const SHARDS: usize = 16;
/// Sessions kept per service, all shards together.
pub const DEFAULT_CAPACITY: usize = 64 * 1024;

#[derive(Debug)]
struct Entry {
    server: ServerAddr,
    timeout: Duration,
    last_used: Instant,
    /// Open connections that learned this session.
    holders: u32,
}

impl Entry {
    fn expired(&self, now: Instant) -> bool {
        self.holders == 0 && now.saturating_duration_since(self.last_used) >= self.timeout
    }
}

/// The session table of one RTSP service.
#[derive(Debug)]
pub struct SessionTable {
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    per_shard: usize,
    /// Keyed per process: a client choosing session ids cannot aim at one shard.
    spread: ahash::RandomState,
}

impl Default for SessionTable {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl SessionTable {
    /// A table of at most about `capacity` sessions.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            spread: ahash::RandomState::new(),
        }
    }

    /// Records that `server` issued session `id`, held by the connection
    /// that saw the SETUP response until it calls [`release`](Self::release).
    /// `false`: the table is full of held sessions, and this one is not kept.
    pub fn learn(&self, id: &str, server: ServerAddr, timeout: Duration, now: Instant) -> bool {
        let mut shard = self.shard(id);
        if let Some(entry) = shard.get_mut(id) {
            // A second SETUP in the same session (another track), or a
            // reused id: the newest issuer owns it.
            if entry.server != server {
                entry.holders = 0;
            }
            entry.server = server;
            entry.timeout = timeout;
            entry.last_used = now;
            entry.holders += 1;
            return true;
        }
        if shard.len() >= self.per_shard && !make_room(&mut shard, now) {
            return false;
        }
        shard.insert(
            id.to_string(),
            Entry {
                server,
                timeout,
                last_used: now,
                holders: 1,
            },
        );
        true
    }

    /// The server that owns session `id`, refreshing it; `None` if unknown
    /// or expired.
    pub fn lookup(&self, id: &str, now: Instant) -> Option<ServerAddr> {
        let mut shard = self.shard(id);
        let entry = shard.get_mut(id)?;
        if entry.expired(now) {
            shard.remove(id);
            return None;
        }
        entry.last_used = now;
        Some(entry.server)
    }

    /// A connection that learned `id` from `server` closed: the session now
    /// lives until its timeout, unless another connection holds it.
    pub fn release(&self, id: &str, server: ServerAddr, now: Instant) {
        if let Some(entry) = self.shard(id).get_mut(id) {
            if entry.server == server {
                entry.holders = entry.holders.saturating_sub(1);
                entry.last_used = now;
            }
        }
    }

    /// The session ended (TEARDOWN, or its server's connection broke).
    pub fn forget(&self, id: &str, server: ServerAddr) {
        let mut shard = self.shard(id);
        if shard.get(id).is_some_and(|entry| entry.server == server) {
            shard.remove(id);
        }
    }

    /// Live sessions, expired ones dropped on the way.
    pub fn len(&self, now: Instant) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let mut shard = lock(shard);
                shard.retain(|_, entry| !entry.expired(now));
                shard.len()
            })
            .sum()
    }

    pub fn is_empty(&self, now: Instant) -> bool {
        self.len(now) == 0
    }

    fn shard(&self, id: &str) -> MutexGuard<'_, HashMap<String, Entry>> {
        let index = (self.spread.hash_one(id) % SHARDS as u64) as usize;
        lock(&self.shards[index])
    }
}

/// Frees one slot in a full shard: expired entries first, else the least
/// recently used unheld one. `false` if every entry is held.
fn make_room(shard: &mut HashMap<String, Entry>, now: Instant) -> bool {
    let before = shard.len();
    shard.retain(|_, entry| !entry.expired(now));
    if shard.len() < before {
        return true;
    }
    let oldest = shard
        .iter()
        .filter(|(_, entry)| entry.holders == 0)
        .min_by_key(|(_, entry)| entry.last_used)
        .map(|(id, _)| id.clone());
    oldest.is_some_and(|id| shard.remove(&id).is_some())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // An entry is a few plain fields, never left half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn server(port: u16) -> ServerAddr {
        ServerAddr(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_learned_session_routes_until_torn_down() {
        let table = SessionTable::default();
        let now = Instant::now();
        assert!(table.learn("abc", server(1), MINUTE, now));
        assert_eq!(table.lookup("abc", now), Some(server(1)));
        assert_eq!(table.lookup("abd", now), None);
        table.forget("abc", server(1));
        assert_eq!(table.lookup("abc", now), None);
    }

    #[test]
    fn held_sessions_never_expire_released_ones_do() {
        let table = SessionTable::default();
        let start = Instant::now();
        table.learn("s", server(1), MINUTE, start);
        let later = start + 10 * MINUTE;
        assert_eq!(table.lookup("s", later), Some(server(1)), "held");
        table.release("s", server(1), later);
        assert_eq!(table.lookup("s", later + MINUTE / 2), Some(server(1)));
        // The lookup refreshed it: a timeout from then on.
        assert_eq!(
            table.lookup("s", later + MINUTE / 2 + MINUTE - Duration::from_millis(1)),
            Some(server(1))
        );
        assert_eq!(table.lookup("s", later + 3 * MINUTE), None);
        assert!(table.is_empty(later));
    }

    #[test]
    fn only_the_owner_can_forget_or_release() {
        let table = SessionTable::default();
        let now = Instant::now();
        table.learn("s", server(1), MINUTE, now);
        table.forget("s", server(2));
        table.release("s", server(2), now);
        assert_eq!(table.lookup("s", now + 2 * MINUTE), Some(server(1)));
        // A newer issuer of the same id takes it over.
        table.learn("s", server(2), MINUTE, now);
        table.release("s", server(2), now);
        assert_eq!(table.lookup("s", now), Some(server(2)));
        assert_eq!(table.lookup("s", now + 2 * MINUTE), None);
    }

    #[test]
    fn bounded_unheld_first_then_refused() {
        let table = SessionTable::new(SHARDS);
        let now = Instant::now();
        let mut kept = 0;
        for i in 0..1000 {
            let id = format!("id{i}");
            if table.learn(&id, server(1), MINUTE, now) {
                kept += 1;
            }
        }
        assert!(table.len(now) <= SHARDS, "{}", table.len(now));
        assert_eq!(kept, table.len(now), "held sessions are never evicted");
        // Released sessions make room for new ones.
        for i in 0..1000 {
            table.release(&format!("id{i}"), server(1), now);
        }
        assert!(table.learn("fresh", server(2), MINUTE, now));
        assert_eq!(table.lookup("fresh", now), Some(server(2)));
        assert!(table.len(now) <= SHARDS);
    }
}
