//! The sessions of one gate: by id and by uid, the gate's phase as every
//! session sees it, the idle sweep and the resume window's end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;

use super::{CloseReason, Offer, QueueBound, Session, SessionId, clock_ms};
use crate::frame::Frame;

/// 2025-01-01T00:00:00Z in Unix milliseconds.
const SEQ_EPOCH_MS: u64 = 1_735_689_600_000;

/// Session numbers a gate process may hand out per millisecond of its
/// uptime, on average, before its ids could meet those of its next run.
pub(super) const SEQ_PER_MS: u64 = 64;

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

    /// The resumable sessions (with a connection or waiting for one).
    pub(crate) fn resumable(&self) -> Vec<Arc<Session>> {
        self.by_id
            .iter()
            .filter(|e| e.value().resume_epoch().is_some() && !e.value().is_closed())
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
