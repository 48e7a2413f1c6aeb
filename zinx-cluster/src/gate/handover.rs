//! Resume on another gate: a session moves, over the directory's bus, from
//! the gate that held it (G) to the gate its client reconnected to (H).
//!
//! 1. H gets a HELLO whose token names a session of G. The token is signed
//!    with the cluster secret, so H checks it itself; then it asks G
//!    ([`Kind::Handover`]), naming the session the client's new connection
//!    opened here (S') and how many frames the client received.
//! 2. G gives the session up: the frames the client has not received (sent
//!    again, then queued), its uid, rooms, unfinished forwards and the
//!    backends that served it; it leaves G's tables without ending (no
//!    hooks, no unbind, no session-closed notice), its old socket if any is
//!    dropped, the backends that served it are told it is S' now
//!    ([`Kind::SessionMoved`]), and for a resume window G relays to H what
//!    still comes for it (pushes, a forward's answer). The answer
//!    ([`Kind::HandoverDone`]) goes on the same bus queue as those relays,
//!    ahead of them.
//! 3. H takes the state into S' where the bus delivers it (so nothing
//!    relayed can pass it): HELLO's answer first, then the frames, in
//!    order; the uid bound to S' (here and in the directory), the rooms
//!    joined, the forwards kept.
//!
//! When G does not answer within [`ANSWER_WITHIN`] (it is gone: kill -9),
//! the client is told `unknown` and logs in again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};
use zinx_cluster_client::wire::HELLO_MSG_ID;
use zinx_cluster_client::wire::resume::HelloAnswer;

use super::Gate;
use super::resume::Reason;
use crate::envelope::{Envelope, Kind};
use crate::frame::Frame;
use crate::metrics::DirOp;
use crate::node::envelope;
use crate::session::{Refused, Session, SessionId, clock_ms};

/// How long H waits for G's answer.
pub(super) const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// Version of the state encoding.
const STATE_VERSION: u8 = 1;

/// A session's state on its way to another gate.
#[derive(Debug, Default, PartialEq)]
struct State {
    /// What balancing hashes for it.
    route_key: u64,
    /// Frames the client received.
    received: u64,
    /// Its uid.
    uid: Option<String>,
    /// Its rooms.
    rooms: Vec<String>,
    /// Backends that served it.
    served: Vec<u16>,
    /// Unfinished forwards (node, number, msg_id) and the last number.
    forwards: Vec<(u16, u32, u32)>,
    /// The last forward number given.
    last_forward: u32,
    /// Frames for the client.
    frames: Vec<Frame>,
}

impl State {
    fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(STATE_VERSION);
        b.put_u64(self.route_key);
        b.put_u64(self.received);
        put_str(&mut b, self.uid.as_deref().unwrap_or(""));
        b.put_u32(self.rooms.len() as u32);
        for r in &self.rooms {
            put_str(&mut b, r);
        }
        b.put_u32(self.served.len() as u32);
        for n in &self.served {
            b.put_u16(*n);
        }
        b.put_u32(self.forwards.len() as u32);
        for (node, number, msg_id) in &self.forwards {
            b.put_u16(*node);
            b.put_u32(*number);
            b.put_u32(*msg_id);
        }
        b.put_u32(self.last_forward);
        b.put_u32(self.frames.len() as u32);
        for f in &self.frames {
            b.put_u32(f.msg_id);
            b.put_u32(f.data.len() as u32);
            b.extend_from_slice(&f.data);
        }
        b.freeze()
    }

    /// The state in `b`; `None` when it is not one (from a gate of another
    /// build, or damaged).
    fn decode(mut b: Bytes) -> Option<State> {
        fn need(b: &Bytes, n: usize) -> Option<()> {
            (b.remaining() >= n).then_some(())
        }
        fn take_str(b: &mut Bytes) -> Option<String> {
            need(b, 2)?;
            let len = usize::from(b.get_u16());
            need(b, len)?;
            String::from_utf8(b.split_to(len).to_vec()).ok()
        }
        fn count(b: &mut Bytes, each: usize) -> Option<usize> {
            need(b, 4)?;
            let n = b.get_u32() as usize;
            // Never trust a count beyond what the bytes can hold.
            need(b, n.checked_mul(each)?)?;
            Some(n)
        }
        need(&b, 1 + 8 + 8)?;
        if b.get_u8() != STATE_VERSION {
            return None;
        }
        let route_key = b.get_u64();
        let received = b.get_u64();
        let uid = take_str(&mut b)?;
        let mut s = State {
            route_key,
            received,
            uid: (!uid.is_empty()).then_some(uid),
            ..State::default()
        };
        for _ in 0..count(&mut b, 2)? {
            s.rooms.push(take_str(&mut b)?);
        }
        for _ in 0..count(&mut b, 2)? {
            s.served.push(b.get_u16());
        }
        for _ in 0..count(&mut b, 10)? {
            s.forwards.push((b.get_u16(), b.get_u32(), b.get_u32()));
        }
        need(&b, 4)?;
        s.last_forward = b.get_u32();
        for _ in 0..count(&mut b, 8)? {
            need(&b, 8)?;
            let msg_id = b.get_u32();
            let len = b.get_u32() as usize;
            need(&b, len)?;
            s.frames.push(Frame::new(msg_id, b.split_to(len)));
        }
        (!b.has_remaining()).then_some(s)
    }
}

