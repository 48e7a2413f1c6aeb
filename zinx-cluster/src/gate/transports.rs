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
use tracing::{Instrument, debug, debug_span, info};

use super::Gate;
use super::conn::{finish, handle_frame};
use crate::frame::Frame;
use crate::metrics::Transport;
use crate::session::{CloseReason, GatePhase, Session};
use crate::transport::{self, Endpoint, Limits};

/// A session as the transport loops see it.
struct GateEndpoint<'a> {
    gate: &'a Arc<Gate>,
    session: &'a Arc<Session>,
}

impl Endpoint for GateEndpoint<'_> {
    async fn frame_in(&self, frame: Frame) {
        // `handle_frame` refuses it (`node_stopping`) once the node stops:
        // one check of the stop token per frame (a mutex every session
        // shares), not two.
        handle_frame(self.gate, self.session, frame).await;
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
        if self.gate.sessions().phase() == GatePhase::Closed {
            return CloseReason::Shutdown;
        }
        // The gate closing wakes `queued` too (`Sessions::set_phase`), and
        // the loop asks again. Waiting here on the node's `closed` token
        // instead registered every session's loop, at every wake-up, in
        // that token's waiter list behind one mutex: WebSocket throughput
        // fell as connections were added.
        std::future::pending().await
    }

    fn touch(&self) {
        // The gate's idle sweep reads it (`gate::sweep`), for every
        // transport alike.
        self.session.touch();
    }

    fn idle_suspended(&self) -> bool {
        self.gate.node().stopping().is_cancelled()
    }
}

/// The limits of a client connection, from the settings.
fn limits(gate: &Gate) -> Limits {
    let s = gate.node().settings();
    Limits {
        max_frame_len: s.max_frame_len,
        idle: match s.idle_timeout_ms {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        },
    }
}

/// Runs an established connection's session to its end.
async fn run<S: AsyncRead + AsyncWrite + Unpin + Send>(
    gate: &Arc<Gate>,
    io: Io<S>,
    addr: SocketAddr,
    transport: Transport,
) {
    let Some(session) = gate.open_session(addr, transport) else {
        return;
    };
    debug!(session = %session.id, %addr, ?transport, "session opened");
    let span = debug_span!("conn", session = %session.id, %addr);
    let ep = GateEndpoint {
        gate,
        session: &session,
    };
    let limits = limits(gate);
    let ended = match io {
        Io::Stream(s) => {
            transport::stream::serve(s, &ep, limits)
                .instrument(span)
                .await
        }
        Io::Ws(ws) => transport::ws::serve(ws, &ep, limits).instrument(span).await,
    };
    finish(gate, &session, transport, ended).await;
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
    gate: Arc<Gate>,
    stream: TcpStream,
    addr: SocketAddr,
    tls: Arc<ServerConfig>,
) {
    let tls_stream = tokio::select! {
        _ = gate.node().stopping().cancelled() => return,
        s = transport::tls::accept(&tls, stream) => match s {
            Ok(s) => s,
            Err(e) => {
                info!(%addr, error = %e, "TLS handshake failed");
                return;
            }
        },
    };
    run(&gate, Io::Stream(tls_stream), addr, Transport::Tls).await;
}

/// A WebSocket client on the gate's `WsPort` (WSS with `tls`).
pub(super) async fn serve_ws(
    gate: Arc<Gate>,
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
                run(&gate, Io::Ws(ws), addr, Transport::Wss).await;
            }
            None => {
                let ws = transport::ws::accept(stream, &path).await.map_err(|e| {
                    info!(%addr, status = e.status, "{e}");
                })?;
                run(&gate, Io::Ws(ws), addr, Transport::Ws).await;
            }
        }
        Ok::<(), ()>(())
    };
    let _ = handshakes.await;
}
