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

use crate::admin::counters::{self, WorkerCounters};
use crate::admission::{admit, admit_source, Admission};
use crate::net::{self, Listener, Queue};
use crate::relay::{self, Context};
use crate::slots::Slots;
use crate::table::{ServiceId, Table};
use crate::throttled::Throttled;

/// Accepts posted at once on a listening socket, at most: as many as
/// connections wait in its queue, each with its slots taken first. Together
/// they complete in one turn of the ring: clients that connect for each
/// request (`Connection: close`) would otherwise cost a turn each.
const ACCEPTS_IN_FLIGHT: usize = 16;

/// How often a loop waiting for its socket's queue looks whether the socket
/// was handed to a new tcpvsd.
const RECHECK: Duration = Duration::from_millis(100);

/// How often a loop whose connections wait for a slot (a `max_conns` is
/// reached) looks again: slots freed by another worker are noticed so.
const SLOT_POLL: Duration = Duration::from_millis(5);

/// A socket handed to a worker, with the flags that tell its accept loop a
/// failed accept means "closed on purpose", and that it should post no more
/// accepts (the socket was handed to a new tcpvsd).
struct Handover {
    service: ServiceId,
    socket: StdListener,
    closed: Arc<AtomicBool>,
    released: Arc<AtomicBool>,
}

/// The listening sockets of one service across all workers.
struct Group {
    listen: SocketAddr,
    bound: SocketAddr,
    /// Duplicates of the workers' sockets, kept to shut them down.
    sockets: Vec<StdListener>,
    closed: Arc<AtomicBool>,
    released: Arc<AtomicBool>,
}

/// A service's listening sockets taken from another tcpvsd (an upgrade):
/// served as they are, so that no connection waiting in their accept queues
/// is lost.
pub struct Inherited {
    pub ident: ServiceId,
    pub listen: SocketAddr,
    pub bound: SocketAddr,
    pub sockets: Vec<StdListener>,
}

