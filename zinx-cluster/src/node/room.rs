//! Rooms across gates: join and leave go to the session's gate (like
//! bind), a publish goes once to every gate (like broadcast) and each gate
//! writes it to the members it holds ([`crate::rooms`]).

use bytes::Bytes;

use super::{Node, envelope, text};
use crate::envelope::{Envelope, Kind, Status};
use crate::error::SendError;
use crate::frame::Frame;
use crate::rooms::MAX_ROOM_NAME;
use crate::session::SessionId;

/// Checks a room name: 1 to 255 bytes.
fn check_room(room: &str) -> Result<(), SendError> {
    if room.is_empty() || room.len() > MAX_ROOM_NAME {
        Err(SendError::InvalidRoom {
            room: room.chars().take(64).collect(),
        })
    } else {
        Ok(())
    }
}

impl Node {
    /// Adds a session, wherever it is, to `room`; false when it already
    /// was a member.
    pub(crate) async fn join_room(
        &self,
        session: SessionId,
        room: &str,
    ) -> Result<bool, SendError> {
        self.room_op(Kind::Join, session, room).await
    }

    /// Removes a session, wherever it is, from `room`; false when it was
    /// not a member.
    pub(crate) async fn leave_room(
        &self,
        session: SessionId,
        room: &str,
    ) -> Result<bool, SendError> {
        self.room_op(Kind::Leave, session, room).await
    }

    async fn room_op(&self, kind: Kind, session: SessionId, room: &str) -> Result<bool, SendError> {
        check_room(room)?;
        if session.gate() == self.id {
            return self.room_op_local(kind, session, room);
        }
        let mut env = envelope(kind, self.id, 0, session.0, Bytes::new());
        env.uid = Bytes::copy_from_slice(room.as_bytes());
        let answer = self.ask_gate_for_session(session, env).await?;
        Ok(answer.first() == Some(&1))
    }

    fn room_op_local(&self, kind: Kind, session: SessionId, room: &str) -> Result<bool, SendError> {
        if kind == Kind::Join {
            let s = self
                .sessions
                .get(session)
                .filter(|s| !s.is_closed())
                .ok_or(SendError::SessionGone { session })?;
            Ok(self.rooms.join(room, &s))
        } else {
            Ok(self.rooms.leave(room, session))
        }
    }

    /// A join or leave asked of this gate by a backend.
    pub(super) fn on_room_op(&self, from: u16, env: Envelope) {
        let session = SessionId(env.session);
        let room = text(&env.uid);
        let result = check_room(&room).and_then(|()| self.room_op_local(env.kind, session, &room));
        let (status, payload) = match result {
            Ok(changed) => (
                Status::Ok,
                Bytes::from_static(if changed { &[1] } else { &[0] }),
            ),
            Err(SendError::SessionGone { .. }) => (Status::NotFound, Bytes::new()),
            Err(e) => (
                Status::Failed,
                crate::handler::encode_failure(e.code(), &e.to_string()),
            ),
        };
        self.respond(from, env.request, status, payload);
    }

    /// Writes a frame to the members of `room` on this gate.
    pub(crate) fn publish_local(&self, room: &str, frame: &Frame) {
        let n = self.rooms.publish(room, frame);
        self.metrics.frames_out.add(n as u64);
    }

    /// Writes a frame to every member of `room` on every gate, exactly
    /// once each: one message per gate.
    pub(crate) fn publish(&self, room: &str, frame: Frame) -> Result<(), SendError> {
        check_room(room)?;
        self.publish_local(room, &frame);
        let room_wire = Bytes::copy_from_slice(room.as_bytes());
        let mut unreached = Vec::new();
        for &gate in &self.gates {
            let mut env = envelope(Kind::Room, self.id, frame.msg_id, 0, frame.data.clone());
            env.uid = room_wire.clone();
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

    /// A publish from another node: the members here.
    pub(super) fn on_room(&self, env: Envelope) {
        let room = text(&env.uid);
        self.publish_local(&room, &Frame::new(env.msg_id, env.payload));
    }
}
