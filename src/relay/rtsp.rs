//! One RTSP client connection (RFC 2326). The client's first routable request
//! pins the connection to one real server: the owner of the Session it
//! carries, else the one the content rules and scheduler pick for its URL
//! path. From then on both directions are relayed at once, message by
//! message and interleaved frame by frame, since the server also speaks
//! first (media frames, requests of its own). CSeq passes through unchanged.
//!
//! The proxy answers some requests itself: 454 when the Session is unknown
//! (or owned by another server than this connection's), 461 when a SETUP
//! offers no transport that can cross a TCP proxy (we do not relay UDP), 400
//! for a malformed message (then closes), 503 when no server can be reached.
//! Sessions are learned from SETUP responses into the service's shared table;
//! a TEARDOWN ends them, and so does the server's connection breaking.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::net::AsyncMutex;
use crate::net::Instant;
use bytes::{Buf, Bytes, BytesMut};

use super::connect::{connect_pinned, connect_scheduled, Connected, Reuse, Tries};
use super::error::ProxyError;
use super::record::Record;
use super::rtsp_policy::{admit, fate_at_end, settle, Admitted, EndedBy, Fate, Refused, Settle};
use super::termination::{Party, Phase, Termination};
use super::Context;
use super::{head_limits, head_may_end, linger};
use crate::net::{Conn, IoFailure};
use crate::protocols::http::{date, Limits};
use crate::protocols::rtsp::message::VERSION;
use crate::protocols::rtsp::{
    salvage_cseq, session, write_reply, Demux, Message, MessageError, SessionTable, Step,
};
use crate::schedulers::{HeaderLookup, Pick, RequestInfo};
use crate::table::{ServerAddr, Service, ServiceId, Settings};

/// The buffer a client waits in before its first request.
const IDLE_BUFFER: usize = 4 * 1024;
/// How long past a session's timeout a silent client is still waited for.
const SESSION_SLACK: Duration = Duration::from_secs(10);
/// Most parts gathered into one vectored write (the kernel takes 1024).
const MAX_PARTS: usize = 256;

/// Serves one accepted client connection of RTSP service `ident`.
pub async fn serve(ctx: Rc<Context>, client: Conn, ident: ServiceId) {
    let mut from_client = Inbound::new(&client, BytesMut::with_capacity(IDLE_BUFFER));
    // The first head's deadline runs from the accept.
    from_client.head_started = Some(Instant::now());
    let Some(pinned) = pin_server(&ctx, &client, &ident, &mut from_client).await else {
        return;
    };
    let Pinned {
        service,
        settings,
        server,
        pick,
        rule,
        first,
    } = pinned;
    let Some(sessions) = service.sessions.clone() else {
        return;
    };
    let conversation = Conversation {
        client: &client,
        server: &server,
        server_addr: pick.server.addr,
        rule,
        sessions: &sessions,
        settings: &settings,
        service: &service,
        pending: RefCell::default(),
        learned: RefCell::default(),
        longest_timeout: Cell::default(),
        client_writes: AsyncMutex::new(()),
    };
    let from_server = Inbound::new(&server, ctx.memory.take_buffer());
    let upstream = pin!(conversation.upstream(from_client, first));
    let downstream = pin!(conversation.downstream(from_server));
    // Whichever direction ends first ends both: the other's posted read is
    // completed by the shutdowns when the connections drop below.
    let ended = crate::net::select! {
        side = upstream => side,
        side = downstream => side,
    };
    conversation.end(ended);
    drop(pick);
}

/// The server a connection is pinned to, and the request that chose it.
struct Pinned {
    service: Arc<Service>,
    settings: Settings,
    server: Conn,
    pick: Pick,
    /// The rule that routed the first request (`None`: the default set, or
    /// its session's owner).
    rule: Option<usize>,
    first: Admitted,
}

