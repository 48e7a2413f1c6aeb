//! The client side of a gate: accepting zinx clients, reading their
//! frames, running or forwarding each message, and writing to them.
//!
//! Each client has a reader task (which also runs the gate's own handlers,
//! so one session's messages run in order) and a writer task draining the
//! session's bounded queue. An idle session holds no read buffer: the reader
//! waits for readability before it allocates one.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder;
use tracing::{Instrument, debug, debug_span, info, warn};

use crate::envelope::{Envelope, Kind};
use crate::frame::{Frame, FrameCodec, FrameError, ZINX_HEARTBEAT_MSG_ID};
use crate::node::{Dest, Node};
use crate::peer::LinkError;
use crate::session::{CloseReason, Session};

/// Read buffer of an active session.
const READ_CHUNK: usize = 4 * 1024;
/// A session writer gathers up to this many bytes into one write.
const WRITE_BATCH: usize = 64 * 1024;
/// On close, queued frames get this long to reach the client.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Accepts clients until the gate stops.
pub(crate) async fn accept_clients(node: Arc<Node>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = node.stopping.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accepting a client failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Some(sessions) = node.sessions.as_ref() else {
            return;
        };
        if sessions.len() >= node.settings.max_sessions {
            node.metrics
                .sessions_refused
                .fetch_add(1, Ordering::Relaxed);
            warn!(%addr, max_sessions = node.settings.max_sessions, "gate full: connection refused");
            refuse(&node, stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let session = sessions.open(node.settings.session_queue);
        node.metrics
            .sessions_accepted
            .fetch_add(1, Ordering::Relaxed);
        node.metrics.sessions_open.fetch_add(1, Ordering::Relaxed);
        // A debug-level span: free when debug logging is off, so an idle
        // session costs no span memory; events carry the session id.
        let span = debug_span!("conn", session = %session.id, %addr);
        debug!(parent: &span, "session opened");
        tokio::spawn(serve_client(node.clone(), stream, session).instrument(span));
    }
}

/// Tells a refused client why (when the error policy sends frames) and
/// closes it at once: never leave it hanging like zinx at `MaxConn`.
fn refuse(node: &Node, stream: TcpStream) {
    if let Some(frame) =
        node.error_frame(0, "server_full", "the gate holds its maximum of sessions")
    {
        if let Ok(wire) = frame.to_bytes() {
            let _ = stream.try_write(&wire);
        }
    }
    drop(stream);
}

async fn serve_client(node: Arc<Node>, stream: TcpStream, session: Arc<Session>) {
    let reason = client_loop(&node, stream, &session).await;
    session.close_with(reason);
    let reason = session.close_reason().unwrap_or(reason);
    // Counted here, where every session ends, whatever filled its queue (a
    // push, a reply, a broadcast).
    let counter = match reason {
        CloseReason::Idle => Some(&node.metrics.idle_closes),
        CloseReason::Oversize => Some(&node.metrics.oversize_closes),
        CloseReason::QueueFull => Some(&node.metrics.queue_full_closes),
        _ => None,
    };
    if let Some(c) = counter {
        c.fetch_add(1, Ordering::Relaxed);
    }
    match reason {
        CloseReason::ClientClosed | CloseReason::Shutdown => {
            debug!(session = %session.id, ?reason, "session closed")
        }
        _ => info!(session = %session.id, ?reason, "session closed"),
    }
    session_ended(&node, &session).await;
}

/// The life of a client connection, in one task: read and dispatch frames,
/// write what is queued for the client (replies of in-place handlers are
/// written after the read that caused them, in one write, without waking
/// anyone), until the session must close; returns why.
async fn client_loop(
    node: &Arc<Node>,
    mut stream: TcpStream,
    session: &Arc<Session>,
) -> CloseReason {
    let mut codec = FrameCodec::new(node.settings.max_frame_len);
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    let idle = match node.settings.idle_timeout_ms {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    };
    let mut last_read = Instant::now();
    let idle_timer = tokio::time::sleep(idle.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(idle_timer);
    let mut stopping = false;
    let reason = loop {
        // Write everything queued for the client.
        loop {
            let more = session.drain_into(&mut wbuf, WRITE_BATCH);
            if wbuf.is_empty() {
                break;
            }
            let written = tokio::select! {
                w = stream.write_all(&wbuf) => w,
                _ = session.close.cancelled() => break,
            };
            if written.is_err() {
                return CloseReason::IoError;
            }
            wbuf.clear();
            if !more {
                break;
            }
        }
        if wbuf.capacity() > 2 * WRITE_BATCH {
            wbuf = BytesMut::new();
        }
        // Wait for bytes from the client (without holding a read buffer),
        // frames for it, a close, or the idle deadline.
        tokio::select! {
            biased;
            _ = session.close.cancelled() => {
                break session.close_reason().unwrap_or(CloseReason::Kicked);
            }
            _ = node.closed.cancelled() => break CloseReason::Shutdown,
            // Shutting down: the session stays until in-flight answers have
            // been delivered and the node closes; what the client sends
            // meanwhile is answered `node_stopping` instead of run (dropping
            // it unread would leave requests sent before the shutdown
            // without any answer).
            _ = node.stopping.cancelled(), if !stopping => stopping = true,
            _ = session.ready.notified() => {}
            _ = &mut idle_timer, if idle.is_some() && !stopping => {
                let d = idle.unwrap_or_default();
                if last_read.elapsed() >= d {
                    break CloseReason::Idle;
                }
                idle_timer.as_mut().reset((last_read + d).into());
            }
            r = stream.readable() => {
                if r.is_err() {
                    break CloseReason::IoError;
                }
                if rbuf.capacity() - rbuf.len() < 512 {
                    rbuf.reserve(READ_CHUNK);
                }
                match stream.try_read_buf(&mut rbuf) {
                    Ok(0) => break CloseReason::ClientClosed,
                    Ok(_) => last_read = Instant::now(),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(_) => break CloseReason::IoError,
                }
                loop {
                    match codec.decode(&mut rbuf) {
                        Ok(Some(frame)) if stopping => refuse_frame(node, session, frame),
                        Ok(Some(frame)) => handle_frame(node, session, frame).await,
                        Ok(None) => break,
                        Err(FrameError::TooLarge { msg_id, len, max }) => {
                            warn!(session = %session.id, msg_id, len, max, "frame over the size limit: closing the connection");
                            return CloseReason::Oversize;
                        }
                        Err(FrameError::Io(_)) => return CloseReason::IoError,
                    }
                }
                if rbuf.is_empty() && rbuf.capacity() > 4 * READ_CHUNK {
                    // A large frame passed: give its memory back.
                    rbuf = BytesMut::new();
                }
            }
        }
    };
    // Closing. A kicked or shut-down client still gets what was queued for
    // it (e.g. the message saying why); one that stopped reading does not.
    if session.close_reason().unwrap_or(reason) != CloseReason::QueueFull {
        session.drain_into(&mut wbuf, usize::MAX);
        if !wbuf.is_empty() {
            let _ = tokio::time::timeout(CLOSE_FLUSH, stream.write_all(&wbuf)).await;
        }
        let _ = tokio::time::timeout(CLOSE_FLUSH, stream.shutdown()).await;
    }
    reason
}

/// Answers a frame read while the gate shuts down with `node_stopping`: the
/// client learns that it was not run.
fn refuse_frame(node: &Arc<Node>, session: &Arc<Session>, frame: Frame) {
    node.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
    if frame.msg_id == ZINX_HEARTBEAT_MSG_ID {
        node.metrics.heartbeats_in.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let why = format!("node {} is shutting down", node.name);
    if let Some(answer) = node.error_frame(frame.msg_id, "node_stopping", &why) {
        node.metrics.error_answers.fetch_add(1, Ordering::Relaxed);
        // Offered directly, not through `deliver` (which counts
        // `frames_out`): shutdown waits while `frames_out` moves, and a
        // client that keeps sending must not hold it up until the grace
        // period ends.
        if session.offer(answer) == crate::session::Offer::Full {
            warn!(session = %session.id, "client does not read: outbound queue full, closing");
        }
    }
}

/// Runs one client frame: in place, forwarded, or answered as an error.
async fn handle_frame(node: &Arc<Node>, session: &Arc<Session>, frame: Frame) {
    node.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
    let msg_id = frame.msg_id;
    if msg_id == ZINX_HEARTBEAT_MSG_ID {
        node.metrics.heartbeats_in.fetch_add(1, Ordering::Relaxed);
        return;
    }
    match node.dest(msg_id) {
        Some(Dest::Local(route)) => {
            // Counted, not tracked as a task: a shared task counter is a
            // contended cache line on every message.
            node.metrics.inflight.fetch_add(1, Ordering::Relaxed);
            node.run_client_message(route, session.id, session.uid(), frame.data, Some(session))
                .await;
            node.metrics.inflight.fetch_sub(1, Ordering::Relaxed);
        }
        Some(Dest::Group(g)) => forward(node, session, g, frame),
        Some(Dest::OtherGate(g)) => {
            let why = format!(
                "msg_id {msg_id} belongs to gate group {:?}, not served by this gate",
                node.groups[g].name
            );
            node.metrics.unknown_msg_id.fetch_add(1, Ordering::Relaxed);
            warn!(session = %session.id, msg_id, "{why}");
            node.answer_error(session.id, msg_id, "wrong_gate", &why);
        }
        None => {
            node.metrics.unknown_msg_id.fetch_add(1, Ordering::Relaxed);
            warn!(
                session = %session.id,
                msg_id,
                "api msgID = {msg_id} is not FOUND: no route in route.json"
            );
            node.answer_error(
                session.id,
                msg_id,
                "unknown_msg_id",
                &format!("no route for msg_id {msg_id}"),
            );
        }
    }
}

fn forward(node: &Arc<Node>, session: &Arc<Session>, g: usize, frame: Frame) {
    let group = &node.groups[g];
    let msg_id = frame.msg_id;
    let Some(target) = node.choose(group, session.id.0) else {
        node.metrics.no_live_node.fetch_add(1, Ordering::Relaxed);
        let why = format!("no live node in group {:?}", group.name);
        warn!(session = %session.id, msg_id, "{why}");
        node.answer_error(session.id, msg_id, "no_live_node", &why);
        return;
    };
    let Some(peer) = node.peers.get(&target) else {
        return;
    };
    if session.mark_served(target) {
        debug!(node = target, "session now served by node");
    }
    let mut env = Envelope::new(Kind::Forward);
    env.msg_id = msg_id;
    env.node = node.id;
    env.session = session.id.0;
    env.uid = session.uid_wire();
    env.payload = frame.data;
    match peer.send(env) {
        Ok(()) => {
            node.metrics.forwards.fetch_add(1, Ordering::Relaxed);
        }
        Err(LinkError::Down) => {
            node.metrics.no_live_node.fetch_add(1, Ordering::Relaxed);
            let why = format!(
                "node {} of group {:?} is unreachable",
                peer.name, group.name
            );
            node.answer_error(session.id, msg_id, "no_live_node", &why);
        }
        Err(LinkError::Full) => {
            node.metrics.link_queue_full.fetch_add(1, Ordering::Relaxed);
            let why = format!("link to node {} is congested", peer.name);
            warn!(session = %session.id, msg_id, "{why}");
            node.answer_error(session.id, msg_id, "overloaded", &why);
        }
    }
}

/// Cleans up after a session: directory, the nodes that served it, hooks.
async fn session_ended(node: &Arc<Node>, session: &Arc<Session>) {
    let Some(sessions) = node.sessions.as_ref() else {
        return;
    };
    if sessions.remove(session.id).is_none() {
        return;
    }
    node.metrics.sessions_open.fetch_sub(1, Ordering::Relaxed);
    let uid = session.uid();
    let uid_wire = session.uid_wire();
    if let Some(uid) = &uid {
        if let Err(e) = node.directory.unbind(uid, session.id).await {
            warn!(%uid, error = %e, "directory unbind failed; the binding expires with its TTL");
        }
    }
    for served in session.served() {
        if let Some(peer) = node.peers.get(&served) {
            let mut env = Envelope::new(Kind::SessionClosed);
            env.node = node.id;
            env.session = session.id.0;
            env.uid = uid_wire.clone();
            if let Err(e) = peer.send(env) {
                debug!(
                    node = served,
                    ?e,
                    "session close not announced; the node drops it with the link"
                );
            }
        }
    }
    node.run_hooks(session.id, uid);
}
