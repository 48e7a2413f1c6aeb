//! `Ctx`: a handler's context — the outbound API acting for the message's
//! session (it dereferences to a [`ClusterHandle`]), plus what only a
//! handler has: the message's msg_id, its reply, and the session's uid
//! binding.

use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;

use super::{ClusterHandle, NodeApi, Origin};
use crate::error::SendError;
use crate::frame::Frame;
use crate::session::{Session, SessionId};

/// Why a handler is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A client's message.
    Client,
    /// A `call` from node `from`: the reply is the call's answer.
    Call { from: u16 },
    /// A `cast` from node `from`: nobody waits for an answer.
    Cast { from: u16 },
}

/// The context of one handler invocation.
///
/// A handler receives `&mut Ctx` and uses it to answer its client, reach
/// other users, and talk to other nodes. Everything that sends is the
/// [`ClusterHandle`] API (a `Ctx` dereferences to its handle), acting for
/// the message's session:
///
/// ```rust,no_run
/// use serde::{Deserialize, Serialize};
/// use zinx_cluster::prelude::*;
///
/// #[derive(Message, Deserialize, Serialize)]
/// #[message(id = 3)]
/// struct Chat { to: String, text: String }
///
/// #[derive(Message, Deserialize, Serialize)]
/// #[message(id = 3)]
/// struct Said { from: String, text: String }
///
/// #[handler(group = "im")]
/// async fn send(ctx: &mut Ctx, msg: Chat) -> Result<(), HandlerError> {
///     // The uid was bound at login, on the gate; every node sees it.
///     let from = ctx.uid().ok_or(HandlerError::new(ErrorCode::NotLoggedIn, "log in first"))?.to_string();
///     match ctx.push_to_uid(&msg.to, &Said { from, text: msg.text }).await {
///         Ok(()) => ctx.reply(r#"{"ok":true}"#)?,
///         Err(SendError::NotOnline { .. }) => ctx.reply(r#"{"ok":false}"#)?,
///         Err(e) => return Err(e.into()),
///     }
///     Ok(())
/// }
/// ```
///
/// Besides the handle's operations, a `Ctx` has:
///
/// | operation | what it does |
/// |---|---|
/// | [`reply`](Ctx::reply) / [`reply_with`](Ctx::reply_with) | a frame to this message's client (or the answer of a call) |
/// | [`bind`](Ctx::bind) / [`unbind`](Ctx::unbind) | attach this session to a uid (kicking an older session of it) |
/// | [`msg_id`](Ctx::msg_id), [`caller`](Ctx::caller), [`node_name`](Ctx::node_name) | about this message and where it runs |
///
/// Operations that only queue a frame are plain functions; those that may
/// wait for another node or the directory are `async`. None of them ever
/// blocks on a slow client: a client whose queue is full is closed instead.
pub struct Ctx {
    /// The outbound API, acting for the message's session, keeping the
    /// node alive while the handler runs.
    handle: ClusterHandle,
    /// The message's msg_id (the default msg_id of replies).
    msg_id: u32,
    /// Why the handler runs.
    mode: Mode,
    /// In a call: the answer given with `reply`.
    call_reply: Option<Bytes>,
    /// The session itself, when the handler runs on its gate.
    local: Option<Arc<Session>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("node", &self.node_name())
            .field("msg_id", &self.msg_id)
            .field("mode", &self.mode)
            .field("session", &self.handle.session())
            .field("uid", &self.handle.uid())
            .finish()
    }
}

impl Deref for Ctx {
    type Target = ClusterHandle;

    fn deref(&self) -> &ClusterHandle {
        &self.handle
    }
}

impl Ctx {
    /// The context of a handler run by `node` for `msg_id`, acting for
    /// `session` and `uid`; `local` is the session itself on its own gate.
    pub(crate) fn new(
        node: Arc<dyn NodeApi>,
        msg_id: u32,
        mode: Mode,
        origin: Origin,
        local: Option<Arc<Session>>,
    ) -> Ctx {
        Ctx {
            handle: ClusterHandle::strong(node, origin),
            msg_id,
            mode,
            call_reply: None,
            local,
        }
    }

    pub(crate) fn take_call_reply(&mut self) -> Option<Bytes> {
        self.call_reply.take()
    }

    /// The msg_id of the message being handled.
    pub fn msg_id(&self) -> u32 {
        self.msg_id
    }

    /// The name of the node running this handler (`Name` in `dinx.json`).
    pub fn node_name(&self) -> &str {
        self.handle.strong_ref().map_or("", |n| n.name())
    }

    /// The node that made the call or cast being handled, if it is one.
    pub fn caller(&self) -> Option<u16> {
        match self.mode {
            Mode::Client => None,
            Mode::Call { from } | Mode::Cast { from } => Some(from),
        }
    }

    fn own_session(&self) -> Result<SessionId, SendError> {
        self.handle.session().ok_or(SendError::NoSession)
    }

    /// Replies on the message's own msg_id. Returning a value from the
    /// handler does the same; use this to reply more than once or before
    /// other work. In a [`call`](ClusterHandle::call), the reply is the
    /// call's answer.
    pub fn reply(&mut self, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.reply_with(self.msg_id, data)
    }

    /// Replies on another msg_id.
    pub fn reply_with(&mut self, msg_id: u32, data: impl Into<Bytes>) -> Result<(), SendError> {
        match self.mode {
            Mode::Call { .. } => {
                self.call_reply.get_or_insert(data.into());
                Ok(())
            }
            Mode::Cast { .. } => Err(SendError::NoSession),
            Mode::Client => {
                let frame = Frame::new(msg_id, data);
                match &self.local {
                    Some(s) => self.handle.with_node(|n| n.offer(s, frame)),
                    None => {
                        let session = self.own_session()?;
                        self.handle.with_node(|n| n.deliver(session, frame))
                    }
                }
            }
        }
    }

    /// Binds this session to `uid` (1 to 128 bytes of UTF-8 without control
    /// characters). One uid has one session: a session already bound to it,
    /// on any gate, is kicked and returned (or, with `"duplicate_login":
    /// "refuse"`, this login fails with `already_logged_in`). Later
    /// messages of this session carry the uid ([`ClusterHandle::uid`]) to
    /// every node.
    pub async fn bind(&mut self, uid: &str) -> Result<Option<SessionId>, SendError> {
        let session = self.own_session()?;
        let node = self.handle.node()?;
        let kicked =
            super::until_closed(&*node, SendError::Stopped, node.bind(session, uid)).await?;
        self.handle.origin_mut().uid = Some(Arc::from(uid));
        Ok(kicked)
    }

    /// Removes this session's uid binding.
    pub async fn unbind(&mut self) -> Result<(), SendError> {
        let session = self.own_session()?;
        let node = self.handle.node()?;
        super::until_closed(&*node, SendError::Stopped, node.unbind(session)).await?;
        self.handle.origin_mut().uid = None;
        Ok(())
    }
}
