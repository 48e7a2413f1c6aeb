//! The gate role: a node that holds client sessions. It accepts zinx
//! clients (one task per client: `conn` for plain TCP, `transports` for TLS
//! and WebSocket), runs its own group's handlers in place, forwards the
//! rest (`forward`), delivers what other nodes send its sessions
//! (`inbound`), does the session operations (`ops`: bind, kick, rooms),
//! and keeps its part of the shared directory (`directory`: the bus
//! subscriber and the keep-alive of its bindings).
//!
//! [`Gate`] tracks every task it starts, so shutdown waits for sessions to
//! flush instead of sleeping.

mod closes;
mod conn;
mod directory;
mod forward;
mod handover;
mod inbound;
mod ops;
mod resume;
mod transports;

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::error::ErrorCode;
use crate::metrics::Transport;
use crate::node::Node;
use crate::rooms::Rooms;
use crate::session::{GatePhase, QueueBound, Session, Sessions};

use closes::PendingCloses;

/// What a gate listens on besides its `Port`.
#[derive(Debug, Default)]
pub(crate) struct ClientPorts {
    /// `WsPort`, bound, with `WsPath`.
    pub(crate) ws: Option<(TcpListener, String)>,
    /// The certificate: TLS on `Port`, WSS on `WsPort`.
    pub(crate) tls: Option<Arc<ServerConfig>>,
}

/// A gate node.
pub(crate) struct Gate {
    /// What every node has.
    node: Node,
    /// This gate, for the handlers' contexts and spawned work.
    me: Weak<Gate>,
    /// The client sessions.
    sessions: Sessions,
    /// Which sessions are in which room.
    rooms: Rooms,
    /// Session-closed notices for backends whose link was down, sent when
    /// it is back.
    closes: PendingCloses,
    /// Session resume: settings, token key, sessions that ended while
    /// resumable.
    resumes: resume::Resumes,
    /// Resumes across gates: those asked of other gates, sessions given
    /// away (relayed for a window).
    handovers: handover::Handovers,
    /// Cancelled when the gate drains before a shutdown: it takes no new
    /// connection.
    draining: tokio_util::sync::CancellationToken,
    /// One task per client session.
    session_tasks: TaskTracker,
    /// The accept loops and the directory loops.
    background: TaskTracker,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("node", &self.node)
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

/// On shutdown, the gate's directory loops get this long for their last
/// cleanup (removing the bindings the gate still holds).
const DIRECTORY_CLOSE: Duration = Duration::from_secs(2);

impl Gate {
    /// A gate of `node`, not serving yet (see [`Gate::start`]).
    pub(crate) fn new(node: Node) -> Arc<Gate> {
        let id = node.id();
        let resumes = resume::Resumes::new(node.settings(), node.links().key().clone());
        let node_stopping = node.stopping().clone();
        Arc::new_cyclic(|me| Gate {
            node,
            me: me.clone(),
            sessions: Sessions::new(id),
            rooms: Rooms::default(),
            closes: PendingCloses::default(),
            resumes,
            handovers: handover::Handovers::default(),
            draining: node_stopping.child_token(),
            session_tasks: TaskTracker::new(),
            background: TaskTracker::new(),
        })
    }

    /// What every node has.
    pub(crate) fn node(&self) -> &Node {
        &self.node
    }

    /// The client sessions.
    pub(crate) fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// This gate as an owner of itself (it lives in an `Arc`).
    fn me(&self) -> Option<Arc<Gate>> {
        self.me.upgrade()
    }

    /// Starts accepting clients on `listener` (and the WebSocket port of
    /// `ports`), and the directory loops.
    pub(crate) fn start(self: &Arc<Self>, listener: TcpListener, ports: ClientPorts) {
        let acceptor = self.clone();
        let tls = ports.tls.clone();
        self.background.spawn(async move {
            // Stops at a drain, or at the shutdown.
            let stop = acceptor.draining.clone();
            crate::net::accept_loop(
                listener,
                &stop,
                "client",
                Duration::from_millis(20),
                |stream, addr| match &tls {
                    Some(tls) => {
                        let serve =
                            transports::serve_tls(acceptor.clone(), stream, addr, tls.clone());
                        acceptor.session_tasks.spawn(serve);
                    }
                    None => transports::accept_tcp(&acceptor, stream, addr),
                },
            )
            .await
        });
        self.background.spawn(sweep(self.clone()));
        if let Some((ws, path)) = ports.ws {
            let acceptor = self.clone();
            let path: Arc<str> = path.into();
            let tls = ports.tls;
            self.background.spawn(async move {
                let stop = acceptor.draining.clone();
                crate::net::accept_loop(
                    ws,
                    &stop,
                    "WebSocket client",
                    Duration::from_millis(20),
                    |stream, addr| {
                        let serve = transports::serve_ws(
                            acceptor.clone(),
                            stream,
                            addr,
                            path.clone(),
                            tls.clone(),
                        );
                        acceptor.session_tasks.spawn(serve);
                    },
                )
                .await
            });
        }
        directory::start(self, &self.background);
        self.background.spawn(resend_closes(self.clone()));
    }

