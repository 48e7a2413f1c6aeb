//! What a gate does for the outbound API: its own sessions in place (queue
//! a frame, bind, kick, rooms), the rest through the node's remote paths
//! (`node::remote`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Gate;
use crate::api::check_uid;
use crate::api::{KickTarget, NodeApi, Origin, RoomOp};
use crate::envelope::Kind;
use crate::error::{CallError, ErrorCode, SendError};
use crate::frame::Frame;
use crate::handler::BoxFuture;
use crate::metrics::DirOp;
use crate::node::{BROADCAST_USERS_ONLY, envelope};
use crate::session::{CloseReason, Offer, Session, SessionId};
use crate::state::States;

impl Gate {
    /// Tells a session its message failed (if the policy says so).
    pub(crate) fn answer_error(
        &self,
        session: SessionId,
        msg_id: u32,
        code: ErrorCode,
        error: &str,
    ) {
        if let Some(frame) = self.node.error_frame(msg_id, &code, error) {
            if let Err(e) = self.deliver_local(session, frame) {
                debug!(%session, error = %e, "error answer not delivered");
            }
        }
    }

    /// Queues a frame on a session of this gate (or of the gate it moved
    /// to lately, a resume there).
    pub(crate) fn deliver_local(&self, session: SessionId, frame: Frame) -> Result<(), SendError> {
        let s = self.sessions.get(session).filter(|s| !s.is_closed());
        let Some(s) = s else {
            if let Some((_, to)) = self.handovers.moved(session) {
                return self.node.deliver_remote(to, frame);
            }
            self.node.metrics().to_gone_session.add(1);
            return Err(SendError::SessionGone { session });
        };
        self.offer_to(&s, frame)
    }

    /// Queues a frame on a session of this gate.
    pub(crate) fn offer_to(&self, s: &Session, frame: Frame) -> Result<(), SendError> {
        self.note_offer(s, s.offer(frame))
    }

    /// Counts (and logs) how a frame was offered to session `s`.
    pub(crate) fn note_offer(&self, s: &Session, offer: Offer) -> Result<(), SendError> {
        let session = s.id;
        match offer {
            Offer::Queued => {
                self.node.metrics().frames_out.add(1);
                Ok(())
            }
            Offer::Full => {
                // Counted once, when the session ends (`conn`).
                warn!(%session, "client does not read: outbound queue full, closing");
                Err(SendError::SessionGone { session })
            }
            Offer::Closed => Err(SendError::SessionGone { session }),
        }
    }

    /// Binds a session to a uid, kicking whoever held the uid before.
    pub(crate) async fn bind_session(
        &self,
        session: SessionId,
        uid: &str,
    ) -> Result<Option<SessionId>, SendError> {
        check_uid(uid)?;
        if session.gate() != self.node.id() {
            return self.node.bind_remote(session, uid).await;
        }
        let sessions = &self.sessions;
        let directory = self.node.directory();
        let s = sessions
            .get(session)
            .ok_or(SendError::SessionGone { session })?;
        let uid: Arc<str> = Arc::from(uid);
        if let Some(old) = s.uid() {
            if old == uid {
                return Ok(None);
            }
            sessions.unbind_local(&old, session);
            let r = directory.unbind(&old, session).await;
            self.node.count_directory(DirOp::Unbind, &r);
            if let Err(e) = r {
                warn!(%session, uid = %old, error = %e, "directory unbind failed");
            }
        }
        s.set_uid(Some(uid.clone()));
        let prev_local = sessions.bind_local(uid.clone(), session);
        let bound = directory.bind(&uid, session).await;
        self.node.count_directory(DirOp::Bind, &bound);
        let prev_dir = match bound {
            Ok(p) => p.filter(|p| *p != session),
            Err(e) => {
                // Undo: this session holds no uid, and an older local holder
                // (still connected, still in the directory) keeps its own.
                s.set_uid(None);
                sessions.unbind_local(&uid, session);
                if let Some(prev) = prev_local {
                    sessions.bind_local_if_free(uid.clone(), prev);
                }
                return Err(e);
            }
        };
        let mut kicked = None;
        for old in [prev_local, prev_dir].into_iter().flatten() {
            if kicked == Some(old) {
                continue;
            }
            kicked = Some(old);
            if let Err(e) = self.kick_session(old).await {
                debug!(session = %old, error = %e, "older session of the uid already gone");
            }
        }
        Ok(kicked)
    }

    /// Removes a session's uid binding.
    pub(crate) async fn unbind_session(&self, session: SessionId) -> Result<(), SendError> {
        if session.gate() != self.node.id() {
            return self.node.unbind_remote(session).await;
        }
        let s = self
            .sessions
            .get(session)
            .ok_or(SendError::SessionGone { session })?;
        if let Some(old) = s.set_uid(None) {
            self.sessions.unbind_local(&old, session);
            // Locally the session is unbound, which is what its user asked;
            // a directory entry left behind expires with its TTL.
            let r = self.node.directory().unbind(&old, session).await;
            self.node.count_directory(DirOp::Unbind, &r);
            if let Err(e) = r {
                warn!(%session, uid = %old, error = %e, "directory unbind failed; the entry expires with its TTL");
            }
        }
        Ok(())
    }

    /// Closes a session of this gate.
    pub(crate) fn kick_local(&self, session: SessionId) -> Result<(), SendError> {
        let s = self
            .sessions
            .get(session)
            .ok_or(SendError::SessionGone { session })?;
        self.node.metrics().kicks.add(1);
        s.close_with(CloseReason::Kicked);
        Ok(())
    }