/// Reads the client's requests, answering those the proxy answers itself,
/// until one chooses the server; connects to it. `None`: the client left or
/// was refused.
async fn pin_server(
    ctx: &Context,
    client: &Conn,
    ident: &ServiceId,
    inbound: &mut Inbound<'_>,
) -> Option<Pinned> {
    loop {
        let settings = ctx.table.load().settings().clone();
        let limits = head_limits(&settings);
        let message = match inbound.next_message(&settings, &limits).await {
            Ok(message) => message,
            Err(InboundEnd::Malformed(error, cseq)) => {
                tracing::debug!(client = %client.peer(), "bad RTSP message: {error}");
                reply(client, &ProxyError::BadMessage(error), &cseq, &settings).await;
                linger(client, BytesMut::new()).await;
                return None;
            }
            Err(_) => return None,
        };
        if message.method().is_none() {
            // A response with no request of the server's to answer.
            let error = ProxyError::UnexpectedResponse;
            reply(client, &error, &message.cseq, &settings).await;
            linger(client, BytesMut::new()).await;
            return None;
        }
        // The table as it is now, not as it was when the client went idle.
        let table = ctx.table.load_full();
        let settings = table.settings().clone();
        let Some(service) = table.service(ident).cloned() else {
            // The service was deleted while this client was connected.
            reply(client, &ProxyError::ServiceGone, &message.cseq, &settings).await;
            return None;
        };
        // An edit may have made the service HTTP: this client is not ours.
        let sessions = service.sessions.clone()?;
        let admitted = match admit(message, &sessions, None, std::time::Instant::now()) {
            Ok(admitted) => admitted,
            // Its body, if any, is dropped by the next `next_message`.
            Err(Refused { error, request }) => {
                log_refused(&settings, client.peer(), &service, &request, &error);
                reply(client, &error, &request.cseq, &settings).await;
                continue;
            }
        };
        let chosen = match &admitted.session {
            Some((id, owner)) => connect_owner(&service, *owner, &sessions, id, &settings)
                .await
                .map(|(server, pick)| (server, pick, None)),
            None => connect_routed(&service, client, &admitted.request, &settings).await,
        };
        match chosen {
            Ok((server, pick, rule)) => {
                return Some(Pinned {
                    service,
                    settings,
                    server,
                    pick,
                    rule,
                    first: admitted,
                })
            }
            Err(error) => {
                let request = &admitted.request;
                log_refused(&settings, client.peer(), &service, request, &error);
                reply(client, &error, &request.cseq, &settings).await;
            }
        }
    }
}

/// Connects to the server that owns the request's session: no other server
/// can serve it, so there is no failover.
async fn connect_owner(
    service: &Service,
    owner: ServerAddr,
    sessions: &SessionTable,
    id: &str,
    settings: &Settings,
) -> Result<(Conn, Pick), ProxyError> {
    // The owner was deleted from the table: its sessions are gone with it.
    let Some(server) = service.servers.iter().find(|s| s.addr == owner) else {
        sessions.forget(id, owner);
        return Err(ProxyError::SessionServerGone);
    };
    match connect_pinned(service, server, settings).await {
        Ok(connected) => Ok(alive(connected)),
        Err(unreachable) => Err(unreachable.error()),
    }
}

/// Connects to a server the content rules and the scheduler pick for the
/// request's path, trying the next one when a connect fails; with the rule
/// that routed it.
async fn connect_routed(
    service: &Arc<Service>,
    client: &Conn,
    message: &Message,
    settings: &Settings,
) -> Result<(Conn, Pick, Option<usize>), ProxyError> {
    let path = message
        .routing_path(super::slashes(settings))
        .map_err(ProxyError::BadMessage)?;
    let request = RequestInfo {
        path: &path,
        host: None,
        client: client.peer().ip(),
        headers: message,
    };
    let route = service.route(&request);
    let mut tries = Tries::new(service);
    match connect_scheduled(
        service,
        &route,
        &request,
        settings,
        &mut tries,
        Reuse::Never,
    )
    .await
    {
        Ok(connected) => {
            let (server, pick) = alive(connected);
            Ok((server, pick, route.rule))
        }
        Err(unreachable) => {
            tracing::debug!(client = %client.peer(), "{unreachable}");
            Err(unreachable.error())
        }
    }
}

/// A server that took an RTSP connection is alive: its passive failure
/// marks are cleared (an RTSP conversation has no single answer to wait for).
fn alive(connected: Connected) -> (Conn, Pick) {
    connected.pick.server.state.mark_ok();
    (connected.conn, connected.pick)
}

/// Sends a response of the proxy's own; a failure shows on the next read.
async fn reply(client: &Conn, error: &ProxyError, cseq: &str, settings: &Settings) {
    let mut out = Vec::with_capacity(64);
    write_reply(error.status(), cseq, &date::now(), &mut out);
    let deadline = Instant::now() + settings.timeouts.client;
    let _ = client.write_all(Bytes::from(out), deadline).await;
}

/// A request sent to the server and not answered yet.
struct Pending {
    method: String,
    uri: String,
    /// The Session the request carried.
    session: Option<String>,
    sent: Instant,
    /// Its bytes sent on: the head as re-serialized, and its body.
    bytes: u64,
}

