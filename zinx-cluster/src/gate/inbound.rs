//! What a gate does with each kind of envelope it receives, over a link
//! from a backend or through the directory's bus from another gate: one
//! small function per kind. Also what a lost link means for the messages
//! forwarded on it, and the session-closed notices sent to the backends a
//! session used.

use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, warn};

use super::Gate;
use crate::api::RoomOp;
use crate::envelope::{Envelope, Kind};
use crate::error::{ErrorCode, SendError};
use crate::frame::Frame;
use crate::node::{BROADCAST_USERS_ONLY, Role, TO_SESSION_FINAL, text};
use crate::peer::{LinkEvents, Peer};
use crate::session::{Session, SessionId};

impl Gate {
    /// Handles one envelope from node `from`. Never blocks: work that
    /// waits is spawned.
    pub(super) fn dispatch(self: &Arc<Self>, from: u16, env: Envelope) {
        match env.kind {
            Kind::Heartbeat => self.node.on_heartbeat(from, &env),
            Kind::Response => self.node.on_response(env),
            Kind::Call | Kind::Cast => crate::node::on_call(self, from, env),
            Kind::ToSession => self.on_to_session(from, env),
            Kind::Done => self.on_done(from, &env),
            Kind::ToUid => self.on_to_uid(from, env),
            Kind::Broadcast => self.broadcast_local(
                &Frame::new(env.msg_id, env.payload),
                env.flags & BROADCAST_USERS_ONLY != 0,
            ),
            Kind::Bind | Kind::Unbind | Kind::Kick => self.on_session_op(from, env),
            Kind::Room => self.publish_local(&text(&env.uid), &Frame::new(env.msg_id, env.payload)),
            Kind::Join | Kind::Leave => self.on_room_op(from, env),
            Kind::Handover => super::handover::give(self, from, env),
            Kind::HandoverDone => super::handover::taken(self, env),
            kind => warn!(from, ?kind, "envelope a gate does not take: ignored"),
        }
    }

