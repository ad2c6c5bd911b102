//! After a 101 Switching Protocols, the client connection becomes a two-way
//! tunnel to the server that accepted the upgrade (WebSocket and the like).
//! It ends when both sides have closed, when either fails, or when no byte
//! has crossed it either way for the idle timeout (HAProxy's `timeout
//! tunnel`): a WebSocket that only the server talks on stays open as long as
//! the server talks.

use std::cell::Cell;
use std::pin::pin;
use std::time::Duration;

use bytes::BytesMut;

use super::body::{BodyError, End};
use crate::net::{Conn, Instant, IoFailure};

/// How a tunnel ended early.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error(transparent)]
    Relay(#[from] BodyError),
    #[error("idle for {0:?}")]
    Idle(Duration),
}

/// A read on a tunnel waits for as long as the tunnel is used: only the idle
/// watch ends it. Far enough not to matter, near enough for the timer.
const NO_READ_DEADLINE: Duration = Duration::from_secs(365 * 24 * 3600);

/// Relays both directions until both have ended; either side failing, or
/// `idle` passing with no byte either way, ends both. `from_client` and
/// `from_server` hold bytes already read past the heads.
pub async fn run(
    client: End<'_>,
    mut from_client: BytesMut,
    server: End<'_>,
    mut from_server: BytesMut,
    idle: Duration,
) -> Result<(), TunnelError> {
    let last_byte = Cell::new(Instant::now());
    let mut upstream = pin!(one_way(client.conn, &mut from_client, server, &last_byte));
    let mut downstream = pin!(one_way(server.conn, &mut from_server, client, &last_byte));
    let mut watch = pin!(idle_watch(&last_byte, idle));
    // Dropping an unfinished direction leaves its read posted in the kernel;
    // that is fine only because both connections are closed right after.
    let ended = crate::net::select! {
        result = &mut upstream => match result {
            Ok(()) => finish(downstream, watch, idle).await,
            Err(e) => Err(e.into()),
        },
        result = &mut downstream => match result {
            Ok(()) => finish(upstream, watch, idle).await,
            Err(e) => Err(e.into()),
        },
        () = &mut watch => Err(TunnelError::Idle(idle)),
    };
    if ended.is_err() {
        // Both sides shut down now, whatever reads are still posted.
        client.conn.abandon_reads();
        server.conn.abandon_reads();
    }
    ended
}

/// The direction left once the other has ended, still under the idle watch.
async fn finish(
    direction: impl std::future::Future<Output = Result<(), BodyError>>,
    watch: impl std::future::Future<Output = ()>,
    idle: Duration,
) -> Result<(), TunnelError> {
    crate::net::select! {
        result = direction => result.map_err(TunnelError::from),
        () = watch => Err(TunnelError::Idle(idle)),
    }
}

/// Ends once `idle` has passed since the last byte either way.
async fn idle_watch(last_byte: &Cell<Instant>, idle: Duration) {
    loop {
        let until = last_byte.get() + idle;
        let now = Instant::now();
        if now >= until {
            return;
        }
        crate::net::sleep(until - now).await;
    }
}

/// Relays `from` to `to` until `from` closes, then passes its end of stream
/// on, so that the other side can finish too. Every byte read is activity.
async fn one_way(
    from: &Conn,
    buf: &mut BytesMut,
    to: End<'_>,
    last_byte: &Cell<Instant>,
) -> Result<(), BodyError> {
    let result = async {
        loop {
            if !buf.is_empty() {
                let bytes = buf.split().freeze();
                to.conn
                    .write_all(bytes, to.deadline())
                    .await
                    .map_err(BodyError::Write)?;
            }
            let (n, filled) = from
                .read(std::mem::take(buf), Instant::now() + NO_READ_DEADLINE)
                .await
                .map_err(|e: IoFailure| BodyError::Read(e))?;
            *buf = filled;
            if n == 0 {
                return Ok(());
            }
            last_byte.set(Instant::now());
        }
    }
    .await;
    to.conn.shutdown_write();
    result
}
