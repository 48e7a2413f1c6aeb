//! The backend role: a node that runs the messages gates forward to it
//! (in order per session, `executor`), serves calls and casts, and reaches
//! clients only through their gates. It holds no client session: what it
//! knows of a session is its queue here, kept until the gate says the
//! session closed or the gate is gone (`gate_loss`).

mod executor;
mod gate_loss;

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::api::{KickTarget, NodeApi, Origin, RoomOp};
use crate::envelope::{Envelope, Kind};
use crate::error::{CallError, SendError};
use crate::frame::Frame;
use crate::handler::BoxFuture;
use crate::node::{BROADCAST_USERS_ONLY, Node, Role, envelope};
use crate::peer::{LinkEvents, Peer};
use crate::session::{Session, SessionId};
use crate::state::States;

use executor::Queues;

/// A backend node.
pub(crate) struct Backend {
    /// What every node has.
    node: Node,
    /// This backend, for the handlers' contexts and spawned work.
    me: Weak<Backend>,
    /// The sessions served here, with their waiting messages.
    queues: Queues,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").field("node", &self.node).finish()
    }
}

impl Backend {
    /// A backend of `node`.
    pub(crate) fn new(node: Node) -> Arc<Backend> {
        let limit = node.settings().node_session_queue;
        Arc::new_cyclic(|me| Backend {
            node,
            me: me.clone(),
            queues: Queues::new(limit),
        })
    }

    /// What every node has.
    pub(crate) fn node(&self) -> &Node {
        &self.node
    }

    /// This backend as an owner of itself (it lives in an `Arc`).
    fn me(&self) -> Option<Arc<Backend>> {
        self.me.upgrade()
    }

    /// Handles one envelope from node `from`. Never blocks: work is
    /// spawned or run in place until it waits.
    fn dispatch(self: &Arc<Self>, from: u16, env: Envelope) {
        match env.kind {
            Kind::Heartbeat => self.node.on_heartbeat(from, &env),
            Kind::Response => self.node.on_response(env),
            Kind::Forward => self.on_forward(env),
            Kind::Call | Kind::Cast => crate::node::on_call(self, from, env),
            Kind::SessionClosed => self.on_session_closed(&env),
            Kind::SessionMoved => self.on_session_moved(&env),
            kind => warn!(from, ?kind, "envelope a backend does not take: ignored"),
        }
    }

    /// A gate says a session closed: its queue goes, its hooks run.
    fn on_session_closed(&self, env: &Envelope) {
        let session = SessionId(env.session);
        if self.queues.close_session(session).is_some() {
            self.node.run_hooks(session, crate::node::uid_of(&env.uid));
        }
    }

    /// A gate says a session moved (a resume on another gate): it lives on
    /// under its new id, its hooks do not run.
    fn on_session_moved(&self, env: &Envelope) {
        let Some(to) = env
            .payload
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
        else {
            return;
        };
        self.queues
            .moved(SessionId(env.session), SessionId(u64::from_be_bytes(to)));
    }

    /// Whether nothing is in flight here.
    pub(crate) fn idle(&self) -> bool {
        self.node.idle()
    }

    /// Sends a broadcast or a room's publish to every gate.
    fn to_every_gate(
        &self,
        kind: Kind,
        frame: Frame,
        flags: u8,
        room: Bytes,
    ) -> Result<(), SendError> {
        self.node.to_every_gate(|| {
            let mut env = envelope(kind, self.node.id(), frame.msg_id, 0, frame.data.clone());
            env.flags = flags;
            env.uid = room.clone();
            env
        })
    }
}

impl Role for Backend {
    fn node(&self) -> &Node {
        &self.node
    }
}

impl LinkEvents for Backend {
    fn on_envelope(self: &Arc<Self>, from: u16, env: Envelope) {
        self.dispatch(from, env);
    }

    fn on_link_down(self: &Arc<Self>, peer: &Peer) {
        self.node.peer_lost(peer);
        self.gate_link_lost(peer);
        // Forwards on the link are gone with it (`Peer` reset them).
        self.node.work_finished();
    }
}

impl crate::admin::AdminSource for Backend {
    fn render_metrics(&self, out: &mut String) {
        self.node.render_metrics(out);
    }

    fn readiness(&self) -> Result<(), String> {
        self.node.readiness()
    }
}

impl NodeApi for Backend {
    fn id(&self) -> u16 {
        self.node.id()
    }

    fn name(&self) -> &str {
        self.node.name()
    }

    fn is_closed(&self) -> bool {
        self.node.is_closed()
    }

    fn closed(&self) -> &CancellationToken {
        self.node.closed()
    }

    fn states(&self) -> &Arc<States> {
        self.node.states()
    }

    fn call_timeout(&self) -> Duration {
        self.node.call_timeout()
    }

    fn offer(&self, session: &Session, _: Frame) -> Result<(), SendError> {
        // A backend holds no client session; its handlers' contexts never
        // name one as local.
        Err(SendError::SessionGone {
            session: session.id,
        })
    }

    fn deliver(&self, session: SessionId, frame: Frame) -> Result<(), SendError> {
        self.node.deliver_remote(session, frame)
    }

    fn push_to_uid<'a>(
        &'a self,
        uid: &'a str,
        frame: Frame,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(self.node.push_to_uid_remote(uid, frame))
    }

    fn broadcast(&self, frame: Frame, users_only: bool) -> Result<(), SendError> {
        let flags = if users_only { BROADCAST_USERS_ONLY } else { 0 };
        self.to_every_gate(Kind::Broadcast, frame, flags, Bytes::new())
    }

    fn publish(&self, room: &str, frame: Frame) -> Result<(), SendError> {
        crate::rooms::check_room(room)?;
        let room = Bytes::copy_from_slice(room.as_bytes());
        self.to_every_gate(Kind::Room, frame, 0, room)
    }

    fn room_op<'a>(
        &'a self,
        op: RoomOp,
        session: SessionId,
        room: &'a str,
    ) -> BoxFuture<'a, Result<bool, SendError>> {
        Box::pin(async move {
            crate::rooms::check_room(room)?;
            self.node.room_op_remote(op, session, room).await
        })
    }

    fn kick(&self, target: KickTarget) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            match target {
                KickTarget::Session(s) => self.node.kick_remote(s).await,
                KickTarget::Uid(uid) => self.node.kick_uid_remote(&uid).await,
            }
        })
    }

    fn bind<'a>(
        &'a self,
        session: SessionId,
        uid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionId>, SendError>> {
        Box::pin(async move {
            crate::api::check_uid(uid)?;
            self.node.bind_remote(session, uid).await
        })
    }

    fn unbind(&self, session: SessionId) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(self.node.unbind_remote(session))
    }

    fn call<'a>(
        &'a self,
        group: &'a str,
        frame: Frame,
        origin: Origin,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Bytes, CallError>> {
        Box::pin(async move {
            let me: Arc<dyn NodeApi> = self.me().ok_or(CallError::Stopped)?;
            self.node.call(me, group, frame, origin, timeout).await
        })
    }

    fn cast(&self, group: &str, frame: Frame, origin: Origin) -> Result<(), CallError> {
        let me = self.me().ok_or(CallError::Stopped)?;
        crate::node::cast(&me, group, frame, origin)
    }

    fn local_members(&self, _: &str) -> usize {
        0
    }
}
