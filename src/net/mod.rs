//! The only module that names tokio-uring. Everything above it sees a small API:
//! a per-core runtime, listeners bound as SO_REUSEPORT groups, and connections
//! whose timeouts are terminal.
//!
//! tokio-uring 0.5 does not cancel a kernel operation when its future is dropped:
//! a read that timed out stays posted and would swallow the peer's next bytes.
//! [`Conn`] therefore poisons itself on any timeout, and shuts the socket down
//! (which completes every pending operation) when dropped.

mod conn;
pub mod fd_passing;
mod idle;
mod listener;
mod runtime;

pub use conn::{Conn, IoFailure};
pub use idle::{IdleClients, Waiting};
pub use listener::{bind_group, Listener, Queue};
pub use runtime::{
    select, sleep, spawn, start, unbounded_channel, AsyncMutex, Instant, Notify, UnboundedReceiver,
    UnboundedSender,
};
