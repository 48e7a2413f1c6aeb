//! Client sessions on a gate: ids, uid bindings, the outbound queue.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::frame::Frame;

mod forwards;
mod resume;
mod write;

use forwards::Forwards;
pub(crate) use resume::{Refused, Resumed};
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
}

impl CloseReason {
    /// Every reason, in declaration order (`reason as usize` indexes it).
    const ALL: [CloseReason; 7] = [
        CloseReason::ClientClosed,
        CloseReason::Idle,
        CloseReason::Oversize,
        CloseReason::QueueFull,
        CloseReason::Kicked,
        CloseReason::Shutdown,
        CloseReason::IoError,
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

/// Milliseconds since the first call, on the monotonic clock: the time of
/// [`Session::touch`] and [`Sessions::close_idle`].
pub(crate) fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// 2025-01-01T00:00:00Z in Unix milliseconds.
const SEQ_EPOCH_MS: u64 = 1_735_689_600_000;

/// Session numbers a gate process may hand out per millisecond of its
/// uptime, on average, before its ids could meet those of its next run.
const SEQ_PER_MS: u64 = 64;

/// The first sequence number of a gate process: 64 per millisecond since
/// 2025 (48 bits last about 139 years). A gate that crashes and restarts at
/// once must not give a new client the id of a session of its previous
/// run: a directory binding that run left (alive until its TTL) or an id an
/// application stored would then reach, or kick, the wrong client.
fn first_seq() -> u64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    (now_ms
        .saturating_sub(SEQ_EPOCH_MS)
        .saturating_mul(SEQ_PER_MS)
        & 0xFFFF_FFFF_FFFF)
        .max(1)
}

/// The sessions of one gate, by id and by uid.
#[derive(Debug)]
pub(crate) struct Sessions {
    /// This gate's node id (high bits of every session id).
    gate: u16,
    /// Next sequence number (starting at [`first_seq`]).
    next: AtomicU64,
    /// Open sessions.
    by_id: DashMap<SessionId, Arc<Session>>,
    /// uid → session, for sessions of this gate.
    by_uid: DashMap<Arc<str>, SessionId>,
    /// `by_id.len()` without walking the shards.
    count: AtomicUsize,
    /// [`GatePhase`] as a byte: read by every session task at each wake-up
    /// instead of each task waiting on the node's tokens (two futures of
    /// 72 bytes in every idle task).
    phase: AtomicU8,
}

/// Where the gate is in its life, as its sessions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GatePhase {
    /// Serving.
    Running = 0,
    /// Stopping: frames are answered `node_stopping`, not run.
    Stopping = 1,
    /// Closed: sessions end.
    Closed = 2,
}

impl Sessions {
    pub(crate) fn new(gate: u16) -> Self {
        Sessions {
            gate,
            next: AtomicU64::new(first_seq()),
            by_id: DashMap::new(),
            by_uid: DashMap::new(),
            count: AtomicUsize::new(0),
            phase: AtomicU8::new(GatePhase::Running as u8),
        }
    }

    pub(crate) fn phase(&self) -> GatePhase {
        match self.phase.load(Ordering::Acquire) {
            0 => GatePhase::Running,
            1 => GatePhase::Stopping,
            _ => GatePhase::Closed,
        }
    }

