//! One running node: its routing table, peers, sessions (on a gate), the
//! execution of handlers with per-session ordering, and the handling of
//! envelopes from other nodes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, debug_span, info, warn};

use crate::balance;
use crate::config::{ClusterConfig, NodeConfig, NodeType};
use crate::ctx::{Ctx, Mode};
use crate::directory::Directory;
use crate::envelope::{Envelope, HEARTBEAT_STOPPING, Kind, Status};
use crate::error::{CallError, SendError};
use crate::frame::Frame;
use crate::handler::HandlerFailure;
use crate::metrics::Metrics;
use crate::peer::{LinkError, Peer};
use crate::registry::{HandlerTable, Route};
use crate::session::{CloseReason, Session, SessionId, Sessions};
use crate::settings::{Balance, ErrorReply, Settings};

/// Called when a session closes, on the gate and on every node that served
/// it.
pub type SessionHook =
    Arc<dyn Fn(SessionClosed) -> crate::handler::BoxFuture<'static, ()> + Send + Sync>;

/// What a session-closed hook is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionClosed {
    /// The session that closed.
    pub session: SessionId,
    /// Its uid, if it was bound.
    pub uid: Option<String>,
    /// The node running the hook.
    pub node: u16,
}

/// Where a msg_id goes, decided once at start.
#[derive(Clone, Copy)]
pub(crate) enum Dest {
    /// A handler on this node.
    Local(&'static Route),
    /// Forward to a node of backend group `groups[i]`.
    Group(usize),
    /// A route of another gate group: gates do not forward to gates.
    OtherGate(usize),
}

/// A group as the balancer sees it.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) name: String,
    pub(crate) node_type: NodeType,
    pub(crate) nodes: Vec<u16>,
    pub(crate) balance: Balance,
    /// Round-robin cursor.
    pub(crate) rr: AtomicUsize,
}

/// A request waiting for its [`Kind::Response`].
struct Pending {
    /// The node that must answer: its link going down fails the request.
    peer: u16,
    tx: oneshot::Sender<(Status, Bytes)>,
}

/// A client session this node has served: its waiting messages, in
/// arrival order, and its uid. Kept until the gate says the session closed
/// (or the gate's link goes down), so the session-closed hooks run here too.
#[derive(Default)]
struct SessionQueue {
    /// Messages waiting to run.
    jobs: VecDeque<Job>,
    /// A drain task is running this session's messages.
    running: bool,
    /// The uid the gate last sent with the session's messages (reused
    /// while it does not change, so a message costs no allocation).
    uid: Option<Arc<str>>,
}

struct Job {
    route: &'static Route,
    data: Bytes,
    /// The uid bound when the gate forwarded this message: a message queued
    /// before a logout still runs as the user who sent it.
    uid: Option<Arc<str>>,
}