fn put_str(b: &mut BytesMut, s: &str) {
    // Uids and room names are at most 255 bytes; longer is cut.
    let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    b.put_u16(bytes.len() as u16);
    b.extend_from_slice(bytes);
}

/// A resume asked of another gate, waiting for its answer.
struct Pending {
    /// The session the client's new connection opened here (S').
    fresh: Arc<Session>,
    /// Wakes the connection: how many frames the client gets, or why not.
    done: oneshot::Sender<Result<u64, Reason>>,
}

/// A gate's handovers: those it asked for, and the sessions it gave away
/// (relayed for a resume window).
#[derive(Default)]
pub(crate) struct Handovers {
    /// By request number.
    pending: Mutex<HashMap<u32, Pending>>,
    /// The next request number.
    next: std::sync::atomic::AtomicU32,
    /// Session id that left → (its gate now, its id there, until when).
    moved: Mutex<HashMap<u64, (u16, u64, u64)>>,
    /// Uid of a session that left → the same.
    moved_uid: Mutex<HashMap<String, (u16, u64, u64)>>,
}

impl std::fmt::Debug for Handovers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handovers").finish_non_exhaustive()
    }
}

impl Handovers {
    /// Where session `id` went, if it moved lately: (gate, id there).
    pub(crate) fn moved(&self, id: SessionId) -> Option<(u16, SessionId)> {
        let now = clock_ms();
        let m = self.moved.lock().ok()?;
        let &(gate, to, until) = m.get(&id.0)?;
        (until > now).then_some((gate, SessionId(to)))
    }

    /// Where the session of `uid` went, if it moved lately.
    pub(crate) fn moved_uid(&self, uid: &str) -> Option<(u16, SessionId)> {
        let now = clock_ms();
        let m = self.moved_uid.lock().ok()?;
        let &(gate, to, until) = m.get(uid)?;
        (until > now).then_some((gate, SessionId(to)))
    }

    /// Forgets moves older than their window.
    pub(crate) fn forget_old(&self) {
        let now = clock_ms();
        if let Ok(mut m) = self.moved.lock() {
            m.retain(|_, (_, _, until)| *until > now);
        }
        if let Ok(mut m) = self.moved_uid.lock() {
            m.retain(|_, (_, _, until)| *until > now);
        }
    }
}

/// H: asks gate `origin` for the session `id` of `token`, for the client of
/// `fresh`, which received `received` frames; how many frames it gets, or
/// why not.
pub(super) async fn ask(
    gate: &Arc<Gate>,
    fresh: &Arc<Session>,
    origin: u16,
    token: &str,
    received: u64,
) -> Result<u64, Reason> {
    let node = gate.node();
    if node.directory().redis().is_none() {
        return Err(Reason::Unknown);
    }
    let number = gate
        .handovers
        .next
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .wrapping_add(1)
        .max(1);
    let (tx, rx) = oneshot::channel();
    if let Ok(mut p) = gate.handovers.pending.lock() {
        p.insert(
            number,
            Pending {
                fresh: fresh.clone(),
                done: tx,
            },
        );
    }
    let mut env = envelope(Kind::Handover, node.id(), 0, 0, Bytes::new());
    env.request = number;
    env.uid = Bytes::copy_from_slice(token.as_bytes());
    let mut p = BytesMut::with_capacity(16);
    p.put_u64(fresh.id.0);
    p.put_u64(received);
    env.payload = p.freeze();
    let answered = match node.directory().send(origin, env) {
        Ok(()) => tokio::time::timeout(ANSWER_WITHIN, rx).await.ok(),
        Err(e) => {
            debug!(origin, error = %e, "handover not asked: the gate is unreachable");
            None
        }
    };
    if let Ok(mut p) = gate.handovers.pending.lock() {
        p.remove(&number);
    }
    match answered {
        Some(Ok(outcome)) => outcome,
        // Gone (kill -9), or too slow: the client logs in again.
        _ => Err(Reason::Unknown),
    }
}

