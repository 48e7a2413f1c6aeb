//! `Ctx`: what a handler can do, wherever it runs.
//!
//! The same operations work in a gate's own handlers and in a backend's:
//! the runtime routes each to where the session or uid really is.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::Node;
use super::handle::ClusterHandle;
use crate::error::{CallError, SendError};
use crate::frame::Frame;
use crate::handler::FromPayload;
use crate::message::Message;
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

/// Who to kick: a session, or whichever session holds a uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KickTarget {
    /// A session by id.
    Session(SessionId),
    /// The session bound to this uid.
    Uid(String),
}

impl From<SessionId> for KickTarget {
    fn from(s: SessionId) -> Self {
        KickTarget::Session(s)
    }
}

impl From<&str> for KickTarget {
    fn from(uid: &str) -> Self {
        KickTarget::Uid(uid.to_string())
    }
}

impl From<String> for KickTarget {
    fn from(uid: String) -> Self {
        KickTarget::Uid(uid)
    }
}

/// The context of one handler invocation.
///
/// A handler receives `&mut Ctx` and uses it to answer its client, reach
/// other users, and talk to other nodes:
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
///     let from = ctx.uid().ok_or("not logged in")?.to_string();
///     match ctx.push_to_uid(&msg.to, &Said { from, text: msg.text }).await {
///         Ok(()) => ctx.reply(r#"{"ok":true}"#)?,
///         Err(SendError::NotOnline { .. }) => ctx.reply(r#"{"ok":false}"#)?,
///         Err(e) => return Err(e.into()),
///     }
///     Ok(())
/// }
///
/// #[derive(Message, Deserialize, Serialize)]
/// #[message(id = 20)]
/// struct Top { n: u32 }
///
/// #[derive(Message, Deserialize, Serialize)]
/// #[message(id = 7)]
/// struct Scores { names: Vec<String> }
///
/// #[handler(msg_id = 7, group = "im")]
/// async fn score(ctx: &mut Ctx) -> Result<Scores, HandlerError> {
///     // Ask a node of group "rank" and answer the client with its reply.
///     Ok(ctx.call("rank", &Top { n: 10 }).await?)
/// }
/// ```
///
/// Each sending operation takes a [`Message`] and sends on its msg_id; its
/// `_raw` twin takes a msg_id and bytes, for proxies.
///
/// | operation | what it does |
/// |---|---|
/// | [`reply`](Ctx::reply) / [`reply_with`](Ctx::reply_with) | a frame to this message's client (or the answer of a call) |
/// | [`push`](Ctx::push) / [`push_raw`](Ctx::push_raw) | a frame to any session of the cluster |
/// | [`push_to_uid`](Ctx::push_to_uid) | a frame to the session bound to a uid, on whichever gate |
/// | [`broadcast`](Ctx::broadcast) | a frame to every session on every gate, once each |
/// | [`broadcast_to_users`](Ctx::broadcast_to_users) | the same, to sessions bound to a uid only |
/// | [`bind`](Ctx::bind) / [`unbind`](Ctx::unbind) | attach this session to a uid (kicking an older session of it) |
/// | [`kick`](Ctx::kick) | close a session, by id or uid |
/// | [`call`](Ctx::call) / [`cast`](Ctx::cast) (`call_raw`, `cast_raw`) | run a handler of another group, with or without an answer |
/// | [`join`](Ctx::join) / [`leave`](Ctx::leave) | put this session in a room, or take it out |
/// | [`publish`](Ctx::publish) / [`publish_raw`](Ctx::publish_raw) | a frame to every member of a room, on every gate, once each |
/// | [`state`](Ctx::state) | the application state given to `Cluster::with_state` |
/// | [`handle`](Ctx::handle) | a [`ClusterHandle`](crate::ClusterHandle) to keep working after the handler returns |
///
/// Operations that only queue a frame are plain functions; those that may
/// wait for another node or the directory are `async`. None of them ever
/// blocks on a slow client: a client whose queue is full is closed instead.
pub struct Ctx {
    /// The node running the handler.
    node: Arc<Node>,
    /// The message's msg_id (the default msg_id of replies).
    msg_id: u32,
    /// Why the handler runs.
    mode: Mode,
    /// The client session the message came from, if any.
    session: Option<SessionId>,
    /// The uid bound to that session when the message was sent.
    uid: Option<Arc<str>>,
    /// In a call: the answer given with `reply`.
    call_reply: Option<Bytes>,
    /// The session itself, when the handler runs on its gate.
    pub(crate) local: Option<Arc<Session>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("node", &self.node.name())
            .field("msg_id", &self.msg_id)
            .field("mode", &self.mode)
            .field("session", &self.session)
            .field("uid", &self.uid)
            .finish()
    }
}