/// The shared state of one node.
pub(crate) struct Node {
    pub(crate) id: u16,
    pub(crate) name: String,
    pub(crate) group: String,
    pub(crate) node_type: NodeType,
    pub(crate) settings: Arc<Settings>,
    /// Handlers of this node's group, by msg_id.
    handlers: Arc<HandlerTable>,
    /// msg_id → destination, sorted for binary search.
    dests: Vec<(u32, Dest)>,
    pub(crate) groups: Vec<Group>,
    /// Every node this node links with.
    pub(crate) peers: HashMap<u16, Arc<Peer>>,
    /// Gate node ids other than this one.
    pub(crate) gates: Vec<u16>,
    /// The sessions of a gate; `None` on a backend.
    pub(crate) sessions: Option<Sessions>,
    /// Sessions served by this node, with their waiting messages.
    queues: DashMap<SessionId, SessionQueue>,
    pending: DashMap<u32, Pending>,
    next_request: AtomicU32,
    pub(crate) directory: Directory,
    pub(crate) metrics: Metrics,
    pub(crate) secret: Vec<u8>,
    /// Cancelled first at shutdown: stop accepting and reading new work.
    pub(crate) stopping: CancellationToken,
    /// Cancelled last: close links and sessions.
    pub(crate) closed: CancellationToken,
    /// Handler executions in flight (shutdown waits for them).
    pub(crate) tasks: TaskTracker,
    hooks: Vec<SessionHook>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl Node {
    pub(crate) fn new(
        me: &NodeConfig,
        config: &ClusterConfig,
        handlers: Arc<HandlerTable>,
        directory: Directory,
        secret: Vec<u8>,
        hooks: Vec<SessionHook>,
        root: &CancellationToken,
    ) -> Node {
        let settings = Arc::new(config.settings.clone());
        let mut groups: Vec<Group> = Vec::new();
        for n in &config.nodes {
            match groups.iter_mut().find(|g| g.name == n.group) {
                Some(g) => g.nodes.push(n.id),
                None => groups.push(Group {
                    name: n.group.clone(),
                    node_type: n.node_type,
                    nodes: vec![n.id],
                    balance: settings.balance_of(&n.group),
                    rr: AtomicUsize::new(0),
                }),
            }
        }
        let mut dests = Vec::new();
        for r in &config.routes {
            let dest = if r.group == me.group {
                match handlers.get(r.msg_id) {
                    Some(route) => Dest::Local(route),
                    // Validation refuses to start without it; skip defensively.
                    None => continue,
                }
            } else {
                match groups.iter().position(|g| g.name == r.group) {
                    Some(i) if groups[i].node_type == NodeType::Backend => Dest::Group(i),
                    Some(i) => Dest::OtherGate(i),
                    None => continue,
                }
            };
            dests.push((r.msg_id, dest));
        }
        dests.sort_by_key(|(id, _)| *id);
        let mut peers = HashMap::new();
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
                    n.node_type,
                    we_dial,
                )),
            );
        }
        let gates = config
            .gates()
            .map(|g| g.id)
            .filter(|id| *id != me.id)
            .collect();
        let stopping = root.child_token();
        Node {
            id: me.id,
            name: me.name.clone(),
            group: me.group.clone(),
            node_type: me.node_type,
            settings,
            handlers,
            dests,
            groups,
            peers,
            gates,
            sessions: (me.node_type == NodeType::Gate).then(|| Sessions::new(me.id)),
            queues: DashMap::new(),
            pending: DashMap::new(),
            next_request: AtomicU32::new(1),
            directory,
            metrics: Metrics::default(),
            secret,
            stopping,
            closed: CancellationToken::new(),
            tasks: TaskTracker::new(),
            hooks,
        }
    }

    pub(crate) fn dest(&self, msg_id: u32) -> Option<Dest> {
        self.dests
            .binary_search_by_key(&msg_id, |(id, _)| *id)
            .ok()
            .map(|i| self.dests[i].1)
    }

    pub(crate) fn handler(&self, msg_id: u32) -> Option<&'static Route> {
        self.handlers.get(msg_id)
    }

    fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// A live node of group `g` for `key`; this node itself counts as live
    /// for its own group.
    pub(crate) fn choose(&self, g: &Group, key: u64) -> Option<u16> {
        balance::pick(g.balance, &g.nodes, key, &g.rr, |id| {
            id == self.id || self.peers.get(&id).is_some_and(|p| p.is_live())
        })
    }

    fn next_request(&self) -> u32 {
        loop {
            let r = self.next_request.fetch_add(1, Ordering::Relaxed);
            if r != 0 {
                return r;
            }
        }
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

    /// Tells a session its message failed (if the policy says so).
    pub(crate) fn answer_error(
        self: &Arc<Self>,
        session: SessionId,
        msg_id: u32,
        code: &str,
        error: &str,
    ) {
        if let Some(frame) = self.error_frame(msg_id, code, error) {
            self.metrics.error_answers.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.deliver(session, frame) {
                debug!(%session, error = %e, "error answer not delivered");
            }
        }
    }

    /// Delivers a frame to a session wherever it is: in place on its own
    /// gate, over the link to its gate from a backend, or through the
    /// directory from another gate.
    pub(crate) fn deliver(
        self: &Arc<Self>,
        session: SessionId,
        frame: Frame,
    ) -> Result<(), SendError> {
        let gate = session.gate();
        if gate == self.id {
            return self.deliver_local(session, frame);
        }
        if let Some(peer) = self.peers.get(&gate) {
            let mut env = Envelope::new(Kind::ToSession);
            env.msg_id = frame.msg_id;
            env.node = self.id;
            env.session = session.0;
            env.payload = frame.data;
            return peer.send(env).map_err(|e| link_send_error(gate, e));
        }
        if self.node_type == NodeType::Gate && self.gates.contains(&gate) {
            let mut env = Envelope::new(Kind::ToSession);
            env.msg_id = frame.msg_id;
            env.node = self.id;
            env.session = session.0;
            env.payload = frame.data;
            let node = self.clone();
            tokio::spawn(async move {
                if let Err(e) = node.directory.publish(gate, env).await {
                    warn!(%session, error = %e, "push to another gate failed");
                }
            });
            return Ok(());
        }
        Err(SendError::Unreachable { node: gate })
    }

    fn deliver_local(&self, session: SessionId, frame: Frame) -> Result<(), SendError> {
        let sessions = self
            .sessions
            .as_ref()
            .ok_or(SendError::SessionGone(session))?;
        let s = sessions.get(session).ok_or_else(|| {
            self.metrics.to_gone_session.fetch_add(1, Ordering::Relaxed);
            SendError::SessionGone(session)
        })?;
        self.offer_to(&s, frame)
    }

    /// Queues a frame on a session of this gate.
    pub(crate) fn offer_to(&self, s: &Session, frame: Frame) -> Result<(), SendError> {
        let session = s.id;
        match s.offer(frame) {
            crate::session::Offer::Queued => {
                self.metrics.frames_out.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            crate::session::Offer::Full => {
                // Counted once, when the session ends (`gate::read_client`).
                warn!(%session, "client does not read: outbound queue full, closing");
                Err(SendError::SessionGone(session))
            }
            crate::session::Offer::Closed => Err(SendError::SessionGone(session)),
        }
    }
}

pub(crate) fn link_send_error(node: u16, e: LinkError) -> SendError {
    match e {
        LinkError::Down => SendError::Unreachable { node },
        LinkError::Full => SendError::Congested { node },
    }
}

/// `flags` bit of a [`Kind::Broadcast`]: only sessions bound to a uid.
const BROADCAST_USERS_ONLY: u8 = 1;

/// The uid of a session as sent in an envelope.
fn uid_of(bytes: &Bytes) -> Option<Arc<str>> {
    if bytes.is_empty() {
        None
    } else {
        std::str::from_utf8(bytes).ok().map(Arc::from)
    }
}

fn envelope_to(kind: Kind, from: u16, msg_id: u32, session: u64, payload: Bytes) -> Envelope {
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
pub(crate) fn check_uid(uid: &str) -> Result<(), SendError> {
    if uid.is_empty() || uid.len() > 255 {
        Err(SendError::InvalidUid(uid.chars().take(64).collect()))
    } else {
        Ok(())
    }
}

async fn run_entry(
    route: &'static Route,
    ctx: &mut Ctx,
    data: Bytes,
) -> Result<Option<Bytes>, HandlerFailure> {
    use futures::FutureExt;
    // Debug level: a per-message span must cost nothing when debug logs
    // are off (an enabled span allocates and formats its fields).
    let span = debug_span!("msg", msg_id = route.msg_id, group = route.group);
    // A panicking handler must not take its session's queue (or the node)
    // down with it: it becomes a handler error.
    match std::panic::AssertUnwindSafe((route.entry)(ctx, data).instrument(span))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".into());
            Err(HandlerFailure::Handler(crate::HandlerError::new(format!(
                "handler {} panicked: {what}",
                route.name
            ))))
        }
    }
}

