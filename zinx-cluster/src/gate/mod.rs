//! The client side of a gate: accepting zinx clients, one task per client
//! (`conn` for plain TCP, `transports` for TLS and WebSocket), and the
//! gate's work with the shared directory (`directory`: the bus subscriber
//! and the keep-alive of its bindings).
//!
//! A gate's sessions live in the node's session table (`session`); this
//! module runs them. [`Gate`] tracks every task it starts, so shutdown
//! waits for sessions to flush instead of sleeping.

mod conn;
mod directory;
mod forward;
mod transports;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, debug_span, warn};

use crate::metrics::Transport;
use crate::node::Node;
use crate::session::{GatePhase, QueueBound};

/// What a gate listens on besides its `Port`.
#[derive(Debug, Default)]
pub(crate) struct ClientPorts {
    /// `WsPort`, bound, with `WsPath`.
    pub(crate) ws: Option<(TcpListener, String)>,
    /// The certificate: TLS on `Port`, WSS on `WsPort`.
    pub(crate) tls: Option<Arc<ServerConfig>>,
}

/// The running client side of one gate node.
#[derive(Debug)]
pub(crate) struct Gate {
    /// One task per client session.
    sessions: TaskTracker,
    /// The accept loop and the directory loops.
    background: TaskTracker,
}

/// On shutdown, the gate's directory loops get this long for their last
/// cleanup (removing the bindings the gate still holds).
const DIRECTORY_CLOSE: Duration = Duration::from_secs(2);

impl Gate {
    /// Starts accepting clients on `listener` (and the WebSocket port of
    /// `ports`), and the directory loops.
    pub(crate) fn start(node: Arc<Node>, listener: TcpListener, ports: ClientPorts) -> Gate {
        let gate = Gate {
            sessions: TaskTracker::new(),
            background: TaskTracker::new(),
        };
        let sessions = gate.sessions.clone();
        let acceptor = node.clone();
        let tls = ports.tls.clone();
        gate.background.spawn(async move {
            let stop = acceptor.stopping().clone();
            crate::net::accept_loop(
                listener,
                &stop,
                "client",
                Duration::from_millis(20),
                |stream, addr| match &tls {
                    Some(tls) => {
                        let serve =
                            transports::serve_tls(acceptor.clone(), stream, addr, tls.clone());
                        sessions.spawn(serve);
                    }
                    None => accept(&acceptor, &sessions, stream, addr),
                },
            )
            .await
        });
        gate.background.spawn(sweep(node.clone()));
        if let Some((ws, path)) = ports.ws {
            let sessions = gate.sessions.clone();
            let acceptor = node.clone();
            let path: Arc<str> = path.into();
            let tls = ports.tls;
            gate.background.spawn(async move {
                let stop = acceptor.stopping().clone();
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
                        sessions.spawn(serve);
                    },
                )
                .await
            });
        }
        directory::start(&node, &gate.background);
        gate.background.spawn(resend_closes(node));
        gate
    }

    /// After the node closed: waits for every session to flush and end,
    /// and for the directory loops' last cleanup, each within a bound.
    pub(crate) async fn closed(&self) {
        self.sessions.close();
        self.background.close();
        // Each session flushes within `conn::CLOSE_FLUSH`.
        let flush = conn::CLOSE_FLUSH + Duration::from_millis(500);
        if tokio::time::timeout(flush, self.sessions.wait())
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
}

/// Every heartbeat interval until the node closes: session-closed notices
/// that a lost link may have missed go out again on the new one
/// (`node::gate_loss`).
async fn resend_closes(node: Arc<Node>) {
    let mut tick = tokio::time::interval(Duration::from_millis(
        node.settings().heartbeat_interval_ms.max(1),
    ));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let closed = node.closed().clone();
    loop {
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = tick.tick() => node.flush_pending_closes(),
        }
    }
}

/// Opens a session for an accepted client, or refuses it when the gate is
/// full.
fn accept(node: &Arc<Node>, tasks: &TaskTracker, stream: TcpStream, addr: std::net::SocketAddr) {
    let settings = node.settings();
    if node.sessions().len() >= settings.max_sessions {
        node.metrics().sessions_refused.add(1);
        warn!(%addr, max_sessions = settings.max_sessions, "gate full: connection refused");
        refuse(node, stream);
        return;
    }
    let session = node.sessions().open(QueueBound {
        frames: settings.session_queue,
        bytes: settings.session_queue_bytes,
    });
    node.metrics().sessions_accepted.add(1);
    node.metrics().sessions_open.add(1);
    node.labelled().session_opened(Transport::Tcp);
    // A debug-level span: free when debug logging is off, so an idle
    // session costs no span memory; events carry the session id.
    let span = debug_span!("conn", session = %session.id, %addr);
    debug!(parent: &span, "session opened");
    // A disabled span (debug logging off) is not worth its 40 bytes in
    // every session's task.
    if span.is_disabled() {
        tasks.spawn(conn::serve_client(node.clone(), stream, session));
    } else {
        tasks.spawn(conn::serve_client(node.clone(), stream, session).instrument(span));
    }
}

/// Closes idle sessions, and tells the sessions when the gate stops and
/// closes: one task per gate instead of a timer and two cancellation
/// futures in every session's task (what an idle session costs is its
/// task's future). An idle client is closed between `idle_timeout_ms` and
/// an eighth of it later (at most a second later); no idle closes while
/// stopping (a session waiting for its in-flight answers is not idle).
async fn sweep(node: Arc<Node>) {
    let idle_ms = node.settings().idle_timeout_ms;
    let mut tick = tokio::time::interval(Duration::from_millis((idle_ms / 8).clamp(10, 1000)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopping = node.stopping().clone();
    let closed = node.closed().clone();
    loop {
        tokio::select! {
            _ = stopping.cancelled() => break,
            _ = tick.tick(), if idle_ms > 0 => {
                node.sessions().close_idle(idle_ms);
            }
        }
    }
    node.sessions().set_phase(GatePhase::Stopping);
    closed.cancelled().await;
    node.sessions().set_phase(GatePhase::Closed);
}

/// Tells a refused client why (when the error policy sends frames) and
/// closes it at once: never leave it hanging like zinx at `MaxConn`.
fn refuse(node: &Node, stream: TcpStream) {
    if let Some(frame) =
        node.error_frame(0, "server_full", "the gate holds its maximum of sessions")
    {
        if let Ok(wire) = frame.to_bytes() {
            let _ = stream.try_write(&wire);
        }
    }
    drop(stream);
}
