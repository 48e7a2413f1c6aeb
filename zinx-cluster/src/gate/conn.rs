//! One client connection of a gate, whatever its transport: open its
//! session, run the connection loop (`transport::conn`) with this gate as
//! what handles its frames, note why it ended, say the last words, and
//! clean up after the session (directory, the nodes that served it,
//! hooks).
//!
//! What each frame becomes is decided here ([`handle_frame`]): the
//! heartbeat is swallowed, the gate's own routes run in place, the others
//! are forwarded, the rest answered as errors; while the gate shuts down,
//! frames are answered `node_stopping` instead.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::net::TcpStream;
use tracing::{Instrument, debug, debug_span, info, info_span, warn};

use super::Gate;
use super::forward::forward;
use super::resume;
use crate::error::ErrorCode;
use crate::frame::{Frame, ZINX_HEARTBEAT_MSG_ID};
use crate::metrics::{DirOp, Outcome, Transport};
use crate::node::{ClientMessage, Dest};
use crate::session::{CloseReason, GatePhase, Offer, Session};
use crate::trace::{ActiveSpan, AttrValue, SpanKind};
use crate::transport::Ended;
use crate::transport::close;
use crate::transport::conn::{self, Flow, Inbound, Reading, Wire};
use zinx_cluster_client::wire::resume::Ack;
use zinx_cluster_client::wire::{ACK_MSG_ID, BYE_MSG_ID, HELLO_MSG_ID, is_control};

pub(super) use crate::transport::close::CLOSE_FLUSH;

/// A connection's frames, as the gate handles them.
struct GateInbound<'a> {
    gate: &'a Arc<Gate>,
    session: &'a Arc<Session>,
    /// The session a resume moved the connection to.
    switch: Mutex<Option<Arc<Session>>>,
}

impl Inbound for GateInbound<'_> {
    fn phase(&self) -> GatePhase {
        self.gate.sessions().phase()
    }

    async fn frame(&self, frame: Frame, stopping: bool) -> Flow {
        if is_control(frame.msg_id) && frame.msg_id != ZINX_HEARTBEAT_MSG_ID {
            return self.control(frame).await;
        }
        if stopping {
            refuse_frame(self.gate, self.session, frame);
        } else {
            handle_frame(self.gate, self.session, frame).await;
        }
        Flow::Continue
    }
}

impl GateInbound<'_> {
    /// A control frame of session resume (never routed).
    async fn control(&self, frame: Frame) -> Flow {
        let m = self.gate.node().metrics();
        m.frames_in.add(1);
        match frame.msg_id {
            HELLO_MSG_ID => {
                match Box::pin(resume::hello(self.gate, self.session, &frame.data)).await {
                    resume::Hellod::Stay => Flow::Continue,
                    resume::Hellod::Switch(target) => {
                        if let Ok(mut s) = self.switch.lock() {
                            *s = Some(target);
                        }
                        Flow::Switch
                    }
                }
            }
            ACK_MSG_ID => {
                match serde_json::from_slice::<Ack>(&frame.data) {
                    Ok(ack) => self.session.ack(ack.received),
                    Err(e) => {
                        debug!(session = %self.session.id, error = %e, "ACK that is not JSON ignored")
                    }
                }
                Flow::Continue
            }
            BYE_MSG_ID => {
                // The session ends now, no window.
                self.session.close_with(CloseReason::ClientClosed);
                Flow::Continue
            }
            other => {
                debug!(session = %self.session.id, msg_id = other, "reserved control msg_id ignored");
                Flow::Continue
            }
        }
    }
}

/// Serves a client whose handshakes are done (`input`: what it sent beyond
/// them, above TLS) over `wire`, from its session's opening to its end.
pub(super) async fn serve(
    gate: Arc<Gate>,
    stream: TcpStream,
    addr: SocketAddr,
    wire: Wire,
    input: BytesMut,
    transport: Transport,
) {
    let Some(session) = gate.open_session(addr, transport) else {
        gate.refuse(stream);
        return;
    };
    serve_session(gate, stream, addr, session, wire, input, transport).await;
}