impl Node {
    // ---------------------------------------------------------------
    // Running handlers
    // ---------------------------------------------------------------

    /// Runs a client message's handler and delivers its outcome: the reply
    /// to the session, or the error answer.
    ///
    /// `local` is the session itself when the handler runs on its gate:
    /// replies then go straight to its queue, without a table lookup.
    pub(crate) async fn run_client_message(
        self: &Arc<Self>,
        route: &'static Route,
        session: SessionId,
        uid: Option<Arc<str>>,
        data: Bytes,
        local: Option<&Arc<Session>>,
    ) {
        let mut ctx = Ctx::new(self.clone(), route.msg_id, Mode::Client, Some(session), uid);
        ctx.local = local.cloned();
        let result = run_entry(route, &mut ctx, data).await;
        self.metrics.handled.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(Some(reply)) => {
                if let Err(e) = ctx.reply(reply) {
                    debug!(%session, msg_id = route.msg_id, error = %e, "reply not delivered");
                }
            }
            Ok(None) => {}
            Err(failure) => {
                match failure {
                    HandlerFailure::Payload(_) => &self.metrics.bad_payload,
                    HandlerFailure::Handler(_) => &self.metrics.handler_errors,
                }
                .fetch_add(1, Ordering::Relaxed);
                warn!(%session, msg_id = route.msg_id, handler = route.name, error = %failure, "message failed");
                self.answer_error(session, route.msg_id, failure.code(), &failure.to_string());
            }
        }
    }

    /// Queues a forwarded message behind the session's earlier ones.
    fn enqueue(self: &Arc<Self>, session: SessionId, uid: &Bytes, mut job: Job) -> Result<(), Job> {
        let mut q = self.queues.entry(session).or_default();
        if q.jobs.len() >= self.settings.node_session_queue {
            return Err(job);
        }
        match (&q.uid, uid.is_empty()) {
            (Some(cur), false) if cur.as_bytes() == &uid[..] => {}
            (None, true) => {}
            _ => q.uid = uid_of(uid),
        }
        job.uid = q.uid.clone();
        q.jobs.push_back(job);
        if !q.running {
            q.running = true;
            drop(q);
            let node = self.clone();
            self.tasks.spawn(async move { node.drain(session).await });
        }
        Ok(())
    }

    /// Runs a session's queued messages one after another.
    async fn drain(self: Arc<Self>, session: SessionId) {
        loop {
            let job = {
                let Some(mut q) = self.queues.get_mut(&session) else {
                    return; // the session closed meanwhile
                };
                match q.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        q.running = false;
                        return;
                    }
                }
            };
            self.run_client_message(job.route, session, job.uid, job.data, None)
                .await;
        }
    }

    /// Runs the handler of a call or cast and returns its answer.
    async fn invoke(
        self: &Arc<Self>,
        route: &'static Route,
        mode: Mode,
        session: Option<SessionId>,
        uid: Option<Arc<str>>,
        data: Bytes,
    ) -> (Status, Bytes) {
        let mut ctx = Ctx::new(self.clone(), route.msg_id, mode, session, uid);
        let result = run_entry(route, &mut ctx, data).await;
        self.metrics.handled.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(Some(reply)) => (Status::Ok, reply),
            Ok(None) => match ctx.take_call_reply() {
                Some(reply) => (Status::Ok, reply),
                None => (Status::NoReply, Bytes::new()),
            },
            Err(failure) => {
                self.metrics.handler_errors.fetch_add(1, Ordering::Relaxed);
                warn!(msg_id = route.msg_id, handler = route.name, ?mode, error = %failure, "call failed");
                (Status::Failed, Bytes::from(failure.to_string()))
            }
        }
    }

    // ---------------------------------------------------------------
    // Envelopes from other nodes
    // ---------------------------------------------------------------

    /// Handles one envelope from node `from` (over a link, or through the
    /// directory from another gate). Never blocks: work is spawned.
    pub(crate) fn on_envelope(self: &Arc<Self>, from: u16, env: Envelope) {
        match env.kind {
            Kind::Heartbeat => {
                if env.flags & HEARTBEAT_STOPPING != 0 {
                    if let Some(peer) = self.peers.get(&from) {
                        info!(peer = %peer.name, "peer is shutting down: no new work goes to it");
                        peer.mark_stopping();
                    }
                }
            }
            Kind::Forward => self.on_forward(env),
            Kind::Response => {
                if let Some((_, p)) = self.pending.remove(&env.request) {
                    let _ = p.tx.send((Status::from_u8(env.flags), env.payload));
                }
            }
            Kind::Call | Kind::Cast => self.on_call(from, env),
            Kind::SessionClosed => {
                let session = SessionId(env.session);
                if self.queues.remove(&session).is_some() {
                    self.run_hooks(session, uid_of(&env.uid));
                }
            }
            Kind::ToSession
            | Kind::ToUid
            | Kind::Broadcast
            | Kind::Bind
            | Kind::Unbind
            | Kind::Kick
                if self.sessions.is_some() =>
            {
                self.on_gate_envelope(from, env)
            }
            kind => warn!(from, ?kind, "unexpected envelope ignored"),
        }
    }

    fn on_forward(self: &Arc<Self>, env: Envelope) {
        let session = SessionId(env.session);
        let msg_id = env.msg_id;
        if self.stopping.is_cancelled() {
            let why = format!("node {} is shutting down", self.name);
            self.answer_error(session, msg_id, "node_stopping", &why);
            return;
        }
        let Some(route) = self.handler(msg_id) else {
            self.metrics.unknown_msg_id.fetch_add(1, Ordering::Relaxed);
            let why = format!("node {} has no handler for msg_id {msg_id}", self.name);
            warn!(%session, msg_id, "{why}");
            self.answer_error(session, msg_id, "unknown_msg_id", &why);
            return;
        };
        let job = Job {
            route,
            data: env.payload,
            uid: None, // set by `enqueue`
        };
        if self.enqueue(session, &env.uid, job).is_err() {
            let why = format!(
                "more than {} messages of this session are waiting on node {}",
                self.settings.node_session_queue, self.name
            );
            warn!(%session, msg_id, "{why}");
            self.answer_error(session, msg_id, "overloaded", &why);
        }
    }

    fn on_call(self: &Arc<Self>, from: u16, env: Envelope) {
        let respond = env.kind == Kind::Call;
        let Some(route) = self.handler(env.msg_id) else {
            warn!(
                from,
                msg_id = env.msg_id,
                "call for a msg_id with no handler here"
            );
            if respond {
                let why = format!(
                    "node {} has no handler for msg_id {}",
                    self.name, env.msg_id
                );
                self.respond(from, env.request, Status::Failed, Bytes::from(why));
            }
            return;
        };
        let mode = if respond {
            Mode::Call { from }
        } else {
            Mode::Cast { from }
        };
        let session = (env.session != 0).then_some(SessionId(env.session));
        let node = self.clone();
        self.tasks.spawn(async move {
            let (status, payload) = node
                .invoke(route, mode, session, uid_of(&env.uid), env.payload)
                .await;
            if respond {
                node.respond(from, env.request, status, payload);
            }
        });
    }

    fn respond(&self, to: u16, request: u32, status: Status, payload: Bytes) {
        if request == 0 {
            return;
        }
        let mut env = envelope_to(Kind::Response, self.id, 0, 0, payload);
        env.request = request;
        env.flags = status as u8;
        match self.peers.get(&to) {
            Some(peer) => {
                if let Err(e) = peer.send(env) {
                    warn!(to, request, ?e, "answer not sent");
                }
            }
            None => debug!(to, request, "answer to a node without a link dropped"),
        }
    }

    /// Gate side of what backends (or other gates) ask of a gate.
    fn on_gate_envelope(self: &Arc<Self>, from: u16, env: Envelope) {
        let Some(sessions) = self.sessions.as_ref() else {
            return;
        };
        let session = SessionId(env.session);
        match env.kind {
            Kind::ToSession => {
                if let Err(e) = self.deliver_local(session, Frame::new(env.msg_id, env.payload)) {
                    debug!(%session, error = %e, "push to a closed session dropped");
                }
            }
            Kind::ToUid => {
                let uid = text(&env.uid);
                let status = match sessions.by_uid(&uid) {
                    Some(s) => {
                        match self.deliver_local(s.id, Frame::new(env.msg_id, env.payload)) {
                            Ok(()) => Status::Ok,
                            Err(_) => Status::NotFound,
                        }
                    }
                    None => Status::NotFound,
                };
                self.respond(from, env.request, status, Bytes::new());
            }
            Kind::Broadcast => self.broadcast_local(
                &Frame::new(env.msg_id, env.payload),
                env.flags & BROADCAST_USERS_ONLY != 0,
            ),
            Kind::Bind | Kind::Unbind | Kind::Kick => {
                let node = self.clone();
                tokio::spawn(async move {
                    let result = match env.kind {
                        Kind::Bind => {
                            node.bind_session(session, &text(&env.uid))
                                .await
                                .map(|kicked| {
                                    kicked
                                        .map(|k| Bytes::copy_from_slice(&k.0.to_be_bytes()))
                                        .unwrap_or_default()
                                })
                        }
                        Kind::Unbind => node.unbind_session(session).await.map(|_| Bytes::new()),
                        _ => {
                            let target = if env.uid.is_empty() {
                                node.sessions.as_ref().and_then(|s| s.get(session))
                            } else {
                                node.sessions
                                    .as_ref()
                                    .and_then(|s| s.by_uid(&text(&env.uid)))
                            };
                            match target {
                                Some(s) => node.kick_local(s.id).map(|_| Bytes::new()),
                                None => Err(SendError::NotOnline(text(&env.uid))),
                            }
                        }
                    };
                    let (status, payload) = match result {
                        Ok(p) => (Status::Ok, p),
                        Err(SendError::NotOnline(_) | SendError::SessionGone(_)) => {
                            (Status::NotFound, Bytes::new())
                        }
                        Err(e) => (Status::Failed, Bytes::from(e.to_string())),
                    };
                    node.respond(from, env.request, status, payload);
                });
            }
            _ => {}
        }
    }

    /// A link went down: fail what waits on it; a backend forgets the
    /// sessions of a gate it lost.
    pub(crate) fn on_link_down(self: &Arc<Self>, peer: &Peer) {
        let lost: Vec<u32> = self
            .pending
            .iter()
            .filter(|p| p.peer == peer.id)
            .map(|p| *p.key())
            .collect();
        for r in lost {
            // Dropping the sender wakes the waiter with "link lost".
            self.pending.remove(&r);
        }
        if peer.node_type == NodeType::Gate {
            let gone: Vec<SessionId> = self
                .queues
                .iter()
                .filter(|q| q.key().gate() == peer.id)
                .map(|q| *q.key())
                .collect();
            for session in gone {
                if let Some((_, q)) = self.queues.remove(&session) {
                    self.run_hooks(session, q.uid);
                }
            }
        }
    }

    /// A backend starting its shutdown tells every node it links with, so
    /// that they send it no new work while it drains: a message crossing a
    /// link as the link closes would get no answer at all. (Nobody chooses
    /// a gate for work, so a gate says nothing.)
    pub(crate) fn announce_stopping(&self) {
        if self.node_type != NodeType::Backend {
            return;
        }
        for peer in self.peers.values() {
            let mut env = Envelope::new(Kind::Heartbeat);
            env.node = self.id;
            env.flags = HEARTBEAT_STOPPING;
            if let Err(e) = peer.send(env) {
                debug!(peer = %peer.name, ?e, "shutdown not announced");
            }
        }
    }

    pub(crate) fn run_hooks(self: &Arc<Self>, session: SessionId, uid: Option<Arc<str>>) {
        for hook in &self.hooks {
            let fut = hook(SessionClosed {
                session,
                uid: uid.as_deref().map(str::to_string),
                node: self.id,
            });
            self.tasks.spawn(fut);
        }
    }

    // ---------------------------------------------------------------
    // Requests to other nodes
    // ---------------------------------------------------------------

    /// Sends `env` to node `to` as a request and waits for its response.
    async fn request(
        self: &Arc<Self>,
        to: u16,
        mut env: Envelope,
        timeout: Duration,
    ) -> Result<(Status, Bytes), RequestError> {
        let peer = self
            .peers
            .get(&to)
            .ok_or(RequestError::Link(LinkError::Down))?;
        let request = self.next_request();
        env.request = request;
        let (tx, rx) = oneshot::channel();
        self.pending.insert(request, Pending { peer: to, tx });
        if let Err(e) = peer.send(env) {
            self.pending.remove(&request);
            return Err(RequestError::Link(e));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(RequestError::Lost),
            Err(_) => {
                self.pending.remove(&request);
                Err(RequestError::Timeout)
            }
        }
    }

    fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.call_timeout_ms)
    }

    /// Asks gate `gate` to do something for a session and maps the answer.
    async fn ask_gate(self: &Arc<Self>, gate: u16, env: Envelope) -> Result<Bytes, SendError> {
        match self.request(gate, env, self.call_timeout()).await {
            Ok((Status::Ok | Status::NoReply, p)) => Ok(p),
            Ok((Status::NotFound, _)) => Err(SendError::NotOnline(String::new())),
            Ok((Status::Failed, p)) => Err(SendError::Remote(text(&p))),
            Err(RequestError::Link(e)) => Err(link_send_error(gate, e)),
            Err(RequestError::Lost | RequestError::Timeout) => {
                Err(SendError::Unreachable { node: gate })
            }
        }
    }

    // ---------------------------------------------------------------
    // Session operations (Ctx calls these)
    // ---------------------------------------------------------------

    /// Binds a session to a uid, kicking whoever held the uid before.
    pub(crate) async fn bind_session(
        self: &Arc<Self>,
        session: SessionId,
        uid: &str,
    ) -> Result<Option<SessionId>, SendError> {
        check_uid(uid)?;
        let gate = session.gate();
        if gate != self.id {
            let mut env = envelope_to(Kind::Bind, self.id, 0, session.0, Bytes::new());
            env.uid = Bytes::copy_from_slice(uid.as_bytes());
            let answer = self.ask_gate(gate, env).await.map_err(|e| match e {
                SendError::NotOnline(_) => SendError::SessionGone(session),
                e => e,
            })?;
            let kicked = <[u8; 8]>::try_from(&answer[..])
                .ok()
                .map(|b| SessionId(u64::from_be_bytes(b)));
            return Ok(kicked);
        }
        let sessions = self
            .sessions
            .as_ref()
            .ok_or(SendError::SessionGone(session))?;
        let s = sessions
            .get(session)
            .ok_or(SendError::SessionGone(session))?;
        let uid: Arc<str> = Arc::from(uid);
        if let Some(old) = s.uid() {
            if old == uid {
                return Ok(None);
            }
            sessions.unbind_local(&old, session);
            if let Err(e) = self.directory.unbind(&old, session).await {
                warn!(%session, uid = %old, error = %e, "directory unbind failed");
            }
        }
        s.set_uid(Some(uid.clone()));
        let prev_local = sessions.bind_local(uid.clone(), session);
        let prev_dir = match self.directory.bind(&uid, session).await {
            Ok(p) => p.filter(|p| *p != session),
            Err(e) => {
                // Undo: this session holds no uid, and an older local holder
                // (still connected, still in the directory) keeps its own.
                s.set_uid(None);
                sessions.unbind_local(&uid, session);
                if let Some(prev) = prev_local {
                    sessions.bind_local_if_free(uid.clone(), prev);
                }
                return Err(e);
            }
        };
        let mut kicked = None;
        for old in [prev_local, prev_dir].into_iter().flatten() {
            if kicked == Some(old) {
                continue;
            }
            kicked = Some(old);
            if let Err(e) = self.kick_session(old).await {
                debug!(session = %old, error = %e, "older session of the uid already gone");
            }
        }
        Ok(kicked)
    }

    /// Removes a session's uid binding.
    pub(crate) async fn unbind_session(
        self: &Arc<Self>,
        session: SessionId,
    ) -> Result<(), SendError> {
        let gate = session.gate();
        if gate != self.id {
            let env = envelope_to(Kind::Unbind, self.id, 0, session.0, Bytes::new());
            return self
                .ask_gate(gate, env)
                .await
                .map(|_| ())
                .map_err(|e| match e {
                    SendError::NotOnline(_) => SendError::SessionGone(session),
                    e => e,
                });
        }
        let sessions = self
            .sessions
            .as_ref()
            .ok_or(SendError::SessionGone(session))?;
        let s = sessions
            .get(session)
            .ok_or(SendError::SessionGone(session))?;
        if let Some(old) = s.set_uid(None) {
            sessions.unbind_local(&old, session);
            // Locally the session is unbound, which is what its user asked;
            // a directory entry left behind expires with its TTL.
            if let Err(e) = self.directory.unbind(&old, session).await {
                warn!(%session, uid = %old, error = %e, "directory unbind failed; the entry expires with its TTL");
            }
        }
        Ok(())
    }

    /// Closes a session of this gate.
    pub(crate) fn kick_local(&self, session: SessionId) -> Result<(), SendError> {
        let s = self
            .sessions
            .as_ref()
            .and_then(|s| s.get(session))
            .ok_or(SendError::SessionGone(session))?;
        self.metrics.kicks.fetch_add(1, Ordering::Relaxed);
        s.close_with(CloseReason::Kicked);
        Ok(())
    }

    /// Closes a session wherever it is.
    pub(crate) async fn kick_session(
        self: &Arc<Self>,
        session: SessionId,
    ) -> Result<(), SendError> {
        let gate = session.gate();
        if gate == self.id {
            return self.kick_local(session);
        }
        let env = envelope_to(Kind::Kick, self.id, 0, session.0, Bytes::new());
        if self.peers.contains_key(&gate) {
            return self
                .ask_gate(gate, env)
                .await
                .map(|_| ())
                .map_err(|e| match e {
                    SendError::NotOnline(_) => SendError::SessionGone(session),
                    e => e,
                });
        }
        self.directory.publish(gate, env).await
    }

    /// Closes the session bound to `uid`, wherever it is.
    pub(crate) async fn kick_uid(self: &Arc<Self>, uid: &str) -> Result<(), SendError> {
        if let Some(s) = self.sessions.as_ref().and_then(|s| s.by_uid(uid)) {
            return self.kick_local(s.id);
        }
        let gate = self
            .directory
            .locate(uid)
            .await?
            .ok_or_else(|| SendError::NotOnline(uid.to_string()))?;
        let mut env = envelope_to(Kind::Kick, self.id, 0, 0, Bytes::new());
        env.uid = Bytes::copy_from_slice(uid.as_bytes());
        self.send_to_gate_for_uid(gate, uid, env).await
    }

    /// Pushes a frame to the session bound to `uid`, wherever it is.
    pub(crate) async fn push_to_uid(
        self: &Arc<Self>,
        uid: &str,
        frame: Frame,
    ) -> Result<(), SendError> {
        if let Some(s) = self.sessions.as_ref().and_then(|s| s.by_uid(uid)) {
            return self.deliver_local(s.id, frame);
        }
        let gate = self
            .directory
            .locate(uid)
            .await?
            .ok_or_else(|| SendError::NotOnline(uid.to_string()))?;
        let mut env = envelope_to(Kind::ToUid, self.id, frame.msg_id, 0, frame.data);
        env.uid = Bytes::copy_from_slice(uid.as_bytes());
        self.send_to_gate_for_uid(gate, uid, env).await
    }

    async fn send_to_gate_for_uid(
        self: &Arc<Self>,
        gate: u16,
        uid: &str,
        env: Envelope,
    ) -> Result<(), SendError> {
        if gate == self.id {
            // This gate is the one the directory names, and it has no such uid.
            return Err(SendError::NotOnline(uid.to_string()));
        }
        if self.peers.contains_key(&gate) {
            return self
                .ask_gate(gate, env)
                .await
                .map(|_| ())
                .map_err(|e| match e {
                    SendError::NotOnline(_) => SendError::NotOnline(uid.to_string()),
                    e => e,
                });
        }
        self.directory.publish(gate, env).await
    }

    /// Writes a frame to every session of this gate (with `users_only`,
    /// to every session bound to a uid).
    pub(crate) fn broadcast_local(&self, frame: &Frame, users_only: bool) {
        if let Some(sessions) = &self.sessions {
            let n = sessions.offer_all(frame, users_only);
            self.metrics.broadcasts.fetch_add(1, Ordering::Relaxed);
            self.metrics
                .frames_out
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Writes a frame to every session of every gate (with `users_only`,
    /// every session bound to a uid): one message per gate.
    pub(crate) fn broadcast(
        self: &Arc<Self>,
        frame: Frame,
        users_only: bool,
    ) -> Result<(), SendError> {
        let flags = if users_only { BROADCAST_USERS_ONLY } else { 0 };
        let mut unreached = Vec::new();
        if self.node_type == NodeType::Gate {
            self.broadcast_local(&frame, users_only);
            for &gate in &self.gates {
                let mut env = envelope_to(
                    Kind::Broadcast,
                    self.id,
                    frame.msg_id,
                    0,
                    frame.data.clone(),
                );
                env.flags = flags;
                let node = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = node.directory.publish(gate, env).await {
                        warn!(gate, error = %e, "broadcast did not reach a gate");
                    }
                });
            }
        } else {
            for peer in self
                .peers
                .values()
                .filter(|p| p.node_type == NodeType::Gate)
            {
                let mut env = envelope_to(
                    Kind::Broadcast,
                    self.id,
                    frame.msg_id,
                    0,
                    frame.data.clone(),
                );
                env.flags = flags;
                if peer.send(env).is_err() {
                    unreached.push(peer.id);
                }
            }
        }
        if unreached.is_empty() {
            Ok(())
        } else {
            unreached.sort_unstable();
            Err(SendError::Partial(unreached))
        }
    }

    /// Calls the handler of `msg_id` on a node of `group` and waits for its
    /// reply.
    pub(crate) async fn call(
        self: &Arc<Self>,
        group: &str,
        msg_id: u32,
        payload: Bytes,
        origin: (Option<SessionId>, Option<Arc<str>>),
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let target = self.call_target(group, origin.0)?;
        self.metrics.calls.fetch_add(1, Ordering::Relaxed);
        let timed_out = || CallError::Timeout {
            group: group.to_string(),
            msg_id,
            after: timeout,
        };
        let (status, answer) = if target == self.id {
            let route = self
                .handler(msg_id)
                .ok_or_else(|| CallError::Remote(format!("no handler for msg_id {msg_id}")))?;
            let fut = self.invoke(
                route,
                Mode::Call { from: self.id },
                origin.0,
                origin.1,
                payload,
            );
            tokio::time::timeout(timeout, fut).await.map_err(|_| {
                self.metrics.call_timeouts.fetch_add(1, Ordering::Relaxed);
                timed_out()
            })?
        } else {
            let env = self.call_envelope(Kind::Call, msg_id, payload, origin);
            match self.request(target, env, timeout).await {
                Ok(a) => a,
                Err(RequestError::Timeout) => {
                    self.metrics.call_timeouts.fetch_add(1, Ordering::Relaxed);
                    return Err(timed_out());
                }
                Err(RequestError::Lost) | Err(RequestError::Link(LinkError::Down)) => {
                    return Err(CallError::LinkLost(target));
                }
                Err(RequestError::Link(LinkError::Full)) => {
                    return Err(CallError::Congested(target));
                }
            }
        };
        match status {
            Status::Ok => Ok(answer),
            Status::NoReply => Err(CallError::NoReply),
            Status::NotFound | Status::Failed => Err(CallError::Remote(text(&answer))),
        }
    }

    /// Runs the handler of `msg_id` on a node of `group`; no answer.
    pub(crate) fn cast(
        self: &Arc<Self>,
        group: &str,
        msg_id: u32,
        payload: Bytes,
        origin: (Option<SessionId>, Option<Arc<str>>),
    ) -> Result<(), CallError> {
        let target = self.call_target(group, origin.0)?;
        if target == self.id {
            let route = self
                .handler(msg_id)
                .ok_or_else(|| CallError::Remote(format!("no handler for msg_id {msg_id}")))?;
            let node = self.clone();
            self.tasks.spawn(async move {
                node.invoke(
                    route,
                    Mode::Cast { from: node.id },
                    origin.0,
                    origin.1,
                    payload,
                )
                .await;
            });
            return Ok(());
        }
        let env = self.call_envelope(Kind::Cast, msg_id, payload, origin);
        let peer = self.peers.get(&target).ok_or(CallError::LinkLost(target))?;
        peer.send(env).map_err(|e| match e {
            LinkError::Down => CallError::LinkLost(target),
            LinkError::Full => CallError::Congested(target),
        })
    }

    /// A call or cast carrying the caller's session and uid, so the callee's
    /// `Ctx` sees them.
    fn call_envelope(
        &self,
        kind: Kind,
        msg_id: u32,
        payload: Bytes,
        origin: (Option<SessionId>, Option<Arc<str>>),
    ) -> Envelope {
        let session = origin.0.map_or(0, |s| s.0);
        let mut env = envelope_to(kind, self.id, msg_id, session, payload);
        if let Some(uid) = origin.1 {
            env.uid = Bytes::copy_from_slice(uid.as_bytes());
        }
        env
    }

    fn call_target(&self, group: &str, session: Option<SessionId>) -> Result<u16, CallError> {
        let g = self
            .group(group)
            .ok_or_else(|| CallError::UnknownGroup(group.to_string()))?;
        if g.node_type == NodeType::Gate && g.name != self.group {
            return Err(CallError::GateGroup(group.to_string()));
        }
        let key = match session {
            Some(s) => s.0,
            None => u64::from(self.next_request()),
        };
        self.choose(g, key)
            .ok_or_else(|| CallError::NoLiveNode(group.to_string()))
    }
}

/// Why a request to another node got no answer.
#[derive(Debug)]
enum RequestError {
    Link(LinkError),
    Lost,
    Timeout,
}
