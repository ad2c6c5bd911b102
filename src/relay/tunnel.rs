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
    let mut upstream = pin!(async {
        let until_close = (Framing::UntilClose, Framing::UntilClose);
        let result = relay(
            client,
            &mut from_client,
            server,
            until_close.0,
            until_close.1,
            None,
        )
        .await;
        // Pass the client's end of stream on, so the server can finish too.
        server.conn.shutdown_write();
        result
    });
    let mut downstream = pin!(async {
        let until_close = (Framing::UntilClose, Framing::UntilClose);
        let result = relay(
            server,
            &mut from_server,
            client,
            until_close.0,
            until_close.1,
            None,
        )
        .await;
        client.conn.shutdown_write();
        result
    });
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
