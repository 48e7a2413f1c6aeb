//! What every node has, whatever its role: its identity, the settings, the
//! routing table, the links to other nodes, the requests waiting on them,
//! the directory, the counters, the handler runner and the lifecycle.
//!
//! | piece | owns |
//! |---|---|
//! | [`routing`] | msg_id → destination, the groups, choosing a node |
//! | [`rpc`] | requests waiting for an answer from another node |
//! | [`remote`] | reaching other nodes: answers, requests, a gate's sessions from elsewhere, fan-out to every gate |
//! | [`run`] | running handlers (client messages, calls, casts) and session-closed hooks; `call` and `cast` |
//!
//! The two roles embed a [`Node`]: a gate (`gate::Gate`: client
//! sessions, rooms, forwards) and a backend (`backend::Backend`:
//! per-session queues of forwarded messages). Links and the directory
//! never call into a node: links hand envelopes up through
//! [`LinkEvents`](crate::peer::LinkEvents), which the roles implement.

mod remote;
mod routing;
mod rpc;
mod run;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::{ClusterConfig, NodeConfig, NodeType};
use crate::directory::Directory;
use crate::envelope::{Envelope, HEARTBEAT_STOPPING, HEARTBEAT_STOPPING_ACK, Kind};
use crate::error::ErrorCode;
use crate::frame::Frame;
use crate::metrics::{Labelled, Metrics};
use crate::peer::{LinkKey, Links, Peer};
use crate::registry::HandlerTable;
use crate::settings::{ErrorReply, Settings};
use crate::state::States;
use crate::trace::Tracer;

pub(crate) use routing::{Dest, Group};
pub use run::SessionClosed;
pub(crate) use run::SessionHook;
pub(crate) use run::{ClientMessage, Role, Runner, cast, on_call};

/// `flags` bit of a [`Kind::Broadcast`]: only sessions bound to a uid.
pub(crate) const BROADCAST_USERS_ONLY: u8 = 1;

/// `flags` bit of a [`Kind::ToSession`] from a backend: this frame is the
/// last answer to a forwarded message (its handler finished). A handler
/// that finishes without answering sends a [`Kind::Done`] instead.
pub(crate) const TO_SESSION_FINAL: u8 = 1;