impl Group {
    /// Whether its sockets serve `listen`: the address configured, or the
    /// one they are bound to (a file that names the port port 0 was given).
    fn serves(&self, listen: SocketAddr) -> bool {
        self.listen == listen || self.bound == listen
    }

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

/// One open client connection, counted in its worker's counters from its
/// accept to the end of the task that serves it.
struct Open(Arc<WorkerCounters>);

impl Open {
    fn count(counters: &Arc<WorkerCounters>) -> Open {
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        counters.open.fetch_add(1, Ordering::Relaxed);
        Open(counters.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
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
    /// What each worker counted (connections, exchanges), for /metrics.
    counters: Vec<Arc<WorkerCounters>>,
    /// Set by [`Workers::drain`]: no socket opens again.
    draining: AtomicBool,
    /// Sockets handed over by the tcpvsd this one replaces, until a service
    /// takes them.
    inherited: Mutex<Vec<Inherited>>,
    /// Accepts posted, all workers together.
    accepting: Arc<AtomicUsize>,
    /// Client connections open, all services together, against the
    /// daemon-wide `max_conns`.
    conns: Arc<Slots>,
    /// Where the sockets handed to a new tcpvsd listen.
    released: Mutex<Vec<SocketAddr>>,
    /// Set once the sockets were handed over: only then may this one retire.
    handed_over: AtomicBool,
}

impl Workers {
    /// Starts `count` workers and binds every started service of `table`.
    pub fn start(table: Arc<ArcSwap<Table>>, count: usize) -> io::Result<Workers> {
        Workers::start_with(table, count, Vec::new())
    }

    /// Starts `count` workers; every started service of `table` serves the
    /// `inherited` sockets of its address, or binds new ones.
    pub fn start_with(
        table: Arc<ArcSwap<Table>>,
        count: usize,
        inherited: Vec<Inherited>,
    ) -> io::Result<Workers> {
        let count = count.max(1);
        let mut senders = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        let accepting = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(Slots::default());
        let mut counters = Vec::with_capacity(count);
        for i in 0..count {
            let (tx, rx) = unbounded_channel();
            let table = table.clone();
            let worker_counters = Arc::new(WorkerCounters::default());
            let thread = std::thread::Builder::new()
                .name(format!("tcpvs-worker-{i}"))
                .spawn({
                    let shared = Shared {
                        counters: worker_counters.clone(),
                        accepting: accepting.clone(),
                        conns: conns.clone(),
                    };
                    move || net::start(run(table, rx, shared))
                })?;
            senders.push(tx);
            threads.push(thread);
            counters.push(worker_counters);
        }
        let workers = Workers {
            senders,
            groups: Mutex::new(HashMap::new()),
            threads: Mutex::new(threads),
            counters,
            draining: AtomicBool::new(false),
            inherited: Mutex::new(inherited),
            accepting,
            conns,
            released: Mutex::new(Vec::new()),
            handed_over: AtomicBool::new(false),
        };
        let pending = workers.prepare(&table.load())?;
        workers.commit(pending);
        let unused = std::mem::take(&mut *lock(&workers.inherited));
        for left in unused {
            tracing::warn!(service = %left.ident, "sockets handed over but no longer configured: closed");
        }
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
            if current.is_some_and(|group| group.serves(service.listen)) {
                continue;
            }
            // Dropping `open` on error closes what this call already bound.
            let (bound, sockets) = match self.take_inherited(&service.ident, service.listen) {
                Some(inherited) => (inherited.bound, inherited.sockets),
                None => bind_group(service.listen, self.senders.len()).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "service {}: cannot listen on {}: {e}",
                            service.ident, service.listen
                        ),
                    )
                })?,
            };
            let duplicates = sockets
                .iter()
                .map(StdListener::try_clone)
                .collect::<io::Result<Vec<_>>>()?;
            let group = Group {
                listen: service.listen,
                bound,
                sockets: duplicates,
                closed: Arc::new(AtomicBool::new(false)),
                released: Arc::new(AtomicBool::new(false)),
            };
            open.push((service.ident.clone(), group, sockets));
        }
        let close = groups
            .iter()
            .filter(|(ident, group)| {
                let wanted = table
                    .service(ident)
                    .is_some_and(|s| s.enabled && group.serves(s.listen));
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
            // One socket per worker when bound here; inherited ones may be
            // more or fewer: each goes to a worker in turn.
            let workers = self.senders.iter().cycle();
            for (sender, socket) in workers.zip(sockets) {
                let handover = Handover {
                    service: ident.clone(),
                    socket,
                    closed: group.closed.clone(),
                    released: group.released.clone(),
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

    /// Duplicates of every listening socket, by service, for a new tcpvsd
    /// that takes over (`--upgrade`).
    pub fn hand_over(&self) -> io::Result<Vec<Inherited>> {
        self.handed_over.store(true, Ordering::Release);
        self.lock()
            .iter()
            .map(|(ident, group)| {
                let sockets = group
                    .sockets
                    .iter()
                    .map(StdListener::try_clone)
                    .collect::<io::Result<Vec<_>>>()?;
                Ok(Inherited {
                    ident: ident.clone(),
                    listen: group.listen,
                    bound: group.bound,
                    sockets,
                })
            })
            .collect()
    }

    /// The graceful stop of a tcpvsd whose sockets a new one serves: the
    /// sockets stay open (they are the new one's now); each worker posts no
    /// more accepts once its posted ones complete, closes its idle clients
    /// and lets the others finish. See [`Workers::accepting`].
    pub fn release(&self) {
        let mut groups = self.lock();
        self.draining.store(true, Ordering::Release);
        let mut released = lock(&self.released);
        for (_, group) in groups.drain() {
            // Before the stop counts posted accepts (see `accept_loop`).
            group.released.store(true, Ordering::SeqCst);
            released.push(group.bound);
        }
        self.order(|| Order::Drain);
    }

    /// Completes accepts still posted on sockets handed over, when nothing
    /// else will (no client is connecting): one connection of ours each,
    /// closed at once. The kernel gives each to a posted accept of either
    /// tcpvsd; both see a client that leaves without a request.
    pub fn complete_posted_accepts(&self) {
        let posted = self.accepting().min(64);
        for &addr in lock(&self.released).iter() {
            for _ in 0..posted {
                let _ = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100));
            }
        }
    }

    /// Whether a new tcpvsd took the listening sockets ([`Workers::hand_over`]).
    pub fn handed_over(&self) -> bool {
        self.handed_over.load(Ordering::Acquire)
    }

    /// Accepts still posted (each takes one more connection, if one comes).
    /// Read it before [`Workers::open_clients`]: at 0, every connection an
    /// accept took is counted there, and (after [`Workers::release`]) no
    /// worker posts another (see `accept_loop`).
    pub fn accepting(&self) -> usize {
        self.accepting.load(Ordering::SeqCst)
    }

    /// Client connections open, counted against the daemon-wide limit
    /// (from their slot's taking, just before the accept).
    pub fn conns(&self) -> u32 {
        self.conns.held()
    }

    fn take_inherited(&self, ident: &ServiceId, listen: SocketAddr) -> Option<Inherited> {
        let mut inherited = lock(&self.inherited);
        let at = inherited
            .iter()
            .position(|i| &i.ident == ident && (i.listen == listen || i.bound == listen))?;
        Some(inherited.swap_remove(at))
    }

    /// Client connections still open, all workers together.
    pub fn open_clients(&self) -> usize {
        self.counters
            .iter()
            .map(|n| n.open.load(Ordering::Relaxed))
            .sum()
    }

    /// Whether a graceful stop has begun.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// What each worker counted, in worker order.
    pub fn counters(&self) -> &[Arc<WorkerCounters>] {
        &self.counters
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
        lock(&self.groups)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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

/// What a worker's accept loops count into, shared with the others.
#[derive(Clone)]
struct Shared {
    /// This worker's counters.
    counters: Arc<WorkerCounters>,
    /// Accepts posted, all workers together.
    accepting: Arc<AtomicUsize>,
    /// Client connections, all workers together (the daemon-wide limit).
    conns: Arc<Slots>,
}

async fn run(table: Arc<ArcSwap<Table>>, mut orders: UnboundedReceiver<Order>, shared: Shared) {
    counters::install(shared.counters.clone());
    let ctx = Rc::new(Context::new(table));
    let sweeper = ctx.clone();
    net::spawn(async move {
        loop {
            net::sleep(Duration::from_secs(1)).await;
            sweeper.sweep();
        }
    });
    // Ends when the channel closes (the workers are dropped) or on a cut: the
    // runtime ends with this future, and drops every task still running.
    while let Some(order) = orders.recv().await {
        match order {
            Order::Listen(handover) => {
                let accepts = Accepts {
                    listener: Rc::new(Listener::from_std(handover.socket)),
                    closed: handover.closed,
                    released: handover.released,
                };
                net::spawn(accept_loop(
                    ctx.clone(),
                    handover.service,
                    accepts,
                    shared.clone(),
                ));
            }
            Order::Drain => ctx.drain(),
            Order::Cut => return,
        }
    }
}

/// A listening socket of a worker, and what ends its accepts.
struct Accepts {
    listener: Rc<Listener>,
    /// The socket was shut down on purpose: a failed accept ends the loop.
    closed: Arc<AtomicBool>,
    /// The socket was handed to a new tcpvsd: post no more accepts.
    released: Arc<AtomicBool>,
}

/// Counts an accept in [`Workers::accepting`] while it is posted.
struct Posted(Arc<AtomicUsize>);

impl Posted {
    fn count(accepting: &Arc<AtomicUsize>) -> Posted {
        accepting.fetch_add(1, Ordering::SeqCst);
        Posted(accepting.clone())
    }
}

impl Drop for Posted {
    fn drop(&mut self) {
        // Whoever reads `accepting` at 0 then sees the connection this
        // accept took counted as open (see `accept_one`).
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts the connections of one listening socket on one worker, until the
/// socket is shut down (its service deleted or moved) or handed over.
///
/// An accept is posted only for a connection already waiting in the
/// socket's queue, and only once the slots it will hold are taken: an
/// accept posted on io_uring cannot be withdrawn, so one left waiting for a
/// client would hold a slot that a connection queued on another worker's
/// socket needs. Past a limit, connections wait in the kernel's backlog;
/// clients already connected are served as before.
async fn accept_loop(ctx: Rc<Context>, service: ServiceId, accepts: Accepts, shared: Shared) {
    loop {
        if accepts.released.load(Ordering::Acquire) {
            // The new tcpvsd accepts from now on.
            return;
        }
        let queued = net::select! {
            queued = accepts.listener.queued() => queued,
            _ = net::sleep(RECHECK) => continue,
        };
        let waiting = match queued {
            Ok(Queue::Waiting(n)) => n,
            Ok(Queue::Closed) => return,
            Err(_) if accepts.closed.load(Ordering::Acquire) => return,
            Err(e) => {
                backing_off(&service, &e).await;
                continue;
            }
        };
        let table = ctx.table.load();
        let admitted: Vec<Admission> = (0..waiting.min(ACCEPTS_IN_FLIGHT))
            .map_while(|_| admit(&table, &service, &shared.conns))
            .collect();
        drop(table);
        if admitted.is_empty() {
            net::sleep(SLOT_POLL).await;
            continue;
        }
        // Counted as posted before `released` is read again, both in
        // sequential consistency with `release` and the stop's count: either
        // the stop sees these accepts (and waits for what they take), or this
        // sees the sockets released and posts none. Otherwise a stop could
        // end the process under an accept posted just after it counted.
        let posted: Vec<Posted> = admitted
            .iter()
            .map(|_| Posted::count(&shared.accepting))
            .collect();
        if accepts.released.load(Ordering::SeqCst) {
            return;
        }
        // Posted together, they complete in one turn of the ring; the loop
        // looks at the queue again once they all have.
        let (done, mut all_done) = net::unbounded_channel::<Result<(), io::Error>>();
        for (admission, posted) in admitted.into_iter().zip(posted) {
            let accept = accept_one(
                ctx.clone(),
                service.clone(),
                accepts.listener.clone(),
                (admission, posted),
                shared.clone(),
            );
            let done = done.clone();
            net::spawn(async move {
                let _ = done.send(accept.await);
            });
        }
        drop(done);
        let mut failed = None;
        while let Some(result) = all_done.recv().await {
            failed = result.err().or(failed);
        }
        match failed {
            Some(_) if accepts.closed.load(Ordering::Acquire) => return,
            Some(e) => backing_off(&service, &e).await,
            None => {}
        }
    }
}

/// Accepts one connection waiting in the queue of `listener` (the accept
/// counted as `posted` until it completes), and serves it holding
/// `admission` until it ends.
async fn accept_one(
    ctx: Rc<Context>,
    service: ServiceId,
    listener: Rc<Listener>,
    (admission, posted): (Admission, Posted),
    shared: Shared,
) -> io::Result<()> {
    let (client, peer) = listener.accept().await?;
    // Open before the accept stops counting as posted: a stop that waits
    // for both to be 0 must never see the connection as neither, or it ends
    // the process under a client it has just accepted.
    let open = Open::count(&shared.counters);
    drop(posted);
    let Ok(source) = admit_source(&ctx.table.load(), &service, peer) else {
        // Closed before a byte is read: the cheapest refusal there is.
        drop((client, open));
        return Ok(());
    };
    let serve = relay::serve(ctx, client, service);
    net::spawn(async move {
        serve.await;
        drop((open, admission, source));
    });
    Ok(())
}

/// Out of descriptors or memory: backs off instead of spinning, and says so
/// once a second, not once per try.
async fn backing_off(service: &ServiceId, e: &io::Error) {
    static ACCEPT_FAILED: Throttled = Throttled::new();
    if let Some(times) = ACCEPT_FAILED.occurred() {
        tracing::warn!(%service, times, "accept failed: {e}; backing off");
    }
    net::sleep(Duration::from_millis(50)).await;
}
