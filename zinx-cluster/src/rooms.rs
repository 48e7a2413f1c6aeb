//! Rooms on one gate: which of its sessions are members of which room.
//!
//! A room is a name. Its membership is spread over the gates: each gate
//! knows only its own sessions, so a publish is one message per gate and
//! each gate writes to the members it holds — O(members here), never a
//! walk over all its sessions. Join and leave are O(1): a hash insert or
//! removal in the room's member map and in the session's room set.
//!
//! A session leaves every room when it closes (`gate::conn` calls
//! [`Rooms::leave_all`] after it removed the session). A join that races
//! with the close sees the session closed and undoes itself, so no closed
//! session stays a member.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use dashmap::DashMap;

use crate::frame::Frame;
use crate::session::{Offer, Session, SessionId};

/// The longest room name, in bytes (it travels where envelopes carry a uid).
pub(crate) const MAX_ROOM_NAME: usize = 255;

/// Checks a room name: 1 to [`MAX_ROOM_NAME`] bytes.
pub(crate) fn check_room(room: &str) -> Result<(), crate::error::SendError> {
    if room.is_empty() || room.len() > MAX_ROOM_NAME {
        Err(crate::error::SendError::InvalidRoom {
            room: room.chars().take(64).collect(),
        })
    } else {
        Ok(())
    }
}

/// The rooms of one gate.
#[derive(Debug, Default)]
pub(crate) struct Rooms {
    /// Room → its members on this gate. The sessions themselves, so that a
    /// publish finds each member's queue without another lookup.
    members: DashMap<Arc<str>, HashMap<SessionId, Arc<Session>>>,
    /// Session → the rooms it is in: what to leave when it closes.
    of_session: DashMap<SessionId, HashSet<Arc<str>>>,
}

impl Rooms {
    /// Adds `session` to `room`; false when it was already a member.
    pub(crate) fn join(&self, room: &str, session: &Arc<Session>) -> bool {
        let room: Arc<str> = Arc::from(room);
        let fresh = self
            .of_session
            .entry(session.id)
            .or_default()
            .insert(room.clone());
        if fresh {
            self.members
                .entry(room.clone())
                .or_default()
                .insert(session.id, session.clone());
        }
        // Closed meanwhile: its `leave_all` may have run before this join.
        if session.is_closed() {
            self.leave_all(session.id);
        }
        fresh
    }

    /// Removes `session` from `room`; false when it was not a member.
    pub(crate) fn leave(&self, room: &str, session: SessionId) -> bool {
        let was = match self.of_session.get_mut(&session) {
            Some(mut rooms) => rooms.remove(room),
            None => false,
        };
        self.of_session
            .remove_if(&session, |_, rooms| rooms.is_empty());
        if was {
            self.remove_member(room, session);
        }
        was
    }

    /// Removes `session` from every room it is in (at close, or when it
    /// moves to another gate); the rooms it was in.
    pub(crate) fn leave_all(&self, session: SessionId) -> Vec<Arc<str>> {
        let Some((_, rooms)) = self.of_session.remove(&session) else {
            return Vec::new();
        };
        let mut left = Vec::with_capacity(rooms.len());
        for room in rooms {
            self.remove_member(&room, session);
            left.push(room);
        }
        left
    }

    fn remove_member(&self, room: &str, session: SessionId) {
        if let Some(mut m) = self.members.get_mut(room) {
            m.remove(&session);
        }
        self.members.remove_if(room, |_, m| m.is_empty());
    }

    /// Offers the frame (its payload shared, not copied) to every member of
    /// `room` on this gate; returns how many queued it.
    pub(crate) fn publish(&self, room: &str, frame: &Frame) -> usize {
        let Some(members) = self.members.get(room) else {
            return 0;
        };
        members
            .values()
            .filter(|s| s.offer(frame.clone()) == Offer::Queued)
            .count()
    }

    /// The members of `room` on this gate.
    pub(crate) fn members(&self, room: &str) -> usize {
        self.members.get(room).map_or(0, |m| m.len())
    }

    /// The rooms `session` is in.
    #[cfg(test)]
    fn rooms_of(&self, session: SessionId) -> Vec<Arc<str>> {
        self.of_session
            .get(&session)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{CloseReason, Sessions};
    use bytes::Bytes;

    fn frame() -> Frame {
        Frame::new(9, Bytes::from_static(b"hi"))
    }

    #[test]
    fn members_get_a_publish_and_others_do_not() {
        let sessions = Sessions::new(1);
        let (a, b, c) = (
            sessions.open(crate::session::QueueBound {
                frames: 8,
                bytes: 1 << 20,
            }),
            sessions.open(crate::session::QueueBound {
                frames: 8,
                bytes: 1 << 20,
            }),
            sessions.open(crate::session::QueueBound {
                frames: 8,
                bytes: 1 << 20,
            }),
        );
        let rooms = Rooms::default();
        assert!(rooms.join("r1", &a));
        assert!(!rooms.join("r1", &a), "joining twice is one membership");
        assert!(rooms.join("r1", &b));
        assert!(rooms.join("r2", &c));
        assert_eq!(rooms.publish("r1", &frame()), 2);
        assert_eq!(rooms.publish("nobody", &frame()), 0);
        assert!(rooms.leave("r1", a.id));
        assert!(!rooms.leave("r1", a.id));
        assert_eq!(rooms.publish("r1", &frame()), 1);
        assert_eq!(rooms.rooms_of(a.id), Vec::<Arc<str>>::new());
    }

    #[test]
    fn a_closed_session_leaves_every_room_and_empty_rooms_go() {
        let sessions = Sessions::new(1);
        let a = sessions.open(crate::session::QueueBound {
            frames: 8,
            bytes: 1 << 20,
        });
        let rooms = Rooms::default();
        rooms.join("r1", &a);
        rooms.join("r2", &a);
        assert_eq!(rooms.rooms_of(a.id).len(), 2);
        rooms.leave_all(a.id);
        assert_eq!(rooms.members("r1"), 0);
        assert!(rooms.members.is_empty() && rooms.of_session.is_empty());
        // A join racing with the close undoes itself.
        a.close_with(CloseReason::ClientClosed);
        rooms.join("r1", &a);
        assert_eq!(rooms.members("r1"), 0);
        assert!(rooms.of_session.is_empty());
    }
}