    /// Moves the gate to `phase` and wakes every session to see it (a
    /// stored permit for a task not waiting: none misses it). A session
    /// opened later reads the phase before it first waits.
    pub(crate) fn set_phase(&self, phase: GatePhase) {
        self.phase.fetch_max(phase as u8, Ordering::AcqRel);
        for e in self.by_id.iter() {
            e.value().ready.notify_one();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Registers a new session (at connect, before its first message).
    pub(crate) fn open(&self, queue: QueueBound) -> Arc<Session> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let s = Session::new(SessionId::new(self.gate, seq), queue);
        self.by_id.insert(s.id, s.clone());
        self.count.fetch_add(1, Ordering::Relaxed);
        s
    }

    /// Removes a closed session and its uid binding (if still its own).
    pub(crate) fn remove(&self, id: SessionId) -> Option<Arc<Session>> {
        let (_, s) = self.by_id.remove(&id)?;
        self.count.fetch_sub(1, Ordering::Relaxed);
        if let Some(uid) = s.uid() {
            self.by_uid.remove_if(&uid, |_, sid| *sid == id);
        }
        Some(s)
    }

    pub(crate) fn get(&self, id: SessionId) -> Option<Arc<Session>> {
        self.by_id.get(&id).map(|s| s.clone())
    }

    /// The open session bound to `uid`. A session that is closing (its
    /// last flush may linger a second) holds no uid any more: a push to
    /// the uid is "not online", not a write to a closed session.
    pub(crate) fn by_uid(&self, uid: &str) -> Option<Arc<Session>> {
        let id = *self.by_uid.get(uid)?;
        self.get(id).filter(|s| !s.is_closed())
    }

    /// Binds `uid` to `id` here; returns the session of this gate that held
    /// it before (to be kicked), if any other.
    pub(crate) fn bind_local(&self, uid: Arc<str>, id: SessionId) -> Option<SessionId> {
        self.by_uid.insert(uid, id).filter(|prev| *prev != id)
    }

    /// Binds `uid` to `id` unless someone holds it (undoing a failed bind).
    pub(crate) fn bind_local_if_free(&self, uid: Arc<str>, id: SessionId) {
        if self.by_id.contains_key(&id) {
            self.by_uid.entry(uid).or_insert(id);
        }
    }

    /// Removes the local binding of `uid` if it still names `id`.
    pub(crate) fn unbind_local(&self, uid: &str, id: SessionId) {
        self.by_uid.remove_if(uid, |_, sid| *sid == id);
    }

    /// Offers the same frame (its payload shared, not copied) to every
    /// session (with `users_only`, every session bound to a uid); returns
    /// how many queued it.
    pub(crate) fn offer_all(&self, frame: &Frame, users_only: bool) -> usize {
        let mut n = 0;
        for e in self.by_id.iter() {
            if users_only && !e.value().has_uid() {
                continue;
            }
            if e.value().offer(frame.clone()) == Offer::Queued {
                n += 1;
            }
        }
        n
    }

    /// Closes every session whose client sent nothing for `timeout_ms`;
    /// returns how many.
    pub(crate) fn close_idle(&self, timeout_ms: u64) -> usize {
        let now = clock_ms();
        let mut n = 0;
        for e in self.by_id.iter() {
            let s = e.value();
            if now.saturating_sub(s.last_read.load(Ordering::Relaxed)) >= timeout_ms
                && !s.is_closed()
                && s.detached_since().is_none()
            {
                if s.is_resumable() {
                    // Its socket goes; the session waits for a resume.
                    s.drop_conn(CloseReason::Idle);
                    s.touch();
                } else {
                    s.close_with(CloseReason::Idle);
                }
                n += 1;
            }
        }
        n
    }

    /// The sessions waiting for a resume for `window_ms` or longer.
    pub(crate) fn expired(&self, window_ms: u64) -> Vec<Arc<Session>> {
        let now = clock_ms();
        self.by_id
            .iter()
            .filter(|e| {
                e.value()
                    .detached_since()
                    .is_some_and(|t| now.saturating_sub(t) >= window_ms)
            })
            .map(|e| e.value().clone())
            .collect()
    }

    /// The sessions waiting for a resume.
    pub(crate) fn detached(&self) -> Vec<Arc<Session>> {
        self.by_id
            .iter()
            .filter(|e| e.value().detached_since().is_some())
            .map(|e| e.value().clone())
            .collect()
    }

    /// Sessions with a forwarded message not finished yet (shutdown waits
    /// for none; a walk over the sessions, never on a message's path).
    pub(crate) fn forwards_open(&self) -> usize {
        self.by_id
            .iter()
            .filter(|e| e.value().has_open_forwards())
            .count()
    }

    /// Every open session (a snapshot: no map guard is held afterwards).
    pub(crate) fn all(&self) -> Vec<Arc<Session>> {
        self.by_id.iter().map(|e| e.value().clone()).collect()
    }

    /// The uids bound on this gate with their sessions (for directory
    /// refresh).
    pub(crate) fn bindings(&self) -> Vec<(Arc<str>, SessionId)> {
        self.by_uid
            .iter()
            .map(|e| (e.key().clone(), *e.value()))
            .collect()
    }
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
        assert!(c.id.seq() > b.id.seq() + SEQ_PER_MS, "{} vs {}", c.id, b.id);
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
