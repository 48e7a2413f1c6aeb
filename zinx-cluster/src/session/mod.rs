//! Client sessions on a gate: ids, uid bindings, the outbound queue.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::frame::Frame;

mod forwards;
mod resume;
mod table;
mod write;

use forwards::Forwards;
pub(crate) use resume::{Exported, Refused, Resumed};
pub(crate) use table::{GatePhase, Sessions};
pub(crate) use write::{DeferWakes, Wrote};

/// A session id, unique across the cluster: the gate's node id in the high
/// 16 bits, a per-gate sequence number in the low 48. The sequence of a gate
/// process starts from the clock (see `first_seq`), so a restarted gate
/// does not hand out the ids of its previous run either.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl SessionId {
    /// The id of session `seq` on gate `gate`.
    pub fn new(gate: u16, seq: u64) -> Self {
        SessionId((u64::from(gate) << 48) | (seq & 0xFFFF_FFFF_FFFF))
    }

    /// The gate that holds the session.
    pub fn gate(self) -> u16 {
        (self.0 >> 48) as u16
    }

    /// The per-gate sequence number.
    pub fn seq(self) -> u64 {
        self.0 & 0xFFFF_FFFF_FFFF
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.gate(), self.seq())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// Why a session was closed (for the log and the counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The client closed the connection.
    ClientClosed,
    /// Silent past the idle timeout.
    Idle,
    /// A frame over the size limit.
    Oversize,
    /// The outbound queue filled (a client that does not read).
    QueueFull,
    /// `kick`, or a newer login of the same uid.
    Kicked,
    /// The gate is shutting down.
    Shutdown,
    /// The socket failed.
    IoError,
    /// The session moved to another gate (a resume there).
    Moved,
}

impl CloseReason {
    /// Every reason, in declaration order (`reason as usize` indexes it).
    pub(crate) const ALL: [CloseReason; 8] = [
        CloseReason::ClientClosed,
        CloseReason::Idle,
        CloseReason::Oversize,
        CloseReason::QueueFull,
        CloseReason::Kicked,
        CloseReason::Shutdown,
        CloseReason::IoError,
        CloseReason::Moved,
    ];
}

/// How much may wait towards one client: `session_queue` frames and
/// `session_queue_bytes` bytes (frame headers included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueBound {
    /// Frames at most.
    pub(crate) frames: usize,
    /// Bytes at most; a single frame larger than this still passes an
    /// empty queue (the bound limits a backlog, not a message size).
    pub(crate) bytes: usize,
}

/// The frames waiting towards a client and their size.
#[derive(Debug, Default)]
struct Queue {
    /// A `VecDeque` allocates only once something is queued, so an idle
    /// session holds no queue memory.
    frames: VecDeque<Frame>,
    /// Encoded bytes of `frames` (headers included).
    bytes: usize,
    /// A TCP or WebSocket client's socket, while its session is open:
    /// frames are written to it under this lock, by the session's task or
    /// by whoever queued them (see `write`). `None` for TLS, whose task
    /// encrypts and writes itself.
    sink: Option<Arc<TcpStream>>,
    /// Frames travel as WebSocket binary messages (one per frame), not
    /// bare.
    ws: bool,
    /// Taken from `frames` and encoded, not yet accepted by the socket:
    /// written before anything else.
    unsent: BytesMut,
    /// A resumable session's frames since the client's last
    /// acknowledgement (`None` until HELLO).
    resume: Option<Box<resume::ResumeLog>>,
}

