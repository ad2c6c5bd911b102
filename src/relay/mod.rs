//! One client connection, relayed by its service's protocol: `http` (a
//! request-response loop, each request scheduled on its own) or `rtsp` (a
//! two-way stream pinned to one server, sessions routed to their owner).

mod access_line;
mod body;
mod connect;
mod decide;
mod error;
mod http;
mod memory;
mod queue;
mod record;
mod rtsp;
mod rtsp_policy;
mod termination;
mod tunnel;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::net::Instant;
use bytes::BytesMut;

use crate::net::{Conn, IdleClients};
use crate::pool::Pool;
use crate::protocols::http::{Limits as HeadLimits, Slashes};
use crate::schedulers::{pick_by_key, pick_server, Pick, RequestInfo};
use crate::table::{Protocol, Route, ServerAddr, Service, ServiceId, Settings, Table};

pub use error::{ProxyError, Side};
pub use memory::Memory;

/// How long we keep reading (and discarding) from a client we are closing on
/// after an error, so our error response is not destroyed by a reset.
const LINGER: Duration = Duration::from_secs(1);

/// What every connection one worker serves shares. Each worker has its own:
/// nothing in it is shared across cores but the table.
pub struct Context {
    /// The current rule table; each request loads the latest snapshot.
    pub table: Arc<ArcSwap<Table>>,
    /// Idle connections to real servers, owned by this worker alone.
    pool: RefCell<Pool>,
    /// Buffers, head blocks and head boxes, reused from one exchange to the next.
    memory: Memory,
    /// HTTP clients idle between requests, closed when the worker drains.
    idle_clients: IdleClients,
}

impl Context {
    pub fn new(table: Arc<ArcSwap<Table>>) -> Self {
        Self {
            table,
            pool: RefCell::new(Pool::default()),
            memory: Memory::default(),
            idle_clients: IdleClients::default(),
        }
    }

    /// The worker drains (a graceful stop): HTTP clients idle between
    /// requests are closed now, and from now on each response is its
    /// connection's last. Requests and RTSP sessions in flight go on.
    pub fn drain(&self) {
        self.idle_clients.stop();
    }

    /// Whether the worker drains.
    fn draining(&self) -> bool {
        self.idle_clients.stopping()
    }

    /// Closes the idle server connections past the table's `pool_idle` and
    /// frees the spare buffers the last second did not need: the worker
    /// calls it every second, so that both age out even on a worker that
    /// gets no request to notice them.
    pub fn sweep(&self) {
        let max_idle = self.table.load().settings().timeouts.pool_idle;
        self.pool.borrow_mut().sweep(max_idle);
        self.memory.trim();
    }
}

/// Serves one accepted client connection of service `service` until it closes.
pub async fn serve(ctx: Rc<Context>, client: Conn, service: ServiceId) {
    let protocol = ctx.table.load().service(&service).map(|s| s.protocol);
    match protocol {
        // Boxed, in a statement of its own: a future built inside the `match`
        // would be a temporary living across the await, which the compiler
        // reserves room for in this state anyway. Its state is large, and
        // must not size every HTTP client's task.
        Some(Protocol::Rtsp) => {
            let rtsp = Box::pin(rtsp::serve(ctx, client, service));
            rtsp.await
        }
        // A service deleted since the accept: the HTTP loop answers 503.
        Some(Protocol::Http) | None => http::serve(ctx, client, service).await,
    }
}

/// The server for a request the content rules routed: by the rule's capture
/// group (`-m N`), else by the client's persistence template, else by the
/// scheduler; never one of `exclude` (servers that already failed it).
fn choose_server(
    service: &Arc<Service>,
    route: &Route<'_, '_>,
    request: &RequestInfo<'_>,
    exclude: &[ServerAddr],
) -> Option<Pick> {
    let scheduler = &*service.scheduler;
    let candidates = route.candidates;
    match (route.sticky_key, &service.persistence) {
        (Some(key), _) => pick_by_key(key, candidates, exclude),
        (None, Some(persistence)) => persistence.pick(scheduler, request, candidates, exclude),
        (None, None) => pick_server(scheduler, request, candidates, exclude),
    }
}

/// Half-closes and reads (discarding) until the client closes or `LINGER`
/// passes, so that unread request bytes do not turn our close into a reset
/// that destroys the response in flight.
async fn linger(client: &Conn, mut buf: BytesMut) {
    client.shutdown_write();
    let until = Instant::now() + LINGER;
    loop {
        buf.clear();
        match client.read(buf, until).await {
            Ok((0, _)) | Err(_) => return,
            Ok((_, more)) => buf = more,
        }
    }
}

/// Whether `buf` has an empty line (CRLF CRLF, or a bare LF one for the
/// parser to reject) that starts at or after `from - 3`: a head is parsed
/// only then, so a peer sending a byte at a time does not cost a full
/// re-parse per byte.
fn head_may_end(buf: &[u8], from: usize) -> bool {
    let start = from.saturating_sub(3);
    buf.get(start..).is_some_and(|tail| {
        tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
    })
}

/// What request paths do with repeated slashes, from the table's settings.
fn slashes(settings: &Settings) -> Slashes {
    if settings.merge_slashes {
        Slashes::Merge
    } else {
        Slashes::Keep
    }
}

/// The bounds on a message head, from the table's settings.
fn head_limits(settings: &Settings) -> HeadLimits {
    HeadLimits {
        max_head_bytes: settings.limits.max_head_bytes,
        max_headers: settings.limits.max_headers,
    }
}

/// The bounds on an HTTP server's response head (502 beyond).
fn response_limits(settings: &Settings) -> HeadLimits {
    HeadLimits {
        max_head_bytes: settings.limits.max_response_head_bytes,
        max_headers: settings.limits.max_response_headers,
    }
}
