//! Getting frames to clients, wherever they are, and the session
//! operations behind `Ctx`: bind, unbind, kick.
//!
//! A session lives on its gate (the high bits of its id). From that gate a
//! frame goes straight into the session's queue; from a backend it goes
//! over the link to the gate; from another gate it goes through the
//! directory's bus. A uid is found in the gate's own table first, then in
//! the directory.

use crate::metrics::DirOp;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracing::{debug, warn};

use super::rpc::RequestError;
use super::{BROADCAST_USERS_ONLY, Node, check_uid, envelope};
use crate::envelope::{Envelope, Kind, Status};
use crate::error::SendError;
use crate::frame::Frame;
use crate::peer::LinkError;
use crate::session::{CloseReason, Offer, Session, SessionId};

pub(crate) fn link_send_error(node: u16, e: LinkError) -> SendError {
    match e {
        LinkError::Down => SendError::Unreachable { node },
        LinkError::Full => SendError::Congested { node },
    }
}

impl Node {
    /// Tells a session its message failed (if the policy says so).
    pub(crate) fn answer_error(&self, session: SessionId, msg_id: u32, code: &str, error: &str) {
        if let Some(frame) = self.error_frame(msg_id, code, error) {
            self.metrics.error_answers.add(1);
            if let Err(e) = self.deliver(session, frame) {
                debug!(%session, error = %e, "error answer not delivered");
            }
        }
    }

    /// Delivers a frame to a session wherever it is: in place on its own
    /// gate, over the link to its gate from a backend, or through the
    /// directory from another gate.
    pub(crate) fn deliver(&self, session: SessionId, frame: Frame) -> Result<(), SendError> {
        let gate = session.gate();
        if gate == self.id {
            return self.deliver_local(session, frame);
        }
        let env = envelope(
            Kind::ToSession,
            self.id,
            frame.msg_id,
            session.0,
            frame.data,
        );
        self.to_gate(gate, env)
    }

    /// Sends an envelope that needs no answer to gate `gate`: over its link
    /// when there is one, else on the directory's bus (queued like on a
    /// link: bounded, and failing at once when the gate is known
    /// unreachable).
    pub(super) fn to_gate(&self, gate: u16, env: Envelope) -> Result<(), SendError> {
        if let Some(peer) = self.links.get(gate) {
            return peer.send(env).map_err(|e| link_send_error(gate, e));
        }
        if !self.gates.contains(&gate) {
            return Err(SendError::Unreachable { node: gate });
        }
        self.directory.send(gate, env)
    }

