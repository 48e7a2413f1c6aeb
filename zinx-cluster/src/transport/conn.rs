//! One loop for every client connection of a gate, whatever its wire: plain
//! TCP, WebSocket, TLS or both ([`Wire`]). The loop reads and dispatches
//! frames, writes what is queued for the client, and returns why the
//! connection ended; `close::finish` then says the last words and closes.
//!
//! What an idle session costs is this loop's future and its session, so it
//! keeps nothing between wake-ups that it does not need: it waits for the
//! socket's readiness (not a read into a buffer), reads into a buffer that
//! exists while bytes are there, keeps no timer (one idle sweep per gate
//! closes idle sessions) and no cancellation future (closes and the gate's
//! phase arrive through the session's `ready`). A WebSocket connection
//! adds its frame parser's few bytes; a TLS one its keys (rustls'
//! unbuffered API: no record buffers while quiet, see `tls_wire`).
//!
//! Frames for a TCP or WebSocket client are written by whoever queues them
//! (the socket is shared with the session's queue, see `session::write`);
//! a TLS client's by this loop, which encrypts them.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::task::Poll;

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use tracing::warn;

use super::Ended;
use super::tls_wire::TlsConn;
use super::ws_frame::{self, Control, Violation};
use crate::frame::{Frame, FrameCodec, FrameError, WRITE_BATCH};
use crate::session::{CloseReason, GatePhase, Session, Wrote};

/// A read takes at most this much at once.
const READ_CHUNK: usize = 4 * 1024;
/// At shutdown, at most this much unread client data is read and answered.
const UNREAD_MAX: usize = 256 * 1024;

/// What the gate does with a connection's frames.
pub(crate) trait Inbound: Send + Sync {
    /// Where the gate is in its life.
    fn phase(&self) -> GatePhase;

    /// Runs one frame from the client (in place, forwarded), or answers it
    /// `node_stopping` when `stopping`. Returns when the next may run, and
    /// whether the connection goes on with this session.
    fn frame(&self, frame: Frame, stopping: bool) -> impl Future<Output = Flow> + Send;
}

/// What the connection does after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Reads on.
    Continue,
    /// Stops serving this session: the frame (a resume) moved the
    /// connection to another one; what follows it is that one's.
    Switch,
}

/// What lies between a connection's bytes and zinx frames.
pub(crate) enum Wire {
    /// zinx frames straight on TCP.
    Tcp,
    /// zinx frames in WebSocket binary messages.
    Ws(WsIn),
    /// zinx frames in TLS.
    Tls(Box<TlsConn>),
    /// zinx frames in WebSocket binary messages in TLS.
    Wss(Box<(TlsConn, WsIn)>),
}

impl Wire {
    /// Whether frames travel as WebSocket messages.
    pub(crate) fn is_ws(&self) -> bool {
        matches!(self, Wire::Ws(_) | Wire::Wss(_))
    }

    /// The TLS state, on a TLS wire.
    pub(super) fn tls(&mut self) -> Option<&mut TlsConn> {
        match self {
            Wire::Tls(t) => Some(t),
            Wire::Wss(b) => Some(&mut b.0),
            Wire::Tcp | Wire::Ws(_) => None,
        }
    }
}

/// The WebSocket side of a connection: the frame parser's state.
#[derive(Debug, Default)]
pub(crate) struct WsIn {
    /// Parses client frames.
    reader: ws_frame::Reader,
    /// A close frame went out: nothing may follow it.
    pub(super) closed: bool,
    /// The client's close, to answer (echoing its code) behind the answers
    /// to what it sent before it.
    pub(super) close_reply: Option<bytes::Bytes>,
}

/// What a connection keeps between wake-ups besides its wire: the frame
/// decoder, a partial frame, and (TLS) records not yet written.
pub(crate) struct Reading {
    /// Decodes zinx frames (bounded by `max_frame_len`).
    codec: FrameCodec,
    /// zinx bytes not yet a whole frame; empty (no capacity) between reads.
    rbuf: BytesMut,
    /// TLS records encrypted and not yet written (this task writes a TLS
    /// client's bytes); empty (no capacity) when all are out.
    pub(super) out: BytesMut,
}