/// Serves the connection of an open session to its end: the session ends
/// with it, or (resumable, its socket lost) waits for a resume; a resume
/// on this connection moves it to the resumed session.
pub(super) async fn serve_session(
    gate: Arc<Gate>,
    stream: TcpStream,
    addr: SocketAddr,
    session: Arc<Session>,
    mut wire: Wire,
    mut input: BytesMut,
    transport: Transport,
) {
    debug!(session = %session.id, %addr, ?transport, "session opened");
    let stream = Arc::new(stream);
    let mut reading = Reading::new(gate.node().settings().max_frame_len);
    let mut session = session;
    loop {
        let inbound = GateInbound {
            gate: &gate,
            session: &session,
            switch: Mutex::new(None),
        };
        // A debug-level span: free when debug logging is off, so an idle
        // session costs no span memory (a disabled span is not worth its
        // 40 bytes in every session's task); events carry the session id.
        let span = debug_span!("conn", session = %session.id, %addr);
        let input = std::mem::take(&mut input);
        let serving = conn::serve(&stream, &mut wire, input, &session, &inbound, &mut reading);
        let ended = if span.is_disabled() {
            serving.await
        } else {
            serving.instrument(span).await
        };
        match ended {
            Ended::Switched => {
                let target = inbound.switch.lock().ok().and_then(|mut s| s.take());
                let Some(target) = target else {
                    // Unreachable: a switch always names its session.
                    break finish_conn(&gate, &session, stream, wire, reading, transport, ended)
                        .await;
                };
                // The session opened for this connection served nothing:
                // it goes without a trace.
                drop(inbound);
                discard(&gate, &session);
                session = target;
            }
            Ended::TakenOver => {
                // A resume took the session to another connection.
                debug!(session = %session.id, "connection replaced by a resume");
                close::drop_socket(stream, &session);
                break;
            }
            _ if detaches(&gate, &session, ended) => {
                drop(inbound);
                detach(&gate, &session, stream, ended);
                break;
            }
            _ => {
                drop(inbound);
                break finish_conn(&gate, &session, stream, wire, reading, transport, ended).await;
            }
        }
    }
}

/// Ends a connection and its session.
async fn finish_conn(
    gate: &Arc<Gate>,
    session: &Arc<Session>,
    stream: Arc<TcpStream>,
    mut wire: Wire,
    mut reading: Reading,
    transport: Transport,
    ended: Ended,
) {
    // Boxed: the closing's futures need not be part of every idle
    // session's task.
    Box::pin(async {
        let reason = note_close(gate, session, transport, ended);
        if reason == CloseReason::Shutdown {
            // What the client sent before the close and the gate has not
            // read yet is answered `node_stopping`, not dropped unread.
            let inbound = GateInbound {
                gate,
                session,
                switch: Mutex::new(None),
            };
            conn::answer_unread(&stream, &mut wire, session, &inbound, &mut reading).await;
        }
        let ended = match ended {
            // The session's own reason when it closed for one of them.
            Ended::Session(_) => Ended::Session(reason),
            other => other,
        };
        close::finish(stream, &mut wire, session, &mut reading, ended).await;
        session_ended(gate, session).await;
    })
    .await;
}

/// Whether a connection that ended with `ended` leaves its session
/// waiting for a resume: a resumable session whose socket was lost (the
/// client did not say BYE, was not kicked), while the gate runs.
fn detaches(gate: &Gate, session: &Session, ended: Ended) -> bool {
    let lost = matches!(
        ended,
        Ended::Session(CloseReason::ClientClosed | CloseReason::IoError | CloseReason::Idle)
    );
    lost && !session.is_closed()
        && gate.sessions().phase() == GatePhase::Running
        && gate.resumes.enabled()
        && session.is_resumable()
}

/// The session's socket is gone: it waits for a resume (uid, rooms and
/// frames kept; backends told nothing) until the window ends.
fn detach(gate: &Gate, session: &Session, stream: Arc<TcpStream>, ended: Ended) {
    session.mark_detached();
    gate.node().metrics().sessions_detached.add(1);
    info!(session = %session.id, reason = ?ended.reason(), window = ?gate.resumes.window(), "session detached: waiting for a resume");
    close::drop_socket(stream, session);
}

