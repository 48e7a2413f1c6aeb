//! The demo's wire protocol: the message types of `conf/route.json`, shared
//! by the server's handlers (`src/gate.rs`, `src/im.rs`), the chat client
//! (`src/bin/demo-client.rs`) and the tests. Each type says its msg_id once,
//! with `#[message(id = ..)]`; the handlers and pushes take it from there.
//!
//! | msg_id | group | client sends | the client gets |
//! |---|---|---|---|
//! | 1 login | gate | [`Login`] | [`Answer`] with `name`; an older session of the name gets [`Replaced`] |
//! | 2 logout | gate | `{}` | [`Answer`] |
//! | 3 send | im | [`Chat`] | [`Answer`]; the addressee gets a [`Delivery`] on 3 |
//! | 4 broadcast | im | [`Shout`] | every session gets a [`Shouted`] on 4; an [`Answer`] only on failure |
//! | 5 echo | gate | any bytes | the same bytes |
//! | 6 echo | im | any bytes | the same bytes |
//! | 7 join | gate | [`Join`] | [`Answer`] |
//! | 8 leave | gate | [`Leave`] | [`Answer`] |
//! | 9 say | im | [`Say`] | [`Answer`]; every member of the room, the sender included, gets a [`Said`] on 9 |
//! | 11 remind | im | [`Remind`] | [`Answer`] at once; a [`Reminder`] on 11 after `after_ms`, on whichever gate the user is then |
//! | 20 stats | im, internal | — (clients get `unknown_msg_id`) | — |
//! | 21 stats | gate | anything | [`Stats`]: the im node that answered [`StatsQuery`] on 20 and the im messages its process handled |
//!
//! Failures the framework detects (a body that is not the expected JSON, no
//! live im node) come back as its error answer on msg_id 0:
//! `{"msg_id":3,"code":"bad_payload","error":"..."}`.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use zinx_cluster::Message;

pub mod web;

/// Log in: binds the session to a user name.
pub const LOGIN: u32 = Login::ID;
/// Log out: removes the session's user name.
pub const LOGOUT: u32 = 2;
/// Send a line to one user.
pub const SEND: u32 = Chat::ID;
/// Send a line to everybody.
pub const BROADCAST: u32 = Shout::ID;
/// Echo, answered by the gate itself.
pub const GATE_ECHO: u32 = 5;
/// Echo, answered by an im node (crosses the cluster).
pub const IM_ECHO: u32 = 6;
/// Join a room (the gate's own handler).
pub const JOIN: u32 = Join::ID;
/// Leave a room (the gate's own handler).
pub const LEAVE: u32 = Leave::ID;
/// A line to a room (an im node publishes it).
pub const SAY: u32 = Say::ID;
/// A reminder, pushed later by a task of an im node.
pub const REMIND: u32 = Remind::ID;
/// The longest reminder delay the demo accepts (one hour).
pub const MAX_REMIND_MS: u64 = 3_600_000;
/// Which im node answers: the gate asks one with the internal [`StatsQuery`].
pub const STATS: u32 = Stats::ID;
/// The zinx client heartbeat; the gate swallows it and only notes that the
/// client is alive.
pub const HEARTBEAT: u32 = zinx_cluster::wire::ZINX_HEARTBEAT_MSG_ID;
/// msg_id of the framework's error answers (setting `error_msg_id`).
pub const ERROR: u32 = 0;

/// [`LOGIN`]: `{"name":"alice"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(id = 1)]
pub struct Login {
    /// The user name to log in as (1 to 255 bytes).
    pub name: String,
}

/// What an older session of a name gets on [`LOGIN`] when the name logs in
/// elsewhere, just before it is closed: an [`Answer`],
/// `{"ok":false,"error":"logged in elsewhere"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(id = 1)]
#[serde(transparent)]
pub struct Replaced(pub Answer);

impl Default for Replaced {
    fn default() -> Self {
        Replaced(Answer::error("logged in elsewhere"))
    }
}

