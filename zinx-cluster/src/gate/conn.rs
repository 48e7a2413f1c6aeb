//! One client connection of a gate: reading its frames, running or
//! forwarding each message, and writing what is queued for it.
//!
//! Each client has one task: it reads and dispatches frames (running the
//! gate's own handlers in place, so one session's messages run in order)
//! and writes what the session's bounded queue holds. What an idle session
//! costs is that task's future, its `Session` and the socket's registration
//! (about 1 KB of heap): no buffers (the read buffer holds only a partial
//! frame, the write buffer exists during a write), no timer (one idle sweep
//! per gate, see `gate::sweep`), no cancellation futures (closes and the
//! gate's phase arrive through the session's `ready` Notify), and the work
//! of a wake-up runs in boxed futures.

use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use tracing::{Instrument, debug, info, info_span, warn};

use super::Gate;
use super::forward::forward;
use crate::error::ErrorCode;
use crate::frame::{Frame, FrameCodec, FrameError, ZINX_HEARTBEAT_MSG_ID};
use crate::metrics::{DirOp, Outcome, Transport};
use crate::node::{ClientMessage, Dest};
use crate::session::{CloseReason, GatePhase, Offer, Session, Wrote};
use crate::trace::{ActiveSpan, AttrValue, SpanKind};
use crate::transport::Ended;

/// Read buffer of an active session.
const READ_CHUNK: usize = 4 * 1024;
/// At shutdown, at most this much unread client data is read and answered.
const UNREAD_MAX: usize = 256 * 1024;
/// On close, queued frames get this long to reach the client.
pub(super) const CLOSE_FLUSH: Duration = Duration::from_secs(1);

pub(super) async fn serve_client(gate: Arc<Gate>, stream: TcpStream, session: Arc<Session>) {
    client_loop(&gate, stream, &session).await;
    // Boxed: the cleanup's futures (directory, links) need not be part of
    // every idle session's task.
    Box::pin(session_ended(&gate, &session)).await;
}

/// Ends a session of any transport but TCP (whose loop notes the close
/// itself, before its closing flush): its close reason counted and logged,
/// then the directory, the nodes that served it and the hooks told.
pub(super) async fn finish(
    gate: &Arc<Gate>,
    session: &Arc<Session>,
    transport: Transport,
    ended: Ended,
) {
    note_close(gate, session, transport, ended);
    session_ended(gate, session).await;
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
        Ended::Session(_) => labelled.session_closed(transport, reason),
    }
    reason
}

