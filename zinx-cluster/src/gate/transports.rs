//! The handshakes of a gate's clients before their session: TLS (on
//! `Port`, with a certificate), WebSocket (on `WsPort`), both (WSS). A
//! session opens only once they succeeded: a failed handshake is logged and
//! costs no session. After them every client runs the same connection
//! loop (`conn`), whatever its wire.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio_rustls::rustls::ServerConfig;
use tracing::info;

use super::Gate;
use super::conn::{serve, serve_session};
use crate::metrics::Transport;
use crate::transport::conn::{Wire, WsIn};
use crate::transport::tls_wire::{self, TlsIo};
use crate::transport::ws;

/// A plain TCP client on the gate's `Port`: its session opens at once (at
/// accept, before its task first runs), so a broadcast right after a
/// client connected reaches it.
pub(super) fn accept_tcp(gate: &Arc<Gate>, stream: TcpStream, addr: SocketAddr) {
    let Some(session) = gate.open_session(addr, Transport::Tcp) else {
        gate.refuse(stream);
        return;
    };
    let serve = serve_session(
        gate.clone(),
        stream,
        addr,
        session,
        Wire::Tcp,
        BytesMut::new(),
        Transport::Tcp,
    );
    gate.session_tasks.spawn(serve);
}

/// A TLS client on the gate's `Port`: the handshake's task, which hands
/// the connection to a task of its own once the handshake is done. (Two
/// tasks rather than one: what the handshake needed, its arguments
/// included, is gone with the first; the second, what every idle session
/// costs, is the same as a plain TCP client's.)
pub(super) async fn serve_tls(
    gate: Arc<Gate>,
    stream: TcpStream,
    addr: SocketAddr,
    tls: Arc<ServerConfig>,
) {
    let handshake = tokio::select! {
        _ = gate.node().stopping().cancelled() => return,
        h = tls_wire::handshake(&stream, &tls) => h,
    };
    match handshake {
        Ok((conn, plain)) => {
            let wire = Wire::Tls(Box::new(conn));
            spawn_session(&gate, stream, addr, wire, plain, Transport::Tls);
        }
        Err(e) => info!(%addr, error = %e, "TLS handshake failed"),
    }
}

/// A WebSocket client on the gate's `WsPort` (WSS with `tls`): the
/// handshakes' task, as for TLS.
pub(super) async fn serve_ws(
    gate: Arc<Gate>,
    mut stream: TcpStream,
    addr: SocketAddr,
    path: Arc<str>,
    tls: Option<Arc<ServerConfig>>,
) {
    let handshakes = match tls {
        Some(tls) => wss_handshakes(&stream, &path, &tls, addr).await,
        None => match ws::accept(&mut stream, &path).await {
            Ok(input) => Some((Wire::Ws(WsIn::default()), input, Transport::Ws)),
            Err(e) => {
                info!(%addr, status = e.status, "{e}");
                None
            }
        },
    };
    if let Some((wire, input, transport)) = handshakes {
        spawn_session(&gate, stream, addr, wire, input, transport);
    }
}

/// Opens the session of a client whose handshakes are done and spawns its
/// task (on the same tracker: the gate's count of session tasks never
/// drops to zero in between).
fn spawn_session(
    gate: &Arc<Gate>,
    stream: TcpStream,
    addr: SocketAddr,
    wire: Wire,
    input: BytesMut,
    transport: Transport,
) {
    if let Some(serving) = serve(gate.clone(), stream, addr, wire, input, transport) {
        gate.session_tasks.spawn(serving);
    }
}

/// TLS, then the WebSocket upgrade inside it: the wire and what came after.
async fn wss_handshakes(
    stream: &TcpStream,
    path: &str,
    tls: &Arc<ServerConfig>,
    addr: SocketAddr,
) -> Option<(Wire, BytesMut, Transport)> {
    let (conn, plain) = match tls_wire::handshake(stream, tls).await {
        Ok(h) => h,
        Err(e) => {
            info!(%addr, error = %e, "TLS handshake failed (WSS)");
            return None;
        }
    };
    let mut io = TlsIo::new(stream, conn, plain);
    let upgraded = ws::accept(&mut io, path).await;
    let (conn, unread) = io.into_parts();
    match upgraded {
        Ok(mut input) => {
            // What the upgrade read beyond its request, then what TLS
            // decrypted beyond that.
            input.extend_from_slice(&unread);
            let wire = Wire::Wss(Box::new((conn, WsIn::default())));
            Some((wire, input, Transport::Wss))
        }
        Err(e) => {
            info!(%addr, status = e.status, "{e}");
            None
        }
    }
}
