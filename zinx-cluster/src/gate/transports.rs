//! A gate's clients over TLS (on `Port`) and WebSocket (on `WsPort`, WSS
//! with a certificate): the handshakes, then the session, run by the
//! transport loops of `transport` through [`GateEndpoint`].
//!
//! A session opens only once its handshakes succeeded: a failed TLS or
//! WebSocket handshake is logged and costs no session. After that a
//! session is a session like any other (same handlers, limits, errors).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::ServerConfig;
use tracing::{Instrument, debug, debug_span, info, warn};

use super::conn::{finish, handle_frame};
use crate::frame::Frame;
use crate::metrics::Transport;
use crate::node::Node;
use crate::session::QueueBound;
use crate::session::{CloseReason, GatePhase, Session};
use crate::transport::{self, Endpoint, Limits};

/// A session as the transport loops see it.
struct GateEndpoint<'a> {
    node: &'a Arc<Node>,
    session: &'a Arc<Session>,
}

impl Endpoint for GateEndpoint<'_> {
    async fn frame_in(&self, frame: Frame) {
        // `handle_frame` refuses it (`node_stopping`) once the node stops:
        // one check of the stop token per frame (a mutex every session
        // shares), not two.
        handle_frame(self.node, self.session, frame).await;
    }

    fn drain_out(&self, out: &mut BytesMut, max: usize) -> bool {
        self.session.drain_into(out, max)
    }

    async fn queued(&self) {
        self.session.ready.notified().await;
    }

    async fn closing(&self) -> CloseReason {
        // A close wakes the session through `ready`, which `queued` alone
        // waits on (two waiters on one Notify would steal each other's
        // wake-ups): the transport loop then calls this again and finds
        // the reason at once.
        if let Some(reason) = self.session.close_reason() {
            return reason;
        }
        if self.node.sessions().phase() == GatePhase::Closed {
            return CloseReason::Shutdown;
        }
        // The gate closing wakes `queued` too (`Sessions::set_phase`), and
        // the loop asks again. Waiting here on the node's `closed` token
        // instead registered every session's loop, at every wake-up, in
        // that token's waiter list behind one mutex: WebSocket throughput
        // fell as connections were added.
        std::future::pending().await
    }

    fn idle_suspended(&self) -> bool {
        self.node.stopping().is_cancelled()
    }
}

/// The limits of a client connection, from the settings.
fn limits(node: &Node) -> Limits {
    let s = node.settings();
    Limits {
        max_frame_len: s.max_frame_len,
        idle: match s.idle_timeout_ms {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        },
    }
}

/// Registers the session of a client whose handshakes are done; `None`
/// when the gate is full (logged, counted; the connection is dropped).
fn open_session(node: &Arc<Node>, addr: SocketAddr, transport: Transport) -> Option<Arc<Session>> {
    let settings = node.settings();
    if node.sessions().len() >= settings.max_sessions {
        node.metrics().sessions_refused.add(1);
        warn!(%addr, ?transport, max_sessions = settings.max_sessions, "gate full: connection refused");
        return None;
    }
    let session = node.sessions().open(QueueBound {
        frames: settings.session_queue,
        bytes: settings.session_queue_bytes,
    });
    node.metrics().sessions_accepted.add(1);
    node.metrics().sessions_open.add(1);
    node.labelled().session_opened(transport);
    debug!(session = %session.id, %addr, ?transport, "session opened");
    Some(session)
}

/// Runs an established connection's session to its end.
async fn run<S: AsyncRead + AsyncWrite + Unpin + Send>(
    node: &Arc<Node>,
    io: Io<S>,
    addr: SocketAddr,
    transport: Transport,
) {
    let Some(session) = open_session(node, addr, transport) else {
        return;
    };
    let span = debug_span!("conn", session = %session.id, %addr);
    let ep = GateEndpoint {
        node,
        session: &session,
    };
    let limits = limits(node);
    let ended = match io {
        Io::Stream(s) => {
            transport::stream::serve(s, &ep, limits)
                .instrument(span)
                .await
        }
        Io::Ws(ws) => transport::ws::serve(ws, &ep, limits).instrument(span).await,
    };
    finish(node, &session, transport, ended).await;
}

/// A connection after its handshakes.
enum Io<S> {
    /// zinx frames straight on the stream.
    Stream(S),
    /// zinx frames in WebSocket binary messages.
    Ws(transport::ws::Upgraded<S>),
}

/// A TLS client on the gate's `Port`.
pub(super) async fn serve_tls(
    node: Arc<Node>,
    stream: TcpStream,
    addr: SocketAddr,
    tls: Arc<ServerConfig>,
) {
    let tls_stream = tokio::select! {
        _ = node.stopping().cancelled() => return,
        s = transport::tls::accept(&tls, stream) => match s {
            Ok(s) => s,
            Err(e) => {
                info!(%addr, error = %e, "TLS handshake failed");
                return;
            }
        },
    };
    run(&node, Io::Stream(tls_stream), addr, Transport::Tls).await;
}

/// A WebSocket client on the gate's `WsPort` (WSS with `tls`).
pub(super) async fn serve_ws(
    node: Arc<Node>,
    stream: TcpStream,
    addr: SocketAddr,
    path: Arc<str>,
    tls: Option<Arc<ServerConfig>>,
) {
    let handshakes = async {
        match tls {
            Some(tls) => {
                let s = transport::tls::accept(&tls, stream).await.map_err(|e| {
                    info!(%addr, error = %e, "TLS handshake failed (WSS)");
                })?;
                let ws = transport::ws::accept(s, &path).await.map_err(|e| {
                    info!(%addr, status = e.status, "{e}");
                })?;
                run(&node, Io::Ws(ws), addr, Transport::Wss).await;
            }
            None => {
                let ws = transport::ws::accept(stream, &path).await.map_err(|e| {
                    info!(%addr, status = e.status, "{e}");
                })?;
                run(&node, Io::Ws(ws), addr, Transport::Ws).await;
            }
        }
        Ok::<(), ()>(())
    };
    let _ = handshakes.await;
}