    /// A frame for a session of this gate; a final one completes a
    /// forwarded message.
    fn on_to_session(&self, from: u16, env: Envelope) {
        let id = SessionId(env.session);
        // One lookup for both the completion and the delivery.
        let session = self.sessions.get(id);
        if session.as_ref().is_none_or(|s| s.is_closed()) && self.relay(&env) {
            return;
        }
        let frame = Frame::new(env.msg_id, env.payload);
        if env.flags & TO_SESSION_FINAL != 0 {
            return self.forward_finished(from, id, session.as_deref(), env.request, Some(frame));
        }
        let delivered = match &session {
            Some(s) => self.offer_to(s, frame),
            None => {
                self.node.metrics().to_gone_session.add(1);
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
        if session.as_ref().is_none_or(|s| s.is_closed()) && self.relay(env) {
            return;
        }
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
                    self.node.metrics().late_answers.add(1);
                    debug!(session = %id, node = from, number, "answer after node_lost dropped");
                    return;
                };
                if let Some((group, sent)) = done.timed {
                    self.node.labelled().forward_answered(group, sent.elapsed());
                }
                if let Some(offer) = done.offer {
                    if let Err(e) = self.note_offer(s, offer) {
                        debug!(session = %id, error = %e, "answer to a closed session dropped");
                    }
                }
            }
            None if answer.is_some() => {
                self.node.metrics().to_gone_session.add(1);
                debug!(session = %id, "answer to a closed session dropped");
            }
            None => {}
        }
        self.node.work_finished();
    }

    /// A push to a uid that the directory says is here.
    fn on_to_uid(&self, from: u16, env: Envelope) {
        let uid = text(&env.uid);
        let result = match self.sessions.by_uid(&uid) {
            Some(s) => self
                .offer_to(&s, Frame::new(env.msg_id, env.payload))
                .map(|()| Bytes::new()),
            // Its session moved to another gate lately: relayed there.
            None => match self.handovers.moved_uid(&uid) {
                Some((gate, to)) => self
                    .node
                    .deliver_remote(to, Frame::new(env.msg_id, env.payload))
                    .map(|()| Bytes::new())
                    .map_err(|_| SendError::NotOnline { uid: uid.clone() })
                    .inspect(|_| debug!(%uid, gate, "push relayed to where the session moved")),
                None => Err(SendError::NotOnline { uid }),
            },
        };
        self.node.respond_result(from, env.request, result);
    }

    /// Sends an envelope for a session that moved to another gate (a
    /// resume there) on to it; false when the session did not move.
    pub(super) fn relay(&self, env: &Envelope) -> bool {
        let Some((gate, to)) = self.handovers.moved(SessionId(env.session)) else {
            return false;
        };
        let mut env = env.clone();
        env.session = to.0;
        if let Err(e) = self.node.to_gate(gate, env) {
            debug!(session = %to, gate, error = %e, "relay to a moved session failed");
        }
        true
    }

    /// Bind, unbind or kick asked of this gate by another node.
    fn on_session_op(self: &Arc<Self>, from: u16, env: Envelope) {
        let gate = self.clone();
        tokio::spawn(async move {
            let session = SessionId(env.session);
            let result = match env.kind {
                Kind::Bind => gate
                    .bind_session(session, &text(&env.uid))
                    .await
                    .map(|kicked| {
                        kicked
                            .map(|k| Bytes::copy_from_slice(&k.0.to_be_bytes()))
                            .unwrap_or_default()
                    }),
                Kind::Unbind => gate.unbind_session(session).await.map(|_| Bytes::new()),
                _ => {
                    let target = if env.uid.is_empty() {
                        gate.sessions.get(session)
                    } else {
                        gate.sessions.by_uid(&text(&env.uid))
                    };
                    match target {
                        Some(s) => gate.kick_local(s.id).map(|_| Bytes::new()),
                        None => Err(SendError::NotOnline {
                            uid: text(&env.uid),
                        }),
                    }
                }
            };
            gate.node.respond_result(from, env.request, result);
        });
    }

    /// A join or leave asked of this gate by another node.
    fn on_room_op(&self, from: u16, env: Envelope) {
        let op = if env.kind == Kind::Join {
            RoomOp::Join
        } else {
            RoomOp::Leave
        };
        let result = self
            .room_op_local(op, SessionId(env.session), &text(&env.uid))
            .map(|changed| Bytes::from_static(if changed { &[1] } else { &[0] }));
        self.node.respond_result(from, env.request, result);
    }

    /// Tells every backend that served `session` that it closed (they run
    /// their hooks and forget its queue), remembering each notice for a
    /// link that comes back.
    pub(super) fn announce_close(&self, session: &Session) {
        let uid = session.uid_wire();
        for served in session.served() {
            let mut env = Envelope::new(Kind::SessionClosed);
            env.node = self.node.id();
            env.session = session.id.0;
            env.uid = uid.clone();
            self.closes.announce(self.node.links(), served, env);
        }
    }

    /// Answers `node_lost` to every message forwarded to `peer` that it
    /// had not finished when its link died: each client learns, at once,
    /// that its request will get no other answer. A walk over this gate's
    /// sessions, once per lost link.
    fn fail_forwards(&self, peer: &Peer) {
        let why = format!("node {} was lost before it answered", peer.name);
        let mut lost = 0u64;
        let metrics = self.node.metrics();
        for s in self.sessions.all() {
            let (n, queued) = s.fail_forwards_to(peer.id, |msg_id| {
                self.node.error_frame(msg_id, &ErrorCode::NodeLost, &why)
            });
            lost += n;
            metrics.frames_out.add(queued);
        }
        if lost > 0 {
            metrics.node_lost.add(lost);
            warn!(peer = %peer.name, lost, "forwarded messages lost with the link: answered node_lost");
        }
    }
}

impl Role for Gate {
    fn node(&self) -> &crate::node::Node {
        &self.node
    }
}

impl LinkEvents for Gate {
    fn on_envelope(self: &Arc<Self>, from: u16, env: Envelope) {
        self.dispatch(from, env);
    }

    fn on_envelopes(self: &Arc<Self>, from: u16, batch: &mut Vec<Envelope>) {
        // Answers for clients are written at the end of the batch, by this
        // task, one write per session, instead of waking each session's
        // task per answer.
        let _deferred = crate::session::DeferWakes::begin();
        for env in batch.drain(..) {
            self.dispatch(from, env);
        }
    }

    fn on_link_down(self: &Arc<Self>, peer: &Peer) {
        self.node.peer_lost(peer);
        self.fail_forwards(peer);
        // Forwards on the link are gone with it (`Peer` reset them).
        self.node.work_finished();
    }
}

impl crate::admin::AdminSource for Gate {
    fn render_metrics(&self, out: &mut String) {
        self.node.render_metrics(out);
    }

    fn readiness(&self) -> Result<(), String> {
        self.node.readiness()
    }
}
