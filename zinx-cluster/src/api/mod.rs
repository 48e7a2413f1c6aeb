//! What application code sees of a running node: [`ClusterHandle`], the
//! one outbound API (push, push to a uid, broadcast, publish, join, leave,
//! kick, call, cast), and [`Ctx`], a handler's context, which is that same
//! API acting for the message's session.
//!
//! Every operation is written once, here, on [`ClusterHandle`]; a [`Ctx`]
//! dereferences to its handle. What a node does for an operation depends
//! on its role (a gate reaches its own sessions in place, a backend goes
//! through their gates): the roles implement [`NodeApi`], which this
//! module knows only as a trait object — it imports nothing of the nodes.
//!
//! | operation | what it does |
//! |---|---|
//! | [`push`](ClusterHandle::push) | a message to any session of the cluster |
//! | [`push_to_uid`](ClusterHandle::push_to_uid) | a message to the session bound to a uid, on whichever gate |
//! | [`broadcast`](ClusterHandle::broadcast) / [`broadcast_to_users`](ClusterHandle::broadcast_to_users) | a message to every session (every logged-in one) on every gate, once each |
//! | [`publish`](ClusterHandle::publish) | a message to every member of a room, on every gate, once each |
//! | [`join`](ClusterHandle::join) / [`leave`](ClusterHandle::leave) | the acting session enters or leaves a room |
//! | [`kick`](ClusterHandle::kick) | close a session, by id or uid |
//! | [`call`](ClusterHandle::call) / [`cast`](ClusterHandle::cast) | run a handler of another group, with or without an answer |
//!
//! Each sending operation takes an [`Outgoing`]: a reference to a
//! `#[derive(Message)]` value (sent on its msg_id) or a raw [`Frame`]
//! (msg_id and bytes, for proxies). A call's timeout is an option of the
//! [`Call`] it returns.

mod ctx;
mod outgoing;

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::error::{CallError, SendError};
use crate::frame::Frame;
use crate::handler::BoxFuture;
use crate::session::{Session, SessionId};
use crate::state::States;

pub use ctx::Ctx;
pub(crate) use ctx::Mode;
pub use outgoing::{Call, Outgoing};

/// The session (and its uid) an operation acts for: a handler's message's
/// session, or none for a [`ClusterHandle`] of a timer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    /// The session, if any.
    pub(crate) session: Option<SessionId>,
    /// Its uid when known (a call carries it to the callee).
    pub(crate) uid: Option<Arc<str>>,
}

/// Join or leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoomOp {
    /// Put the session in the room.
    Join,
    /// Take it out.
    Leave,
}

/// What a node (a gate or a backend) does for the outbound API. Object
/// safe: the API holds an `Arc<dyn NodeApi>` or a `Weak` one.
pub(crate) trait NodeApi: Send + Sync + 'static {
    /// The node's id.
    fn id(&self) -> u16;
    /// The node's name.
    fn name(&self) -> &str;
    /// Whether the node has closed (its sessions and links): every
    /// operation then fails with `Stopped`. An atomic load.
    fn is_closed(&self) -> bool;
    /// Cancelled when the node closes: a waiting operation ends with it.
    fn closed(&self) -> &CancellationToken;
    /// The application state.
    fn states(&self) -> &Arc<States>;
    /// `call_timeout_ms`.
    fn call_timeout(&self) -> Duration;
    /// Queues a frame on a session of this gate (a handler's reply to its
    /// own client, without a table lookup).
    fn offer(&self, session: &Session, frame: Frame) -> Result<(), SendError>;
    /// A frame to a session wherever it is.
    fn deliver(&self, session: SessionId, frame: Frame) -> Result<(), SendError>;
    /// A frame to the session bound to `uid`, wherever it is.
    fn push_to_uid<'a>(
        &'a self,
        uid: &'a str,
        frame: Frame,
    ) -> BoxFuture<'a, Result<(), SendError>>;
    /// A frame to every session (bound to a uid, with `users_only`) of every
    /// gate.
    fn broadcast(&self, frame: Frame, users_only: bool) -> Result<(), SendError>;
    /// A frame to every member of `room` on every gate.
    fn publish(&self, room: &str, frame: Frame) -> Result<(), SendError>;
    /// Join or leave a room, for a session wherever it is.
    fn room_op<'a>(
        &'a self,
        op: RoomOp,
        session: SessionId,
        room: &'a str,
    ) -> BoxFuture<'a, Result<bool, SendError>>;
    /// Close a session, wherever it is.
    fn kick(&self, target: KickTarget) -> BoxFuture<'_, Result<(), SendError>>;
    /// Bind a session to a uid (kicking an older holder).
    fn bind<'a>(
        &'a self,
        session: SessionId,
        uid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionId>, SendError>>;
    /// Remove a session's uid binding.
    fn unbind(&self, session: SessionId) -> BoxFuture<'_, Result<(), SendError>>;
    /// Run a handler of `group` and wait for its answer.
    fn call<'a>(
        &'a self,
        group: &'a str,
        frame: Frame,
        origin: Origin,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Bytes, CallError>>;
    /// Run a handler of `group`, no answer.
    fn cast(&self, group: &str, frame: Frame, origin: Origin) -> Result<(), CallError>;
    /// Members of `room` on this node (0 on a backend).
    fn local_members(&self, room: &str) -> usize;
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

