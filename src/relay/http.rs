//! One HTTP client connection: read a request head, let the content rules and
//! the scheduler pick a real server, forward the request, relay the response,
//! and on a keep-alive connection do it all again for the next request
//! (KTCPVS's `phttp`: every request is scheduled on its own).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::net::Instant;
use bytes::{Buf, Bytes, BytesMut};

use super::body::{self, BodyError, End};
use super::connect::{connect_scheduled, Connected, Reuse, Tries};
use super::decide::{self, Answer, BodyPlan, Flow, Retry};
use super::error::ProxyError;
use super::record::Record;
use super::termination::{Party, Phase, Termination};
use super::Context;
use super::{head_limits as http_limits, head_may_end, response_limits, slashes, tunnel};
use crate::net::{Conn, IoFailure};
use crate::protocols::http::{
    date, parse_request_with, parse_response, write_error_response, write_request_head,
    write_response_head, ForwardOptions, Framing, HeadError, Limits as HttpLimits, RequestHead,
    ResponseHead, Version,
};
use crate::schedulers::{HeaderLookup, Pick, RequestInfo};
use crate::table::{Service, ServiceId, Settings, Table};
use crate::throttled::Throttled;

/// The buffer an idle keep-alive client waits in: room for a typical request
/// head, so that thousands of idle clients do not each pin a body-sized one.
const IDLE_BUFFER: usize = 2 * 1024;

/// How much of a head arriving in pieces is kept to name it in the access
/// line of a 408 (see `Session::partial_head`).
const PARTIAL_HEAD_KEPT: usize = 256;

/// Serves one accepted client connection of service `service` until it closes.
pub async fn serve(ctx: Rc<Context>, client: Conn, service: ServiceId) {
    let peer = client.peer();
    let mut session = Session {
        ctx,
        client,
        peer,
        service,
        buf: BytesMut::with_capacity(IDLE_BUFFER),
        head_began: None,
        partial_head: Vec::new(),
        head_len: 0,
    };
    let mut head_started = Some(Instant::now());
    loop {
        // The limits and timeouts to read with; the request itself is routed
        // by the table as it is once it has arrived, not as it was when the
        // client went idle.
        let reading = session.ctx.table.load_full();
        let settings = reading.settings();
        let head = match session.read_head(settings, head_started.take()).await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            // Boxed, as the close below: rare paths, kept out of the state
            // every idle client's task carries.
            Err(error) => {
                let refuse = Box::pin(session.refuse(error, settings));
                return refuse.await;
            }
        };
        // Usually unchanged: then no second reference is taken.
        let table = {
            let current = session.ctx.table.load();
            if std::sync::Arc::ptr_eq(&current, &reading) {
                reading
            } else {
                arc_swap::Guard::into_inner(current)
            }
        };
        // Boxed: the exchange's state (large: the heads, body and response
        // relays) lives only while it runs, so an idle keep-alive client's
        // task stays small. Boxed in a statement of its own: a future built
        // inside the `match` below would be a temporary living across the
        // await, and the compiler would reserve room for it in this task's
        // state anyway (8 KB more per connection, copied at every spawn).
        let exchange = Box::pin(session.exchange(&table, &head));
        let flow = exchange.await;
        session.ctx.memory.recycle_head(head);
        match flow {
            Flow::KeepAlive => {}
            Flow::Close => return,
            Flow::Linger => {
                let linger = Box::pin(session.linger());
                return linger.await;
            }
        }
    }
}

/// A 429 for a request over its address's `rate_per_source`, said in the
/// log once a second with the count and the last address refused.
fn over_rate(service: &Service, peer: SocketAddr) -> Option<ProxyError> {
    let refusal = service
        .sources
        .as_ref()?
        .request(peer.ip(), service.per_source())
        .err()?;
    static OVER_RATE: Throttled = Throttled::new();
    if let Some(times) = OVER_RATE.occurred() {
        tracing::warn!(
            service = %service.ident,
            client = %peer.ip(),
            times,
            "429: {}",
            refusal
        );
    }
    Some(ProxyError::TooManyRequests {
        retry_after_secs: refusal.retry_after().as_secs(),
    })
}