    /// Drains the gate's resumable sessions before a shutdown: the gate
    /// takes no new connection, tells each resumable client to move (MOVE:
    /// reconnect to any gate and resume; the session moves there, over the
    /// bus), and goes on serving them until they all left or `within`
    /// passed. Only with other gates to move to (a shared directory) and
    /// resume on; plain zinx clients are not asked (they end with the
    /// shutdown, as they always did).
    pub(crate) async fn drain(&self, within: Duration) {
        let others = self.node.directory().redis().is_some();
        if !others || !self.resumes.enabled() {
            return;
        }
        self.draining.cancel();
        let moving = self.sessions.resumable();
        if moving.is_empty() {
            return;
        }
        info!(
            sessions = moving.len(),
            "draining: resumable clients asked to move to another gate"
        );
        let body = serde_json::to_vec(&zinx_cluster_client::wire::resume::Move {
            reason: "draining".to_string(),
        })
        .unwrap_or_default();
        let frame = crate::frame::Frame::new(zinx_cluster_client::wire::MOVE_MSG_ID, body);
        for s in &moving {
            let _ = self.offer_to(s, frame.clone());
        }
        let deadline = tokio::time::Instant::now() + within;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            let left = self.sessions.resumable().len();
            if left == 0 {
                info!("draining: every resumable session moved");
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                warn!(
                    left,
                    "draining: sessions still here at the end of the drain"
                );
                return;
            }
        }
    }

    /// Whether nothing is in flight: the node's own work, and no forwarded
    /// message waiting for its node's completion.
    pub(crate) fn idle(&self) -> bool {
        self.node.idle() && self.sessions.forwards_open() == 0
    }

    /// After the node closed: waits for every session to flush and end,
    /// and for the directory loops' last cleanup, each within a bound.
    pub(crate) async fn closed(&self) {
        self.session_tasks.close();
        self.background.close();
        // Each session flushes within `conn::CLOSE_FLUSH`.
        let flush = conn::CLOSE_FLUSH + Duration::from_millis(500);
        if tokio::time::timeout(flush, self.session_tasks.wait())
            .await
            .is_err()
        {
            warn!("sessions still flushing at the end of shutdown");
        }
        if tokio::time::timeout(DIRECTORY_CLOSE, self.background.wait())
            .await
            .is_err()
        {
            warn!(
                "directory cleanup still running at the end of shutdown; bindings left expire with their TTL"
            );
        }
    }

    /// Registers the session of a client whose handshakes are done; `None`
    /// when the gate is full (logged, counted).
    pub(super) fn open_session(
        &self,
        addr: std::net::SocketAddr,
        transport: Transport,
    ) -> Option<Arc<Session>> {
        let settings = self.node.settings();
        let metrics = self.node.metrics();
        if self.sessions.len() >= settings.max_sessions {
            metrics.sessions_refused.add(1);
            warn!(%addr, ?transport, max_sessions = settings.max_sessions, "gate full: connection refused");
            return None;
        }
        let session = self.sessions.open(QueueBound {
            frames: settings.session_queue,
            bytes: settings.session_queue_bytes,
        });
        metrics.sessions_accepted.add(1);
        metrics.sessions_open.add(1);
        self.node.labelled().session_opened(transport);
        Some(session)
    }

    /// Tells a refused client why (when the error policy sends frames) and
    /// closes it at once: never leave it hanging like zinx at `MaxConn`.
    pub(super) fn refuse(&self, stream: TcpStream) {
        if let Some(frame) = self.node.error_frame(
            0,
            &ErrorCode::ServerFull,
            "the gate holds its maximum of sessions",
        ) {
            if let Ok(wire) = frame.to_bytes() {
                let _ = stream.try_write(&wire);
            }
        }
        drop(stream);
    }
}

/// Every heartbeat interval until the node closes: session-closed notices
/// that a lost link may have missed go out again on the new one.
async fn resend_closes(gate: Arc<Gate>) {
    let settings = gate.node.settings();
    let mut tick =
        tokio::time::interval(Duration::from_millis(settings.heartbeat_interval_ms.max(1)));
    let timeout = Duration::from_millis(settings.heartbeat_timeout_ms);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let closed = gate.node.closed().clone();
    loop {
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = tick.tick() => gate.closes.flush(gate.node.links(), timeout),
        }
    }
}

/// Closes idle sessions, and tells the sessions when the gate stops and
/// closes: one task per gate instead of a timer and two cancellation
/// futures in every session's task (what an idle session costs is its
/// task's future). An idle client is closed between `idle_timeout_ms` and
/// an eighth of it later (at most a second later); no idle closes while
/// stopping (a session waiting for its in-flight answers is not idle).
async fn sweep(gate: Arc<Gate>) {
    let idle_ms = gate.node.settings().idle_timeout_ms;
    // An eighth of the idle timeout (and of the resume window), 10 ms to 1 s.
    let window_ms = gate.node.settings().resume_window_ms;
    let every = [idle_ms, window_ms]
        .into_iter()
        .filter(|ms| *ms > 0)
        .min()
        .unwrap_or(8000);
    let mut tick = tokio::time::interval(Duration::from_millis((every / 8).clamp(10, 1000)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopping = gate.node.stopping().clone();
    let closed = gate.node.closed().clone();
    let resume = gate.resumes.enabled();
    loop {
        tokio::select! {
            _ = stopping.cancelled() => break,
            _ = tick.tick(), if idle_ms > 0 || resume => {
                if idle_ms > 0 {
                    gate.sessions.close_idle(idle_ms);
                }
                if resume {
                    for s in gate.sessions.expired(gate.resumes.window().as_millis() as u64) {
                        conn::expire(&gate, s);
                    }
                    gate.handovers.forget_old();
                }
            }
        }
    }
    gate.sessions.set_phase(GatePhase::Stopping);
    closed.cancelled().await;
    gate.sessions.set_phase(GatePhase::Closed);
    // Sessions waiting for a resume end with the gate.
    for s in gate.sessions.detached() {
        conn::expire(&gate, s);
    }
}