/// Checks a uid before it is bound: 1 to 255 bytes.
pub(crate) fn check_uid(uid: &str) -> Result<(), SendError> {
    if uid.is_empty() || uid.len() > 255 {
        Err(SendError::InvalidUid {
            uid: uid.chars().take(64).collect(),
        })
    } else {
        Ok(())
    }
}

/// How a handle holds its node.
#[derive(Clone)]
enum NodeRef {
    /// A handler's context: the node lives while the handler runs.
    Strong(Arc<dyn NodeApi>),
    /// A handle the application keeps: it does not keep a shut-down node's
    /// memory. The state is kept beside it, so `state` can lend it.
    Weak {
        node: Weak<dyn NodeApi>,
        states: Arc<States>,
    },
    /// A handle on nothing (no node runs in this process).
    Nothing,
}

/// The outbound API of one node of this process, for any code: handlers
/// (through [`Ctx`], which dereferences to its handle), game loops, timers,
/// matchmakers, admin tasks.
///
/// ```rust,no_run
/// use std::time::Duration;
/// use zinx_cluster::{ClusterHandle, Frame};
///
/// async fn tick(handle: ClusterHandle) {
///     let mut every = tokio::time::interval(Duration::from_secs(1));
///     loop {
///         every.tick().await;
///         if handle.publish("lobby", Frame::new(30, "tick")).is_err() && !handle.is_running() {
///             return; // the cluster shut down
///         }
///     }
/// }
/// ```
///
/// Get one from [`RunningCluster::handle`](crate::RunningCluster::handle),
/// the [`on_started`](crate::Cluster::on_started) hook, or
/// [`ClusterHandle::handle`] inside a handler (to keep working after it
/// returned). It is cheap to clone and does not keep its node alive: once
/// the node has shut down every operation fails with `Stopped` at once,
/// and one waiting at that moment ends with it — none ever hangs. The same
/// holds for a handler's [`Ctx`].
///
/// A handle acts for a session (its *origin*) or for none. A `Ctx`'s
/// handle acts for the message's session: [`join`](ClusterHandle::join)
/// puts that session in a room, and a [`call`](ClusterHandle::call) shows
/// the callee that session and its uid. A handle from
/// [`RunningCluster::handle`](crate::RunningCluster::handle) acts for none
/// (`join` fails with [`SendError::NoSession`]); [`ClusterHandle::for_session`]
/// gives one acting for a session of your choice.
#[derive(Clone)]
pub struct ClusterHandle {
    /// The node.
    node: NodeRef,
    /// The node's id, kept for messages after it is gone.
    id: u16,
    /// The session this handle acts for.
    origin: Origin,
}

impl std::fmt::Debug for ClusterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHandle")
            .field("node", &self.id)
            .field("session", &self.origin.session)
            .field("running", &self.is_running())
            .finish()
    }
}

impl ClusterHandle {
    /// A handle that keeps `node` alive, acting for `origin`.
    pub(crate) fn strong(node: Arc<dyn NodeApi>, origin: Origin) -> ClusterHandle {
        ClusterHandle {
            id: node.id(),
            node: NodeRef::Strong(node),
            origin,
        }
    }

    /// A handle that does not keep `node` alive, acting for no session.
    pub(crate) fn weak(node: &Arc<dyn NodeApi>) -> ClusterHandle {
        ClusterHandle {
            id: node.id(),
            node: NodeRef::Weak {
                node: Arc::downgrade(node),
                states: node.states().clone(),
            },
            origin: Origin::default(),
        }
    }

    /// A handle on nothing: every operation fails with `Stopped`.
    pub(crate) fn detached() -> ClusterHandle {
        ClusterHandle {
            id: 0,
            node: NodeRef::Nothing,
            origin: Origin::default(),
        }
    }

    /// The node of a handler's context (which holds it strongly).
    pub(crate) fn strong_ref(&self) -> Option<&Arc<dyn NodeApi>> {
        match &self.node {
            NodeRef::Strong(n) => Some(n),
            _ => None,
        }
    }

