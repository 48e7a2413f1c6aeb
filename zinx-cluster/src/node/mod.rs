//! One running node, as a handful of small owners:
//!
//! | piece | owns |
//! |---|---|
//! | [`routing`] | msg_id → destination, the groups, choosing a node |
//! | [`rpc`] | requests waiting for an answer from another node |
//! | [`executor`] | per-session ordered queues, running handlers, hooks |
//! | [`delivery`] | getting a frame to a session, a uid, everybody |
//! | [`call`] | `call` / `cast` to another group |
//! | [`dispatch`] | one small function per kind of envelope received |
//! | [`gate_loss`] | sessions across a lost gate link: a backend ends them once the gate is really gone; a gate re-sends the closes the link missed |
//! | [`room`] | rooms across gates: join, leave, publish |
//! | [`ctx`] | [`Ctx`], what a handler sees of all this |
//! | [`handle`] | [`ClusterHandle`], the same operations for code outside handlers |
//!
//! The node holds them together with what they share: its identity, the
//! settings, the links (`peer`), the client sessions (`session`; a backend's
//! table stays empty), the directory, the counters and the lifecycle. Links
//! and the directory never call into the node: links hand envelopes up
//! through [`LinkEvents`], which the node implements here.

mod call;
pub(crate) mod ctx;
mod delivery;
mod dispatch;
mod executor;
mod gate_loss;
mod handle;
mod room;
mod routing;
mod rpc;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::{ClusterConfig, NodeConfig, NodeType};
use crate::directory::Directory;
use crate::envelope::{Envelope, HEARTBEAT_STOPPING, Kind};
use crate::frame::Frame;
use crate::metrics::{Labelled, Metrics};
use crate::peer::{LinkEvents, LinkKey, Links, Peer};
use crate::registry::HandlerTable;
use crate::rooms::Rooms;
use crate::session::Sessions;
use crate::settings::{ErrorReply, Settings};
use crate::state::States;
use crate::trace::Tracer;

pub use ctx::{Ctx, KickTarget};
pub use executor::{SessionClosed, SessionHook};
pub use handle::ClusterHandle;
pub(crate) use routing::Dest;

/// `flags` bit of a [`Kind::Broadcast`]: only sessions bound to a uid.
const BROADCAST_USERS_ONLY: u8 = 1;

/// `flags` bit of a [`Kind::ToSession`] from a backend: this frame is the
/// last answer to a forwarded message (its handler finished). A handler
/// that finishes without answering sends a [`Kind::Done`] instead.
pub(crate) const TO_SESSION_FINAL: u8 = 1;