/// G: gives the session of the token in `env` up to the gate that asked.
pub(super) fn give(gate: &Arc<Gate>, from_gate: u16, env: Envelope) {
    let node = gate.node();
    let mut p = env.payload.clone();
    let reply = |flags: u8, session: u64, payload: Bytes| {
        let mut answer = envelope(Kind::HandoverDone, node.id(), 0, session, payload);
        answer.request = env.request;
        answer.flags = flags;
        if let Err(e) = node.directory().send(from_gate, answer) {
            warn!(to = from_gate, error = %e, "handover answer not sent");
        }
    };
    if p.remaining() < 16 {
        return reply(reason_flag(Reason::Unknown), 0, Bytes::new());
    }
    let to = SessionId(p.get_u64());
    let received = p.get_u64();
    let token = String::from_utf8_lossy(&env.uid).into_owned();
    match take_out(gate, &token, received, from_gate, to) {
        Ok(state) => {
            info!(session = %to, to_gate = from_gate, frames = state.frames.len(), "session handed over for a resume on another gate");
            reply(0, to.0, state.encode());
        }
        Err(reason) => {
            debug!(to_gate = from_gate, ?reason, "handover refused");
            reply(reason_flag(reason), to.0, Bytes::new());
        }
    }
}

/// G: the session of `token`, out of this gate (no hooks: it lives on),
/// with its state; what still comes for it relayed to `to` on `to_gate`.
fn take_out(
    gate: &Arc<Gate>,
    token: &str,
    received: u64,
    to_gate: u16,
    to: SessionId,
) -> Result<State, Reason> {
    let node = gate.node();
    let (id, epoch) = gate.resumes.open(token).ok_or(Reason::Unknown)?;
    if id.gate() != node.id() {
        return Err(Reason::Unknown);
    }
    let session = match gate.sessions().get(id) {
        Some(s) if !s.is_closed() => s,
        _ => return Err(gate.resumes.why_gone(id)),
    };
    match session.resume_epoch() {
        Some(e) if e == epoch => {}
        _ if session.resume_overflowed() => return Err(Reason::Overflow),
        _ => return Err(Reason::Unknown),
    }
    // Relays first: from the export on, whatever comes for the session
    // finds it closed (or gone) and goes where it moved.
    let uid = session.uid().map(|u| u.to_string());
    let until = clock_ms() + gate.resumes.window().as_millis() as u64;
    if let Ok(mut m) = gate.handovers.moved.lock() {
        m.insert(id.0, (to_gate, to.0, until));
    }
    if let Some(uid) = &uid {
        if let Ok(mut m) = gate.handovers.moved_uid.lock() {
            m.insert(uid.clone(), (to_gate, to.0, until));
        }
    }
    let exported = match session.export(received) {
        Ok(e) => e,
        Err(r) => {
            if let Ok(mut m) = gate.handovers.moved.lock() {
                m.remove(&id.0);
            }
            if let Some(uid) = &uid {
                if let Ok(mut m) = gate.handovers.moved_uid.lock() {
                    m.remove(uid);
                }
            }
            return Err(match r {
                Refused::Overflow => Reason::Overflow,
                Refused::Unknown => Reason::Unknown,
            });
        }
    };
    // Out of the tables.
    if let Some(uid) = &uid {
        gate.sessions().unbind_local(uid, id);
    }
    if gate.sessions().remove(id).is_some() {
        node.metrics().sessions_open.sub(1);
    }
    if session.detached_since().is_some() {
        node.metrics().sessions_detached.sub(1);
    }
    let rooms = gate
        .rooms
        .leave_all(id)
        .into_iter()
        .map(|r| r.to_string())
        .collect();
    let (forwards, last_forward) = session.export_forwards();
    let served = session.served();
    for node_id in &served {
        let mut env = envelope(Kind::SessionMoved, node.id(), 0, id.0, Bytes::new());
        let mut p = BytesMut::with_capacity(8);
        p.put_u64(to.0);
        env.payload = p.freeze();
        if let Some(peer) = node.links().get(*node_id) {
            if let Err(e) = peer.send(env) {
                debug!(
                    node = node_id,
                    ?e,
                    "session move not told (its queue there ends with the gate's link)"
                );
            }
        }
    }
    Ok(State {
        route_key: session.route_key(),
        received: exported.received,
        uid,
        rooms,
        served,
        forwards,
        last_forward,
        frames: exported.frames,
    })
}