/// The shared state of one node, whatever its role.
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
    /// The application state given to `Cluster::with_state`.
    states: Arc<States>,
    /// Handler tasks (calls, casts, queued messages) and hooks.
    runner: Runner,
    /// Cancelled first at shutdown: stop accepting and reading new work.
    stopping: CancellationToken,
    /// Cancelled last: close links and sessions.
    closed: CancellationToken,
    /// `closed`, readable with one atomic load (the token's check takes a
    /// lock): every outbound operation checks it.
    closed_now: AtomicBool,
    /// Set once shutdown waits for in-flight work: finishing work then
    /// wakes [`Node::drained`] (a branch on the hot path, nothing more).
    draining: AtomicBool,
    /// Woken when in-flight work finishes while draining.
    work_done: Notify,
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
            settings,
            handlers: parts.handlers,
            routing,
            links,
            gates: config
                .gates()
                .map(|g| g.id)
                .filter(|id| *id != me.id)
                .collect(),
            rpc: rpc::Rpc::default(),
            directory: parts.directory,
            metrics,
            labelled,
            tracer: parts.tracer,
            states: parts.states,
            runner: Runner::new(parts.hooks),
            stopping,
            closed,
            closed_now: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            work_done: Notify::new(),
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

    /// The handlers of this node's group.
    pub(crate) fn handlers(&self) -> &HandlerTable {
        &self.handlers
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

    /// The routing table.
    pub(crate) fn routing(&self) -> &routing::Routing {
        &self.routing
    }

    /// The links.
    pub(crate) fn links(&self) -> &Arc<Links> {
        &self.links
    }

    /// The application state.
    pub(crate) fn states(&self) -> &Arc<States> {
        &self.states
    }

    /// The user directory.
    pub(crate) fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Handler tasks and hooks.
    pub(crate) fn runner(&self) -> &Runner {
        &self.runner
    }

    /// Cancelled when the node stops taking new work.
    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }

    /// Cancelled when the node closes its sessions and links.
    pub(crate) fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    /// Whether the node has closed (one atomic load).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed_now.load(Ordering::Acquire)
    }

    /// `call_timeout_ms`.
    pub(crate) fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.call_timeout_ms)
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

    /// A live node of group `g` for `key`, passing over node `except`
    /// (whose link just failed); this node itself counts as live for its
    /// own group.
    pub(crate) fn choose(&self, g: &Group, key: u64, except: Option<u16>) -> Option<u16> {
        g.choose(key, |id| {
            Some(id) != except && (id == self.id || self.links.is_live(id))
        })
    }

    /// The error frame for a failed client message, per the policy
    /// (counted as an error answer when there is one).
    pub(crate) fn error_frame(&self, msg_id: u32, code: &ErrorCode, error: &str) -> Option<Frame> {
        match self.settings.error_reply {
            ErrorReply::None => None,
            ErrorReply::Frame => {
                let body = serde_json::json!({"msg_id": msg_id, "code": code, "error": error});
                self.metrics.error_answers.add(1);
                Some(Frame::new(
                    self.settings.error_msg_id,
                    Bytes::from(body.to_string()),
                ))
            }
        }
    }

    /// A heartbeat from a linked node: a shutdown notice, or its
    /// acknowledgement of ours.
    pub(crate) fn on_heartbeat(&self, from: u16, env: &Envelope) {
        let Some(peer) = self.links.get(from) else {
            return;
        };
        if env.flags & HEARTBEAT_STOPPING != 0 {
            info!(peer = %peer.name, "peer is shutting down: no new work goes to it");
            peer.mark_stopping();
            // From here on nothing new is chosen for it: say so, behind
            // everything already sent on the link.
            let mut ack = Envelope::new(Kind::Heartbeat);
            ack.node = self.id;
            ack.flags = HEARTBEAT_STOPPING_ACK;
            if let Err(e) = peer.send(ack) {
                debug!(peer = %peer.name, ?e, "shutdown notice not acknowledged");
            }
        }
        if env.flags & HEARTBEAT_STOPPING_ACK != 0 {
            peer.mark_stop_acked();
            self.work_finished();
        }
    }

    /// A link went down: the requests waiting on it fail at once.
    pub(crate) fn peer_lost(&self, peer: &Peer) {
        self.rpc.fail_peer(peer.id);
    }

    /// An answer to one of this node's requests.
    pub(crate) fn on_response(&self, env: Envelope) {
        self.rpc.resolve(
            env.request,
            crate::envelope::Status::from_u8(env.flags),
            env.payload,
        );
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

    /// Whether nothing of the node's own is in flight: no handler running
    /// here (in place or queued), and every linked node has acknowledged
    /// the shutdown notice (so nothing it sent is still on its way). The
    /// roles add theirs.
    pub(crate) fn idle(&self) -> bool {
        self.runner.is_idle()
            && self.metrics.inflight.get() == 0
            && self.links.iter().all(|p| p.quiet_for_us())
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
        self.runner.close();
    }

    /// Waits until `idle` holds (the role's view, which includes
    /// [`Node::idle`]): woken by the work finishing, not by a timer. The
    /// caller bounds it.
    pub(crate) async fn drained(&self, idle: impl Fn() -> bool) {
        info!(
            node = %self.name,
            handlers_in_place = self.metrics.inflight.get(),
            tasks_idle = self.runner.is_idle(),
            "shutdown: waiting for work in flight"
        );
        loop {
            let notified = self.work_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if idle() {
                return;
            }
            // Runner tasks end without calling `work_finished`: while
            // some run, wait for them directly as well.
            if self.runner.is_idle() {
                notified.await;
            } else {
                tokio::select! {
                    _ = notified => {}
                    _ = self.runner.wait() => {}
                }
            }
        }
    }

    /// Closes sessions and links; waits (at most `flush`) for the link
    /// writers to send what was queued.
    pub(crate) async fn close(&self, flush: Duration) {
        self.closed_now.store(true, Ordering::Release);
        self.closed.cancel();
        self.links.close(flush).await;
    }

    /// Appends the node's own metrics (counters, labelled, links) in the
    /// Prometheus text format.
    pub(crate) fn render_metrics(&self, out: &mut String) {
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
}

/// The uid of a session as sent in an envelope.
pub(crate) fn uid_of(bytes: &Bytes) -> Option<Arc<str>> {
    if bytes.is_empty() {
        None
    } else {
        std::str::from_utf8(bytes).ok().map(Arc::from)
    }
}

/// An envelope of `kind` from node `from`.
pub(crate) fn envelope(
    kind: Kind,
    from: u16,
    msg_id: u32,
    session: u64,
    payload: Bytes,
) -> Envelope {
    let mut env = Envelope::new(kind);
    env.node = from;
    env.msg_id = msg_id;
    env.session = session;
    env.payload = payload;
    env
}

/// The text of an envelope field (a uid, a room name).
pub(crate) fn text(payload: &Bytes) -> String {
    String::from_utf8_lossy(payload).into_owned()
}