/// The shared state of one node.
pub(crate) struct Node {
    /// `ID` in `dinx.json`.
    id: u16,
    /// `Name` in `dinx.json`, for logs and `Ctx::node_name`.
    name: String,
    /// Every knob of `settings.json`.
    settings: Arc<Settings>,
    /// Handlers of this node's group, by msg_id.
    handlers: Arc<HandlerTable>,
    /// Where each msg_id goes; the groups.
    routing: routing::Routing,
    /// Links to the other nodes.
    links: Arc<Links>,
    /// Gate node ids other than this one (reached over a link when there
    /// is one, else through the directory).
    gates: Vec<u16>,
    /// This gate's client sessions (always empty on a backend).
    sessions: Sessions,
    /// Which of this gate's sessions are in which room (empty on a backend).
    rooms: Rooms,
    /// The application state given to `Cluster::with_state`.
    states: Arc<States>,
    /// Forwarded messages, calls and casts being run here.
    exec: executor::Executor,
    /// Requests to other nodes waiting for their answer.
    rpc: rpc::Rpc,
    /// Where uids are; the gate-to-gate bus.
    directory: Directory,
    /// Counters (shared with the links).
    metrics: Arc<Metrics>,
    /// Per-msg_id, per-group and per-transport metrics (`/metrics`).
    labelled: Labelled,
    /// Spans of client messages, when tracing is on.
    tracer: Tracer,
    /// Cancelled first at shutdown: stop accepting and reading new work.
    stopping: CancellationToken,
    /// Cancelled last: close links and sessions.
    closed: CancellationToken,
    /// Set once shutdown waits for in-flight work: finishing work then
    /// wakes [`Node::drained`] (a branch on the hot path, nothing more).
    draining: AtomicBool,
    /// Woken when in-flight work finishes while draining.
    work_done: Notify,
    /// On a gate: session-closed notices for backends whose link was down,
    /// sent when it is back (`gate_loss`).
    pending_closes: gate_loss::PendingCloses,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What [`Node::new`] needs besides the configuration.
pub(crate) struct NodeParts {
    /// The handlers of the process.
    pub(crate) handlers: Arc<HandlerTable>,
    /// The node's directory.
    pub(crate) directory: Directory,
    /// The cluster secret as a key.
    pub(crate) key: LinkKey,
    /// This process's run id of the node (told to linked nodes in the
    /// hello; names the node's bindings in the directory).
    pub(crate) run: u64,
    /// The node's counters (shared with its directory).
    pub(crate) metrics: Arc<Metrics>,
    /// Session-closed hooks.
    pub(crate) hooks: Vec<SessionHook>,
    /// Cancelled when the process starts shutting down.
    pub(crate) root: CancellationToken,
    /// Where the node's spans go (off unless tracing is configured).
    pub(crate) tracer: Tracer,
    /// The application state.
    pub(crate) states: Arc<States>,
}

impl Node {
    pub(crate) fn new(me: &NodeConfig, config: &ClusterConfig, parts: NodeParts) -> Node {
        let settings = Arc::new(config.settings.clone());
        let metrics = parts.metrics;
        let routing = routing::Routing::new(config, &me.group, &parts.handlers);
        let mut peers = std::collections::HashMap::new();
        for n in &config.nodes {
            if n.id == me.id {
                continue;
            }
            let we_dial = match (me.node_type, n.node_type) {
                (NodeType::Gate, NodeType::Backend) => true,
                (NodeType::Backend, NodeType::Backend) => me.id < n.id,
                (NodeType::Backend, NodeType::Gate) => false,
                // Gates talk through the directory, not links.
                (NodeType::Gate, NodeType::Gate) => continue,
            };
            peers.insert(
                n.id,
                Arc::new(Peer::new(
                    n.id,
                    n.name.clone(),
                    n.group.clone(),
                    n.addr(),
                    we_dial,
                )),
            );
        }
        let targets = routing.forward_targets();
        let labelled = Labelled::new(
            settings.metrics,
            config.routes.iter().map(|r| r.msg_id),
            targets
                .iter()
                .map(|&g| (g, routing.group_at(g).name.clone())),
        );
        let stopping = parts.root.child_token();
        let closed = CancellationToken::new();
        let links = Arc::new(
            Links::new(
                me.id,
                peers,
                parts.key,
                settings.clone(),
                metrics.clone(),
                stopping.clone(),
                closed.clone(),
            )
            .with_run(parts.run),
        );
        Node {
            id: me.id,
            name: me.name.clone(),
            settings: settings.clone(),
            handlers: parts.handlers,
            routing,
            links,
            gates: config
                .gates()
                .map(|g| g.id)
                .filter(|id| *id != me.id)
                .collect(),
            sessions: Sessions::new(me.id),
            rooms: Rooms::default(),
            states: parts.states,
            exec: executor::Executor::new(settings.node_session_queue, parts.hooks),
            rpc: rpc::Rpc::default(),
            directory: parts.directory,
            metrics,
            labelled,
            tracer: parts.tracer,
            stopping,
            closed,
            draining: AtomicBool::new(false),
            work_done: Notify::new(),
            pending_closes: gate_loss::PendingCloses::default(),
        }
    }