/// H: the answer to a handover asked: the state taken into the client's
/// new session (here, where the bus delivers it: nothing relayed after it
/// can pass it), and its connection woken.
pub(super) fn taken(gate: &Arc<Gate>, env: Envelope) {
    let pending = gate
        .handovers
        .pending
        .lock()
        .ok()
        .and_then(|mut p| p.remove(&env.request));
    let Some(Pending { fresh, done }) = pending else {
        if env.flags == 0 {
            warn!(
                request = env.request,
                "a handed-over session came too late: lost"
            );
        }
        return;
    };
    if env.flags != 0 {
        let _ = done.send(Err(reason_of_flag(env.flags)));
        return;
    }
    let Some(state) = State::decode(env.payload) else {
        warn!("a handed-over session's state does not decode: refused");
        let _ = done.send(Err(Reason::Unknown));
        return;
    };
    let replayed = state.frames.len() as u64;
    adopt(gate, &fresh, state);
    let _ = done.send(Ok(replayed));
}

/// H: `fresh` becomes the resumed session.
fn adopt(gate: &Arc<Gate>, fresh: &Arc<Session>, state: State) {
    let node = gate.node();
    let resumes = &gate.resumes;
    fresh.set_route_key(state.route_key);
    for served in &state.served {
        fresh.mark_served(*served);
    }
    fresh.import_forwards(&state.forwards, state.last_forward);
    let window_ms = resumes.window().as_millis() as u64;
    let replayed = state.frames.len() as u64;
    let id = fresh.id;
    fresh.import(
        gate.node().settings().resume_buffer_bytes,
        state.received,
        |epoch| {
            let a = HelloAnswer {
                resumed: Some(true),
                token: resumes.token(id, epoch),
                window_ms,
                replayed: Some(replayed),
                reason: None,
            };
            Frame::new(
                HELLO_MSG_ID,
                Bytes::from(serde_json::to_vec(&a).unwrap_or_default()),
            )
        },
        state.frames,
    );
    for room in &state.rooms {
        if let Err(e) = gate.room_op_local(crate::api::RoomOp::Join, id, room) {
            debug!(session = %id, room, error = %e, "room not joined again");
        }
    }
    if let Some(uid) = state.uid {
        let uid: Arc<str> = Arc::from(uid.as_str());
        fresh.set_uid(Some(uid.clone()));
        gate.sessions().bind_local(uid.clone(), id);
        let gate = gate.clone();
        tokio::spawn(async move {
            let node = gate.node();
            let r = node.directory().bind(&uid, id).await;
            node.count_directory(DirOp::Bind, &r);
            if let Err(e) = r {
                warn!(session = %id, %uid, error = %e, "resumed session's uid not bound in the directory");
            }
        });
    }
    node.metrics().resumes_resumed.add(1);
    node.metrics().replayed_frames.add(replayed);
}

fn reason_flag(r: Reason) -> u8 {
    match r {
        Reason::Expired => 1,
        Reason::Overflow => 3,
        Reason::Unknown | Reason::Disabled => 2,
    }
}

fn reason_of_flag(f: u8) -> Reason {
    match f {
        1 => Reason::Expired,
        3 => Reason::Overflow,
        _ => Reason::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_survives_the_trip_and_junk_is_refused() {
        let s = State {
            route_key: 7,
            received: 42,
            uid: Some("alice".into()),
            rooms: vec!["r".into(), "lobby".into()],
            served: vec![2, 3],
            forwards: vec![(2, 9, 6)],
            last_forward: 9,
            frames: vec![Frame::new(50, "a"), Frame::new(51, Bytes::new())],
        };
        let wire = s.encode();
        assert_eq!(State::decode(wire.clone()), Some(s));
        for cut in 0..wire.len() {
            assert_eq!(State::decode(wire.slice(..cut)), None, "cut at {cut}");
        }
        // A count far beyond the bytes is refused, not allocated.
        let mut b = BytesMut::new();
        b.put_u8(STATE_VERSION);
        b.put_u64(0);
        b.put_u64(0);
        b.put_u16(0);
        b.put_u32(u32::MAX);
        assert_eq!(State::decode(b.freeze()), None);
    }
}