/// The life of a client connection, in one task: read and dispatch frames,
/// write what is queued for the client (replies of in-place handlers are
/// written after the read that caused them, in one write, without waking
/// anyone), until the session must close; returns why.
///
/// This future is what an idle session costs, so it holds only what must
/// survive between wake-ups: the work of a wake-up (dispatching frames,
/// a write that blocks, the closing flush) runs in boxed futures that exist
/// while it runs, and the read buffer holds only a partial frame.
async fn client_loop(gate: &Arc<Gate>, stream: TcpStream, session: &Arc<Session>) {
    let sessions = gate.sessions();
    // Shared with the session's queue: whoever queues frames for the
    // client may write them (see `session::write`).
    let stream = Arc::new(stream);
    session.attach(stream.clone());
    let mut codec = FrameCodec::new(gate.node().settings().max_frame_len);
    let mut rbuf = BytesMut::new();
    let mut stopping = false;
    let reason = loop {
        // A close, and a change of the gate's phase, wake the task through
        // `ready`, whatever it awaited.
        if let Some(reason) = session.close_reason() {
            break reason;
        }
        match sessions.phase() {
            GatePhase::Running => {}
            // Shutting down: the session stays until in-flight answers
            // have been delivered and the node closes; what the client
            // sends meanwhile is answered `node_stopping` instead of run
            // (dropping it unread would leave requests sent before the
            // shutdown without any answer).
            GatePhase::Stopping => stopping = true,
            GatePhase::Closed => break CloseReason::Shutdown,
        }
        // Write everything queued for the client.
        match session.write_queued() {
            Wrote::Done => {}
            Wrote::Failed => break CloseReason::IoError,
            Wrote::Blocked => {
                if !Box::pin(wait_writable(&stream, session)).await {
                    break CloseReason::IoError;
                }
                // Writable, or frames queued or a close meanwhile (the
                // wake-up it consumed is not there for the wait below):
                // look again.
                continue;
            }
        }
        // Wait for frames for the client, a close or a change of phase
        // (all through `ready`, checked above), or bytes from the client
        // (without holding a read buffer). A poll_fn rather than select!
        // on `readable()`: polling the socket's readiness keeps the waker in
        // the socket's registration instead of a waiter inside this future,
        // which every idle session carries.
        let readable = {
            let notified = session.ready.notified();
            tokio::pin!(notified);
            std::future::poll_fn(|cx| {
                if notified.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                stream.poll_read_ready(cx).map(Some)
            })
            .await
        };
        let Some(ready) = readable else { continue };
        if ready.is_err() {
            break CloseReason::IoError;
        }
        if rbuf.capacity() - rbuf.len() < 512 {
            rbuf.reserve(READ_CHUNK);
        }
        match read_some(&stream, &mut rbuf) {
            Ok(0) => break CloseReason::ClientClosed,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // A false readiness (the idle bench sees one on most
                // freshly accepted sockets): keep no buffer for it,
                // or every idle session holds READ_CHUNK (4 KiB of
                // the 6.2 KB an idle session cost).
                if rbuf.is_empty() {
                    rbuf = BytesMut::new();
                }
                continue;
            }
            Err(_) => break CloseReason::IoError,
        }
        if let Some(reason) =
            Box::pin(dispatch(gate, session, &mut codec, &mut rbuf, stopping)).await
        {
            break reason;
        }
        if rbuf.is_empty() {
            // Between reads the buffer holds a partial frame or
            // nothing: an idle session keeps no read memory.
            rbuf = BytesMut::new();
        }
    };
    // Only this task writes from here on; it owns the socket again.
    session.detach();
    let stream = match Arc::try_unwrap(stream) {
        Ok(stream) => stream,
        // Unreachable: the queue held the only other handle, and writers
        // borrow it under the queue's lock.
        Err(_) => {
            warn!(session = %session.id, "client socket still shared at close: dropped without a flush");
            note_close(gate, session, Transport::Tcp, Ended::Session(reason));
            return;
        }
    };
    let reason = note_close(gate, session, Transport::Tcp, Ended::Session(reason));
    if matches!(reason, CloseReason::IoError | CloseReason::Oversize) {
        // Nothing more to say to this client.
        return;
    }
    // Shutting down: what the client sent before the close and the gate
    // has not read yet is answered `node_stopping`, not dropped unread.
    if reason == CloseReason::Shutdown {
        answer_unread(gate, session, &stream, &mut codec, &mut rbuf);
    }
    // Closing. A kicked or shut-down client still gets what was queued for
    // it (e.g. the message saying why); one that stopped reading does not:
    // it is reset (SO_LINGER 0), so the kernel drops what is still in the
    // socket's send buffer instead of trickling it out for minutes.
    if reason == CloseReason::QueueFull {
        if let Err(e) = stream.set_zero_linger() {
            debug!(session = %session.id, error = %e, "abortive close not set");
        }
    } else {
        Box::pin(close_flush(stream, session)).await;
    }
}