impl Reading {
    /// The state of a connection allowing frames of `max_frame_len`.
    pub(crate) fn new(max_frame_len: usize) -> Self {
        Reading {
            codec: FrameCodec::new(max_frame_len),
            rbuf: BytesMut::new(),
            out: BytesMut::new(),
        }
    }
}

/// What the client sent, taken apart: zinx bytes to decode, and what the
/// wire answers by itself (a pong, a close reply, TLS records).
struct Taken {
    /// Bytes for the socket (TLS records; on a plain wire, control frames).
    out: BytesMut,
    /// The connection ends after what came before.
    end: Option<Ended>,
}

/// Serves a connection of `session` on `stream` (shared with the session's
/// queue for plain wires) until it must end; returns why. `input` is what
/// was read beyond the handshakes (the bytes above TLS).
pub(crate) async fn serve<I: Inbound>(
    stream: &Arc<TcpStream>,
    wire: &mut Wire,
    input: BytesMut,
    session: &Arc<Session>,
    inbound: &I,
    reading: &mut Reading,
) -> Ended {
    let shared = match wire {
        Wire::Tcp | Wire::Ws(_) => Some(stream.clone()),
        Wire::Tls(_) | Wire::Wss(_) => None,
    };
    let conn_number = session.attach_conn();
    session.attach(shared, wire.is_ws());
    let mut stopping = false;
    // What was read with the handshakes, or (after a resume switched the
    // connection to this session) what followed the resume.
    if !input.is_empty() || !reading.rbuf.is_empty() {
        let mut input = input;
        let taken = take_plain(wire, &mut input, reading);
        if let Some(end) = run(wire, taken, session, inbound, reading, stopping).await {
            return end;
        }
    }
    loop {
        // A close, and a change of the gate's phase, wake the task through
        // `ready`, whatever it awaited.
        if let Some(reason) = session.close_reason() {
            return Ended::Session(reason);
        }
        // Another connection took the session over (a resume), or the gate
        // wants this one gone while the session waits for a resume.
        if session.conn_gen() != conn_number {
            return Ended::TakenOver;
        }
        if let Some(reason) = session.take_dropped() {
            return Ended::Session(reason);
        }
        match inbound.phase() {
            GatePhase::Running => {}
            // Shutting down: the session stays until in-flight answers
            // have been delivered and the node closes; what the client
            // sends meanwhile is answered `node_stopping` instead of run.
            GatePhase::Stopping => stopping = true,
            GatePhase::Closed => return Ended::Session(CloseReason::Shutdown),
        }
        match write_pending(stream, wire, session, &mut reading.out) {
            Ok(Wrote::Done) => {}
            Ok(Wrote::Blocked) => {
                if !Box::pin(wait_writable(stream, session)).await {
                    return Ended::Session(CloseReason::IoError);
                }
                // Writable, or frames queued or a close meanwhile: look
                // again.
                continue;
            }
            Ok(Wrote::Failed) | Err(_) => return Ended::Session(CloseReason::IoError),
        }
        // Wait for frames for the client, a close or a change of phase
        // (all through `ready`), or bytes from the client, without a read
        // buffer. A poll_fn rather than select! on `readable()`: polling
        // the socket's readiness keeps the waker in the socket's
        // registration instead of a waiter inside this future.
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
            return Ended::Session(CloseReason::IoError);
        }
        let mut raw = BytesMut::with_capacity(READ_CHUNK);
        match read_some(stream, &mut raw) {
            Ok(0) => return Ended::Session(CloseReason::ClientClosed),
            Ok(_) => {}
            // A false readiness (most freshly accepted sockets see one):
            // nothing was kept for it.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return Ended::Session(CloseReason::IoError),
        }
        let taken = match take_raw(wire, &mut raw, reading) {
            Ok(t) => t,
            Err(e) => {
                warn!(session = %session.id, error = %e, "TLS error: closing");
                return Ended::Protocol;
            }
        };
        if let Some(end) = Box::pin(run(wire, taken, session, inbound, reading, stopping)).await {
            return end;
        }
        if reading.rbuf.is_empty() {
            // Between reads the buffer holds a partial frame or nothing:
            // an idle session keeps no read memory.
            reading.rbuf = BytesMut::new();
        }
    }
}

