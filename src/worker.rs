//! Thread-per-core workers: one io_uring runtime per thread, each with its own
//! SO_REUSEPORT listener for every virtual service, so the kernel spreads
//! connections over the cores and a connection never leaves its core.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::net::{self, Listener};
use crate::pool::Pool;
use crate::relay;
use crate::table::{ServiceId, Table};

/// What every task on one worker shares.
pub struct WorkerContext {
    /// The current rule table; each request loads the latest snapshot.
    pub table: Arc<ArcSwap<Table>>,
    /// Idle connections to real servers, owned by this worker alone.
    pub pool: RefCell<Pool>,
}

/// Running workers and the addresses their services actually listen on.
pub struct Workers {
    pub listening: HashMap<ServiceId, SocketAddr>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Blocks until every worker thread has ended.
    pub fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Binds every service of `table` and starts `count` workers serving them.
pub fn start(table: Arc<ArcSwap<Table>>, count: usize) -> io::Result<Workers> {
    let count = count.max(1);
    let snapshot = table.load_full();
    let mut listening = HashMap::new();
    // per_worker[i] = the sockets worker i accepts on.
    let mut per_worker: Vec<Vec<(ServiceId, StdListener)>> =
        (0..count).map(|_| Vec::new()).collect();
    for service in &snapshot.services {
        let (bound, sockets) = net::bind_group(service.listen, count).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "service {}: cannot listen on {}: {e}",
                    service.ident, service.listen
                ),
            )
        })?;
        listening.insert(service.ident.clone(), bound);
        for (worker, socket) in per_worker.iter_mut().zip(sockets) {
            worker.push((service.ident.clone(), socket));
        }
    }
    let threads = per_worker
        .into_iter()
        .enumerate()
        .map(|(i, sockets)| {
            let table = table.clone();
            std::thread::Builder::new()
                .name(format!("tcpvs-worker-{i}"))
                .spawn(move || net::start(run(table, sockets)))
        })
        .collect::<io::Result<_>>()?;
    Ok(Workers { listening, threads })
}

async fn run(table: Arc<ArcSwap<Table>>, sockets: Vec<(ServiceId, StdListener)>) {
    let ctx = Rc::new(WorkerContext {
        table,
        pool: RefCell::new(Pool::default()),
    });
    for (service, socket) in sockets {
        net::spawn(accept_loop(
            ctx.clone(),
            service,
            Listener::from_std(socket),
        ));
    }
    // Idle server connections are closed when they age out, even on a worker
    // that gets no request to notice them.
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let max_idle = ctx.table.load().settings().timeouts.pool_idle;
        ctx.pool.borrow_mut().sweep(max_idle);
    }
}

async fn accept_loop(ctx: Rc<WorkerContext>, service: ServiceId, listener: Listener) {
    loop {
        match listener.accept().await {
            Ok((client, _peer)) => net::spawn(relay::serve(ctx.clone(), client, service.clone())),
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning.
                tracing::warn!(%service, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