/// The two directions of a pinned connection, and what they share.
struct Conversation<'a> {
    client: &'a Conn,
    server: &'a Conn,
    server_addr: ServerAddr,
    /// The rule that pinned the connection to its server.
    rule: Option<usize>,
    sessions: &'a SessionTable,
    settings: &'a Settings,
    service: &'a Service,
    /// Requests forwarded to the server, by CSeq.
    pending: RefCell<HashMap<String, Pending>>,
    /// Sessions this connection learned from SETUP responses.
    learned: RefCell<Vec<String>>,
    /// The longest timeout among them.
    longest_timeout: Cell<Duration>,
    /// Both directions write to the client: one whole message or run of
    /// frames at a time.
    client_writes: AsyncMutex<()>,
}

impl Conversation<'_> {
    /// Client to server: requests (checked, rewritten), answers to the
    /// server's requests, and interleaved frames, until the client leaves.
    async fn upstream(&self, mut inbound: Inbound<'_>, first: Admitted) -> EndedBy {
        let limits = head_limits(self.settings);
        let mut out = Vec::new();
        let mut replies = Vec::new();
        // Body bytes of a request the proxy refused, still to be dropped
        // (frames after it are relayed as usual).
        let mut discard: u64 = 0;
        self.forward_request(first, &mut out);
        loop {
            loop {
                let unit = match inbound.next_buffered(&limits) {
                    Ok(Some(unit)) => unit,
                    Ok(None) => break,
                    Err(InboundEnd::Malformed(error, cseq)) => {
                        tracing::debug!(client = %self.client.peer(), "bad RTSP message: {error}");
                        let status = ProxyError::BadMessage(error).status();
                        write_reply(status, &cseq, &date::now(), &mut replies);
                        return self
                            .flush_upstream(out, replies)
                            .await
                            .err()
                            .unwrap_or(EndedBy::Client);
                    }
                    Err(_) => return EndedBy::Client,
                };
                match unit {
                    // The demux never runs a body into the next frame.
                    Unit::Opaque(bytes) if discard > 0 => {
                        discard = discard.saturating_sub(bytes.len() as u64);
                    }
                    Unit::Opaque(bytes) => out.push(bytes),
                    Unit::Message(message) if message.method().is_none() => {
                        out.push(serialize(&message));
                    }
                    Unit::Message(message) => match admit(
                        *message,
                        self.sessions,
                        Some(self.server_addr),
                        std::time::Instant::now(),
                    ) {
                        Ok(message) => self.forward_request(message, &mut out),
                        Err(Refused { error, request }) => {
                            let peer = self.client.peer();
                            log_refused(self.settings, peer, self.service, &request, &error);
                            write_reply(error.status(), &request.cseq, &date::now(), &mut replies);
                            discard = request.body_len;
                        }
                    },
                }
                if out.len() >= MAX_PARTS {
                    break;
                }
            }
            let batch = (std::mem::take(&mut out), std::mem::take(&mut replies));
            if let Err(side) = self.flush_upstream(batch.0, batch.1).await {
                return side;
            }
            if inbound
                .fill(self.client_idle(), self.settings.timeouts.head)
                .await
                .is_err()
            {
                return EndedBy::Client;
            }
        }
    }

    /// Server to client: responses (which teach the session table), the
    /// server's own requests, and interleaved frames, until the server leaves.
    async fn downstream(&self, mut inbound: Inbound<'_>) -> EndedBy {
        let limits = head_limits(self.settings);
        loop {
            let mut out = Vec::new();
            loop {
                match inbound.next_buffered(&limits) {
                    Ok(Some(Unit::Opaque(bytes))) => out.push(bytes),
                    Ok(Some(Unit::Message(message))) => {
                        if message.status().is_some() {
                            self.settle(&message);
                        }
                        out.push(serialize(&message));
                    }
                    Ok(None) => break,
                    Err(end) => {
                        if let InboundEnd::Malformed(error, _) = end {
                            tracing::warn!(server = %self.server_addr, "bad RTSP message: {error}");
                        }
                        self.write_client(out).await;
                        return EndedBy::Server;
                    }
                }
                if out.len() >= MAX_PARTS {
                    break;
                }
            }
            if !self.write_client(out).await {
                return EndedBy::Client;
            }
            let idle = self.settings.timeouts.server;
            if inbound
                .fill(idle, self.settings.timeouts.head)
                .await
                .is_err()
            {
                return EndedBy::Server;
            }
        }
    }

    /// How long the client may stay silent: a viewer only receiving media
    /// needs to speak only within its sessions' timeouts (RFC 2326 12.37).
    fn client_idle(&self) -> Duration {
        self.settings
            .timeouts
            .client
            .max(self.longest_timeout.get() + SESSION_SLACK)
    }

    fn forward_request(&self, admitted: Admitted, out: &mut Vec<Bytes>) {
        let message = admitted.request;
        let head = serialize(&message);
        let pending = Pending {
            method: message.method().unwrap_or_default().to_string(),
            uri: message.uri().unwrap_or_default().to_string(),
            session: admitted.session.map(|(id, _)| id),
            sent: Instant::now(),
            bytes: head.len() as u64 + message.body_len,
        };
        self.pending
            .borrow_mut()
            .insert(message.cseq.clone(), pending);
        out.push(head);
    }

    /// Carries out what a response does to the sessions (`rtsp_policy::settle`)
    /// and finishes its request's record.
    fn settle(&self, response: &Message) {
        let Some(request) = self.pending.borrow_mut().remove(&response.cseq) else {
            return;
        };
        let status = response.status().unwrap_or_default();
        let now = std::time::Instant::now();
        let answer_session = session(response).ok().flatten();
        let effect = settle(
            &request.method,
            request.session.as_deref(),
            status,
            answer_session,
            &self.learned.borrow(),
        );
        match effect {
            Settle::Nothing => {}
            Settle::Refresh { id } => {
                self.sessions.lookup(&id, now);
            }
            Settle::Learn { id, timeout } => {
                self.longest_timeout
                    .set(self.longest_timeout.get().max(timeout));
                if self.sessions.learn(&id, self.server_addr, timeout, now) {
                    self.learned.borrow_mut().push(id);
                } else {
                    tracing::warn!(service = %self.service.ident, "RTSP session table full");
                }
            }
            Settle::End { id } => {
                self.sessions.forget(&id, self.server_addr);
                self.learned.borrow_mut().retain(|learned| *learned != id);
            }
        }
        self.finish_record(&request, Some(status), None);
    }

    /// Finishes the record of a request sent to the server: with the status
    /// of its answer, or none when the conversation ended first.
    fn finish_record(&self, request: &Pending, status: Option<u16>, ended: Option<EndedBy>) {
        let mut record = Record::started_at(
            self.client.peer(),
            self.service.ident.as_str(),
            &request.method,
            &request.uri,
            request.sent,
        );
        record.spoken_in(VERSION);
        record.received(request.bytes);
        record.routed_by(self.rule.and_then(|rule| self.service.rule_shown(rule)));
        record.sent_to(self.server_addr);
        if let Some(status) = status {
            record.answered(status);
        }
        if let Some(ended) = ended {
            let by = match ended {
                EndedBy::Client => Party::Client,
                EndedBy::Server => Party::Server,
            };
            record.ended(Termination::new(by, Phase::Headers));
        }
        record.finish(self.settings);
    }

    /// Ends the conversation's hold on its sessions, each as
    /// `rtsp_policy::fate_at_end` says, and the records of the requests
    /// still unanswered.
    fn end(&self, ended: EndedBy) {
        let now = std::time::Instant::now();
        let torn_down: Vec<String> = self
            .pending
            .borrow()
            .values()
            .filter(|request| request.method == "TEARDOWN")
            .filter_map(|request| request.session.clone())
            .collect();
        let learned = self.learned.borrow();
        for id in torn_down.iter().chain(learned.iter()) {
            match fate_at_end(ended, torn_down.contains(id)) {
                Fate::Forget => self.sessions.forget(id, self.server_addr),
                Fate::Release => self.sessions.release(id, self.server_addr, now),
            }
        }
        // Requests the server never answered end with the conversation.
        for request in self.pending.borrow().values() {
            self.finish_record(request, None, Some(ended));
        }
    }

    /// Sends our own answers to the client, then the batch to the server:
    /// an answer of ours reaches the client before the server's responses
    /// to requests that followed it. `Err`: that side's connection is gone.
    async fn flush_upstream(&self, out: Vec<Bytes>, replies: Vec<u8>) -> Result<(), EndedBy> {
        if !self.write_client(vec![Bytes::from(replies)]).await {
            return Err(EndedBy::Client);
        }
        let deadline = Instant::now() + self.settings.timeouts.server;
        if !out.is_empty() && self.server.write_all_vectored(out, deadline).await.is_err() {
            return Err(EndedBy::Server);
        }
        Ok(())
    }

    /// Writes whole units to the client. `false`: the client is gone.
    async fn write_client(&self, mut out: Vec<Bytes>) -> bool {
        out.retain(|part| !part.is_empty());
        if out.is_empty() {
            return true;
        }
        let _turn = self.client_writes.lock().await;
        let deadline = Instant::now() + self.settings.timeouts.client;
        self.client.write_all_vectored(out, deadline).await.is_ok()
    }
}