    /// Queues a frame on a session of this gate.
    pub(crate) fn deliver_local(&self, session: SessionId, frame: Frame) -> Result<(), SendError> {
        let s = self.sessions.get(session).ok_or_else(|| {
            self.metrics.to_gone_session.add(1);
            SendError::SessionGone { session }
        })?;
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
                self.metrics.frames_out.add(1);
                Ok(())
            }
            Offer::Full => {
                // Counted once, when the session ends (`gate`).
                warn!(%session, "client does not read: outbound queue full, closing");
                Err(SendError::SessionGone { session })
            }
            Offer::Closed => Err(SendError::SessionGone { session }),
        }
    }

    /// Answers request `request` of node `to` (0: nobody waits).
    pub(crate) fn respond(&self, to: u16, request: u32, status: Status, payload: Bytes) {
        if request == 0 {
            return;
        }
        let mut env = envelope(Kind::Response, self.id, 0, 0, payload);
        env.request = request;
        env.flags = status as u8;
        match self.links.get(to) {
            Some(peer) => {
                if let Err(e) = peer.send(env) {
                    warn!(to, request, ?e, "answer not sent");
                }
            }
            None => debug!(to, request, "answer to a node without a link dropped"),
        }
    }

    /// Sends `env` to node `to` and waits for its answer.
    pub(crate) async fn request(
        &self,
        to: u16,
        env: Envelope,
        timeout: Duration,
    ) -> Result<(Status, Bytes), RequestError> {
        let peer = self
            .links
            .get(to)
            .ok_or(RequestError::Link(LinkError::Down))?;
        self.rpc
            .request(to, env, timeout, |env| peer.send(env))
            .await
    }

    fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.call_timeout_ms)
    }

    /// Asks gate `gate` to do something for a session and maps the answer.
    async fn ask_gate(&self, gate: u16, env: Envelope) -> Result<Bytes, SendError> {
        match self.request(gate, env, self.call_timeout()).await {
            Ok((Status::Ok | Status::NoReply, p)) => Ok(p),
            Ok((Status::NotFound, _)) => Err(SendError::NotOnline { uid: String::new() }),
            Ok((Status::Failed, p)) => {
                let (code, message) = crate::handler::decode_failure(&p);
                Err(SendError::Remote {
                    node: gate,
                    code,
                    message,
                })
            }
            Err(RequestError::Link(e)) => Err(link_send_error(gate, e)),
            Err(RequestError::Lost | RequestError::Timeout) => {
                Err(SendError::Unreachable { node: gate })
            }
        }
    }

    /// [`Node::ask_gate`] about a session: "not found" means it is gone.
    pub(super) async fn ask_gate_for_session(
        &self,
        session: SessionId,
        env: Envelope,
    ) -> Result<Bytes, SendError> {
        self.ask_gate(session.gate(), env)
            .await
            .map_err(|e| match e {
                SendError::NotOnline { .. } => SendError::SessionGone { session },
                e => e,
            })
    }

    // ---------------------------------------------------------------
    // Session operations (Ctx calls these)
    // ---------------------------------------------------------------

    /// Binds a session to a uid, kicking whoever held the uid before.
    pub(crate) async fn bind_session(
        self: &Arc<Self>,
        session: SessionId,
        uid: &str,
    ) -> Result<Option<SessionId>, SendError> {
        check_uid(uid)?;
        if session.gate() != self.id {
            let mut env = envelope(Kind::Bind, self.id, 0, session.0, Bytes::new());
            env.uid = Bytes::copy_from_slice(uid.as_bytes());
            let answer = self.ask_gate_for_session(session, env).await?;
            let kicked = <[u8; 8]>::try_from(&answer[..])
                .ok()
                .map(|b| SessionId(u64::from_be_bytes(b)));
            return Ok(kicked);
        }
        let sessions = &self.sessions;
        let s = sessions
            .get(session)
            .ok_or(SendError::SessionGone { session })?;
        let uid: Arc<str> = Arc::from(uid);
        if let Some(old) = s.uid() {
            if old == uid {
                return Ok(None);
            }
            sessions.unbind_local(&old, session);
            let r = self.directory.unbind(&old, session).await;
            self.count_directory(DirOp::Unbind, &r);
            if let Err(e) = r {
                warn!(%session, uid = %old, error = %e, "directory unbind failed");
            }
        }
        s.set_uid(Some(uid.clone()));
        let prev_local = sessions.bind_local(uid.clone(), session);
        let bound = self.directory.bind(&uid, session).await;
        self.count_directory(DirOp::Bind, &bound);
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
        if session.gate() != self.id {
            let env = envelope(Kind::Unbind, self.id, 0, session.0, Bytes::new());
            return self.ask_gate_for_session(session, env).await.map(|_| ());
        }
        let s = self
            .sessions
            .get(session)
            .ok_or(SendError::SessionGone { session })?;
        if let Some(old) = s.set_uid(None) {
            self.sessions.unbind_local(&old, session);
            // Locally the session is unbound, which is what its user asked;
            // a directory entry left behind expires with its TTL.
            let r = self.directory.unbind(&old, session).await;
            self.count_directory(DirOp::Unbind, &r);
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
        self.metrics.kicks.add(1);
        s.close_with(CloseReason::Kicked);
        Ok(())
    }

    /// Closes a session wherever it is.
    pub(crate) async fn kick_session(&self, session: SessionId) -> Result<(), SendError> {
        let gate = session.gate();
        if gate == self.id {
            return self.kick_local(session);
        }
        let env = envelope(Kind::Kick, self.id, 0, session.0, Bytes::new());
        if self.links.get(gate).is_some_and(|p| p.is_up()) {
            return self.ask_gate_for_session(session, env).await.map(|_| ());
        }
        let r = self.publish_to_gate(gate, env).await;
        self.count_directory(DirOp::Publish, &r);
        r
    }

    /// Closes the session bound to `uid`, wherever it is.
    pub(crate) async fn kick_uid(&self, uid: &str) -> Result<(), SendError> {
        if let Some(s) = self.sessions.by_uid(uid) {
            return self.kick_local(s.id);
        }
        let gate = self.locate(uid).await?;
        let mut env = envelope(Kind::Kick, self.id, 0, 0, Bytes::new());
        env.uid = Bytes::copy_from_slice(uid.as_bytes());
        self.send_to_gate_for_uid(gate, uid, env).await
    }

    /// Pushes a frame to the session bound to `uid`, wherever it is.
    pub(crate) async fn push_to_uid(&self, uid: &str, frame: Frame) -> Result<(), SendError> {
        if let Some(s) = self.sessions.by_uid(uid) {
            return self.deliver_local(s.id, frame);
        }
        let gate = self.locate(uid).await?;
        let mut env = envelope(Kind::ToUid, self.id, frame.msg_id, 0, frame.data);
        env.uid = Bytes::copy_from_slice(uid.as_bytes());
        self.send_to_gate_for_uid(gate, uid, env).await
    }

    /// The gate holding `uid`.
    async fn locate(&self, uid: &str) -> Result<u16, SendError> {
        let r = self.directory.locate(uid).await;
        self.count_directory(DirOp::Lookup, &r);
        r?.ok_or_else(|| SendError::NotOnline {
            uid: uid.to_string(),
        })
    }

    async fn send_to_gate_for_uid(
        &self,
        gate: u16,
        uid: &str,
        env: Envelope,
    ) -> Result<(), SendError> {
        if gate == self.id {
            // This gate is the one the directory names, and it has no such uid.
            return Err(SendError::NotOnline {
                uid: uid.to_string(),
            });
        }
        // Over the link when it is up; else through the bus, which reaches
        // the gate while only the link is down.
        if self.links.get(gate).is_some_and(|p| p.is_up()) {
            return self
                .ask_gate(gate, env)
                .await
                .map(|_| ())
                .map_err(|e| match e {
                    SendError::NotOnline { .. } => SendError::NotOnline {
                        uid: uid.to_string(),
                    },
                    e => e,
                });
        }
        let r = self.publish_to_gate(gate, env).await;
        self.count_directory(DirOp::Publish, &r);
        r
    }

    /// Sends an envelope to another gate through the directory's bus and
    /// waits until it is published. Only to gates of the configuration: a
    /// session id or a directory entry naming another node gets no queue.
    async fn publish_to_gate(&self, gate: u16, env: Envelope) -> Result<(), SendError> {
        if !self.gates.contains(&gate) {
            return Err(SendError::Unreachable { node: gate });
        }
        self.directory.publish(gate, env).await
    }

    /// Counts a directory operation of a shared (Redis) directory; the
    /// in-memory one does nothing that could fail.
    pub(crate) fn count_directory<T, E>(&self, op: DirOp, r: &Result<T, E>) {
        if self.directory.redis().is_some() {
            self.labelled.directory(op, r.is_ok());
        }
    }

    /// Writes a frame to every session of this gate (with `users_only`,
    /// to every session bound to a uid).
    pub(crate) fn broadcast_local(&self, frame: &Frame, users_only: bool) {
        let n = self.sessions.offer_all(frame, users_only);
        self.metrics.broadcasts.add(1);
        self.metrics.frames_out.add(n as u64);
    }

    /// Writes a frame to every session of every gate (with `users_only`,
    /// every session bound to a uid): one message per gate.
    pub(crate) fn broadcast(&self, frame: Frame, users_only: bool) -> Result<(), SendError> {
        let flags = if users_only { BROADCAST_USERS_ONLY } else { 0 };
        // A backend's table is empty: nothing is written, nothing counted.
        if !self.sessions.is_empty() {
            self.broadcast_local(&frame, users_only);
        }
        let mut unreached = Vec::new();
        for &gate in &self.gates {
            let mut env = envelope(
                Kind::Broadcast,
                self.id,
                frame.msg_id,
                0,
                frame.data.clone(),
            );
            env.flags = flags;
            if self.to_gate(gate, env).is_err() {
                unreached.push(gate);
            }
        }
        if unreached.is_empty() {
            Ok(())
        } else {
            unreached.sort_unstable();
            Err(SendError::Partial { gates: unreached })
        }
    }
}