/// Why one attempt at forwarding a request failed.
enum AttemptError {
    /// Answer the client with this error (nothing of a response was sent yet).
    Respond(ProxyError, Flow),
    /// The exchange broke after the response started (`status`, when its
    /// head was being sent), or the client left: close the client.
    Broken {
        status: Option<u16>,
        termination: Termination,
    },
}

impl AttemptError {
    /// A break while `phase` ran, before any answer to the client.
    fn broken(termination: Termination) -> Self {
        AttemptError::Broken {
            status: None,
            termination,
        }
    }
}

struct Session {
    ctx: Rc<Context>,
    client: Conn,
    peer: SocketAddr,
    service: ServiceId,
    /// Bytes read from the client and not consumed yet.
    buf: BytesMut,
    /// When the head being read began (its first byte, or the accept for a
    /// first request): the start of a refused request's record.
    head_began: Option<Instant>,
    /// The start of a head that is arriving in pieces, copied before each
    /// read: a read that times out keeps its buffer, and the 408's access
    /// line should still say what the client was sending.
    partial_head: Vec<u8>,
    /// The length of the last head read, for the request bytes counted.
    head_len: usize,
}

impl Session {
    /// Reads the next request head. `Ok(None)`: the client closed or went idle
    /// between requests. `Err(status)`: answer with that status and close.
    ///
    /// The head comes in a box of the worker's (`Memory::box_head`):
    /// the slot for this future's output is reserved in the connection's task
    /// beside the future itself, so a 640-byte head returned by value cost
    /// every idle client as much again (task 1 792 -> 1 152 bytes).
    ///
    /// The head has an absolute deadline that starts with its first byte (or at
    /// accept for the first request): a client trickling bytes cannot hold a
    /// connection longer than `timeouts.head`.
    async fn read_head(
        &mut self,
        settings: &Settings,
        started: Option<Instant>,
    ) -> Result<Option<Box<RequestHead>>, ProxyError> {
        let timeouts = &settings.timeouts;
        let limits = http_limits(settings);
        self.head_began = started;
        let mut deadline = started.map(|at| at + timeouts.head);
        if self.buf.is_empty() {
            // Between requests: take back the room consumed heads left behind
            // (no allocation), and wait in a small buffer rather than pin a
            // body-sized one while the client is idle.
            self.buf.reserve(IDLE_BUFFER);
            if self.buf.capacity() > IDLE_BUFFER {
                let small = self.ctx.memory.idle_buffer(IDLE_BUFFER);
                let big = std::mem::replace(&mut self.buf, small);
                self.ctx.memory.recycle(big);
            }
        }
        // Parse only when the head may be complete (or too long): a client
        // sending a byte at a time must not cost a full re-parse per byte.
        let mut scanned = 0;
        loop {
            let worth_parsing =
                head_may_end(&self.buf, scanned) || self.buf.len() > limits.max_head_bytes;
            scanned = self.buf.len();
            if worth_parsing {
                match parse_request_with(&self.buf, &limits, slashes(settings)) {
                    Ok(Some((head, len))) => {
                        self.buf.advance(len);
                        self.head_len = len;
                        return Ok(Some(self.ctx.memory.box_head(head)));
                    }
                    // The parser enforces the limit; this only guards the buffer.
                    Ok(None) if self.buf.len() > limits.max_head_bytes => {
                        let too_large = HeadError::TooLarge {
                            start_line_complete: true,
                        };
                        return Err(ProxyError::BadRequest(too_large.into()));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(client = %self.peer, "bad request: {e}");
                        return Err(ProxyError::BadRequest(e));
                    }
                }
            }
            // Before the first byte of a keep-alive request only the idle timer
            // runs; from that byte on, the head deadline.
            if !self.buf.is_empty() && deadline.is_none() {
                let now = Instant::now();
                self.head_began = Some(now);
                deadline = Some(now + timeouts.head);
            }
            let wait_until = deadline.unwrap_or_else(|| Instant::now() + timeouts.keepalive);
            let had_bytes = !self.buf.is_empty();
            if had_bytes {
                let start = &self.buf[..self.buf.len().min(PARTIAL_HEAD_KEPT)];
                self.partial_head.clear();
                self.partial_head.extend_from_slice(start);
            }
            // Between requests the client is idle: a graceful stop closes it.
            let _idle = (!had_bytes).then(|| self.ctx.idle_clients.wait(&self.client));
            match self
                .client
                .read(std::mem::take(&mut self.buf), wait_until)
                .await
            {
                Ok((0, buf)) => {
                    self.buf = buf;
                    if had_bytes {
                        self.record_abandoned_head(
                            settings,
                            Termination::new(Party::Client, Phase::Request),
                        );
                    }
                    return Ok(None);
                }
                Ok((_, buf)) => self.buf = buf,
                Err(IoFailure::TimedOut) if had_bytes => {
                    self.buf.extend_from_slice(&self.partial_head);
                    return Err(ProxyError::HeadTimeout);
                }
                Err(failure) => {
                    if had_bytes {
                        self.buf.extend_from_slice(&self.partial_head);
                        let termination = Termination::io(&failure, Party::Client, Phase::Request);
                        self.record_abandoned_head(settings, termination);
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// Forwards one request and relays its response; its record is finished
    /// here, once, whichever way the exchange ended.
    async fn exchange(&mut self, table: &Table, head: &RequestHead) -> Flow {
        let settings = table.settings();
        let Some(service) = table.service(&self.service).cloned() else {
            // The service was deleted while this client was connected.
            let error = ProxyError::ServiceGone;
            let mut record = Record::of_request(self.peer, self.service.as_str(), head);
            record.answered(error.status());
            record.ended(Termination::of(&error));
            record.finish(settings);
            return self.respond_error(&error, Flow::Linger, settings).await;
        };
        let mut record = Record::of_request(self.peer, service.ident.as_str(), head);
        // The head; `forward` adds the body's bytes as it sends them.
        record.received(self.head_len as u64);
        if let Some(error) = over_rate(&service, self.peer) {
            record.answered(error.status());
            record.ended(Termination::of(&error));
            record.finish(settings);
            return self.respond_error(&error, Flow::Linger, settings).await;
        }
        let flow = self.attempts(settings, &service, head, &mut record).await;
        record.finish(settings);
        flow
    }

    /// Sends the request to the server the rules and scheduler pick: the
    /// next one when a connect fails or the server closes before any byte of
    /// its answer (within the service's retry budget; a request that is not
    /// replayable only on a failed connect), and once more on a new
    /// connection when a pooled one turned out closed. Failures count against
    /// their server; an answer clears its passive marks.
    async fn attempts<'r>(
        &mut self,
        settings: &Settings,
        service: &'r Arc<Service>,
        head: &RequestHead,
        record: &mut Record<'r>,
    ) -> Flow {
        let request = RequestInfo {
            path: head.path(),
            host: head.host.as_deref(),
            client: self.peer.ip(),
            headers: head,
        };
        // The body's deadline runs from the end of its head.
        let body_until = Instant::now() + settings.timeouts.body;
        match self.body_first(settings, service, head, body_until).await {
            Ok(()) => {}
            Err(AttemptError::Respond(error, flow)) => {
                record.answered(error.status());
                record.ended(Termination::of(&error));
                return self.respond_error(&error, flow, settings).await;
            }
            Err(AttemptError::Broken { termination, .. }) => {
                record.ended(termination);
                return Flow::Close;
            }
        }
        let route = service.route(&request);
        record.routed_by(route.rule.and_then(|rule| service.rule_shown(rule)));
        let passive = &service.health.passive;
        let mut tries = Tries::new(service);
        let mut fresh_only = false;
        let mut failed_try: Option<(ProxyError, Flow)> = None;
        loop {
            let reuse = if fresh_only {
                Reuse::Never
            } else {
                Reuse::Pooled {
                    pool: &self.ctx.pool,
                    max_idle: decide::pool_max_idle(&head.method, &settings.timeouts),
                }
            };
            let connected =
                connect_scheduled(service, &route, &request, settings, &mut tries, reuse).await;
            let Connected {
                conn,
                pick,
                reused,
                passed_over,
            } = match connected {
                Ok(connected) => connected,
                Err(unreachable) => {
                    tracing::debug!(client = %self.peer, "{unreachable}");
                    // No server left to retry on: the client hears of the
                    // failure that made us retry, not of the empty list.
                    let (error, flow, termination) = match failed_try.take() {
                        Some((error, flow)) if unreachable.failed.is_empty() => {
                            let termination = Termination::of(&error);
                            (error, flow, termination)
                        }
                        _ => {
                            let termination = Termination::unreachable(&unreachable);
                            let flow = decide::flow_after_no_server(head);
                            (unreachable.error(), flow, termination)
                        }
                    };
                    record.answered(error.status());
                    record.ended(termination);
                    return self.respond_error(&error, flow, settings).await;
                }
            };
            if let Some(last) = passed_over.last() {
                let (failed, server) = (passed_over.len(), pick.server.addr);
                tracing::debug!(%server, "chosen after {failed} failed connects, the last to {}", last.server);
            }
            record.sent_to(pick.server.addr);
            let outcome = self
                .forward(
                    settings,
                    service,
                    head,
                    &pick,
                    (conn, reused),
                    (body_until, record),
                )
                .await;
            let state = &pick.server.state;
            let (error, flow) = match outcome {
                Ok((status, flow)) => {
                    if decide::answer_counts_as_failure(status, passive) {
                        state.record_failure(passive);
                    } else {
                        state.mark_ok();
                    }
                    record.answered(status);
                    return flow;
                }
                Err(AttemptError::Respond(error, flow)) => (error, flow),
                Err(AttemptError::Broken {
                    status,
                    termination,
                }) => {
                    if let Some(status) = status {
                        record.answered(status);
                    }
                    record.ended(termination);
                    return Flow::Close;
                }
            };
            if error.counts_against_server() {
                state.record_failure(passive);
            }
            match decide::retry(&error, head) {
                Retry::NewConnection if !fresh_only => {
                    fresh_only = true;
                    continue;
                }
                Retry::AnotherServer if tries.failed_on(pick.server.addr, service) => {
                    tracing::debug!(server = %pick.server.addr, client = %self.peer, "retrying elsewhere: {error}");
                    failed_try = Some((error, flow));
                    continue;
                }
                _ => {}
            }
            record.answered(error.status());
            record.ended(Termination::of(&error));
            return self.respond_error(&error, flow, settings).await;
        }
    }

    /// What is done with the body before any server is chosen: too large,
    /// 413; small, read whole first, so that a slow client holds no server
    /// connection while it sends; else nothing yet (it streams).
    async fn body_first(
        &mut self,
        settings: &Settings,
        service: &Service,
        head: &RequestHead,
        until: Instant,
    ) -> Result<(), AttemptError> {
        let limits = &settings.limits;
        match decide::body_plan(head.framing, service.max_body, limits.body_buffer) {
            BodyPlan::Stream => Ok(()),
            BodyPlan::TooLarge => Err(AttemptError::Respond(
                ProxyError::BodyTooLarge,
                Flow::Linger,
            )),
            BodyPlan::Buffer(length) => {
                let until = (until, settings.timeouts.client);
                self.read_small_body(head, length, until).await
            }
        }
    }

    /// Reads a body of `length` bytes whole into the client buffer before any
    /// server is chosen, within the body deadline. A client that asked to
    /// hear 100 (Continue) first hears it from us (RFC 9110 10.1.1; nginx does
    /// the same), and its server does not see the expectation. What is left
    /// to read is read into a lent buffer (with the few bytes already here):
    /// a read into the small idle one would grow it, an allocation.
    /// `(until, timeout)`: the body's deadline, and how long each read may
    /// wait before it.
    async fn read_small_body(
        &mut self,
        head: &RequestHead,
        length: usize,
        (until, timeout): (Instant, Duration),
    ) -> Result<(), AttemptError> {
        if self.buf.len() >= length {
            return Ok(());
        }
        let client = End {
            until: Some(until),
            ..End::new(&self.client, timeout)
        };
        if head.expect_continue {
            let interim = Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n");
            let sent = self.client.write_all(interim, client.deadline()).await;
            if let Err(e) = sent {
                let termination = Termination::io(&e, Party::Client, Phase::Request);
                return Err(AttemptError::broken(termination));
            }
        }
        let room = length - self.buf.len();
        self.ctx.memory.swap_for_lent(&mut self.buf, room);
        while self.buf.len() < length {
            match client
                .conn
                .read(std::mem::take(&mut self.buf), client.deadline())
                .await
            {
                Ok((0, _)) => {
                    let termination = Termination::new(Party::Client, Phase::Request);
                    return Err(AttemptError::broken(termination));
                }
                Ok((_, filled)) => self.buf = filled,
                Err(IoFailure::TimedOut) => {
                    tracing::debug!(client = %self.peer, "request body not received in time");
                    return Err(AttemptError::Respond(ProxyError::BodyTimeout, Flow::Close));
                }
                Err(e) => {
                    let termination = Termination::io(&e, Party::Client, Phase::Request);
                    return Err(AttemptError::broken(termination));
                }
            }
        }
        Ok(())
    }

    /// Sends the request on `server` and relays the response. Returns the
    /// final status and what to do with the client connection.
    ///
    /// The request body and the response head are relayed at the same time:
    /// a server may answer before it has read the body (a 100 Continue the
    /// client waits for, or an early 413), and neither side must wait on the
    /// other.
    async fn forward(
        &mut self,
        settings: &Settings,
        service: &Service,
        head: &RequestHead,
        pick: &Pick,
        (server, reused): (Conn, bool),
        (body_until, record): (Instant, &mut Record<'_>),
    ) -> Result<(u16, Flow), AttemptError> {
        let timeouts = &settings.timeouts;
        let limits = response_limits(settings);
        let client = End::new(&self.client, timeouts.client);
        let upstream = End::new(&server, timeouts.server);

        // The head, and a Content-Length body's first bytes in the same write.
        let backend_host = match head.host {
            Some(_) => String::new(),
            None => pick.server.addr.to_string(),
        };
        let options = ForwardOptions {
            client_ip: self.peer.ip(),
            backend_host: &backend_host,
            forwarded_proto: service.forwarded_proto.as_deref(),
            forwarded_host: false,
            // The whole body is at hand: the client waits for no 100 any more.
            drop_expect: matches!(head.framing, Framing::Length(n) if self.buf.len() as u64 >= n),
        };
        let (request_head, ()) = self
            .ctx
            .memory
            .write_head(|out| write_request_head(head, &options, out));
        let mut body_left = head.framing;
        // Request bytes sent on: the head as received, and the body.
        let head_bytes = self.head_len as u64;
        let mut body_sent = 0;
        let sent = match head.framing {
            Framing::Length(length) if !self.buf.is_empty() => {
                let first = usize::try_from(length)
                    .unwrap_or(usize::MAX)
                    .min(self.buf.len());
                let body = self.buf.split_to(first).freeze();
                body_left = Framing::Length(length - first as u64);
                body_sent = first as u64;
                server
                    .write_all_vectored(vec![request_head, body], deadline(timeouts.server))
                    .await
            }
            _ => {
                server
                    .write_all(request_head, deadline(timeouts.server))
                    .await
            }
        };
        if let Err(e) = sent {
            return Err(send_failure(reused, e));
        }
        record.received(head_bytes + body_sent);

        let mut from_server = self.ctx.memory.take_buffer();
        let (response, body_complete) = if matches!(body_left, Framing::None | Framing::Length(0)) {
            let response =
                read_final_head(client, upstream, &mut from_server, head, &limits, reused).await;
            (response, true)
        } else {
            // Boxed: most requests have no body, and every exchange's state
            // would otherwise have room for both relays (and be copied with it).
            let response =
                read_final_head(client, upstream, &mut from_server, head, &limits, reused);
            // Only the body's reads are bound by its deadline.
            let body_from = End {
                until: Some(body_until),
                ..client
            };
            let mut relayed = 0;
            let both = Box::pin(body_and_response(
                body_from,
                &mut self.buf,
                upstream,
                (body_left, service.max_body, &mut relayed),
                response,
            ));
            let both = both.await;
            record.received(head_bytes + body_sent + relayed);
            both?
        };
        let response = response.map_err(|e| match e {
            AttemptError::Respond(error, _) if !body_complete => {
                AttemptError::Respond(error, Flow::Close)
            }
            other => other,
        })?;

        if response.status == 101 && body_complete {
            let from_client = std::mem::take(&mut self.buf);
            // Boxed: a tunnel's state is large and rare, and every exchange's
            // state would otherwise have room for it (and be copied with it).
            let tunnel = Box::pin(switch_protocols(
                head,
                &response,
                (client, from_client),
                (upstream, from_server),
                timeouts.tunnel,
            ));
            return tunnel.await;
        }

        let answer = Answer {
            client_keep_alive: head.keep_alive,
            body_complete,
            framing: response.framing,
            server_keep_alive: response.keep_alive,
            draining: self.ctx.draining(),
        };
        let offer = answer.offer_keep_alive();
        let (response_head, client_body) = self
            .ctx
            .memory
            .write_head(|out| write_response_head(&response, head.version, offer, out));
        let client_keeps = answer.client_keeps(client_body);
        if !client_keeps {
            self.client.close_after_writes();
        }
        let mut body_sent = 0;
        let relayed = body::relay(
            upstream,
            &mut from_server,
            client,
            (response.framing, client_body),
            (Some(response_head), None),
            &mut body_sent,
        )
        .await;
        record.sent_body(body_sent);
        if let Err(e) = relayed {
            tracing::debug!(server = %pick.server.addr, client = %self.peer, "response cut: {e}");
            let termination = Termination::body(&e, Party::Server, Party::Client, Phase::Data);
            return Err(AttemptError::Broken {
                status: Some(response.status),
                termination,
            });
        }

        let server_reusable = answer.server_reusable(!from_server.is_empty(), server.is_poisoned());
        self.ctx.memory.recycle(from_server);
        if server_reusable {
            self.ctx
                .pool
                .borrow_mut()
                .put(pick.server.addr, server, settings.pool_per_server);
        }
        let flow = if client_keeps {
            Flow::KeepAlive
        } else {
            Flow::Close
        };
        Ok((response.status, flow))
    }

    /// Answers a request with an error of ours.
    async fn respond_error(&mut self, error: &ProxyError, flow: Flow, settings: &Settings) -> Flow {
        let close = flow != Flow::KeepAlive;
        let answer = self.own_answer(error.status(), close, error.retry_after_secs());
        let sent = self
            .client
            .write_all(answer, deadline(settings.timeouts.client))
            .await;
        if sent.is_err() {
            Flow::Close
        } else {
            flow
        }
    }

    /// The record of a request head the client stopped sending midway
    /// (closed or reset): no answer, but a line, so that a slowloris
    /// client that gives up is seen.
    fn record_abandoned_head(&self, settings: &Settings, termination: Termination) {
        let began = self.head_began.unwrap_or_else(Instant::now);
        let mut record = Record::refused(self.peer, self.service.as_str(), &self.buf, began);
        record.ended(termination);
        record.finish(settings);
    }

    /// Answers a malformed or unroutable request and closes: the bytes after a
    /// bad head cannot be trusted as a next request.
    async fn refuse(mut self, error: ProxyError, settings: &Settings) {
        // Recorded like any exchange, named by what the client sent.
        let began = self.head_began.unwrap_or_else(Instant::now);
        let mut record = Record::refused(self.peer, self.service.as_str(), &self.buf, began);
        record.answered(error.status());
        record.ended(Termination::of(&error));
        record.finish(settings);
        let answer = self.own_answer(error.status(), true, None);
        if self
            .client
            .write_all(answer, deadline(settings.timeouts.client))
            .await
            .is_ok()
        {
            self.buf.clear();
            self.linger().await;
        }
    }

    /// An answer of the proxy's own with `status`, dated, written in the
    /// worker's head block (no allocation per answer).
    fn own_answer(&self, status: u16, close: bool, retry_after_secs: Option<u64>) -> Bytes {
        let date = date::now();
        let (answer, ()) = self
            .ctx
            .memory
            .write_head(|out| write_error_response(status, close, &date, retry_after_secs, out));
        answer
    }

    /// Closes after reading what the client may still be sending.
    async fn linger(self) {
        super::linger(&self.client, self.buf).await;
    }
}

/// Relays the request body while `response` reads the response head.
/// Returns the response (or why it failed) and whether the whole body went;
/// the client's connection cannot be read again when it did not. The body
/// bytes written to the server are counted into `sent` when its relay
/// ends (not when an early answer cuts it).
async fn body_and_response(
    client: End<'_>,
    from_client: &mut BytesMut,
    server: End<'_>,
    (framing, max, sent): (Framing, Option<u64>, &mut u64),
    response: impl Future<Output = Result<ResponseHead, AttemptError>>,
) -> Result<(Result<ResponseHead, AttemptError>, bool), AttemptError> {
    let mut body = pin!(relay_request_body(
        client,
        from_client,
        server,
        (framing, max),
        sent
    ));
    let mut response = pin!(response);
    crate::net::select! {
        // The body first: its last write completes before the server
        // can answer it, so when both are ready in one turn the body
        // is complete, and a random pick would call the answer early
        // and needlessly close the client (losing pipelined requests).
        biased;
        sent = &mut body => {
            sent?;
            Ok((response.await, true))
        }
        early = &mut response => {
            // The client's body read was dropped in flight.
            client.conn.abandon_reads();
            Ok((early, false))
        }
    }
}

/// Relays the request body from the client to the server, a chunked one
/// cut past `max` bytes; `sent` is set to the bytes written (chunk framing
/// included, as re-encoded). A body cut short, too large or too slow,
/// closes the server connection (its request is incomplete) and the
/// client's.
async fn relay_request_body(
    client: End<'_>,
    buf: &mut BytesMut,
    server: End<'_>,
    (framing, max): (Framing, Option<u64>),
    sent: &mut u64,
) -> Result<(), AttemptError> {
    let result = body::relay(client, buf, server, (framing, framing), (None, max), sent).await;
    result.map_err(|e| {
        tracing::debug!(client = %client.conn.peer(), "request body: {e}");
        match e {
            BodyError::BadChunk(_) => {
                AttemptError::Respond(ProxyError::BadRequestBody, Flow::Linger)
            }
            BodyError::TooLarge => AttemptError::Respond(ProxyError::BodyTooLarge, Flow::Linger),
            BodyError::Write(_) => AttemptError::Respond(ProxyError::BodyNotSent, Flow::Linger),
            // Never read again from a client whose read timed out.
            BodyError::Read(IoFailure::TimedOut) => {
                AttemptError::Respond(ProxyError::BodyTimeout, Flow::Close)
            }
            BodyError::Read(_) | BodyError::Truncated => AttemptError::broken(Termination::body(
                &e,
                Party::Client,
                Party::Server,
                Phase::Request,
            )),
        }
    })
}

/// Relays a 101 and turns the connection into a tunnel to the server. Each
/// side comes with the bytes already read from it past the heads.
async fn switch_protocols(
    head: &RequestHead,
    response: &ResponseHead,
    (client, from_client): (End<'_>, BytesMut),
    (server, from_server): (End<'_>, BytesMut),
    idle: Duration,
) -> Result<(u16, Flow), AttemptError> {
    if head.upgrade.is_none() {
        tracing::warn!(server = %server.conn.peer(), "101 to a request that asked no upgrade");
        return Err(AttemptError::Respond(
            ProxyError::UnaskedUpgrade,
            Flow::Close,
        ));
    }
    let mut out = Vec::with_capacity(256);
    write_response_head(response, head.version, true, &mut out);
    client
        .conn
        .write_all(Bytes::from(out), deadline(client.timeout))
        .await
        .map_err(|e| AttemptError::Broken {
            status: Some(101),
            termination: Termination::io(&e, Party::Client, Phase::Data),
        })?;
    if let Err(e) = tunnel::run(client, from_client, server, from_server, idle).await {
        tracing::debug!(client = %client.conn.peer(), "tunnel ended: {e}");
    }
    Ok((101, Flow::Close))
}

/// Reads response heads until the final one, relaying interim (1xx) heads to
/// the client, except to an HTTP/1.0 client (RFC 9110 15.2).
async fn read_final_head(
    client: End<'_>,
    server: End<'_>,
    buf: &mut BytesMut,
    head: &RequestHead,
    limits: &HttpLimits,
    reused: bool,
) -> Result<ResponseHead, AttemptError> {
    // A pooled connection the server closed before answering anything.
    let mut may_be_stale = reused;
    for interim in 0.. {
        let read = read_response_head(server.conn, buf, head, limits, server.timeout, may_be_stale);
        let (response, len) = match read.await {
            Ok(found) => found,
            Err(error) => return Err(AttemptError::Respond(error, Flow::Close)),
        };
        may_be_stale = false;
        buf.advance(len);
        if !response.is_interim() {
            return Ok(response);
        }
        if interim == MAX_INTERIM {
            break;
        }
        if head.version == Version::Http11 {
            let mut out = Vec::with_capacity(128);
            write_response_head(&response, head.version, true, &mut out);
            client
                .conn
                .write_all(Bytes::from(out), deadline(client.timeout))
                .await
                .map_err(|e| {
                    AttemptError::broken(Termination::io(&e, Party::Client, Phase::Headers))
                })?;
        }
    }
    tracing::warn!(server = %server.conn.peer(), "more than {MAX_INTERIM} interim responses");
    Err(AttemptError::Respond(ProxyError::BadResponse, Flow::Close))
}

/// The most interim (1xx) responses relayed before the final one: a server
/// must not keep a client waiting, and the proxy reading, forever.
const MAX_INTERIM: usize = 16;

/// Reads one response head. A server that closes before sending a byte
/// is a stale pooled connection when `may_be_stale`, else a bad response.
async fn read_response_head(
    server: &Conn,
    buf: &mut BytesMut,
    head: &RequestHead,
    limits: &HttpLimits,
    timeout: Duration,
    may_be_stale: bool,
) -> Result<(ResponseHead, usize), ProxyError> {
    let deadline = deadline(timeout);
    let closed = if may_be_stale {
        ProxyError::StaleConnection
    } else {
        ProxyError::EmptyResponse
    };
    loop {
        if !buf.is_empty() {
            match parse_response(buf, &head.method, limits) {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(server = %server.peer(), "bad response: {e}");
                    return Err(ProxyError::BadResponse);
                }
            }
        }
        let empty_before = buf.is_empty();
        match server.read(std::mem::take(buf), deadline).await {
            Ok((0, _)) if empty_before => return Err(closed),
            Ok((0, _)) => return Err(ProxyError::BadResponse),
            Ok((_, filled)) => *buf = filled,
            Err(IoFailure::TimedOut) => return Err(ProxyError::ServerTimeout),
            Err(e) => {
                tracing::debug!(server = %server.peer(), "reading response: {e}");
                return Err(if empty_before {
                    closed
                } else {
                    ProxyError::BadResponse
                });
            }
        }
    }
}

/// Classifies a failure to send the request head.
fn send_failure(reused: bool, failure: IoFailure) -> AttemptError {
    match failure {
        IoFailure::Io(_) if reused => {
            AttemptError::Respond(ProxyError::StaleConnection, Flow::Close)
        }
        IoFailure::TimedOut => {
            AttemptError::Respond(ProxyError::SendFailed { timed_out: true }, Flow::Linger)
        }
        _ => AttemptError::Respond(ProxyError::SendFailed { timed_out: false }, Flow::Linger),
    }
}

impl HeaderLookup for RequestHead {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(&h.value).ok())
    }

    fn any_value(&self, name: &str, accept: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .any(|h| accept(&h.value))
    }
}

fn deadline(timeout: Duration) -> Instant {
    Instant::now() + timeout
}