    /// The origin, for a handler's context to update at bind.
    pub(crate) fn origin_mut(&mut self) -> &mut Origin {
        &mut self.origin
    }

    /// The node, while it runs.
    pub(crate) fn node(&self) -> Result<Arc<dyn NodeApi>, SendError> {
        let node = match &self.node {
            NodeRef::Strong(n) => n.clone(),
            NodeRef::Weak { node, .. } => node.upgrade().ok_or(SendError::Stopped)?,
            NodeRef::Nothing => return Err(SendError::Stopped),
        };
        if node.is_closed() {
            return Err(SendError::Stopped);
        }
        Ok(node)
    }

    /// Runs `f` on the node while it runs, without a reference count for a
    /// handler's context.
    pub(crate) fn with_node<T>(
        &self,
        f: impl FnOnce(&dyn NodeApi) -> Result<T, SendError>,
    ) -> Result<T, SendError> {
        match &self.node {
            NodeRef::Strong(n) if !n.is_closed() => f(&**n),
            NodeRef::Strong(_) => Err(SendError::Stopped),
            NodeRef::Weak { node, .. } => match node.upgrade() {
                Some(n) if !n.is_closed() => f(&*n),
                _ => Err(SendError::Stopped),
            },
            NodeRef::Nothing => Err(SendError::Stopped),
        }
    }

    /// The id of the node this handle acts from.
    pub fn node_id(&self) -> u16 {
        self.id
    }

    /// Whether the node still runs (it has not closed at shutdown).
    pub fn is_running(&self) -> bool {
        self.node().is_ok()
    }

    /// The session this handle acts for: in a handler, the message's
    /// session (`None` in a call or cast made outside any session).
    pub fn session(&self) -> Option<SessionId> {
        self.origin.session
    }

    /// The uid bound to [`session`](ClusterHandle::session) when known (in
    /// a handler: when the message was sent, or as bound since by
    /// [`Ctx::bind`]).
    pub fn uid(&self) -> Option<&str> {
        self.origin.uid.as_deref()
    }

    /// The same handle acting for `session` (its uid unknown): to join or
    /// leave rooms for it, or to make calls the callee sees as made for it.
    pub fn for_session(&self, session: SessionId) -> ClusterHandle {
        let mut h = self.clone();
        h.origin = Origin {
            session: Some(session),
            uid: None,
        };
        h
    }

    /// A handle to keep working after the handler returned (a timer, a
    /// spawned task): the same node and origin, without keeping the node
    /// alive.
    pub fn handle(&self) -> ClusterHandle {
        match &self.node {
            NodeRef::Strong(n) => {
                let mut h = ClusterHandle::weak(n);
                h.origin = self.origin.clone();
                h
            }
            NodeRef::Weak { .. } | NodeRef::Nothing => self.clone(),
        }
    }