/// The record of a request the proxy answered itself: no server got it.
fn log_refused(
    settings: &Settings,
    peer: std::net::SocketAddr,
    service: &Service,
    request: &Message,
    error: &ProxyError,
) {
    let method = request.method().unwrap_or_default();
    let target = request.uri().unwrap_or_default();
    let mut record = Record::start(peer, service.ident.as_str(), method, target);
    record.spoken_in(VERSION);
    record.received(serialize(request).len() as u64 + request.body_len);
    record.answered(error.status());
    record.ended(Termination::of(error));
    record.finish(settings);
}

fn serialize(message: &Message) -> Bytes {
    let mut out = Vec::with_capacity(256);
    message.write(&mut out);
    Bytes::from(out)
}

impl HeaderLookup for Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.field(name)
    }

    fn any_value(&self, name: &str, accept: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.headers
            .iter()
            .filter(|h| h.is(name))
            .any(|h| accept(&h.value))
    }
}

/// What comes next from one side.
enum Unit {
    Message(Box<Message>),
    /// Bytes of an interleaved frame or a message body, relayed as they are.
    Opaque(Bytes),
}

/// Why one side's stream ended.
enum InboundEnd {
    Closed,
    TimedOut,
    Failed,
    /// A message we cannot read, and the CSeq we could salvage from it.
    Malformed(MessageError, String),
}