/// Takes bytes above TLS apart (what was read with the handshakes).
fn take_plain(wire: &mut Wire, plain: &mut BytesMut, reading: &mut Reading) -> Taken {
    let mut taken = Taken {
        out: BytesMut::new(),
        end: None,
    };
    match wire {
        Wire::Tcp | Wire::Tls(_) => append(plain, &mut reading.rbuf),
        Wire::Ws(ws) => taken.end = ws_take(ws, plain, reading, &mut taken.out),
        Wire::Wss(b) => taken.end = ws_take(&mut b.1, plain, reading, &mut taken.out),
    }
    taken
}

/// Takes what the socket brought apart: through TLS, then WebSocket.
fn take_raw(
    wire: &mut Wire,
    raw: &mut BytesMut,
    reading: &mut Reading,
) -> Result<Taken, super::tls_wire::TlsError> {
    let mut taken = Taken {
        out: BytesMut::new(),
        end: None,
    };
    match wire {
        Wire::Tcp => append(raw, &mut reading.rbuf),
        Wire::Ws(ws) => taken.end = ws_take(ws, raw, reading, &mut taken.out),
        Wire::Tls(tls) => {
            let fed = tls.feed(raw, &mut reading.rbuf, &mut taken.out)?;
            if fed.peer_closed {
                taken.end = Some(Ended::Session(CloseReason::ClientClosed));
            }
        }
        Wire::Wss(b) => {
            let (tls, ws) = &mut **b;
            let mut plain = BytesMut::new();
            let fed = tls.feed(raw, &mut plain, &mut taken.out)?;
            let mut ctl = BytesMut::new();
            taken.end = ws_take(ws, &mut plain, reading, &mut ctl);
            if !ctl.is_empty() {
                tls.encrypt(&ctl, &mut taken.out)?;
            }
            if fed.peer_closed && taken.end.is_none() {
                taken.end = Some(Ended::Session(CloseReason::ClientClosed));
            }
        }
    }
    Ok(taken)
}

/// Parses WebSocket frames of `input` into zinx bytes; pongs go to `ctl`
/// (written once the frames before them ran), a client's close is kept
/// for `close::finish` to answer behind what is queued.
fn ws_take(
    ws: &mut WsIn,
    input: &mut BytesMut,
    reading: &mut Reading,
    ctl: &mut BytesMut,
) -> Option<Ended> {
    loop {
        match ws.reader.read(input, &mut reading.rbuf) {
            Ok(None) => return None,
            Ok(Some(Control::Ping(payload))) => {
                if !ws.closed {
                    ws_frame::put_pong(ctl, &payload);
                }
            }
            Ok(Some(Control::Pong)) => {}
            Ok(Some(Control::Close(payload))) => {
                if !ws.closed {
                    ws.close_reply = Some(payload);
                }
                return Some(Ended::Session(CloseReason::ClientClosed));
            }
            Err(Violation::Text) => {
                warn!("WebSocket text message: closing (zinx frames travel in binary messages)");
                return Some(Ended::TextMessage);
            }
            Err(Violation::Protocol(why)) => {
                warn!(why, "WebSocket protocol error: closing");
                return Some(Ended::Protocol);
            }
        }
    }
}

/// Runs every whole frame of what was taken, writes what the wire answered
/// by itself; `Some` when the connection ends.
async fn run<I: Inbound>(
    wire: &mut Wire,
    mut taken: Taken,
    session: &Arc<Session>,
    inbound: &I,
    reading: &mut Reading,
    stopping: bool,
) -> Option<Ended> {
    if let Some(end) = dispatch(session, inbound, reading, stopping).await {
        return Some(end);
    }
    if !taken.out.is_empty() {
        match wire {
            // Control frames in queue order, by whoever writes.
            Wire::Ws(_) => {
                if session.write_control(&taken.out) == Wrote::Failed {
                    return Some(Ended::Session(CloseReason::IoError));
                }
            }
            // TLS records: this task writes them.
            _ => reading.out.extend_from_slice(&taken.out.split()),
        }
    }
    taken.end
}