impl Ctx {
    pub(crate) fn new(
        node: Arc<Node>,
        msg_id: u32,
        mode: Mode,
        session: Option<SessionId>,
        uid: Option<Arc<str>>,
    ) -> Ctx {
        Ctx {
            node,
            msg_id,
            mode,
            session,
            uid,
            call_reply: None,
            local: None,
        }
    }

    pub(crate) fn take_call_reply(&mut self) -> Option<Bytes> {
        self.call_reply.take()
    }

    /// The msg_id of the message being handled.
    pub fn msg_id(&self) -> u32 {
        self.msg_id
    }

    /// The client session the message came from; `None` in a call or cast
    /// that was made outside any session.
    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// The uid bound to the session (see [`Ctx::bind`]), if any.
    pub fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }

    /// The id of the node running this handler.
    pub fn node_id(&self) -> u16 {
        self.node.id()
    }

    /// The name of the node running this handler (`Name` in `dinx.json`).
    pub fn node_name(&self) -> &str {
        self.node.name()
    }

    /// The node that made the call or cast being handled, if it is one.
    pub fn caller(&self) -> Option<u16> {
        match self.mode {
            Mode::Client => None,
            Mode::Call { from } | Mode::Cast { from } => Some(from),
        }
    }

    fn own_session(&self) -> Result<SessionId, SendError> {
        self.session.ok_or(SendError::NoSession)
    }

    /// Replies on the message's own msg_id. Returning a value from the
    /// handler does the same; use this to reply more than once or before
    /// other work. In a [`call`](Ctx::call), the reply is the call's answer.
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
            Mode::Client => match &self.local {
                Some(s) => self.node.offer_to(s, Frame::new(msg_id, data)),
                None => {
                    let session = self.own_session()?;
                    self.node.deliver(session, Frame::new(msg_id, data))
                }
            },
        }
    }

    /// Sends `msg` on its msg_id (`M::ID`) to any session of the cluster.
    pub fn push<M: Message>(&self, session: SessionId, msg: &M) -> Result<(), SendError> {
        self.push_raw(session, M::ID, encode_send(msg)?)
    }

    /// [`Ctx::push`] of bytes on a msg_id: for proxies and payloads that
    /// are no [`Message`].
    pub fn push_raw(
        &self,
        session: SessionId,
        msg_id: u32,
        data: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        self.node.deliver(session, Frame::new(msg_id, data))
    }

    /// Sends `msg` on `M::ID` to the session bound to `uid`, on whichever
    /// gate holds it. Fails with [`SendError::NotOnline`] when nobody is
    /// bound to it.
    pub async fn push_to_uid<M: Message>(&self, uid: &str, msg: &M) -> Result<(), SendError> {
        let data = encode_send(msg)?;
        self.push_to_uid_raw(uid, M::ID, data).await
    }

    /// [`Ctx::push_to_uid`] of bytes on a msg_id.
    pub async fn push_to_uid_raw(
        &self,
        uid: &str,
        msg_id: u32,
        data: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        self.node.push_to_uid(uid, Frame::new(msg_id, data)).await
    }

    /// Sends `msg` on `M::ID` to every session on every gate, exactly once
    /// each. On the wire this is one message per gate, not one per user.
    pub fn broadcast<M: Message>(&self, msg: &M) -> Result<(), SendError> {
        self.broadcast_raw(M::ID, encode_send(msg)?)
    }

    /// [`Ctx::broadcast`] of bytes on a msg_id.
    pub fn broadcast_raw(&self, msg_id: u32, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.node.broadcast(Frame::new(msg_id, data.into()), false)
    }

    /// Like [`Ctx::broadcast`], but only to sessions bound to a uid (the
    /// logged-in users); anonymous connections do not receive it.
    pub fn broadcast_to_users<M: Message>(&self, msg: &M) -> Result<(), SendError> {
        self.broadcast_to_users_raw(M::ID, encode_send(msg)?)
    }

    /// [`Ctx::broadcast_to_users`] of bytes on a msg_id.
    pub fn broadcast_to_users_raw(
        &self,
        msg_id: u32,
        data: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        self.node.broadcast(Frame::new(msg_id, data.into()), true)
    }

    /// Binds this session to `uid` (1 to 255 bytes). One uid has one
    /// session: a session already bound to it, on any gate, is kicked and
    /// returned. Later messages of this session carry the uid
    /// ([`Ctx::uid`]) to every node.
    pub async fn bind(&mut self, uid: &str) -> Result<Option<SessionId>, SendError> {
        let session = self.own_session()?;
        let kicked = self.node.bind_session(session, uid).await?;
        self.uid = Some(Arc::from(uid));
        Ok(kicked)
    }

    /// Removes this session's uid binding.
    pub async fn unbind(&mut self) -> Result<(), SendError> {
        let session = self.own_session()?;
        self.node.unbind_session(session).await?;
        self.uid = None;
        Ok(())
    }

    /// Closes a session (by [`SessionId`]) or the session bound to a uid
    /// (by `&str` / `String`), wherever it is.
    pub async fn kick(&self, target: impl Into<KickTarget>) -> Result<(), SendError> {
        match target.into() {
            KickTarget::Session(s) => self.node.kick_session(s).await,
            KickTarget::Uid(uid) => self.node.kick_uid(&uid).await,
        }
    }

    /// Runs the handler of `request`'s msg_id (`Req::ID`) on a node of
    /// `group` (chosen by the group's balancing, over live nodes only) and
    /// returns its reply as an `A`, or fails after the configured
    /// `call_timeout_ms`. The callee sees this message's session and uid.
    ///
    /// `A` is any payload type: a [`Message`], `Json<T>`, `String`,
    /// `Bytes`. An answer that does not decode as `A` is
    /// [`CallError::BadAnswer`]; a failing callee's error comes back as
    /// [`CallError::Remote`] with the callee's code.
    pub async fn call<Req: Message, A: FromPayload>(
        &self,
        group: &str,
        request: &Req,
    ) -> Result<A, CallError> {
        let timeout = Duration::from_millis(self.node.settings().call_timeout_ms);
        self.call_timeout(group, request, timeout).await
    }

    /// [`Ctx::call`] with an explicit timeout.
    pub async fn call_timeout<Req: Message, A: FromPayload>(
        &self,
        group: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<A, CallError> {
        super::call::typed(group, request, |payload| {
            self.call_raw_timeout(group, Req::ID, payload, timeout)
        })
        .await
    }

    /// [`Ctx::call`] of bytes on a msg_id, answered with bytes: for proxies.
    pub async fn call_raw(
        &self,
        group: &str,
        msg_id: u32,
        payload: impl Into<Bytes>,
    ) -> Result<Bytes, CallError> {
        let timeout = Duration::from_millis(self.node.settings().call_timeout_ms);
        self.call_raw_timeout(group, msg_id, payload, timeout).await
    }

    /// [`Ctx::call_raw`] with an explicit timeout.
    pub async fn call_raw_timeout(
        &self,
        group: &str,
        msg_id: u32,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        self.node
            .call(
                group,
                msg_id,
                payload.into(),
                (self.session, self.uid.clone()),
                timeout,
            )
            .await
    }

    /// Runs the handler of `msg`'s msg_id on a node of `group` without
    /// waiting for anything: fails only when no node of the group is
    /// reachable now.
    pub fn cast<M: Message>(&self, group: &str, msg: &M) -> Result<(), CallError> {
        self.cast_raw(group, M::ID, super::call::encode_request(msg)?)
    }

    /// [`Ctx::cast`] of bytes on a msg_id.
    pub fn cast_raw(
        &self,
        group: &str,
        msg_id: u32,
        payload: impl Into<Bytes>,
    ) -> Result<(), CallError> {
        self.node.cast(
            group,
            msg_id,
            payload.into(),
            (self.session, self.uid.clone()),
        )
    }

    /// The application state of type `S` given to
    /// [`Cluster::with_state`](crate::Cluster::with_state), if any. (A
    /// [`State<S>`](crate::State) argument is checked at start instead.)
    pub fn state<S: Send + Sync + 'static>(&self) -> Option<&S> {
        self.node.states().get::<S>()
    }

    /// A [`ClusterHandle`] on the node running this handler: push,
    /// publish, call.. from a task that outlives the handler.
    pub fn handle(&self) -> ClusterHandle {
        ClusterHandle::new(&self.node)
    }

    /// Puts this session in `room` (1 to 255 bytes); `false` when it
    /// already was a member. It stays until [`Ctx::leave`] or until it
    /// closes.
    pub async fn join(&self, room: &str) -> Result<bool, SendError> {
        let session = self.own_session()?;
        self.node.join_room(session, room).await
    }

    /// Takes this session out of `room`; `false` when it was not a member.
    pub async fn leave(&self, room: &str) -> Result<bool, SendError> {
        let session = self.own_session()?;
        self.node.leave_room(session, room).await
    }

    /// Sends `msg` on `M::ID` to every member of `room`, on every gate,
    /// exactly once each. On the wire this is one message per gate; each
    /// gate writes it to the members it holds.
    pub fn publish<M: Message>(&self, room: &str, msg: &M) -> Result<(), SendError> {
        self.publish_raw(room, M::ID, encode_send(msg)?)
    }

    /// [`Ctx::publish`] of bytes on a msg_id.
    pub fn publish_raw(
        &self,
        room: &str,
        msg_id: u32,
        data: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        self.node.publish(room, Frame::new(msg_id, data))
    }
}

/// A message's bytes, or the [`SendError`] saying why there are none.
pub(super) fn encode_send<M: Message>(msg: &M) -> Result<Bytes, SendError> {
    msg.to_bytes().map_err(|error| SendError::Encode { error })
}