/// One client connection on a gate.
#[derive(Debug)]
pub(crate) struct Session {
    /// Cluster-wide id.
    pub(crate) id: SessionId,
    /// What balancing hashes for this session's messages: its id, or the
    /// id it had on the gate it was resumed from (one session, one backend,
    /// across a move).
    route_key: AtomicU64,
    /// This session, for a wake-up deferred to the end of a batch (see
    /// [`DeferWakes`]).
    me: Weak<Session>,
    /// Frames towards the client, within `limit`. A `VecDeque` allocates
    /// only once something is queued, so an idle session holds no queue
    /// memory.
    queue: Mutex<Queue>,
    /// `session_queue` and `session_queue_bytes`.
    limit: QueueBound,
    /// Wakes the session's task when frames are queued or the session is
    /// closed.
    pub(crate) ready: Notify,
    /// The uid bound by `bind`, if any, as text and as the bytes every
    /// forwarded envelope carries (encoded once at bind, not per message).
    uid: Mutex<Option<(Arc<str>, Bytes)>>,
    /// Nodes this session's messages were forwarded to: told when it closes.
    served: Mutex<Vec<u16>>,
    /// Forwarded messages not finished yet: when a node's link dies, those
    /// left are answered `node_lost`.
    forwards: Mutex<Forwards>,
    /// 0 while open, then the first reason given for closing (kick, queue
    /// full, ...) as `1 + CloseReason as u8`. One byte instead of a
    /// `CancellationToken` (a second allocation per session) and a Mutex:
    /// `ready` wakes the task, which reads this.
    closed: AtomicU8,
    /// When the client last completed a frame, in [`clock_ms`] time: the
    /// gate's idle sweep reads it (no timer per session).
    last_read: AtomicU64,
    /// Counts the connections that served this session: a connection
    /// whose number is no longer the session's has been replaced (a resume
    /// took the session over) and ends.
    conn_gen: AtomicU32,
    /// The gate asks the connection to end without ending the session (a
    /// resumable session gone idle), as `1 + CloseReason as u8`; 0: no.
    drop_conn: AtomicU8,
    /// A resumable session without a connection since this [`clock_ms`]
    /// time, plus 1 (0: it has one, or had none yet).
    detached: AtomicU64,
}

/// What happened to a frame offered to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Queued.
    Queued,
    /// The queue was full: the session is being closed.
    Full,
    /// The session is already closed.
    Closed,
}

impl Session {
    pub(crate) fn new(id: SessionId, limit: QueueBound) -> Arc<Session> {
        Arc::new_cyclic(|me| Session {
            id,
            route_key: AtomicU64::new(id.0),
            me: me.clone(),
            queue: Mutex::new(Queue::default()),
            limit: QueueBound {
                frames: limit.frames.max(1),
                bytes: limit.bytes.max(1),
            },
            ready: Notify::new(),
            uid: Mutex::new(None),
            served: Mutex::new(Vec::new()),
            forwards: Mutex::new(Forwards::default()),
            closed: AtomicU8::new(0),
            last_read: AtomicU64::new(clock_ms()),
            conn_gen: AtomicU32::new(0),
            drop_conn: AtomicU8::new(0),
            detached: AtomicU64::new(0),
        })
    }

    /// Queues a frame for the client. A full queue (in frames or in bytes)
    /// closes the session: a client that does not read must not grow the
    /// gate's memory.
    pub(crate) fn offer(&self, frame: Frame) -> Offer {
        if self.is_closed() {
            return Offer::Closed;
        }
        let Ok(mut q) = self.queue.lock() else {
            return Offer::Closed;
        };
        // Checked again under the lock: a session that moved to another
        // gate (`export`) takes nothing after its state left.
        if self.is_closed() {
            return Offer::Closed;
        }
        let size = frame.wire_len();
        let over_bytes = !q.frames.is_empty() && q.bytes + size > self.limit.bytes;
        if q.frames.len() >= self.limit.frames || over_bytes {
            drop(q);
            self.close_with(CloseReason::QueueFull);
            return Offer::Full;
        }
        q.frames.push_back(frame);
        q.bytes += size;
        drop(q);
        if !write::defer_wake(self) {
            self.ready.notify_one();
        }
        Offer::Queued
    }

    /// Moves queued frames, encoded as the wire carries them (see
    /// [`Session::attach`]), into `out` until it holds `max` bytes; true
    /// when frames remain. An emptied queue gives its memory back.
    pub(crate) fn drain_into(&self, out: &mut bytes::BytesMut, max: usize) -> bool {
        let Ok(mut q) = self.queue.lock() else {
            return false;
        };
        if !q.unsent.is_empty() {
            out.extend_from_slice(&q.unsent);
            q.unsent = BytesMut::new();
        }
        let ws = q.ws;
        while out.len() < max {
            let Some(frame) = q.frames.pop_front() else {
                break;
            };
            q.bytes = q.bytes.saturating_sub(frame.wire_len());
            crate::frame::encode_wrapped(&frame, ws, out);
            if let Some(log) = q.resume.as_mut() {
                log.wrote(frame);
            }
        }
        if q.frames.is_empty() {
            q.bytes = 0;
            if q.frames.capacity() > 64 {
                q.frames = VecDeque::new();
            }
            false
        } else {
            true
        }
    }

