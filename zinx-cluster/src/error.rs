//! Small named error types of the runtime operations.
//!
//! Every variant names what it is about with a field of the same name
//! across both enums (`uid`, `session`, `node`, `group`), and every error
//! has a machine-readable [`code`](SendError::code): the code a handler's
//! error frame carries when the handler returns it with `?`.

use std::time::Duration;

use crate::handler::PayloadError;
use crate::message::MessageError;
use crate::session::SessionId;

/// A node id (`ID` in `dinx.json`; [`crate::NodeId`]), spelt out here so
/// that this module needs nothing of the configuration's.
type NodeId = u16;

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
    #[error("session {session} is closed")]
    SessionGone {
        /// The session.
        session: SessionId,
    },
    /// No session is bound to the uid anywhere.
    #[error("{uid} is not online")]
    NotOnline {
        /// The uid.
        uid: String,
    },
    /// The uid is empty or longer than 255 bytes.
    #[error("invalid uid {uid:?}: must be 1 to 255 bytes")]
    InvalidUid {
        /// The uid (its first 64 characters).
        uid: String,
    },
    /// The link to the node that must carry the message is down.
    #[error("node {node} is unreachable")]
    Unreachable {
        /// The node.
        node: NodeId,
    },
    /// The link to the node is congested (its queue is full).
    #[error("link to node {node} is congested")]
    Congested {
        /// The node.
        node: NodeId,
    },
    /// Some gates could not be reached by a broadcast.
    #[error("broadcast did not reach gate(s) {gates:?}")]
    Partial {
        /// The gates not reached.
        gates: Vec<NodeId>,
    },
    /// The user directory failed.
    #[error("user directory: {reason}")]
    Directory {
        /// What failed.
        reason: String,
    },
    /// The node that had to do it answered with an error.
    #[error("node {node}: {message}")]
    Remote {
        /// The node.
        node: NodeId,
        /// Its error's code.
        code: String,
        /// Its error's message.
        message: String,
    },
    /// The node or the operation does not allow it.
    #[error("{what}")]
    Unsupported {
        /// What is not supported.
        what: &'static str,
    },
    /// The message to send does not encode.
    #[error("{error}")]
    Encode {
        /// The codec's error.
        error: MessageError,
    },
    /// The room name is empty or longer than 255 bytes.
    #[error("invalid room name {room:?}: must be 1 to 255 bytes")]
    InvalidRoom {
        /// The room name (its first 64 characters).
        room: String,
    },
    /// The node has shut down (a [`crate::ClusterHandle`] outliving it).
    #[error("the node has shut down")]
    Stopped,
}

impl SendError {
    /// A [`SendError::Directory`] with this reason.
    pub(crate) fn directory(reason: impl Into<String>) -> Self {
        SendError::Directory {
            reason: reason.into(),
        }
    }

    /// The machine-readable code: `no_session`, `session_gone`,
    /// `not_online`, `invalid_uid`, `unreachable`, `congested`, `partial`,
    /// `directory`, the remote error's own code, `unsupported`,
    /// `encode_failed`, `invalid_room`, `stopped`.
    pub fn code(&self) -> &str {
        match self {
            SendError::NoSession => "no_session",
            SendError::SessionGone { .. } => "session_gone",
            SendError::NotOnline { .. } => "not_online",
            SendError::InvalidUid { .. } => "invalid_uid",
            SendError::Unreachable { .. } => "unreachable",
            SendError::Congested { .. } => "congested",
            SendError::Partial { .. } => "partial",
            SendError::Directory { .. } => "directory",
            SendError::Remote { code, .. } => code,
            SendError::Unsupported { .. } => "unsupported",
            SendError::Encode { error } => error.code(),
            SendError::InvalidRoom { .. } => "invalid_room",
            SendError::Stopped => "stopped",
        }
    }
}

/// Why a [`Ctx::call`](crate::Ctx::call) or [`Ctx::cast`](crate::Ctx::cast)
/// failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No group of that name in `dinx.json`.
    #[error("unknown group {group:?}")]
    UnknownGroup {
        /// The group.
        group: String,
    },
    /// Gates are not called; only backend groups (and the caller's own group).
    #[error("group {group:?} is a gate group; only backend groups can be called")]
    GateGroup {
        /// The group.
        group: String,
    },
    /// No node of the group is reachable now.
    #[error("no live node in group {group:?}")]
    NoLiveNode {
        /// The group.
        group: String,
    },
    /// No handler serves the msg_id in the group.
    #[error("no handler for msg_id {msg_id} in group {group:?}")]
    NoHandler {
        /// The group.
        group: String,
        /// The msg_id.
        msg_id: u32,
    },
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
    #[error("link to node {node} lost before the answer")]
    LinkLost {
        /// The node.
        node: NodeId,
    },
    /// The link is congested.
    #[error("link to node {node} is congested")]
    Congested {
        /// The node.
        node: NodeId,
    },
    /// The handler failed.
    #[error("{message}")]
    Remote {
        /// The node it ran on.
        node: NodeId,
        /// Its error's code (`handler_error`, `bad_payload`, or the
        /// handler's own).
        code: String,
        /// Its error's message.
        message: String,
    },
    /// The handler finished without a reply.
    #[error("the handler of msg_id {msg_id} in group {group:?} gave no reply")]
    NoReply {
        /// The group called.
        group: String,
        /// The msg_id called.
        msg_id: u32,
    },
    /// The request does not encode.
    #[error("{error}")]
    Encode {
        /// The codec's error.
        error: MessageError,
    },
    /// The answer is not the type the caller expects.
    #[error("the answer of msg_id {msg_id} from group {group:?}: {error}")]
    BadAnswer {
        /// The group called.
        group: String,
        /// The msg_id called.
        msg_id: u32,
        /// Why it does not decode.
        error: PayloadError,
    },
    /// The node has shut down (a [`crate::ClusterHandle`] outliving it).
    #[error("the node has shut down")]
    Stopped,
}

impl CallError {
    /// The machine-readable code: `unknown_group`, `gate_group`,
    /// `no_live_node`, `unknown_msg_id`, `timeout`, `unreachable`,
    /// `congested`, the remote handler's own code, `no_reply`,
    /// `encode_failed`, `bad_answer`, `stopped`.
    pub fn code(&self) -> &str {
        match self {
            CallError::UnknownGroup { .. } => "unknown_group",
            CallError::GateGroup { .. } => "gate_group",
            CallError::NoLiveNode { .. } => "no_live_node",
            CallError::NoHandler { .. } => "unknown_msg_id",
            CallError::Timeout { .. } => "timeout",
            CallError::LinkLost { .. } => "unreachable",
            CallError::Congested { .. } => "congested",
            CallError::Remote { code, .. } => code,
            CallError::NoReply { .. } => "no_reply",
            CallError::Encode { error } => error.code(),
            CallError::BadAnswer { .. } => "bad_answer",
            CallError::Stopped => "stopped",
        }
    }
}
