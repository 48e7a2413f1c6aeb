//! [`ClusterHandle`]: what a handler can do through `Ctx`, for code outside
//! handlers — game loops, timers, matchmakers, admin tasks.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;

use super::Node;
use super::ctx::{KickTarget, encode_send};
use crate::error::{CallError, SendError};
use crate::frame::Frame;
use crate::handler::FromPayload;
use crate::message::Message;
use crate::session::SessionId;
use crate::state::States;

/// A handle on one node of this process, for code that runs outside any
/// handler: it pushes, broadcasts, publishes to rooms, kicks, calls and
/// casts with the same semantics as [`Ctx`](crate::Ctx), from any task.
/// Like `Ctx`, each sending operation takes a [`Message`] and sends on its
/// msg_id; its `_raw` twin takes a msg_id and bytes.
///
/// Get one from [`RunningCluster::handle`](crate::RunningCluster::handle),
/// from the [`on_started`](crate::Cluster::on_started) hook, or from
/// [`Ctx::handle`](crate::Ctx::handle) (to keep working after the handler
/// returned, e.g. a timer):
///
/// ```rust,no_run
/// use std::time::Duration;
/// use zinx_cluster::ClusterHandle;
///
/// async fn tick(handle: ClusterHandle) {
///     let mut every = tokio::time::interval(Duration::from_secs(1));
///     loop {
///         every.tick().await;
///         if handle.publish_raw("lobby", 30, "tick").is_err() && !handle.is_running() {
///             return; // the cluster shut down
///         }
///     }
/// }
/// ```
///
/// It is cheap to clone and does not keep its node alive: once the node
/// has shut down every operation fails with `Stopped` at once, and one
/// waiting at that moment ends with it — none ever hangs.
///
/// A handle carries no client session: a `call` made through it is seen
/// by the callee as made outside any session, like a call from a timer.
#[derive(Clone)]
pub struct ClusterHandle {
    /// The node; `Weak` so that a handle kept by the application does not
    /// keep a shut-down node's memory.
    node: Weak<Node>,
    /// The application state (immutable once started), so that
    /// [`ClusterHandle::state`] can lend it.
    states: Arc<States>,
    /// The node's id, kept for messages after it is gone.
    id: u16,
}

impl std::fmt::Debug for ClusterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHandle")
            .field("node", &self.id)
            .field("running", &self.is_running())
            .finish()
    }
}

impl ClusterHandle {
    pub(crate) fn new(node: &Arc<Node>) -> ClusterHandle {
        ClusterHandle {
            node: Arc::downgrade(node),
            states: node.states.clone(),
            id: node.id(),
        }
    }

    /// A handle on nothing: every operation fails with `Stopped`.
    pub(crate) fn detached() -> ClusterHandle {
        ClusterHandle {
            node: Weak::new(),
            states: Arc::default(),
            id: 0,
        }
    }

    /// The id of the node this handle acts from.
    pub fn node_id(&self) -> u16 {
        self.id
    }

    /// Whether the node still runs (it has not closed at shutdown).
    pub fn is_running(&self) -> bool {
        self.node
            .upgrade()
            .is_some_and(|n| !n.closed().is_cancelled())
    }