    /// Closes the session, remembering the first reason given.
    pub(crate) fn close_with(&self, reason: CloseReason) {
        let code = reason as u8 + 1;
        if self
            .closed
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // A permit if the task is not waiting: it cannot miss this.
            self.ready.notify_one();
        }
    }

    /// What balancing hashes for this session's messages.
    pub(crate) fn route_key(&self) -> u64 {
        self.route_key.load(Ordering::Relaxed)
    }

    /// Keeps the balancing of a session resumed from another gate.
    pub(crate) fn set_route_key(&self, key: u64) {
        self.route_key.store(key, Ordering::Relaxed);
    }

    /// A connection starts serving the session: its number (see
    /// [`Session::conn_gen`]). An earlier connection still serving it is
    /// woken to find itself replaced.
    pub(crate) fn attach_conn(&self) -> u32 {
        let number = self.conn_gen.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        self.drop_conn.store(0, Ordering::Release);
        self.detached.store(0, Ordering::Release);
        self.touch();
        if number > 1 {
            self.ready.notify_waiters();
        }
        number
    }

    /// The number of the connection serving the session now.
    pub(crate) fn conn_gen(&self) -> u32 {
        self.conn_gen.load(Ordering::Acquire)
    }

    /// Asks the connection to end for `reason`, keeping the session (a
    /// resumable session gone idle keeps its resume window).
    pub(crate) fn drop_conn(&self, reason: CloseReason) {
        self.drop_conn.store(reason as u8 + 1, Ordering::Release);
        self.ready.notify_waiters();
        self.ready.notify_one();
    }

    /// Why the gate asked the connection to end, once.
    pub(crate) fn take_dropped(&self) -> Option<CloseReason> {
        let code = self.drop_conn.swap(0, Ordering::AcqRel);
        CloseReason::ALL
            .get(usize::from(code).checked_sub(1)?)
            .copied()
    }

    /// Notes that the session lost its connection and waits for a resume.
    pub(crate) fn mark_detached(&self) {
        self.detached.store(clock_ms() + 1, Ordering::Release);
    }

    /// Since when (in [`clock_ms`] time) the session waits for a resume.
    pub(crate) fn detached_since(&self) -> Option<u64> {
        self.detached.load(Ordering::Acquire).checked_sub(1)
    }

    /// Notes that the client completed a frame (it is not idle).
    pub(crate) fn touch(&self) {
        self.last_read.store(clock_ms(), Ordering::Relaxed);
    }

    /// True once `close_with` was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) != 0
    }

    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        CloseReason::ALL
            .get(usize::from(self.closed.load(Ordering::Acquire)).checked_sub(1)?)
            .copied()
    }

    pub(crate) fn uid(&self) -> Option<Arc<str>> {
        self.uid
            .lock()
            .ok()
            .and_then(|u| u.as_ref().map(|(text, _)| text.clone()))
    }

    /// The uid as envelope bytes (empty when unbound): a reference count,
    /// not a copy.
    pub(crate) fn uid_wire(&self) -> Bytes {
        self.uid
            .lock()
            .ok()
            .and_then(|u| u.as_ref().map(|(_, wire)| wire.clone()))
            .unwrap_or_default()
    }

    pub(crate) fn has_uid(&self) -> bool {
        self.uid.lock().map(|u| u.is_some()).unwrap_or(false)
    }

    pub(crate) fn set_uid(&self, uid: Option<Arc<str>>) -> Option<Arc<str>> {
        let new = uid.map(|text| {
            let wire = Bytes::copy_from_slice(text.as_bytes());
            (text, wire)
        });
        match self.uid.lock() {
            Ok(mut u) => std::mem::replace(&mut *u, new).map(|(text, _)| text),
            Err(_) => None,
        }
    }

    /// Records that `node` served this session; true the first time.
    pub(crate) fn mark_served(&self, node: u16) -> bool {
        match self.served.lock() {
            Ok(mut s) if !s.contains(&node) => {
                s.push(node);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn served(&self) -> Vec<u16> {
        self.served.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

// Session resume (see `resume`): the session's side.
impl Session {
    /// Makes the session resumable (HELLO): its frames are kept until
    /// acknowledged, at most `limit` bytes of them. Returns the epoch of
    /// its token; a session already resumable keeps its log.
    pub(crate) fn make_resumable(&self, limit: usize) -> Option<u32> {
        let mut q = self.queue.lock().ok()?;
        let log = q
            .resume
            .get_or_insert_with(|| Box::new(resume::ResumeLog::new(limit)));
        Some(log.epoch)
    }

    /// Whether the session said HELLO and can still be resumed.
    pub(crate) fn is_resumable(&self) -> bool {
        self.queue
            .lock()
            .is_ok_and(|q| q.resume.as_ref().is_some_and(|r| !r.overflowed))
    }

    /// The epoch of the session's token, when it is resumable.
    pub(crate) fn resume_epoch(&self) -> Option<u32> {
        let q = self.queue.lock().ok()?;
        q.resume.as_ref().filter(|r| !r.overflowed).map(|r| r.epoch)
    }

    /// Whether the session's unacknowledged frames outgrew the bound.
    pub(crate) fn resume_overflowed(&self) -> bool {
        self.queue
            .lock()
            .is_ok_and(|q| q.resume.as_ref().is_some_and(|r| r.overflowed))
    }

    /// The client acknowledged `received` frames (ACK).
    pub(crate) fn ack(&self, received: u64) {
        if let Ok(mut q) = self.queue.lock() {
            if let Some(log) = q.resume.as_mut() {
                log.ack(received);
            }
        }
    }

    /// A resume by a client that received `received` frames: what it did
    /// not receive is queued again, ahead of what waits, and `hello` (the
    /// answer, from `make_answer` given the outcome) goes out first. The
    /// session's token moves to a new epoch. Called with no socket
    /// attached.
    pub(crate) fn resume(
        &self,
        received: u64,
        make_answer: impl FnOnce(Result<Resumed, Refused>) -> Option<Frame>,
    ) -> Result<Resumed, Refused> {
        let Ok(mut q) = self.queue.lock() else {
            return Err(Refused::Unknown);
        };
        let q = &mut *q;
        let outcome = resume::resume_locked(q, received);
        if outcome.is_ok() {
            // Nobody writes until the resuming connection attaches its
            // socket: an old socket still attached (a client that moved
            // networks without closing it) gets nothing more.
            q.sink = None;
        }
        if let Some(answer) = make_answer(outcome) {
            // What was encoded for the old socket is in the log (frames
            // are kept as they are taken): the answer comes first now.
            q.unsent = BytesMut::new();
            let _ = answer.encode_into(&mut q.unsent);
        }
        outcome
    }
}

impl Session {
    /// Gives up the session's frames to a resume on another gate: those
    /// after `received`, then the queued ones. The session keeps nothing;
    /// its socket, if one is still attached, gets nothing more.
    pub(crate) fn export(&self, received: u64) -> Result<Exported, Refused> {
        let Ok(mut q) = self.queue.lock() else {
            return Err(Refused::Unknown);
        };
        let q = &mut *q;
        resume::resume_locked(q, received)?;
        q.sink = None;
        q.unsent = BytesMut::new();
        q.bytes = 0;
        let frames: Vec<Frame> = std::mem::take(&mut q.frames)
            .into_iter()
            .filter(|f| !zinx_cluster_client::wire::is_control(f.msg_id))
            .collect();
        // Nothing more can be resumed here, nor queued: offers after this
        // find the session closed (checked under this lock) and go to
        // where it moved.
        q.resume = None;
        self.close_with(CloseReason::Moved);
        Ok(Exported { received, frames })
    }

    /// Takes in the state of a session resumed from another gate: the
    /// count goes on from `received`, `answer` (HELLO's) goes first, then
    /// the frames. Returns the epoch of the session's token.
    pub(crate) fn import(
        &self,
        limit: usize,
        received: u64,
        answer: impl FnOnce(u32) -> Frame,
        frames: Vec<Frame>,
    ) -> Option<u32> {
        let mut q = self.queue.lock().ok()?;
        let log = q
            .resume
            .get_or_insert_with(|| Box::new(resume::ResumeLog::new(limit)));
        log.sent = received;
        log.acked = received;
        let epoch = log.epoch;
        let answer = answer(epoch);
        q.bytes += answer.wire_len();
        q.frames.push_back(answer);
        for frame in frames {
            q.bytes += frame.wire_len();
            q.frames.push_back(frame);
        }
        drop(q);
        self.ready.notify_one();
        Some(epoch)
    }
}

/// Milliseconds since the first call, on the monotonic clock: the time of
/// [`Session::touch`] and [`Sessions::close_idle`].
pub(crate) fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn f(b: &'static [u8]) -> Frame {
        Frame::new(1, Bytes::from_static(b))
    }

    fn bound(frames: usize) -> QueueBound {
        QueueBound {
            frames,
            bytes: 1 << 20,
        }
    }

    #[test]
    fn session_ids_carry_the_gate() {
        let id = SessionId::new(7, 42);
        assert_eq!(id.gate(), 7);
        assert_eq!(id.seq(), 42);
        assert_ne!(SessionId::new(1, 5), SessionId::new(2, 5));
        assert_eq!(id.to_string(), "7:42");
    }

    #[test]
    fn a_restarted_gate_does_not_reuse_session_ids() {
        let first_run = Sessions::new(3);
        let a = first_run.open(bound(1));
        let b = first_run.open(bound(1));
        assert_eq!(b.id.seq(), a.id.seq() + 1);
        std::thread::sleep(std::time::Duration::from_millis(2));
        // The same gate, started again: its first id is past the old run's.
        let next_run = Sessions::new(3);
        let c = next_run.open(bound(1));
        assert_eq!(c.id.gate(), 3);
        assert!(c.id.seq() > b.id.seq() + table::SEQ_PER_MS, "{} vs {}", c.id, b.id);
    }

    #[tokio::test]
    async fn full_queue_closes_the_session() {
        let sessions = Sessions::new(1);
        let s = sessions.open(bound(2));
        assert_eq!(s.offer(f(b"a")), Offer::Queued);
        assert_eq!(s.offer(f(b"b")), Offer::Queued);
        assert_eq!(s.offer(f(b"c")), Offer::Full);
        assert!(s.is_closed());
        assert_eq!(s.close_reason(), Some(CloseReason::QueueFull));
    }

    #[test]
    fn the_first_close_reason_is_kept() {
        for (i, r) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            let s = Session::new(SessionId::new(1, 1), bound(1));
            assert_eq!(s.close_reason(), None);
            s.close_with(*r);
            s.close_with(CloseReason::Kicked);
            assert_eq!(s.close_reason(), Some(*r));
        }
    }

    #[test]
    fn the_idle_sweep_closes_only_silent_sessions() {
        let sessions = Sessions::new(1);
        let quiet = sessions.open(bound(1));
        let talker = sessions.open(bound(1));
        std::thread::sleep(std::time::Duration::from_millis(30));
        talker.touch();
        assert_eq!(sessions.close_idle(20), 1);
        assert_eq!(quiet.close_reason(), Some(CloseReason::Idle));
        assert!(!talker.is_closed());
        // Already closed: not counted again.
        assert_eq!(sessions.close_idle(20), 0);
    }

    #[tokio::test]
    async fn a_queue_is_bounded_in_bytes_too() {
        let sessions = Sessions::new(1);
        let s = sessions.open(QueueBound {
            frames: 100,
            bytes: 100,
        });
        let big = Frame::new(1, Bytes::from(vec![0u8; 200]));
        // One frame larger than the bound passes an empty queue...
        assert_eq!(s.offer(big.clone()), Offer::Queued);
        let mut out = bytes::BytesMut::new();
        assert!(!s.drain_into(&mut out, usize::MAX));
        assert_eq!(out.len(), 208);
        // ...but a backlog may not pass it: 8 + 40 bytes each.
        let small = Frame::new(1, Bytes::from(vec![0u8; 40]));
        assert_eq!(s.offer(small.clone()), Offer::Queued);
        assert_eq!(s.offer(small.clone()), Offer::Queued);
        assert_eq!(s.offer(small), Offer::Full);
        assert_eq!(s.close_reason(), Some(CloseReason::QueueFull));
    }

    #[test]
    fn forwards_finish_by_number_and_the_rest_is_lost() {
        let sessions = Sessions::new(1);
        let s = sessions.open(bound(16));
        let a = s.track_forward(2, 6, None);
        let b = s.track_forward(3, 7, Some(0));
        let _c = s.track_forward(2, 8, None);
        let d = s.track_forward(3, 9, None);
        assert!(a != 0 && a != b);
        // Node 3 finishes 7 although node 2's 6 is older.
        let done = s.finish_forward(3, b, None).expect("open");
        assert!(
            done.timed.is_some_and(|(g, _)| g == 0),
            "timed forward keeps its group"
        );
        assert_eq!(done.offer, None);
        assert!(
            s.finish_forward(3, b, None).is_none(),
            "a second answer is a late one"
        );
        // A failed send takes its own entry back, once.
        let e = s.track_forward(2, 10, None);
        assert!(s.untrack_forward(e));
        assert!(!s.untrack_forward(e));
        // Node 2's link dies: 6 and 8 are lost and answered, node 3's 9 is
        // not; an answer to 6 arriving after that is late, and dropped.
        let lost = s.fail_forwards_to(2, |msg_id| Some(Frame::new(0, format!("lost {msg_id}"))));
        assert_eq!(lost, (2, 2));
        let answer = Frame::new(6, "late");
        assert!(s.finish_forward(2, a, Some(answer)).is_none());
        assert_eq!(queued(&s), ["lost 6", "lost 8"]);
        // Unnumbered completions finish the node's oldest.
        let done = s.finish_forward(3, 0, None).expect("open");
        assert_eq!((done.timed, done.offer), (None, None));
        assert!(s.finish_forward(3, d, None).is_none());
    }

    /// The data of the frames queued for a session, emptied.
    fn queued(s: &Session) -> Vec<String> {
        let mut out = bytes::BytesMut::new();
        s.drain_into(&mut out, usize::MAX);
        let mut codec = crate::frame::FrameCodec::new(1 << 20);
        let mut frames = Vec::new();
        while let Ok(Some(f)) = tokio_util::codec::Decoder::decode(&mut codec, &mut out) {
            frames.push(String::from_utf8_lossy(&f.data).into_owned());
        }
        frames
    }

    #[test]
    fn the_gates_own_answers_wait_behind_open_forwards() {
        let sessions = Sessions::new(1);
        let s = sessions.open(bound(16));
        // Nothing open: at once.
        assert_eq!(s.offer_in_order(Frame::new(0, "first")), Offer::Queued);
        assert_eq!(queued(&s), ["first"]);
        // Two forwards open: a refusal of a later message waits for both.
        let a = s.track_forward(2, 6, None);
        let b = s.track_forward(3, 6, None);
        assert_eq!(s.offer_in_order(Frame::new(0, "refused")), Offer::Queued);
        assert!(queued(&s).is_empty());
        let done = s
            .finish_forward(2, a, Some(Frame::new(6, "answer a")))
            .unwrap();
        assert_eq!(done.offer, Some(Offer::Queued));
        assert_eq!(queued(&s), ["answer a"]);
        // The last one is lost with its link: its node_lost, then the
        // held refusal.
        s.fail_forwards_to(3, |_| Some(Frame::new(0, "lost b")));
        assert_eq!(queued(&s), ["lost b", "refused"]);
        let _ = b;
        // A closed session's forward answer is not queued.
        let c = s.track_forward(2, 6, None);
        s.close_with(CloseReason::Shutdown);
        let done = s.finish_forward(2, c, Some(Frame::new(6, "x"))).unwrap();
        assert_eq!(done.offer, Some(Offer::Closed));
    }

    #[tokio::test]
    async fn uid_binding_is_removed_only_by_its_own_session() {
        let sessions = Sessions::new(1);
        let a = sessions.open(bound(4));
        let b = sessions.open(bound(4));
        let uid: Arc<str> = Arc::from("alice");
        a.set_uid(Some(uid.clone()));
        assert_eq!(sessions.bind_local(uid.clone(), a.id), None);
        b.set_uid(Some(uid.clone()));
        assert_eq!(sessions.bind_local(uid.clone(), b.id), Some(a.id));
        // The older session closing must not remove the newer binding.
        sessions.remove(a.id);
        assert_eq!(sessions.by_uid("alice").map(|s| s.id), Some(b.id));
        sessions.remove(b.id);
        assert!(sessions.by_uid("alice").is_none());
        assert_eq!(sessions.len(), 0);
    }
}