/// [`SEND`]: `{"to":"bob","text":"hi"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(id = 3)]
pub struct Chat {
    /// Who gets the line.
    pub to: String,
    /// The line.
    pub text: String,
}

/// A line from another user, pushed on [`SEND`]:
/// `{"from":"alice","text":"hi"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(id = 3)]
pub struct Delivery {
    /// The sender's user name.
    pub from: String,
    /// The line.
    pub text: String,
}

/// [`BROADCAST`]: `{"text":"hello"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(id = 4)]
pub struct Shout {
    /// The line.
    pub text: String,
}

/// A line to everybody, pushed on [`BROADCAST`]:
/// `{"from":"alice","text":"hi"}` (the shape of a [`Delivery`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(id = 4)]
pub struct Shouted {
    /// The sender's user name.
    pub from: String,
    /// The line.
    pub text: String,
}

/// The internal question the gate asks an im node on 20: `null`. Clients
/// cannot send it (route.json marks 20 internal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(id = 20)]
pub struct StatsQuery;

/// [`STATS`]'s answer, from the im node that served it:
/// `{"node":"im-1","handled":3}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(id = 21)]
pub struct Stats {
    /// The im node's name (`Name` in `dinx.json`).
    pub node: String,
    /// Client messages the im handlers of that node's process handled
    /// (counted in its application state, [`ImStats`]).
    pub handled: u64,
}

/// The answer to a request: `{"ok":true}`, `{"ok":true,"name":"alice"}`
/// after a login, or `{"ok":false,"error":"bob is not online"}`.
///
/// Not a message of its own: it answers several msg_ids, and a reply goes
/// on the request's msg_id. Handlers return it as `Json<Answer>`.
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

/// [`JOIN`]: `{"room":"r1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(id = 7)]
pub struct Join {
    /// The room (1 to 255 bytes).
    pub room: String,
}

/// [`LEAVE`]: `{"room":"r1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(id = 8)]
pub struct Leave {
    /// The room.
    pub room: String,
}

/// [`SAY`]: `{"room":"r1","text":"hi"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(id = 9)]
pub struct Say {
    /// The room.
    pub room: String,
    /// The line.
    pub text: String,
}

/// A line to a room, pushed on [`SAY`] to every member:
/// `{"room":"r1","from":"alice","text":"hi"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(id = 9)]
pub struct Said {
    /// The room.
    pub room: String,
    /// The sender's user name.
    pub from: String,
    /// The line.
    pub text: String,
}

/// [`REMIND`]: `{"after_ms":500,"text":"tea"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(id = 11)]
pub struct Remind {
    /// How long to wait, in milliseconds (at most [`MAX_REMIND_MS`]).
    pub after_ms: u64,
    /// What to be reminded of.
    pub text: String,
}

/// The reminder itself, pushed on [`REMIND`]: `{"remind":"tea"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(id = 11)]
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

    #[test]
    fn messages_have_the_documented_shape_and_ids() {
        assert_eq!(
            &Replaced::default().to_bytes().unwrap()[..],
            br#"{"ok":false,"error":"logged in elsewhere"}"#
        );
        assert_eq!(&StatsQuery.to_bytes().unwrap()[..], b"null");
        assert_eq!(
            &Stats {
                node: "im-1".into(),
                handled: 3
            }
            .to_bytes()
            .unwrap()[..],
            br#"{"node":"im-1","handled":3}"#
        );
        assert_eq!(
            (JOIN, LEAVE, SAY, Said::ID, REMIND, Reminder::ID),
            (7, 8, 9, 9, 11, 11)
        );
        assert_eq!(
            (LOGIN, SEND, BROADCAST, STATS, StatsQuery::ID),
            (1, 3, 4, 21, 20)
        );
        assert_eq!(Delivery::ID, SEND);
        assert_eq!(Shouted::ID, BROADCAST);
    }
}
