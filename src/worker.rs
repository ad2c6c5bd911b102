//! Thread-per-core workers: one io_uring runtime per thread, each with its own
//! SO_REUSEPORT listener for every started virtual service, so the kernel
//! spreads connections over the cores and a connection never leaves its core.
//!
//! Listeners follow the table: when an edit adds or starts a service, the
//! control thread binds one socket per worker (so a busy address is reported
//! before the edit is taken) and hands them over; when an edit removes or
//! stops one, its sockets are shut down, which ends their accept loops.
//! Connections already accepted finish undisturbed.
//!
//! A graceful stop ([`Workers::drain`]) shuts every listening socket down (the
//! kernel refuses new connections from then on) and tells each worker to
//! drain: its idle keep-alive clients are closed and the rest finish their
//! exchange, counted until none is open or [`Workers::cut`] ends the workers.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::net::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use arc_swap::ArcSwap;

use crate::net::{self, Listener};
use crate::relay::{self, Context};
use crate::table::{ServiceId, Table};

/// Accepts kept posted on each listening socket. With one, a worker takes a
/// single new connection per turn of its ring: clients that connect for each
/// request (`Connection: close`) then cost a ring turn each and lose the
/// batching of everything else. The kernel wakes one accept per connection
/// (io_uring arms accepts as exclusive waiters), so more cost nothing while idle.
/// With Connection: close, 16 against 1 served 1.07x and 1.16x the requests
/// (two runs of benches/ab.sh, either order) at 1.7-3.7 us less CPU each,
/// once a closing client's last response no longer waited a turn of the
/// ring (see `Conn::close_after_writes`).
const ACCEPTS_IN_FLIGHT: usize = 16;

/// A socket handed to a worker, with the flag that tells its accept loop a
/// failed accept means "closed on purpose".
struct Handover {
    service: ServiceId,
    socket: StdListener,
    closed: Arc<AtomicBool>,
}

/// The listening sockets of one service across all workers.
struct Group {
    listen: SocketAddr,
    bound: SocketAddr,
    /// Duplicates of the workers' sockets, kept to shut them down.
    sockets: Vec<StdListener>,
    closed: Arc<AtomicBool>,
}

impl Group {
    fn close(self) {
        self.closed.store(true, Ordering::Release);
        for socket in &self.sockets {
            // Completes the accept each worker has posted on its copy.
            let _ = socket2::SockRef::from(socket).shutdown(std::net::Shutdown::Both);
        }
    }
}

/// What the control thread tells a worker.
enum Order {
    /// Serve this listening socket.
    Listen(Handover),
    /// Stop keeping clients: close the idle ones, let the others finish.
    Drain,
    /// End now, closing every connection still open.
    Cut,
}

/// How many client connections one worker has open. Aligned to a cache
/// line of its own: the workers' counts change with every connection, and
/// must not share one.
#[derive(Default)]
#[repr(align(128))]
struct OpenCount {
    connections: AtomicUsize,
}

/// One open client connection, counted from its accept to the end of the
/// task that serves it.
struct Open(Arc<OpenCount>);