    /// Closes a session wherever it is.
    pub(crate) async fn kick_session(&self, session: SessionId) -> Result<(), SendError> {
        if session.gate() == self.node.id() {
            return self.kick_local(session);
        }
        self.node.kick_remote(session).await
    }

    /// Closes the session bound to `uid`, wherever it is.
    async fn kick_uid(&self, uid: &str) -> Result<(), SendError> {
        match self.sessions.by_uid(uid) {
            Some(s) => self.kick_local(s.id),
            None => self.node.kick_uid_remote(uid).await,
        }
    }

    /// Joins or leaves a room for a session of this gate.
    pub(crate) fn room_op_local(
        &self,
        op: RoomOp,
        session: SessionId,
        room: &str,
    ) -> Result<bool, SendError> {
        crate::rooms::check_room(room)?;
        match op {
            RoomOp::Join => {
                let s = self
                    .sessions
                    .get(session)
                    .filter(|s| !s.is_closed())
                    .ok_or(SendError::SessionGone { session })?;
                Ok(self.rooms.join(room, &s))
            }
            RoomOp::Leave => Ok(self.rooms.leave(room, session)),
        }
    }

    /// Writes a frame to the members of `room` on this gate.
    pub(crate) fn publish_local(&self, room: &str, frame: &Frame) {
        let n = self.rooms.publish(room, frame);
        self.node.metrics().frames_out.add(n as u64);
    }

    /// Writes a frame to every session of this gate (with `users_only`,
    /// to every session bound to a uid).
    pub(crate) fn broadcast_local(&self, frame: &Frame, users_only: bool) {
        let n = self.sessions.offer_all(frame, users_only);
        let m = self.node.metrics();
        m.broadcasts.add(1);
        m.frames_out.add(n as u64);
    }
}

impl NodeApi for Gate {
    fn id(&self) -> u16 {
        self.node.id()
    }

    fn name(&self) -> &str {
        self.node.name()
    }

    fn is_closed(&self) -> bool {
        self.node.is_closed()
    }

    fn closed(&self) -> &CancellationToken {
        self.node.closed()
    }

    fn states(&self) -> &Arc<States> {
        self.node.states()
    }

    fn call_timeout(&self) -> Duration {
        self.node.call_timeout()
    }

    fn offer(&self, session: &Session, frame: Frame) -> Result<(), SendError> {
        self.offer_to(session, frame)
    }

    fn deliver(&self, session: SessionId, frame: Frame) -> Result<(), SendError> {
        if session.gate() == self.node.id() {
            self.deliver_local(session, frame)
        } else {
            self.node.deliver_remote(session, frame)
        }
    }

    fn push_to_uid<'a>(
        &'a self,
        uid: &'a str,
        frame: Frame,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            match self.sessions.by_uid(uid) {
                Some(s) => self.offer_to(&s, frame),
                None => self.node.push_to_uid_remote(uid, frame).await,
            }
        })
    }

    fn broadcast(&self, frame: Frame, users_only: bool) -> Result<(), SendError> {
        self.broadcast_local(&frame, users_only);
        let flags = if users_only { BROADCAST_USERS_ONLY } else { 0 };
        let id = self.node.id();
        self.node.to_every_gate(|| {
            let mut env = envelope(Kind::Broadcast, id, frame.msg_id, 0, frame.data.clone());
            env.flags = flags;
            env
        })
    }

    fn publish(&self, room: &str, frame: Frame) -> Result<(), SendError> {
        crate::rooms::check_room(room)?;
        self.publish_local(room, &frame);
        let room = Bytes::copy_from_slice(room.as_bytes());
        let id = self.node.id();
        self.node.to_every_gate(|| {
            let mut env = envelope(Kind::Room, id, frame.msg_id, 0, frame.data.clone());
            env.uid = room.clone();
            env
        })
    }

    fn room_op<'a>(
        &'a self,
        op: RoomOp,
        session: SessionId,
        room: &'a str,
    ) -> BoxFuture<'a, Result<bool, SendError>> {
        Box::pin(async move {
            if session.gate() == self.node.id() {
                self.room_op_local(op, session, room)
            } else {
                crate::rooms::check_room(room)?;
                self.node.room_op_remote(op, session, room).await
            }
        })
    }

    fn kick(&self, target: KickTarget) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            match target {
                KickTarget::Session(s) => self.kick_session(s).await,
                KickTarget::Uid(uid) => self.kick_uid(&uid).await,
            }
        })
    }

    fn bind<'a>(
        &'a self,
        session: SessionId,
        uid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionId>, SendError>> {
        Box::pin(self.bind_session(session, uid))
    }

    fn unbind(&self, session: SessionId) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(self.unbind_session(session))
    }

    fn call<'a>(
        &'a self,
        group: &'a str,
        frame: Frame,
        origin: Origin,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Bytes, CallError>> {
        Box::pin(async move {
            let me: Arc<dyn NodeApi> = self.me().ok_or(CallError::Stopped)?;
            self.node.call(me, group, frame, origin, timeout).await
        })
    }

    fn cast(&self, group: &str, frame: Frame, origin: Origin) -> Result<(), CallError> {
        let me = self.me().ok_or(CallError::Stopped)?;
        crate::node::cast(&me, group, frame, origin)
    }

    fn local_members(&self, room: &str) -> usize {
        self.rooms.members(room)
    }
}