/// One side's incoming bytes, cut into units.
struct Inbound<'c> {
    conn: &'c Conn,
    buf: BytesMut,
    demux: Demux,
    /// When the partial head now buffered began: it must end within the
    /// head timeout from then.
    head_started: Option<Instant>,
    /// Bytes already looked at for the end of a head.
    scanned: usize,
}

impl<'c> Inbound<'c> {
    fn new(conn: &'c Conn, buf: BytesMut) -> Self {
        Self {
            conn,
            buf,
            demux: Demux::new(),
            head_started: None,
            scanned: 0,
        }
    }

    /// The next complete unit in the buffer, without reading.
    fn next_buffered(&mut self, limits: &Limits) -> Result<Option<Unit>, InboundEnd> {
        let head_pending = self.demux.at_boundary() && self.buf.first().is_some_and(|&b| b != b'$');
        if head_pending
            && !head_may_end(&self.buf, self.scanned)
            && self.buf.len() <= limits.max_head_bytes
        {
            self.scanned = self.buf.len();
            self.head_started.get_or_insert_with(Instant::now);
            return Ok(None);
        }
        self.scanned = 0;
        match self.demux.step(&self.buf, limits) {
            Ok(Step::More) => {
                if self.demux.at_boundary() && !self.buf.is_empty() {
                    self.head_started.get_or_insert_with(Instant::now);
                }
                self.scanned = self.buf.len();
                Ok(None)
            }
            Ok(Step::Opaque(n)) => Ok(Some(Unit::Opaque(self.buf.split_to(n).freeze()))),
            Ok(Step::Message(message, len)) => {
                self.buf.advance(len);
                self.head_started = None;
                Ok(Some(Unit::Message(message)))
            }
            Err(error) => Err(InboundEnd::Malformed(error, salvage_cseq(&self.buf))),
        }
    }

    /// Reads more: the peer may stay silent for `idle`, and a head it has
    /// begun must be complete `head` after its first byte.
    async fn fill(&mut self, idle: Duration, head: Duration) -> Result<(), InboundEnd> {
        let mut deadline = Instant::now() + idle;
        if let Some(started) = self.head_started {
            deadline = deadline.min(started + head);
        }
        match self
            .conn
            .read(std::mem::take(&mut self.buf), deadline)
            .await
        {
            Ok((0, _)) => Err(InboundEnd::Closed),
            Ok((_, buf)) => {
                self.buf = buf;
                Ok(())
            }
            Err(IoFailure::TimedOut) => Err(InboundEnd::TimedOut),
            Err(_) => Err(InboundEnd::Failed),
        }
    }

    /// The next message, reading as needed; frames before it are dropped
    /// (no server is there to take them yet).
    async fn next_message(
        &mut self,
        settings: &Settings,
        limits: &Limits,
    ) -> Result<Message, InboundEnd> {
        loop {
            match self.next_buffered(limits)? {
                Some(Unit::Message(message)) => return Ok(*message),
                Some(Unit::Opaque(_)) => {}
                None => {
                    // Between requests the client may idle; a begun head may not.
                    let idle = settings.timeouts.keepalive;
                    self.fill(idle, settings.timeouts.head).await?;
                }
            }
        }
    }
}