    /// The application state of type `S` given to
    /// [`Cluster::with_state`](crate::Cluster::with_state), if any. (A
    /// [`State<S>`](crate::State) handler argument is checked at start
    /// instead.)
    pub fn state<S: Send + Sync + 'static>(&self) -> Option<&S> {
        match &self.node {
            NodeRef::Strong(n) => n.states().get::<S>(),
            NodeRef::Weak { states, .. } => states.get::<S>(),
            NodeRef::Nothing => None,
        }
    }

    /// Sends `msg` to any session of the cluster: in place on its own
    /// gate, over the link to its gate from a backend, through the
    /// directory from another gate.
    pub fn push(&self, session: SessionId, msg: impl Outgoing) -> Result<(), SendError> {
        let frame = msg
            .into_frame()
            .map_err(|error| SendError::Encode { error })?;
        self.with_node(|n| n.deliver(session, frame))
    }

    /// Sends `msg` to the session bound to `uid`, on whichever gate holds
    /// it; [`SendError::NotOnline`] when nobody is bound to it.
    pub async fn push_to_uid(&self, uid: &str, msg: impl Outgoing) -> Result<(), SendError> {
        let frame = msg
            .into_frame()
            .map_err(|error| SendError::Encode { error })?;
        let node = self.node()?;
        until_closed(&*node, SendError::Stopped, node.push_to_uid(uid, frame)).await
    }

    /// Sends `msg` to every session on every gate, exactly once each. On
    /// the wire this is one message per gate, not one per user.
    pub fn broadcast(&self, msg: impl Outgoing) -> Result<(), SendError> {
        let frame = msg
            .into_frame()
            .map_err(|error| SendError::Encode { error })?;
        self.with_node(|n| n.broadcast(frame, false))
    }

    /// Like [`broadcast`](ClusterHandle::broadcast), to the sessions bound
    /// to a uid only (the logged-in users).
    pub fn broadcast_to_users(&self, msg: impl Outgoing) -> Result<(), SendError> {
        let frame = msg
            .into_frame()
            .map_err(|error| SendError::Encode { error })?;
        self.with_node(|n| n.broadcast(frame, true))
    }

    /// Sends `msg` to every member of `room`, on every gate, exactly once
    /// each: one message per gate, each gate writes it to its members.
    pub fn publish(&self, room: &str, msg: impl Outgoing) -> Result<(), SendError> {
        let frame = msg
            .into_frame()
            .map_err(|error| SendError::Encode { error })?;
        self.with_node(|n| n.publish(room, frame))
    }

    /// Members of `room` on this handle's node (0 on a backend:
    /// membership lives on the gates).
    pub fn local_members(&self, room: &str) -> usize {
        self.with_node(|n| Ok(n.local_members(room))).unwrap_or(0)
    }

    /// Puts the acting session in `room` (1 to 128 bytes), wherever the
    /// session is; `false` when it already was a member. It stays until
    /// [`leave`](ClusterHandle::leave) or until it closes.
    pub async fn join(&self, room: &str) -> Result<bool, SendError> {
        self.room_op(RoomOp::Join, room).await
    }

    /// Takes the acting session out of `room`; `false` when it was not a
    /// member.
    pub async fn leave(&self, room: &str) -> Result<bool, SendError> {
        self.room_op(RoomOp::Leave, room).await
    }

    async fn room_op(&self, op: RoomOp, room: &str) -> Result<bool, SendError> {
        let session = self.origin.session.ok_or(SendError::NoSession)?;
        let node = self.node()?;
        until_closed(&*node, SendError::Stopped, node.room_op(op, session, room)).await
    }

    /// Closes a session (by [`SessionId`]) or the session bound to a uid
    /// (by `&str` / `String`), wherever it is.
    pub async fn kick(&self, target: impl Into<KickTarget>) -> Result<(), SendError> {
        let node = self.node()?;
        until_closed(&*node, SendError::Stopped, node.kick(target.into())).await
    }

    /// Runs the handler of `request`'s msg_id on a node of `group` (chosen
    /// by the group's balancing, over live nodes only) and returns its reply
    /// as an `A`, or fails after `call_timeout_ms` (or the
    /// [`timeout`](Call::timeout) given). The callee sees the acting
    /// session and uid.
    ///
    /// `A` is any payload type: a [`Message`](crate::Message), `Json<T>`,
    /// `String`, `Bytes`. An answer that does not decode as `A` is
    /// [`CallError::BadAnswer`]; a failing callee's error comes back as
    /// [`CallError::Remote`] with the callee's code.
    ///
    /// ```rust,no_run
    /// # use zinx_cluster::prelude::*;
    /// # use std::time::Duration;
    /// # async fn f(ctx: &Ctx) -> Result<(), CallError> {
    /// // typed: the request's msg_id is its type's, the answer decodes as the type asked for
    /// # #[derive(Message, serde::Serialize, serde::Deserialize)] #[message(id = 20)] struct Top { n: u32 }
    /// let top: Json<Vec<String>> = ctx.call("rank", &Top { n: 10 }).await?;
    /// // raw, with its own timeout
    /// let bytes: Bytes = ctx.call("rank", Frame::new(20, "{}")).timeout(Duration::from_secs(1)).await?;
    /// # Ok(()) }
    /// ```
    pub fn call<'a, A>(&'a self, group: &'a str, request: impl Outgoing) -> Call<'a, A> {
        Call::new(self, group, request.into_frame())
    }

    /// The raw call behind [`Call`].
    pub(crate) async fn call_frame(
        &self,
        group: &str,
        frame: Frame,
        timeout: Option<Duration>,
    ) -> Result<Bytes, CallError> {
        let node = self.node().map_err(|_| CallError::Stopped)?;
        let timeout = timeout.unwrap_or_else(|| node.call_timeout());
        let call = node.call(group, frame, self.origin.clone(), timeout);
        until_closed(&*node, CallError::Stopped, call).await
    }

    /// Runs the handler of `msg`'s msg_id on a node of `group` without
    /// waiting for anything: fails only when no node of the group is
    /// reachable now.
    pub fn cast(&self, group: &str, msg: impl Outgoing) -> Result<(), CallError> {
        let frame = msg
            .into_frame()
            .map_err(|error| CallError::Encode { error })?;
        let node = self.node().map_err(|_| CallError::Stopped)?;
        node.cast(group, frame, self.origin.clone())
    }
}

/// Runs `op`, or ends with `stopped` as soon as the node closes.
async fn until_closed<T, E>(
    node: &dyn NodeApi,
    stopped: E,
    op: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    tokio::select! {
        r = op => r,
        _ = node.closed().cancelled() => Err(stopped),
    }
}