    /// `ID` in `dinx.json`.
    pub(crate) fn id(&self) -> u16 {
        self.id
    }

    /// `Name` in `dinx.json`.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The settings.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The counters.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The labelled metrics (per msg_id, group, transport).
    pub(crate) fn labelled(&self) -> &Labelled {
        &self.labelled
    }

    /// The tracer (off unless tracing is configured).
    pub(crate) fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// Whether the node should get traffic: it serves, and every group it
    /// forwards to has a live node; otherwise why not (for `/readyz`).
    pub(crate) fn readiness(&self) -> Result<(), String> {
        if self.stopping.is_cancelled() {
            return Err(format!("node {} is shutting down", self.name));
        }
        let dead: Vec<&str> = self
            .routing
            .forward_targets()
            .into_iter()
            .map(|g| self.routing.group_at(g))
            .filter(|g| {
                !g.nodes
                    .iter()
                    .any(|&id| id == self.id || self.links.is_live(id))
            })
            .map(|g| g.name.as_str())
            .collect();
        if dead.is_empty() {
            Ok(())
        } else {
            Err(format!("no live node in group(s) {}", dead.join(", ")))
        }
    }

    /// The routing table.
    pub(crate) fn routing(&self) -> &routing::Routing {
        &self.routing
    }

    /// The links.
    pub(crate) fn links(&self) -> &Arc<Links> {
        &self.links
    }

    /// This gate's client sessions.
    pub(crate) fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// This gate's rooms.
    pub(crate) fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    /// The application state.
    pub(crate) fn states(&self) -> &States {
        &self.states
    }

    /// The user directory.
    pub(crate) fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Cancelled when the node stops taking new work.
    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }

    /// Cancelled when the node closes its sessions and links.
    pub(crate) fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    /// A live node of group `g` for `key`; this node itself counts as live
    /// for its own group.
    pub(crate) fn choose(&self, g: &routing::Group, key: u64) -> Option<u16> {
        g.choose(key, |id| id == self.id || self.links.is_live(id))
    }

    /// [`Node::choose`] passing over node `except` (whose link just failed).
    pub(crate) fn choose_except(
        &self,
        g: &routing::Group,
        key: u64,
        except: Option<u16>,
    ) -> Option<u16> {
        g.choose(key, |id| {
            Some(id) != except && (id == self.id || self.links.is_live(id))
        })
    }

    // ---------------------------------------------------------------
    // Answers to clients
    // ---------------------------------------------------------------

    /// The error frame for a failed client message, per the policy.
    pub(crate) fn error_frame(&self, msg_id: u32, code: &str, error: &str) -> Option<Frame> {
        match self.settings.error_reply {
            ErrorReply::None => None,
            ErrorReply::Frame => {
                let body = serde_json::json!({"msg_id": msg_id, "code": code, "error": error});
                Some(Frame::new(
                    self.settings.error_msg_id,
                    Bytes::from(body.to_string()),
                ))
            }
        }
    }

    // ---------------------------------------------------------------
    // Lifecycle
    // ---------------------------------------------------------------

    /// Notes that a piece of in-flight work finished (an in-place handler,
    /// a forwarded message's completion): wakes a draining shutdown.
    pub(crate) fn work_finished(&self) {
        if self.draining.load(Ordering::Relaxed) {
            self.work_done.notify_waiters();
        }
    }

    /// Whether nothing is in flight: no handler running here (in place or
    /// queued), no forwarded message waiting for its node's completion, and
    /// every linked node has acknowledged the shutdown notice (so nothing
    /// it sent is still on its way).
    fn idle(&self) -> bool {
        self.exec.is_idle()
            && self.metrics.inflight.get() == 0
            && self.links.iter().all(|p| p.quiet_for_us())
            && self.sessions.forwards_open() == 0
    }