/// A session that waited for a resume in vain (its window ended, or the
/// gate closes): it ends as any session does.
pub(super) fn expire(gate: &Arc<Gate>, session: Arc<Session>) {
    if session.detached_since().is_none() || session.is_closed() {
        return;
    }
    gate.node().metrics().sessions_detached.sub(1);
    session.close_with(CloseReason::ClientClosed);
    gate.resumes.gone(session.id, resume::Reason::Expired);
    let gate2 = gate.clone();
    gate.session_tasks.spawn(async move {
        debug!(session = %session.id, "resume window over: session ends");
        session_ended(&gate2, &session).await;
    });
}

/// Removes a session that served nothing (a connection's own, left for the
/// session it resumed).
fn discard(gate: &Gate, session: &Arc<Session>) {
    session.close_with(CloseReason::ClientClosed);
    if gate.sessions().remove(session.id).is_some() {
        gate.node().metrics().sessions_open.sub(1);
    }
}

/// Marks the session closed (the first reason given wins), counts and logs
/// it: where every session's end is decided, whatever filled its queue (a
/// push, a reply, a broadcast), and before any closing flush, which may
/// linger.
fn note_close(gate: &Gate, session: &Session, transport: Transport, ended: Ended) -> CloseReason {
    let reason = ended.reason();
    session.close_with(reason);
    let reason = session.close_reason().unwrap_or(reason);
    let m = gate.node().metrics();
    let counter = match reason {
        CloseReason::Idle => Some(&m.idle_closes),
        CloseReason::Oversize => Some(&m.oversize_closes),
        CloseReason::QueueFull => Some(&m.queue_full_closes),
        _ => None,
    };
    if let Some(c) = counter {
        c.add(1);
    }
    match reason {
        CloseReason::ClientClosed | CloseReason::Shutdown => {
            debug!(session = %session.id, ?reason, "session closed")
        }
        _ => info!(session = %session.id, ?reason, ?transport, "session closed"),
    }
    let labelled = gate.node().labelled();
    match ended {
        Ended::TextMessage => labelled.ws_closed(transport, true),
        Ended::Protocol => labelled.ws_closed(transport, false),
        Ended::Session(_) | Ended::Switched | Ended::TakenOver => {
            labelled.session_closed(transport, reason)
        }
    }
    reason
}

/// Answers a frame read while the gate shuts down with `node_stopping`: the
/// client learns that it was not run.
fn refuse_frame(gate: &Arc<Gate>, session: &Arc<Session>, frame: Frame) {
    let node = gate.node();
    let m = node.metrics();
    m.frames_in.add(1);
    if frame.msg_id == ZINX_HEARTBEAT_MSG_ID {
        m.heartbeats_in.add(1);
        return;
    }
    node.labelled().message(frame.msg_id, Outcome::NodeStopping);
    let why = format!("node {} is shutting down", node.name());
    if let Some(answer) = node.error_frame(frame.msg_id, &ErrorCode::NodeStopping, &why) {
        // Offered directly, not through `deliver` (which counts
        // `frames_out`): shutdown waits while `frames_out` moves, and a
        // client that keeps sending must not hold it up until the grace
        // period ends. Behind the answers of the session's open forwards:
        // a client matching answers by order must not see this one first.
        if session.offer_in_order(answer) == Offer::Full {
            warn!(session = %session.id, "client does not read: outbound queue full, closing");
        }
    }
}

/// Runs one client frame: in place, forwarded, or answered as an error.
async fn handle_frame(gate: &Arc<Gate>, session: &Arc<Session>, frame: Frame) {
    let node = gate.node();
    let m = node.metrics();
    m.frames_in.add(1);
    let msg_id = frame.msg_id;
    if msg_id == ZINX_HEARTBEAT_MSG_ID {
        m.heartbeats_in.add(1);
        return;
    }
    // Counted (not tracked as a task: a shared task counter is a contended
    // cache line on every message) from before the stop check until the
    // message runs here or is counted as forwarded: shutdown, having
    // stopped intake, waits for this count to reach zero, so no message
    // slips out after it decided nothing was in flight.
    m.inflight.add(1);
    if node.stopping().is_cancelled() {
        m.inflight.sub(1);
        // `frames_in` was counted above; `refuse_frame` counts it again.
        m.frames_in.sub(1);
        return refuse_frame(gate, session, frame);
    }
    // Tracing on: a root span per client message (when sampled); off, this
    // is the only cost.
    let mut span = if node.tracer().enabled() {
        node.tracer().start_root("zinx.message", SpanKind::Server)
    } else {
        None
    };
    if let Some(sp) = span.as_mut() {
        sp.set("zinx.msg_id", AttrValue::Int(i64::from(msg_id)));
        sp.set("zinx.session", AttrValue::Str(session.id.to_string()));
    }
    match span.as_ref().map(|sp| sp.context().trace_id_hex()) {
        // The trace id in the gate's log lines for this message too.
        Some(trace_id) => {
            route_frame(gate, session, frame, &mut span)
                .instrument(info_span!("trace", %trace_id))
                .await
        }
        None => route_frame(gate, session, frame, &mut span).await,
    }
}