/// Reads what the socket holds into `rbuf`'s spare room. A read that
/// does not fill the room emptied the socket (epoll is edge-triggered), so
/// its readiness is cleared right away: without that, every message costs
/// a second `recv` that only says `EAGAIN` (tokio's own `poll_read` does
/// the same after a short read).
fn read_some(stream: &TcpStream, rbuf: &mut BytesMut) -> io::Result<usize> {
    let room = rbuf.capacity() - rbuf.len();
    let mut got = None;
    let r = stream.try_io(tokio::io::Interest::READABLE, || {
        let n = stream.try_read_buf(rbuf)?;
        got = Some(n);
        // Edge-triggered selectors only (epoll, kqueue), as in tokio.
        let edge = cfg!(any(
            target_os = "linux",
            target_os = "android",
            target_vendor = "apple",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd",
            target_os = "dragonfly",
        ));
        if edge && n > 0 && n < room {
            // Not an error: the way to tell tokio the socket is drained.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match got {
        Some(n) => Ok(n),
        None => r,
    }
}

/// Waits until the client's socket takes bytes again, frames are queued
/// or the session closes (a client that does not read must not hold its
/// task); false when the socket failed.
async fn wait_writable(stream: &TcpStream, session: &Session) -> bool {
    tokio::select! {
        r = stream.writable() => r.is_ok(),
        _ = session.ready.notified() => true,
    }
}

/// Runs or forwards every whole frame in `rbuf` (answers them
/// `node_stopping` while the gate stops); a reason when the session must
/// close.
async fn dispatch(
    gate: &Arc<Gate>,
    session: &Arc<Session>,
    codec: &mut FrameCodec,
    rbuf: &mut BytesMut,
    stopping: bool,
) -> Option<CloseReason> {
    let mut first = true;
    loop {
        let frame = match codec.decode(rbuf) {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(FrameError::TooLarge { msg_id, len, max }) => {
                warn!(session = %session.id, msg_id, len, max, "frame over the size limit: closing the connection");
                return Some(CloseReason::Oversize);
            }
            Err(FrameError::Io(_)) => return Some(CloseReason::IoError),
        };
        // Idle means no complete frame: bytes that complete none (a
        // trickle, half a header) do not keep the session alive. Once per
        // read (a clock read per frame showed in pipelined profiles).
        if first {
            session.touch();
            first = false;
        }
        if stopping {
            refuse_frame(gate, session, frame);
        } else {
            handle_frame(gate, session, frame).await;
        }
    }
}

/// The last writes of a closing session: what is queued (bounded by
/// [`CLOSE_FLUSH`]), then the shutdown of the socket's sending side, then a
/// lingering read until the client closes too (bounded likewise): closing a
/// socket with unread data sends a reset, and a reset can make the client
/// drop answers it has received but not yet read.
async fn close_flush(mut stream: TcpStream, session: &Session) {
    use tokio::io::AsyncReadExt;
    let mut wbuf = BytesMut::new();
    session.drain_into(&mut wbuf, usize::MAX);
    if !wbuf.is_empty() {
        let _ = tokio::time::timeout(CLOSE_FLUSH, stream.write_all(&wbuf)).await;
    }
    if tokio::time::timeout(CLOSE_FLUSH, stream.shutdown())
        .await
        .is_ok_and(|r| r.is_ok())
    {
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(CLOSE_FLUSH, async {
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

/// Reads what the socket already holds (without waiting, at most
/// [`UNREAD_MAX`] bytes) and answers each whole frame `node_stopping`.
fn answer_unread(
    gate: &Arc<Gate>,
    session: &Arc<Session>,
    stream: &TcpStream,
    codec: &mut FrameCodec,
    rbuf: &mut BytesMut,
) {
    let mut read = 0;
    while read < UNREAD_MAX {
        rbuf.reserve(READ_CHUNK);
        match stream.try_read_buf(rbuf) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
        while let Ok(Some(frame)) = codec.decode(rbuf) {
            refuse_frame(gate, session, frame);
        }
    }
}

/// Answers a frame read while the gate shuts down with `node_stopping`: the
/// client learns that it was not run.
pub(super) fn refuse_frame(gate: &Arc<Gate>, session: &Arc<Session>, frame: Frame) {
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
pub(super) async fn handle_frame(gate: &Arc<Gate>, session: &Arc<Session>, frame: Frame) {
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