    /// Starts a graceful stop: tells linked nodes to choose this one for
    /// nothing new (a message crossing a link as the link closes would get
    /// no answer at all), and stops taking new handler work.
    pub(crate) fn begin_stop(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.stopping.cancel();
        for peer in self.links.iter() {
            let mut env = Envelope::new(Kind::Heartbeat);
            env.node = self.id;
            env.flags = HEARTBEAT_STOPPING;
            if let Err(e) = peer.send(env) {
                debug!(peer = %peer.name, ?e, "shutdown not announced");
            }
        }
        self.exec.close();
    }

    /// Waits until nothing is in flight (see [`Node::idle`]): woken by the
    /// work finishing, not by a timer. The caller bounds it.
    pub(crate) async fn drained(&self) {
        let forwards = self.sessions.forwards_open();
        info!(
            node = %self.name,
            forwards,
            handlers_in_place = self.metrics.inflight.get(),
            tasks_idle = self.exec.is_idle(),
            "shutdown: waiting for work in flight"
        );
        loop {
            let notified = self.work_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.idle() {
                return;
            }
            // Executor tasks end without calling `work_finished`: while
            // some run, wait for them directly as well.
            if self.exec.is_idle() {
                notified.await;
            } else {
                tokio::select! {
                    _ = notified => {}
                    _ = self.exec.wait() => {}
                }
            }
        }
    }

    /// Closes sessions and links; waits (at most `flush`) for the link
    /// writers to send what was queued.
    pub(crate) async fn close(&self, flush: Duration) {
        self.closed.cancel();
        self.links.close(flush).await;
    }
}

impl crate::admin::AdminSource for Node {
    fn render_metrics(&self, out: &mut String) {
        crate::metrics::render::snapshot(out, &self.name, &self.metrics.snapshot());
        self.labelled.render(&self.name, out);
        let mut links: Vec<(u16, String, bool, bool)> = self
            .links
            .iter()
            .map(|p| (p.id, p.name.clone(), p.is_live(), p.is_in_process()))
            .collect();
        links.sort_unstable();
        let links: Vec<(String, bool, bool)> = links
            .into_iter()
            .map(|(_, n, up, local)| (n, up, local))
            .collect();
        crate::metrics::render::links(out, &self.name, &links);
    }

    fn readiness(&self) -> Result<(), String> {
        Node::readiness(self)
    }
}

impl LinkEvents for Node {
    fn on_envelope(self: &Arc<Self>, from: u16, env: Envelope) {
        self.dispatch(from, env);
    }

    fn on_envelopes(self: &Arc<Self>, from: u16, batch: &mut Vec<Envelope>) {
        // Answers for clients are written at the end of the batch, by this
        // task, one write per session, instead of waking each session's
        // task per answer.
        let _deferred = crate::session::DeferWakes::begin();
        for env in batch.drain(..) {
            self.dispatch(from, env);
        }
    }

    fn on_link_down(self: &Arc<Self>, peer: &Peer) {
        self.link_down(peer);
    }
}

/// The uid of a session as sent in an envelope.
fn uid_of(bytes: &Bytes) -> Option<Arc<str>> {
    if bytes.is_empty() {
        None
    } else {
        std::str::from_utf8(bytes).ok().map(Arc::from)
    }
}

/// An envelope of `kind` from node `from`.
fn envelope(kind: Kind, from: u16, msg_id: u32, session: u64, payload: Bytes) -> Envelope {
    let mut env = Envelope::new(kind);
    env.node = from;
    env.msg_id = msg_id;
    env.session = session;
    env.payload = payload;
    env
}

fn text(payload: &Bytes) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

/// Checks a uid before it is bound: 1 to 255 bytes.
pub(crate) fn check_uid(uid: &str) -> Result<(), crate::error::SendError> {
    if uid.is_empty() || uid.len() > 255 {
        Err(crate::error::SendError::InvalidUid {
            uid: uid.chars().take(64).collect(),
        })
    } else {
        Ok(())
    }
}
