//! After a 101 Switching Protocols, the client connection becomes a two-way
//! tunnel to the server that accepted the upgrade (WebSocket and the like).

use std::pin::pin;

use bytes::BytesMut;

use super::body::{relay, BodyError, End};
use crate::protocols::http::Framing;

/// Relays both directions until both have ended; either side failing ends both.
/// `from_client` and `from_server` hold bytes already read past the heads.
pub async fn run(
    client: End<'_>,
    mut from_client: BytesMut,
    server: End<'_>,
    mut from_server: BytesMut,
) -> Result<(), BodyError> {
    let mut upstream = pin!(one_way(client, &mut from_client, server));
    let mut downstream = pin!(one_way(server, &mut from_server, client));
    // Dropping the unfinished direction leaves its read posted in the kernel;
    // that is fine only because both connections are closed right after.
    crate::net::select! {
        result = &mut upstream => {
            result?;
            downstream.await
        }
        result = &mut downstream => {
            result?;
            upstream.await
        }
    }
}

/// Relays `from` to `to` until `from` closes, then passes its end of stream
/// on, so that the other side can finish too.
async fn one_way(from: End<'_>, buf: &mut BytesMut, to: End<'_>) -> Result<(), BodyError> {
    let until_close = Framing::UntilClose;
    let result = relay(from, buf, to, until_close, until_close, None).await;
    to.conn.shutdown_write();
    result
}
