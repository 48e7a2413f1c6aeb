//! What a node does with each kind of envelope it receives, over a link or
//! (on a gate) through the directory's bus: one small function per kind.

use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::ctx::Mode;
use super::executor::Job;
use super::{BROADCAST_USERS_ONLY, Node, TO_SESSION_FINAL, text, uid_of};
use crate::envelope::{Envelope, HEARTBEAT_STOPPING, HEARTBEAT_STOPPING_ACK, Kind, Status};
use crate::error::SendError;
use crate::frame::Frame;
use crate::metrics::Outcome;
use crate::peer::Peer;
use crate::session::{Session, SessionId};

impl Node {
    /// Handles one envelope from node `from`. Never blocks: work is spawned.
    pub(crate) fn dispatch(self: &Arc<Self>, from: u16, env: Envelope) {
        let node = self;
        match env.kind {
            Kind::Heartbeat => node.on_heartbeat(from, &env),
            Kind::Forward => node.on_forward(env),
            Kind::Response => {
                node.rpc
                    .resolve(env.request, Status::from_u8(env.flags), env.payload)
            }
            Kind::Call | Kind::Cast => node.on_call(from, env),
            Kind::SessionClosed => node.on_session_closed(env),
            Kind::ToSession => node.on_to_session(from, env),
            Kind::Done => node.on_done(from, &env),
            Kind::ToUid => node.on_to_uid(from, env),
            Kind::Broadcast => node.broadcast_local(
                &Frame::new(env.msg_id, env.payload),
                env.flags & BROADCAST_USERS_ONLY != 0,
            ),
            Kind::Bind | Kind::Unbind | Kind::Kick => node.on_session_op(from, env),
            Kind::Room => node.on_room(env),
            Kind::Join | Kind::Leave => node.on_room_op(from, env),
            kind @ (Kind::Challenge | Kind::Hello | Kind::HelloAck) => {
                warn!(from, ?kind, "unexpected envelope ignored")
            }
        }
    }

    fn on_heartbeat(&self, from: u16, env: &Envelope) {
        let Some(peer) = self.links.get(from) else {
            return;
        };
        if env.flags & HEARTBEAT_STOPPING != 0 {
            info!(peer = %peer.name, "peer is shutting down: no new work goes to it");
            peer.mark_stopping();
            // From here on nothing new is chosen for it: say so, behind
            // everything already sent on the link.
            let mut ack = Envelope::new(Kind::Heartbeat);
            ack.node = self.id;
            ack.flags = HEARTBEAT_STOPPING_ACK;
            if let Err(e) = peer.send(ack) {
                debug!(peer = %peer.name, ?e, "shutdown notice not acknowledged");
            }
        }
        if env.flags & HEARTBEAT_STOPPING_ACK != 0 {
            peer.mark_stop_acked();
            self.work_finished();
        }
    }

    /// A client message forwarded by a gate: queued behind the session's
    /// earlier ones, or refused with a final error answer.
    fn on_forward(self: &Arc<Self>, env: Envelope) {
        let session = SessionId(env.session);
        let msg_id = env.msg_id;
        let forward = env.request;
        let refuse = |code: &str, why: String| {
            warn!(%session, msg_id, "{why}");
            self.labelled.message(msg_id, Outcome::of_code(code));
            let frame = self.error_frame(msg_id, code, &why);
            if frame.is_some() {
                self.metrics.error_answers.add(1);
            }
            self.finish_forwarded(session, msg_id, forward, frame);
        };
        if self.stopping.is_cancelled() {
            return refuse(
                "node_stopping",
                format!("node {} is shutting down", self.name),
            );
        }
        // A gate never forwards an internal msg_id; refused the same way
        // here all the same, should one come from a gate of another build.
        let Some(route) = self.handlers.get(msg_id).filter(|r| !r.internal) else {
            self.metrics.unknown_msg_id.add(1);
            return refuse(
                "unknown_msg_id",
                format!("node {} has no handler for msg_id {msg_id}", self.name),
            );
        };
        let mut job = Job::new(route, env.payload);
        job.forward = forward;
        job.trace = env.trace;
        if self.enqueue(session, &env.uid, job).is_err() {
            refuse(
                "overloaded",
                format!(
                    "more than {} messages of this session are waiting on node {}",
                    self.settings.node_session_queue, self.name
                ),
            );
        }
    }

    fn on_call(self: &Arc<Self>, from: u16, env: Envelope) {
        let respond = env.kind == Kind::Call;
        let Some(route) = self.handlers.get(env.msg_id) else {
            warn!(
                from,
                msg_id = env.msg_id,
                "call for a msg_id with no handler here"
            );
            if respond {
                let why = format!(
                    "node {} has no handler for msg_id {}",
                    self.name, env.msg_id
                );
                self.respond(
                    from,
                    env.request,
                    Status::Failed,
                    crate::handler::encode_failure("unknown_msg_id", &why),
                );
            }
            return;
        };
        let mode = if respond {
            Mode::Call { from }
        } else {
            Mode::Cast { from }
        };
        let session = (env.session != 0).then_some(SessionId(env.session));
        let node = self.clone();
        self.exec.spawn(async move {
            let (status, payload) = node
                .invoke(route, mode, session, uid_of(&env.uid), env.payload)
                .await;
            if respond {
                node.respond(from, env.request, status, payload);
            }
        });
    }

    fn on_session_closed(&self, env: Envelope) {
        let session = SessionId(env.session);
        if self.exec.close_session(session).is_some() {
            self.run_hooks(session, uid_of(&env.uid));
        }
    }

