//! The demo's wire protocol: the msg_ids of `conf/route.json` and the JSON
//! bodies of its messages, shared by the server's handlers (`src/gate.rs`,
//! `src/im.rs`), the chat client (`src/bin/demo-client.rs`) and the tests.
//!
//! | msg_id | group | client sends | the client gets |
//! |---|---|---|---|
//! | 1 login | gate | [`Login`] | [`Answer`] with `name` |
//! | 2 logout | gate | `{}` | [`Answer`] |
//! | 3 send | im | [`Chat`] | [`Answer`]; the addressee gets a [`Delivery`] on 3 |
//! | 4 broadcast | im | [`Shout`] | every session gets a [`Delivery`] on 4; an [`Answer`] only on failure |
//! | 5 echo | gate | any bytes | the same bytes |
//! | 6 echo | im | any bytes | the same bytes |
//! | 7 join | gate | [`RoomName`] | [`Answer`] |
//! | 8 leave | gate | [`RoomName`] | [`Answer`] |
//! | 9 say | im | [`Say`] | [`Answer`]; every member of the room, the sender included, gets a [`Said`] on 9 |
//! | 11 remind | im | [`Remind`] | [`Answer`] at once; a [`Reminder`] on 11 after `after_ms`, on whichever gate the user is then |
//!
//! Failures the framework detects (a body that is not the expected JSON, no
//! live im node) come back as its error answer on msg_id 0:
//! `{"msg_id":3,"code":"bad_payload","error":"..."}`.
//!
//! The handlers name the msg_ids as literals (`#[handler(msg_id = 3, ..)]`),
//! so the compiler can catch two handlers claiming one id; the constants
//! here are for clients.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// Log in: binds the session to a user name.
pub const LOGIN: u32 = 1;
/// Log out: removes the session's user name.
pub const LOGOUT: u32 = 2;
/// Send a line to one user.
pub const SEND: u32 = 3;
/// Send a line to everybody.
pub const BROADCAST: u32 = 4;
/// Echo, answered by the gate itself.
pub const GATE_ECHO: u32 = 5;
/// Echo, answered by an im node (crosses the cluster).
pub const IM_ECHO: u32 = 6;
/// Join a room (the gate's own handler).
pub const JOIN: u32 = 7;
/// Leave a room (the gate's own handler).
pub const LEAVE: u32 = 8;
/// A line to a room (an im node publishes it).
pub const SAY: u32 = 9;
/// A reminder, pushed later by a task of an im node.
pub const REMIND: u32 = 11;
/// The longest reminder delay the demo accepts (one hour).
pub const MAX_REMIND_MS: u64 = 3_600_000;
/// The zinx client heartbeat; the gate swallows it and only notes that the
/// client is alive.
pub const HEARTBEAT: u32 = zinx_cluster::ZINX_HEARTBEAT_MSG_ID;
/// msg_id of the framework's error answers (setting `error_msg_id`).
pub const ERROR: u32 = 0;

/// Body of [`LOGIN`]: `{"name":"alice"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    /// The user name to log in as (1 to 255 bytes).
    pub name: String,
}

/// Body of [`SEND`]: `{"to":"bob","text":"hi"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    /// Who gets the line.
    pub to: String,
    /// The line.
    pub text: String,
}

/// Body of [`BROADCAST`]: `{"text":"hello"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shout {
    /// The line.
    pub text: String,
}

/// A line from another user: on [`SEND`] from one user, on [`BROADCAST`]
/// to everybody. `{"from":"alice","text":"hi"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The sender's user name.
    pub from: String,
    /// The line.
    pub text: String,
}

/// The answer to a request: `{"ok":true}`, `{"ok":true,"name":"alice"}`
/// after a login, or `{"ok":false,"error":"bob is not online"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Whether the request did what it asked.
    pub ok: bool,
    /// After a login: the name the session is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When `ok` is false: why, for a person to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Answer {
    /// `{"ok":true}`.
    pub fn ok() -> Answer {
        Answer {
            ok: true,
            name: None,
            error: None,
        }
    }

    /// `{"ok":true,"name":".."}`: the answer to a login.
    pub fn logged_in(name: impl Into<String>) -> Answer {
        Answer {
            name: Some(name.into()),
            ..Answer::ok()
        }
    }

    /// `{"ok":false,"error":".."}`.
    pub fn error(why: impl Into<String>) -> Answer {
        Answer {
            ok: false,
            name: None,
            error: Some(why.into()),
        }
    }

    /// The answer to [`SEND`] or [`BROADCAST`] from a session that has not
    /// logged in.
    pub fn not_logged_in() -> Answer {
        Answer::error("not logged in")
    }
}

/// The framework's error answer on [`ERROR`]:
/// `{"msg_id":3,"code":"bad_payload","error":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    /// The msg_id of the message that failed.
    pub msg_id: u32,
    /// A short machine-readable code (`bad_payload`, `no_live_node`, ..).
    pub code: String,
    /// Why, for a person to read.
    pub error: String,
}

/// Body of [`JOIN`] and [`LEAVE`]: `{"room":"r1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomName {
    /// The room (1 to 255 bytes).
    pub room: String,
}

/// Body of [`SAY`]: `{"room":"r1","text":"hi"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Say {
    /// The room.
    pub room: String,
    /// The line.
    pub text: String,
}

/// A line to a room, pushed on [`SAY`] to every member:
/// `{"room":"r1","from":"alice","text":"hi"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Said {
    /// The room.
    pub room: String,
    /// The sender's user name.
    pub from: String,
    /// The line.
    pub text: String,
}

/// Body of [`REMIND`]: `{"after_ms":500,"text":"tea"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remind {
    /// How long to wait, in milliseconds (at most [`MAX_REMIND_MS`]).
    pub after_ms: u64,
    /// What to be reminded of.
    pub text: String,
}

/// The reminder itself, pushed on [`REMIND`]: `{"remind":"tea"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    /// The text of the [`Remind`].
    pub remind: String,
}

/// What an im process counts, shared by its handlers as application state
/// (`Cluster::with_state`).
#[derive(Debug, Default)]
pub struct ImStats {
    /// Messages the im handlers of this process handled.
    pub handled: std::sync::atomic::AtomicU64,
}

impl ImStats {
    /// Counts one handled message.
    pub fn count(&self) {
        self.handled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_have_the_documented_shape() {
        let json = |a: &Answer| serde_json::to_string(a).unwrap();
        assert_eq!(json(&Answer::ok()), r#"{"ok":true}"#);
        assert_eq!(
            json(&Answer::logged_in("alice")),
            r#"{"ok":true,"name":"alice"}"#
        );
        assert_eq!(
            json(&Answer::not_logged_in()),
            r#"{"ok":false,"error":"not logged in"}"#
        );
    }
}