/// Runs, forwards or refuses one client message (see [`handle_frame`]).
async fn route_frame(
    gate: &Arc<Gate>,
    session: &Arc<Session>,
    frame: Frame,
    span: &mut Option<ActiveSpan>,
) {
    let node = gate.node();
    let m = node.metrics();
    let msg_id = frame.msg_id;
    let trace = span.as_ref().map(|sp| sp.context());
    let labelled = node.labelled();
    match node.routing().dest(msg_id) {
        Some(Dest::Local(route)) => {
            let msg = ClientMessage {
                route,
                session: session.id,
                uid: session.uid(),
                data: frame.data,
                local: Some(session),
                trace: trace.as_ref(),
            };
            if let Some(answer) = node.run_client(gate.clone(), msg).await {
                if let Err(e) = gate.offer_to(session, answer) {
                    debug!(session = %session.id, msg_id, error = %e, "reply not delivered");
                }
            }
        }
        Some(Dest::Group(g)) => {
            let outcome = forward(gate, session, g, frame, trace);
            labelled.message(msg_id, outcome);
            if let Some(sp) = span.as_mut() {
                sp.set(
                    "zinx.group",
                    AttrValue::Str(node.routing().group_at(g).name.clone()),
                );
                if outcome != Outcome::Forwarded {
                    sp.fail(outcome.label());
                }
            }
        }
        Some(Dest::OtherGate(g)) => {
            let why = format!(
                "msg_id {msg_id} belongs to gate group {:?}, not served by this gate",
                node.routing().group_at(g).name
            );
            m.unknown_msg_id.add(1);
            labelled.message(msg_id, Outcome::WrongGate);
            warn!(session = %session.id, msg_id, "{why}");
            gate.answer_error(session.id, msg_id, ErrorCode::WrongGate, &why);
        }
        None => {
            m.unknown_msg_id.add(1);
            labelled.message(msg_id, Outcome::UnknownMsgId);
            // The client's answer is the same either way; the log says which.
            if node.routing().is_internal(msg_id) {
                warn!(
                    session = %session.id,
                    msg_id,
                    "a client sent internal msg_id {msg_id}: refused as unknown"
                );
            } else {
                warn!(
                    session = %session.id,
                    msg_id,
                    "api msgID = {msg_id} is not FOUND: no route in route.json"
                );
            }
            gate.answer_error(
                session.id,
                msg_id,
                ErrorCode::UnknownMsgId,
                &format!("no route for msg_id {msg_id}"),
            );
        }
    }
    m.inflight.sub(1);
    node.work_finished();
}

/// Cleans up after a session: directory, the nodes that served it, hooks.
async fn session_ended(gate: &Arc<Gate>, session: &Arc<Session>) {
    if gate.sessions().remove(session.id).is_none() {
        return;
    }
    if session.resume_overflowed() {
        gate.resumes.gone(session.id, resume::Reason::Overflow);
    }
    let node = gate.node();
    gate.rooms.leave_all(session.id);
    node.metrics().sessions_open.sub(1);
    let uid = session.uid();
    if let Some(uid) = &uid {
        let r = node.directory().unbind(uid, session.id).await;
        node.count_directory(DirOp::Unbind, &r);
        if let Err(e) = r {
            warn!(%uid, error = %e, "directory unbind failed; the binding expires with its TTL");
        }
    }
    gate.announce_close(session);
    node.run_hooks(session.id, uid);
}