    /// The application state of type `S` given to
    /// [`Cluster::with_state`](crate::Cluster::with_state), if any.
    pub fn state<S: Send + Sync + 'static>(&self) -> Option<&S> {
        self.states.get::<S>()
    }

    fn node(&self) -> Result<Arc<Node>, SendError> {
        match self.node.upgrade() {
            Some(n) if !n.closed().is_cancelled() => Ok(n),
            _ => Err(SendError::Stopped),
        }
    }

    fn call_node(&self) -> Result<Arc<Node>, CallError> {
        self.node().map_err(|_| CallError::Stopped)
    }

    /// Sends `msg` on its msg_id (`M::ID`) to any session of the cluster.
    pub fn push<M: Message>(&self, session: SessionId, msg: &M) -> Result<(), SendError> {
        self.push_raw(session, M::ID, encode_send(msg)?)
    }

    /// [`ClusterHandle::push`] of bytes on a msg_id.
    pub fn push_raw(
        &self,
        session: SessionId,
        msg_id: u32,
        data: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        self.node()?.deliver(session, Frame::new(msg_id, data))
    }

    /// Sends `msg` on `M::ID` to the session bound to `uid`, on whichever
    /// gate holds it; [`SendError::NotOnline`] when nobody is bound to it.
    pub async fn push_to_uid<M: Message>(&self, uid: &str, msg: &M) -> Result<(), SendError> {
        let data = encode_send(msg)?;
        self.push_to_uid_raw(uid, M::ID, data).await
    }

    /// [`ClusterHandle::push_to_uid`] of bytes on a msg_id.
    pub async fn push_to_uid_raw(
        &self,
        uid: &str,
        msg_id: u32,
        data: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        let node = self.node()?;
        let frame = Frame::new(msg_id, data);
        until_closed(&node, SendError::Stopped, node.push_to_uid(uid, frame)).await
    }

    /// Sends `msg` on `M::ID` to every session on every gate, once each.
    pub fn broadcast<M: Message>(&self, msg: &M) -> Result<(), SendError> {
        self.broadcast_raw(M::ID, encode_send(msg)?)
    }

    /// [`ClusterHandle::broadcast`] of bytes on a msg_id.
    pub fn broadcast_raw(&self, msg_id: u32, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.node()?.broadcast(Frame::new(msg_id, data), false)
    }

    /// Sends `msg` on `M::ID` to every session bound to a uid, on every
    /// gate.
    pub fn broadcast_to_users<M: Message>(&self, msg: &M) -> Result<(), SendError> {
        self.broadcast_to_users_raw(M::ID, encode_send(msg)?)
    }

    /// [`ClusterHandle::broadcast_to_users`] of bytes on a msg_id.
    pub fn broadcast_to_users_raw(
        &self,
        msg_id: u32,
        data: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        self.node()?.broadcast(Frame::new(msg_id, data), true)
    }

    /// Sends `msg` on `M::ID` to every member of `room`, on every gate,
    /// exactly once each (one message per gate).
    pub fn publish<M: Message>(&self, room: &str, msg: &M) -> Result<(), SendError> {
        self.publish_raw(room, M::ID, encode_send(msg)?)
    }

    /// [`ClusterHandle::publish`] of bytes on a msg_id.
    pub fn publish_raw(
        &self,
        room: &str,
        msg_id: u32,
        data: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        self.node()?.publish(room, Frame::new(msg_id, data))
    }

    /// How many members `room` has on this handle's node (0 on a
    /// backend: membership lives on the gates).
    pub fn local_members(&self, room: &str) -> usize {
        self.node.upgrade().map_or(0, |n| n.rooms().members(room))
    }

    /// Adds a session to `room`; `false` when it already was a member. A
    /// handle on a backend (or on the session's own gate) reaches any
    /// session; one on another gate fails with `Unreachable`.
    pub async fn join(&self, session: SessionId, room: &str) -> Result<bool, SendError> {
        let node = self.node()?;
        until_closed(&node, SendError::Stopped, node.join_room(session, room)).await
    }

    /// Removes a session from `room`; `false` when it was not a member.
    pub async fn leave(&self, session: SessionId, room: &str) -> Result<bool, SendError> {
        let node = self.node()?;
        until_closed(&node, SendError::Stopped, node.leave_room(session, room)).await
    }

    /// Closes a session (by [`SessionId`]) or the session bound to a uid.
    pub async fn kick(&self, target: impl Into<KickTarget>) -> Result<(), SendError> {
        let node = self.node()?;
        let target = target.into();
        until_closed(&node, SendError::Stopped, async {
            match target {
                KickTarget::Session(s) => node.kick_session(s).await,
                KickTarget::Uid(uid) => node.kick_uid(&uid).await,
            }
        })
        .await
    }

    /// Runs the handler of `request`'s msg_id on a node of `group` and
    /// returns its reply as an `A`, or fails after the configured
    /// `call_timeout_ms`.
    pub async fn call<Req: Message, A: FromPayload>(
        &self,
        group: &str,
        request: &Req,
    ) -> Result<A, CallError> {
        let timeout = Duration::from_millis(self.call_node()?.settings().call_timeout_ms);
        self.call_timeout(group, request, timeout).await
    }

    /// [`ClusterHandle::call`] with an explicit timeout.
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

    /// [`ClusterHandle::call`] of bytes on a msg_id, answered with bytes.
    pub async fn call_raw(
        &self,
        group: &str,
        msg_id: u32,
        payload: impl Into<Bytes>,
    ) -> Result<Bytes, CallError> {
        let timeout = Duration::from_millis(self.call_node()?.settings().call_timeout_ms);
        self.call_raw_timeout(group, msg_id, payload, timeout).await
    }

    /// [`ClusterHandle::call_raw`] with an explicit timeout.
    pub async fn call_raw_timeout(
        &self,
        group: &str,
        msg_id: u32,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let node = self.call_node()?;
        let call = node.call(group, msg_id, payload.into(), (None, None), timeout);
        until_closed(&node, CallError::Stopped, call).await
    }

    /// Runs the handler of `msg`'s msg_id on a node of `group` without
    /// waiting.
    pub fn cast<M: Message>(&self, group: &str, msg: &M) -> Result<(), CallError> {
        self.cast_raw(group, M::ID, super::call::encode_request(msg)?)
    }

    /// [`ClusterHandle::cast`] of bytes on a msg_id.
    pub fn cast_raw(
        &self,
        group: &str,
        msg_id: u32,
        payload: impl Into<Bytes>,
    ) -> Result<(), CallError> {
        self.call_node()?
            .cast(group, msg_id, payload.into(), (None, None))
    }
}

/// Runs `op`, or ends with `stopped` as soon as the node closes.
async fn until_closed<T, E>(
    node: &Node,
    stopped: E,
    op: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    tokio::select! {
        r = op => r,
        _ = node.closed().cancelled() => Err(stopped),
    }
}
