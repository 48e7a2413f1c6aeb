//! The client side of a gate: accepting zinx clients, one task per client
//! (`conn`), and the gate's work with the shared directory (`directory`:
//! the bus subscriber and the keep-alive of its bindings).
//!
//! A gate's sessions live in the node's session table (`session`); this
//! module runs them. [`Gate`] tracks every task it starts, so shutdown
//! waits for sessions to flush instead of sleeping.

mod conn;
mod directory;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, debug_span, warn};

use crate::node::Node;
use crate::session::GatePhase;

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
    /// Starts accepting clients on `listener`, and the directory loops.
    pub(crate) fn start(node: Arc<Node>, listener: TcpListener) -> Gate {
        let gate = Gate {
            sessions: TaskTracker::new(),
            background: TaskTracker::new(),
        };
        let sessions = gate.sessions.clone();
        let acceptor = node.clone();
        gate.background.spawn(async move {
            let stop = acceptor.stopping().clone();
            crate::net::accept_loop(
                listener,
                &stop,
                "client",
                Duration::from_millis(20),
                |stream, addr| accept(&acceptor, &sessions, stream, addr),
            )
            .await
        });
        gate.background.spawn(sweep(node.clone()));
        directory::start(&node, &gate.background);
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
    let session = node.sessions().open(settings.session_queue);
    node.metrics().sessions_accepted.add(1);
    node.metrics().sessions_open.add(1);
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
