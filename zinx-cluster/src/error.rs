//! Error codes and the small named error types of the runtime operations.
//!
//! [`ErrorCode`] is every machine-readable code the framework puts on the
//! wire (the `code` of an error frame, of a failed call's answer) and in
//! the metrics' `outcome` label; its `Display` is that wire string. An
//! application's own codes are [`ErrorCode::Custom`].
//!
//! Every variant of [`SendError`] and [`CallError`] names what it is about
//! with a field of the same name across both enums (`uid`, `session`,
//! `node`, `group`), and every error has its [`ErrorCode`]: the code a
//! handler's error frame carries when the handler returns it with `?`.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::message::MessageError;
use crate::session::SessionId;

/// A node id (`ID` in `dinx.json`; [`crate::config::NodeId`]), spelt out
/// here so that this module needs nothing of the configuration's.
type NodeId = u16;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $wire:literal, )*) => {
        /// A machine-readable error code: what a client finds in the `code`
        /// of an error frame, a caller in a [`CallError::Remote`], and
        /// `/metrics` in the `outcome` label.
        ///
        /// `Display` and [`as_str`](ErrorCode::as_str) give the wire string
        /// (`"not_online"`); [`ErrorCode::parse`] reads one back (an
        /// unknown string is [`ErrorCode::Custom`]). An application's own
        /// codes are `Custom` too: short, snake_case, stable.
        ///
        /// ```
        /// use zinx_cluster::ErrorCode;
        /// assert_eq!(ErrorCode::NotOnline.to_string(), "not_online");
        /// assert_eq!(ErrorCode::parse("not_online"), ErrorCode::NotOnline);
        /// assert_eq!(ErrorCode::from("quota"), ErrorCode::Custom("quota".into()));
        /// assert!(ErrorCode::from("quota") == "quota");
        /// ```
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
            /// A code of the application's own (e.g. `"quota"`).
            Custom(Cow<'static, str>),
        }

        impl ErrorCode {
            /// Every code of the framework (not `Custom`).
            pub const KNOWN: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The wire string.
            pub fn as_str(&self) -> &str {
                match self {
                    $( ErrorCode::$variant => $wire, )*
                    ErrorCode::Custom(c) => c,
                }
            }

            /// The code a wire string names: a framework code, else
            /// [`ErrorCode::Custom`].
            pub fn parse(code: &str) -> ErrorCode {
                match code {
                    $( $wire => ErrorCode::$variant, )*
                    other => ErrorCode::Custom(Cow::Owned(other.to_string())),
                }
            }

            /// The wire string of a framework code; `"error"` for a custom
            /// one (for fixed label sets).
            pub(crate) fn wire(&self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => $wire, )*
                    ErrorCode::Custom(_) => "error",
                }
            }

            fn known(code: &str) -> Option<ErrorCode> {
                match code {
                    $( $wire => Some(ErrorCode::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    /// The payload did not decode as the handler's argument.
    BadPayload = "bad_payload",
    /// The handler returned an error without a code of its own.
    HandlerError = "handler_error",
    /// A reply or message did not encode.
    EncodeFailed = "encode_failed",
    /// No node of the owning group is reachable.
    NoLiveNode = "no_live_node",
    /// A queue on the way was full (the link, the session's queue on the
    /// node).
    Overloaded = "overloaded",
    /// No route (or no handler) for the msg_id; internal msg_ids count as
    /// unknown for clients.
    UnknownMsgId = "unknown_msg_id",
    /// A route of another gate group: gates do not forward to gates.
    WrongGate = "wrong_gate",
    /// The node is shutting down: the message was not run.
    NodeStopping = "node_stopping",
    /// The node running the message was lost before it answered.
    NodeLost = "node_lost",
    /// The gate holds its maximum of sessions.
    ServerFull = "server_full",
    /// The identity could not be verified (wrong, expired or missing token).
    Unauthorized = "unauthorized",
    /// The uid is logged in elsewhere and the policy refuses a second login.
    AlreadyLoggedIn = "already_logged_in",
    /// The uid is empty, too long or holds control characters.
    BadUid = "bad_uid",
    /// The route needs a logged-in session.
    NotLoggedIn = "not_logged_in",
    /// The session sends faster than its rate limit.
    RateLimited = "rate_limited",
    /// The session is in as many rooms as it may be.
    TooManyRooms = "too_many_rooms",
    /// The message runs without a client session.
    NoSession = "no_session",
    /// The session closed.
    SessionGone = "session_gone",
    /// No session is bound to the uid.
    NotOnline = "not_online",
    /// The node that must carry the message is unreachable.
    Unreachable = "unreachable",
    /// The link to the node is congested.
    Congested = "congested",
    /// Some gates were not reached.
    Partial = "partial",
    /// The user directory (Redis) failed.
    Directory = "directory",
    /// The node or the operation does not allow it.
    Unsupported = "unsupported",
    /// The room name is empty or too long.
    InvalidRoom = "invalid_room",
    /// The node has shut down.
    Stopped = "stopped",
    /// No group of that name.
    UnknownGroup = "unknown_group",
    /// Gate groups are not called.
    GateGroup = "gate_group",
    /// No answer within the timeout.
    Timeout = "timeout",
    /// The called handler gave no reply.
    NoReply = "no_reply",
    /// The answer is not the type the caller expects.
    BadAnswer = "bad_answer",
    /// A handler takes a `State<S>` the cluster was not given.
    MissingState = "missing_state",
}

impl ErrorCode {
    /// A code of the application's own; a framework code's string gives
    /// that code (`ErrorCode::custom("not_online") == ErrorCode::NotOnline`).
    pub fn custom(code: &'static str) -> ErrorCode {
        ErrorCode::known(code).unwrap_or(ErrorCode::Custom(Cow::Borrowed(code)))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&'static str> for ErrorCode {
    fn from(code: &'static str) -> Self {
        ErrorCode::custom(code)
    }
}

impl From<String> for ErrorCode {
    fn from(code: String) -> Self {
        ErrorCode::known(&code).unwrap_or(ErrorCode::Custom(Cow::Owned(code)))
    }
}

impl From<Cow<'static, str>> for ErrorCode {
    fn from(code: Cow<'static, str>) -> Self {
        match code {
            Cow::Borrowed(c) => ErrorCode::custom(c),
            Cow::Owned(c) => ErrorCode::from(c),
        }
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<ErrorCode> for &str {
    fn eq(&self, other: &ErrorCode) -> bool {
        *self == other.as_str()
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ErrorCode::from(s))
    }
}

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
        code: ErrorCode,
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

    /// The machine-readable code (for a [`SendError::Remote`], the remote
    /// error's own).
    pub fn code(&self) -> ErrorCode {
        match self {
            SendError::NoSession => ErrorCode::NoSession,
            SendError::SessionGone { .. } => ErrorCode::SessionGone,
            SendError::NotOnline { .. } => ErrorCode::NotOnline,
            SendError::InvalidUid { .. } => ErrorCode::BadUid,
            SendError::Unreachable { .. } => ErrorCode::Unreachable,
            SendError::Congested { .. } => ErrorCode::Congested,
            SendError::Partial { .. } => ErrorCode::Partial,
            SendError::Directory { .. } => ErrorCode::Directory,
            SendError::Remote { code, .. } => code.clone(),
            SendError::Unsupported { .. } => ErrorCode::Unsupported,
            SendError::Encode { error } => error.code(),
            SendError::InvalidRoom { .. } => ErrorCode::InvalidRoom,
            SendError::Stopped => ErrorCode::Stopped,
        }
    }
}

/// Why a [`call`](crate::ClusterHandle::call) or
/// [`cast`](crate::ClusterHandle::cast) failed.
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
        code: ErrorCode,
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
    /// The machine-readable code (for a [`CallError::Remote`], the remote
    /// handler's own).
    pub fn code(&self) -> ErrorCode {
        match self {
            CallError::UnknownGroup { .. } => ErrorCode::UnknownGroup,
            CallError::GateGroup { .. } => ErrorCode::GateGroup,
            CallError::NoLiveNode { .. } => ErrorCode::NoLiveNode,
            CallError::NoHandler { .. } => ErrorCode::UnknownMsgId,
            CallError::Timeout { .. } => ErrorCode::Timeout,
            CallError::LinkLost { .. } => ErrorCode::Unreachable,
            CallError::Congested { .. } => ErrorCode::Congested,
            CallError::Remote { code, .. } => code.clone(),
            CallError::NoReply { .. } => ErrorCode::NoReply,
            CallError::Encode { error } => error.code(),
            CallError::BadAnswer { .. } => ErrorCode::BadAnswer,
            CallError::Stopped => ErrorCode::Stopped,
        }
    }
}

/// A payload that could not be turned into the handler's argument type.
///
/// The handler is not called; the client gets the configured error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad payload: expected {expected}: {reason}")]
pub struct PayloadError {
    /// What the extractor wanted, e.g. `UTF-8 text` or `JSON Chat`.
    pub expected: String,
    /// Why the bytes did not qualify.
    pub reason: String,
}
