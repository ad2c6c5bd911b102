//! Steady client load for tests that change a running tcpvsd under it
//! (reloads, upgrades): clients sending `GET` on a new connection each,
//! bounded in time, counting what did not come back 200.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Clients looping until `finish` (or 90 s).
pub struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    /// `clients` threads, each sending `GET path` to `addr` on a new
    /// connection per request. A request fails when its answer is not 200
    /// or does not come (a refused connect, a reset, a cut response).
    pub fn new_connections(addr: SocketAddr, clients: usize, path: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let clients = (0..clients)
            .map(|_| {
                let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
                thread::spawn(move || {
                    let start = Instant::now();
                    while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(90)
                    {
                        // The client helpers panic on a refused connect or a
                        // cut: each is a failed request here.
                        let status = std::panic::catch_unwind(|| super::get(addr, path).status);
                        if status.ok() != Some(200) {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load {
            stop,
            done,
            failed,
            clients,
        }
    }

    /// Stops the clients: (requests, failed).
    pub fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            let _ = client.join();
        }
        (
            self.done.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}