impl Open {
    fn count(open: &Arc<OpenCount>) -> Open {
        open.connections.fetch_add(1, Ordering::Relaxed);
        Open(open.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Listening sockets bound for a new table, not yet handed to the workers.
pub struct Pending {
    open: Vec<(ServiceId, Group, Vec<StdListener>)>,
    close: Vec<ServiceId>,
}

/// Running workers and the services they listen for.
pub struct Workers {
    senders: Vec<UnboundedSender<Order>>,
    groups: Mutex<HashMap<ServiceId, Group>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Client connections open, per worker.
    open: Vec<Arc<OpenCount>>,
    /// Set by [`Workers::drain`]: no socket opens again.
    draining: AtomicBool,
}

impl Workers {
    /// Starts `count` workers and binds every started service of `table`.
    pub fn start(table: Arc<ArcSwap<Table>>, count: usize) -> io::Result<Workers> {
        let count = count.max(1);
        let mut senders = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        let mut open = Vec::with_capacity(count);
        for i in 0..count {
            let (tx, rx) = unbounded_channel();
            let table = table.clone();
            let counter = Arc::new(OpenCount::default());
            let worker_open = counter.clone();
            let thread = std::thread::Builder::new()
                .name(format!("tcpvs-worker-{i}"))
                .spawn(move || net::start(run(table, rx, worker_open)))?;
            senders.push(tx);
            threads.push(thread);
            open.push(counter);
        }
        let workers = Workers {
            senders,
            groups: Mutex::new(HashMap::new()),
            threads: Mutex::new(threads),
            open,
            draining: AtomicBool::new(false),
        };
        let pending = workers.prepare(&table.load())?;
        workers.commit(pending);
        Ok(workers)
    }

    /// Where each started service actually listens.
    pub fn listening(&self) -> HashMap<ServiceId, SocketAddr> {
        self.lock()
            .iter()
            .map(|(ident, group)| (ident.clone(), group.bound))
            .collect()
    }

    /// Binds what `table` needs that is not bound yet, and lists what it no
    /// longer needs. Nothing changes for the workers until [`commit`].
    ///
    /// [`commit`]: Workers::commit
    pub fn prepare(&self, table: &Table) -> io::Result<Pending> {
        let groups = self.lock();
        let mut open = Vec::new();
        for service in table.services.iter().filter(|s| s.enabled) {
            let current = groups.get(&service.ident);
            if current.is_some_and(|group| group.listen == service.listen) {
                continue;
            }
            // Dropping `open` on error closes what this call already bound.
            let (bound, sockets) = bind_group(service.listen, self.senders.len()).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "service {}: cannot listen on {}: {e}",
                        service.ident, service.listen
                    ),
                )
            })?;
            let duplicates = sockets
                .iter()
                .map(StdListener::try_clone)
                .collect::<io::Result<Vec<_>>>()?;
            let group = Group {
                listen: service.listen,
                bound,
                sockets: duplicates,
                closed: Arc::new(AtomicBool::new(false)),
            };
            open.push((service.ident.clone(), group, sockets));
        }
        let close = groups
            .iter()
            .filter(|(ident, group)| {
                let wanted = table
                    .service(ident)
                    .is_some_and(|s| s.enabled && s.listen == group.listen);
                !wanted
            })
            .map(|(ident, _)| ident.clone())
            .collect();
        Ok(Pending { open, close })
    }

    /// Hands new sockets to the workers and shuts down the unneeded ones.
    /// Once the workers drain, new sockets are closed instead.
    pub fn commit(&self, pending: Pending) {
        let mut groups = self.lock();
        if self.draining.load(Ordering::Acquire) {
            tracing::warn!("stopping: the edit opens no listening socket");
            return;
        }
        for ident in pending.close {
            if let Some(group) = groups.remove(&ident) {
                group.close();
            }
        }
        for (ident, group, sockets) in pending.open {
            if let Some(old) = groups.remove(&ident) {
                old.close();
            }
            for (sender, socket) in self.senders.iter().zip(sockets) {
                let handover = Handover {
                    service: ident.clone(),
                    socket,
                    closed: group.closed.clone(),
                };
                if sender.send(Order::Listen(handover)).is_err() {
                    tracing::error!(service = %ident, "a worker has stopped");
                }
            }
            groups.insert(ident, group);
        }
    }

    /// Starts a graceful stop: every listening socket is shut down (new
    /// connections are refused by the kernel), and every worker closes its
    /// idle clients and lets the others finish. See [`Workers::open_clients`].
    pub fn drain(&self) {
        let mut groups = self.lock();
        self.draining.store(true, Ordering::Release);
        for (_, group) in groups.drain() {
            group.close();
        }
        self.order(|| Order::Drain);
    }

    /// Client connections still open, all workers together.
    pub fn open_clients(&self) -> usize {
        self.open
            .iter()
            .map(|n| n.connections.load(Ordering::Relaxed))
            .sum()
    }

    /// Ends the workers at once: each closes every connection it still has
    /// (its runtime ends with them). Their threads end soon after; see
    /// [`Workers::join`].
    pub fn cut(&self) {
        self.order(|| Order::Cut);
    }

    fn order(&self, order: impl Fn() -> Order) {
        for sender in &self.senders {
            // A worker that has ended has nothing left to drain or cut.
            let _ = sender.send(order());
        }
    }

    /// Blocks until every worker thread has ended.
    pub fn join(&self) {
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            let _ = thread.join();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ServiceId, Group>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Workers {
    /// Stops the workers: every listening socket is shut down, and once its
    /// handover channel is closed each worker's loop ends, which drops its
    /// runtime and with it every connection still open (their sockets are
    /// shut down, their pending operations cancelled). Waits for the threads.
    fn drop(&mut self) {
        for (_, group) in self.lock().drain() {
            group.close();
        }
        self.senders.clear();
        self.join();
    }
}

/// Binds a SO_REUSEPORT group, retrying briefly while a group just closed on
/// the same address is still being released by its workers.
fn bind_group(addr: SocketAddr, count: usize) -> io::Result<(SocketAddr, Vec<StdListener>)> {
    let mut tries = 0;
    loop {
        match net::bind_group(addr, count) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && tries < 25 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

async fn run(
    table: Arc<ArcSwap<Table>>,
    mut orders: UnboundedReceiver<Order>,
    open: Arc<OpenCount>,
) {
    let ctx = Rc::new(Context::new(table));
    let sweeper = ctx.clone();
    net::spawn(async move {
        loop {
            net::sleep(Duration::from_secs(1)).await;
            sweeper.sweep_idle_servers();
        }
    });
    // Ends when the channel closes (the workers are dropped) or on a cut: the
    // runtime ends with this future, and drops every task still running.
    while let Some(order) = orders.recv().await {
        match order {
            Order::Listen(handover) => {
                let listener = Rc::new(Listener::from_std(handover.socket));
                for _ in 0..ACCEPTS_IN_FLIGHT {
                    net::spawn(accept_loop(
                        ctx.clone(),
                        handover.service.clone(),
                        listener.clone(),
                        handover.closed.clone(),
                        open.clone(),
                    ));
                }
            }
            Order::Drain => ctx.drain(),
            Order::Cut => return,
        }
    }
}

/// One of the accepts kept posted on a listening socket. They all end when
/// the socket is shut down (its service deleted or moved), which completes
/// every accept posted on it.
async fn accept_loop(
    ctx: Rc<Context>,
    service: ServiceId,
    listener: Rc<Listener>,
    closed: Arc<AtomicBool>,
    open: Arc<OpenCount>,
) {
    loop {
        match listener.accept().await {
            Ok((client, _peer)) => {
                let open = Open::count(&open);
                let serve = relay::serve(ctx.clone(), client, service.clone());
                net::spawn(async move {
                    serve.await;
                    drop(open);
                });
            }
            Err(_) if closed.load(Ordering::Acquire) => return,
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning.
                tracing::warn!(%service, "accept failed: {e}");
                net::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