/// Runs or forwards every whole frame of the read buffer (answers them
/// `node_stopping` while the gate stops); why when the connection must end
/// (or leave this session).
async fn dispatch<I: Inbound>(
    session: &Session,
    inbound: &I,
    reading: &mut Reading,
    stopping: bool,
) -> Option<Ended> {
    let mut first = true;
    loop {
        let frame = match reading.codec.decode(&mut reading.rbuf) {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(FrameError::TooLarge { msg_id, len, max }) => {
                warn!(session = %session.id, msg_id, len, max, "frame over the size limit: closing the connection");
                return Some(Ended::Session(CloseReason::Oversize));
            }
            Err(FrameError::Io(_)) => return Some(Ended::Session(CloseReason::IoError)),
        };
        // Idle means no complete frame: bytes that complete none (a
        // trickle, half a header) do not keep the session alive. Once per
        // read (a clock read per frame showed in pipelined profiles).
        if first {
            session.touch();
            first = false;
        }
        if inbound.frame(frame, stopping).await == Flow::Switch {
            return Some(Ended::Switched);
        }
    }
}

/// Writes what is pending: on a plain wire the session's queue (through
/// the shared socket), on TLS the queue encrypted by this task.
fn write_pending(
    stream: &TcpStream,
    wire: &mut Wire,
    session: &Session,
    out: &mut BytesMut,
) -> Result<Wrote, super::tls_wire::TlsError> {
    let Some(tls) = wire.tls() else {
        return Ok(session.write_queued());
    };
    loop {
        if out.is_empty() {
            let mut plain = BytesMut::new();
            session.drain_into(&mut plain, WRITE_BATCH);
            if plain.is_empty() {
                // An idle session keeps no write buffer.
                *out = BytesMut::new();
                return Ok(Wrote::Done);
            }
            tls.encrypt(&plain, out)?;
        }
        match stream.try_write(out) {
            Ok(0) => return Ok(Wrote::Failed),
            Ok(n) => out.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Wrote::Blocked),
            Err(_) => return Ok(Wrote::Failed),
        }
    }
}

/// Reads what the socket holds into `buf`'s spare room. A read that does
/// not fill the room emptied the socket (epoll is edge-triggered), so its
/// readiness is cleared right away: without that, every message costs a
/// second `recv` that only says `EAGAIN` (tokio's own `poll_read` does the
/// same after a short read).
fn read_some(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let room = buf.capacity() - buf.len();
    let mut got = None;
    let r = stream.try_io(tokio::io::Interest::READABLE, || {
        let n = stream.try_read_buf(buf)?;
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

/// Waits until the client's socket takes bytes again, frames are queued or
/// the session closes (a client that does not read must not hold its
/// task); false when the socket failed.
async fn wait_writable(stream: &TcpStream, session: &Session) -> bool {
    tokio::select! {
        r = stream.writable() => r.is_ok(),
        _ = session.ready.notified() => true,
    }
}

/// Moves `from`'s bytes to the end of `to` (without a copy when `to` is
/// empty).
fn append(from: &mut BytesMut, to: &mut BytesMut) {
    if to.is_empty() {
        std::mem::swap(from, to);
    } else {
        to.extend_from_slice(from);
        from.clear();
    }
}

/// At shutdown: reads what the socket already holds (without waiting, at
/// most [`UNREAD_MAX`] bytes) and hands each whole frame to `inbound` as
/// read while stopping (it answers `node_stopping`): requests sent before
/// the close get an answer, not silence.
pub(crate) async fn answer_unread<I: Inbound>(
    stream: &TcpStream,
    wire: &mut Wire,
    session: &Arc<Session>,
    inbound: &I,
    reading: &mut Reading,
) {
    let mut read = 0;
    while read < UNREAD_MAX {
        let mut raw = BytesMut::with_capacity(READ_CHUNK);
        match stream.try_read_buf(&mut raw) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
        let Ok(taken) = take_raw(wire, &mut raw, reading) else {
            break;
        };
        if dispatch(session, inbound, reading, true).await.is_some() || taken.end.is_some() {
            break;
        }
    }
}