    /// A frame for a session of this gate; a final one completes a
    /// forwarded message.
    fn on_to_session(&self, from: u16, env: Envelope) {
        let id = SessionId(env.session);
        // One lookup for both the completion and the delivery.
        let session = self.sessions.get(id);
        let frame = Frame::new(env.msg_id, env.payload);
        if env.flags & TO_SESSION_FINAL != 0 {
            return self.forward_finished(from, id, session.as_deref(), env.request, Some(frame));
        }
        let delivered = match &session {
            Some(s) => self.offer_to(s, frame),
            None => {
                self.metrics.to_gone_session.add(1);
                Err(SendError::SessionGone { session: id })
            }
        };
        if let Err(e) = delivered {
            debug!(session = %id, error = %e, "push to a closed session dropped");
        }
    }

    /// A [`Kind::Done`]: a forwarded message finished without an answer.
    fn on_done(&self, from: u16, env: &Envelope) {
        let id = SessionId(env.session);
        let session = self.sessions.get(id);
        self.forward_finished(from, id, session.as_deref(), env.request, None);
    }

    /// Forwarded message `number` of session `id` (`session`, if still
    /// open) finished on node `from`, with its final `answer` if it has
    /// one. The answer is dropped when its client was told already that
    /// the message was lost (the node's link died before, and this answer
    /// took a new link): the client gets one outcome per request.
    fn forward_finished(
        &self,
        from: u16,
        id: SessionId,
        session: Option<&Session>,
        number: u32,
        answer: Option<Frame>,
    ) {
        match session {
            Some(s) => {
                let Some(done) = s.finish_forward(from, number, answer) else {
                    self.metrics.late_answers.add(1);
                    debug!(session = %id, node = from, number, "answer after node_lost dropped");
                    return;
                };
                if let Some((group, sent)) = done.timed {
                    self.labelled.forward_answered(group, sent.elapsed());
                }
                if let Some(offer) = done.offer {
                    if let Err(e) = self.note_offer(s, offer) {
                        debug!(session = %id, error = %e, "answer to a closed session dropped");
                    }
                }
            }
            None if answer.is_some() => {
                self.metrics.to_gone_session.add(1);
                debug!(session = %id, "answer to a closed session dropped");
            }
            None => {}
        }
        self.work_finished();
    }

    fn on_to_uid(&self, from: u16, env: Envelope) {
        let uid = text(&env.uid);
        let status = match self.sessions.by_uid(&uid) {
            Some(s) => match self.deliver_local(s.id, Frame::new(env.msg_id, env.payload)) {
                Ok(()) => Status::Ok,
                Err(_) => Status::NotFound,
            },
            None => Status::NotFound,
        };
        self.respond(from, env.request, status, Bytes::new());
    }

    /// Bind, unbind or kick asked of this gate by a backend.
    fn on_session_op(self: &Arc<Self>, from: u16, env: Envelope) {
        let node = self.clone();
        tokio::spawn(async move {
            let session = SessionId(env.session);
            let result = match env.kind {
                Kind::Bind => node
                    .bind_session(session, &text(&env.uid))
                    .await
                    .map(|kicked| {
                        kicked
                            .map(|k| Bytes::copy_from_slice(&k.0.to_be_bytes()))
                            .unwrap_or_default()
                    }),
                Kind::Unbind => node.unbind_session(session).await.map(|_| Bytes::new()),
                _ => {
                    let target = if env.uid.is_empty() {
                        node.sessions.get(session)
                    } else {
                        node.sessions.by_uid(&text(&env.uid))
                    };
                    match target {
                        Some(s) => node.kick_local(s.id).map(|_| Bytes::new()),
                        None => Err(SendError::NotOnline {
                            uid: text(&env.uid),
                        }),
                    }
                }
            };
            let (status, payload) = match result {
                Ok(p) => (Status::Ok, p),
                Err(SendError::NotOnline { .. } | SendError::SessionGone { .. }) => {
                    (Status::NotFound, Bytes::new())
                }
                Err(e) => (
                    Status::Failed,
                    crate::handler::encode_failure(e.code(), &e.to_string()),
                ),
            };
            node.respond(from, env.request, status, payload);
        });
    }

    /// A link went down: fail what waits on it (calls, and on a gate the
    /// forwarded messages it had not finished); a backend forgets the
    /// sessions of a gate it lost, once the gate is really gone
    /// (`gate_loss`).
    pub(crate) fn link_down(self: &Arc<Self>, peer: &Peer) {
        self.rpc.fail_peer(peer.id);
        self.fail_forwards(peer);
        self.gate_link_lost(peer);
        // Forwards on the link are gone with it (`Peer` reset them).
        self.work_finished();
    }

    /// Answers `node_lost` to every message forwarded to `peer` that it
    /// had not finished when its link died: each client learns, at once,
    /// that its request will get no other answer. A walk over this gate's
    /// sessions, once per lost link (a backend has none).
    fn fail_forwards(&self, peer: &Peer) {
        if self.sessions.is_empty() {
            return;
        }
        let why = format!("node {} was lost before it answered", peer.name);
        let mut lost = 0u64;
        for s in self.sessions.all() {
            let (n, queued) = s.fail_forwards_to(peer.id, |msg_id| {
                let frame = self.error_frame(msg_id, "node_lost", &why);
                if frame.is_some() {
                    self.metrics.error_answers.add(1);
                }
                frame
            });
            lost += n;
            self.metrics.frames_out.add(queued);
        }
        if lost > 0 {
            self.metrics.node_lost.add(lost);
            warn!(peer = %peer.name, lost, "forwarded messages lost with the link: answered node_lost");
        }
    }
}
