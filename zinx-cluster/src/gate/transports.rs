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

/// A TLS client on the gate's `Port`.
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
            serve(gate, stream, addr, wire, plain, Transport::Tls).await;
        }
        Err(e) => info!(%addr, error = %e, "TLS handshake failed"),
    }
}

/// A WebSocket client on the gate's `WsPort` (WSS with `tls`).
pub(super) async fn serve_ws(
    gate: Arc<Gate>,
    mut stream: TcpStream,
    addr: SocketAddr,
    path: Arc<str>,
    tls: Option<Arc<ServerConfig>>,
) {
    let Some(tls) = tls else {
        match ws::accept(&mut stream, &path).await {
            Ok(input) => {
                let wire = Wire::Ws(WsIn::default());
                serve(gate, stream, addr, wire, input, Transport::Ws).await;
            }
            Err(e) => info!(%addr, status = e.status, "{e}"),
        }
        return;
    };
    let (conn, plain) = match tls_wire::handshake(&stream, &tls).await {
        Ok(h) => h,
        Err(e) => {
            info!(%addr, error = %e, "TLS handshake failed (WSS)");
            return;
        }
    };
    let mut io = TlsIo::new(&stream, conn, plain);
    let upgraded = ws::accept(&mut io, &path).await;
    let (conn, unread) = io.into_parts();
    match upgraded {
        Ok(mut input) => {
            // What the upgrade read beyond its request, then what TLS
            // decrypted beyond that.
            input.extend_from_slice(&unread);
            let wire = Wire::Wss(Box::new((conn, WsIn::default())));
            serve(gate, stream, addr, wire, input, Transport::Wss).await;
        }
        Err(e) => info!(%addr, status = e.status, "{e}"),
    }
}
