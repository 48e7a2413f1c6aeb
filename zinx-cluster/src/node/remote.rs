//! Reaching other nodes: answering a request, making one, and doing for a
//! client session what only its gate can (deliver, bind, unbind, kick,
//! rooms) from anywhere else — over the link to the gate from a backend,
//! through the directory's bus from another gate.
//!
//! A session lives on its gate (the high bits of its id); a uid is found
//! in the directory. A gate does its own sessions in place
//! (`gate::ops`) and comes here for the rest.

use std::time::Duration;

use bytes::Bytes;
use tracing::{debug, warn};

use super::rpc::RequestError;
use super::{Node, envelope};
use crate::api::RoomOp;
use crate::envelope::{Envelope, Kind, Status};
use crate::error::SendError;
use crate::frame::Frame;
use crate::metrics::DirOp;
use crate::peer::LinkError;
use crate::session::SessionId;

/// The [`SendError`] of a link that refused an envelope.
pub(crate) fn link_send_error(node: u16, e: LinkError) -> SendError {
    match e {
        LinkError::Down => SendError::Unreachable { node },
        LinkError::Full => SendError::Congested { node },
    }
}

impl Node {
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

    /// Answers a gate operation asked by node `from` with its result: `Ok`
    /// with its payload, `NotFound` for a session or uid that is not there,
    /// `Failed` with the error's code otherwise.
    pub(crate) fn respond_result(&self, from: u16, request: u32, result: Result<Bytes, SendError>) {
        let (status, payload) = match result {
            Ok(p) => (Status::Ok, p),
            Err(SendError::NotOnline { .. } | SendError::SessionGone { .. }) => {
                (Status::NotFound, Bytes::new())
            }
            Err(e) => (
                Status::Failed,
                crate::handler::encode_failure(&e.code(), &e.to_string()),
            ),
        };
        self.respond(from, request, status, payload);
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

    /// Sends an envelope that needs no answer to gate `gate`: over its link
    /// when there is one, else on the directory's bus (queued like on a
    /// link: bounded, and failing at once when the gate is known
    /// unreachable).
    pub(crate) fn to_gate(&self, gate: u16, env: Envelope) -> Result<(), SendError> {
        if let Some(peer) = self.links.get(gate) {
            return peer.send(env).map_err(|e| link_send_error(gate, e));
        }
        if !self.gates.contains(&gate) {
            return Err(SendError::Unreachable { node: gate });
        }
        self.directory.send(gate, env)
    }

    /// A frame to a session of another gate.
    pub(crate) fn deliver_remote(&self, session: SessionId, frame: Frame) -> Result<(), SendError> {
        let env = envelope(
            Kind::ToSession,
            self.id,
            frame.msg_id,
            session.0,
            frame.data,
        );
        self.to_gate(session.gate(), env)
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
    async fn ask_gate_for_session(
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

    /// Binds a session of another gate to a uid; the session kicked, if any.
    pub(crate) async fn bind_remote(
        &self,
        session: SessionId,
        uid: &str,
    ) -> Result<Option<SessionId>, SendError> {
        let mut env = envelope(Kind::Bind, self.id, 0, session.0, Bytes::new());
        env.uid = Bytes::copy_from_slice(uid.as_bytes());
        let answer = self.ask_gate_for_session(session, env).await?;
        Ok(<[u8; 8]>::try_from(&answer[..])
            .ok()
            .map(|b| SessionId(u64::from_be_bytes(b))))
    }

    /// Removes the uid binding of a session of another gate.
    pub(crate) async fn unbind_remote(&self, session: SessionId) -> Result<(), SendError> {
        let env = envelope(Kind::Unbind, self.id, 0, session.0, Bytes::new());
        self.ask_gate_for_session(session, env).await.map(|_| ())
    }

    /// Joins or leaves a room for a session of another gate.
    pub(crate) async fn room_op_remote(
        &self,
        op: RoomOp,
        session: SessionId,
        room: &str,
    ) -> Result<bool, SendError> {
        let kind = match op {
            RoomOp::Join => Kind::Join,
            RoomOp::Leave => Kind::Leave,
        };
        let mut env = envelope(kind, self.id, 0, session.0, Bytes::new());
        env.uid = Bytes::copy_from_slice(room.as_bytes());
        let answer = self.ask_gate_for_session(session, env).await?;
        Ok(answer.first() == Some(&1))
    }

    /// Closes a session of another gate.
    pub(crate) async fn kick_remote(&self, session: SessionId) -> Result<(), SendError> {
        let gate = session.gate();
        let env = envelope(Kind::Kick, self.id, 0, session.0, Bytes::new());
        if self.links.get(gate).is_some_and(|p| p.is_up()) {
            return self.ask_gate_for_session(session, env).await.map(|_| ());
        }
        let r = self.publish_to_gate(gate, env).await;
        self.count_directory(DirOp::Publish, &r);
        r
    }

    /// Closes the session bound to `uid` on the gate the directory names.
    pub(crate) async fn kick_uid_remote(&self, uid: &str) -> Result<(), SendError> {
        let gate = self.locate(uid).await?;
        let mut env = envelope(Kind::Kick, self.id, 0, 0, Bytes::new());
        env.uid = Bytes::copy_from_slice(uid.as_bytes());
        self.send_to_gate_for_uid(gate, uid, env).await
    }

    /// Pushes a frame to the session bound to `uid` on the gate the
    /// directory names.
    pub(crate) async fn push_to_uid_remote(
        &self,
        uid: &str,
        frame: Frame,
    ) -> Result<(), SendError> {
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

    /// Sends `make()` to every other gate (a broadcast, a room's publish):
    /// one envelope per gate; the gates it did not reach in the error.
    pub(crate) fn to_every_gate(&self, make: impl Fn() -> Envelope) -> Result<(), SendError> {
        let mut unreached = Vec::new();
        for &gate in &self.gates {
            if self.to_gate(gate, make()).is_err() {
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
