//! Small named error types of the runtime operations.

use std::time::Duration;

use crate::session::SessionId;

/// Why a message could not be delivered (reply, push, broadcast, bind, kick,
/// cast).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The handler runs without a client session (a call or cast from
    /// another node), so there is nobody to reply to.
    #[error("this message has no client session")]
    NoSession,
    /// The session closed.
    #[error("session {0} is closed")]
    SessionGone(SessionId),
    /// No uid is bound to a session anywhere.
    #[error("{0} is not online")]
    NotOnline(String),
    /// The uid is empty or longer than 255 bytes.
    #[error("invalid uid {0:?}: must be 1 to 255 bytes")]
    InvalidUid(String),
    /// The link to the node that must carry the message is down.
    #[error("node {node} is unreachable")]
    Unreachable {
        /// The node.
        node: u16,
    },
    /// The link to the node is congested (its queue is full).
    #[error("link to node {node} is congested")]
    Congested {
        /// The node.
        node: u16,
    },
    /// Some gates could not be reached by a broadcast.
    #[error("broadcast did not reach gate(s) {0:?}")]
    Partial(Vec<u16>),
    /// The user directory failed.
    #[error("user directory: {0}")]
    Directory(String),
    /// The peer answered with an error.
    #[error("{0}")]
    Remote(String),
    /// The node or the operation does not allow it.
    #[error("{0}")]
    Unsupported(&'static str),
    /// The room name is empty or longer than 255 bytes.
    #[error("invalid room name {0:?}: must be 1 to 255 bytes")]
    InvalidRoom(String),
    /// The node was shut down (a [`crate::ClusterHandle`] outliving it).
    #[error("the node has shut down")]
    Stopped,
}

/// Why a [`crate::Ctx::call`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No group of that name in `dinx.json`.
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    /// Gates are not called; only backend groups (and the caller's own group).
    #[error("group {0:?} is a gate group; only backend groups can be called")]
    GateGroup(String),
    /// No node of the group is reachable now.
    #[error("no live node in group {0:?}")]
    NoLiveNode(String),
    /// No answer within the timeout.
    #[error("call of msg_id {msg_id} to group {group:?} timed out after {after:?}")]
    Timeout {
        /// The group called.
        group: String,
        /// The msg_id called.
        msg_id: u32,
        /// The timeout.
        after: Duration,
    },
    /// The link to the node carrying the call broke before the answer.
    #[error("link to node {0} lost before the answer")]
    LinkLost(u16),
    /// The link is congested.
    #[error("link to node {0} is congested")]
    Congested(u16),
    /// The handler failed (or no handler serves the msg_id there).
    #[error("remote handler failed: {0}")]
    Remote(String),
    /// The handler finished without a reply.
    #[error("the handler gave no reply")]
    NoReply,
    /// The node was shut down (a [`crate::ClusterHandle`] outliving it).
    #[error("the node has shut down")]
    Stopped,
}

impl From<SendError> for crate::HandlerError {
    fn from(e: SendError) -> Self {
        crate::HandlerError::new(e.to_string())
    }
}

impl From<CallError> for crate::HandlerError {
    fn from(e: CallError) -> Self {
        crate::HandlerError::new(e.to_string())
    }
}
