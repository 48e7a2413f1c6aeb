//! zinx over WebSocket, as zinx's `Mode: "websocket"` and its `NewWsClient`
//! speak it.
//!
//! - The upgrade is checked here (method, `WsPath`, upgrade headers,
//!   version 13) from a bounded request head read with a timeout; a bad
//!   handshake gets an HTTP error status and a reason, and never a session.
//! - Incoming **binary** messages are a byte stream fed to one frame
//!   decoder: a message may hold several frames, and a frame may span
//!   messages (zinx's `WsConnection` does the same). A frame over
//!   `max_frame_len` closes with 1009; a text message closes with 1003.
//! - Each outgoing frame is one binary message holding exactly one frame,
//!   as zinx writes them.
//! - The WebSocket framing is our own (`ws_frame`), run by the connection
//!   loop (`conn`) like any other wire: payload is unmasked straight into
//!   the session's read buffer, answers are written behind a fixed header,
//!   with no message object per frame (the library it replaced cost
//!   WebSocket clients a third of their throughput), and an idle WebSocket
//!   session waits on its socket's readiness like a TCP one.
//!
//! Close codes: 1000 idle / kicked, 1001 shutdown, 1002 protocol error,
//! 1003 text message, 1008 a client that does not read, 1009 oversize.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::http::{self, HttpError};

/// A client gets this long to send its upgrade request.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an upgrade was refused (the client got `status` and `why`).
#[derive(Debug, thiserror::Error)]
#[error("WebSocket handshake refused ({status}): {why}")]
pub(crate) struct HandshakeError {
    /// The HTTP status sent, 0 when none could be.
    pub(crate) status: u16,
    /// The reason, also the response body.
    pub(crate) why: String,
}

/// Reads and answers the upgrade request on `io` for `path`: what the
/// client sent after its request (the first WebSocket bytes), or why it
/// was refused (the client has been told).
pub(crate) async fn accept<S>(io: &mut S, path: &str) -> Result<BytesMut, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (req, rest) = match http::read_request(io, HANDSHAKE_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => {
            let status = match e {
                HttpError::Malformed(_) | HttpError::TooLarge => 400,
                _ => 0,
            };
            if status != 0 {
                let _ =
                    http::respond(io, status, "text/plain", &[], e.to_string().as_bytes()).await;
            }
            return Err(HandshakeError {
                status,
                why: e.to_string(),
            });
        }
    };
    let refuse = |status: u16, why: String| (status, why);
    let checked = if req.method != "GET" {
        Err(refuse(
            405,
            format!("method {} (a WebSocket upgrade is a GET)", req.method),
        ))
    } else if req.path != path {
        Err(refuse(
            404,
            format!("path {:?}: WebSocket clients connect to {path:?}", req.path),
        ))
    } else if !req.header_has_token("upgrade", "websocket")
        || !req.header_has_token("connection", "upgrade")
    {
        Err(refuse(
            426,
            "not a WebSocket upgrade: this port speaks zinx frames in WebSocket binary messages"
                .to_string(),
        ))
    } else if req.header("sec-websocket-version") != Some("13") {
        Err(refuse(
            426,
            "unsupported Sec-WebSocket-Version (13 is)".to_string(),
        ))
    } else {
        match req.header("sec-websocket-key") {
            Some(key) if !key.is_empty() => Ok(derive_accept_key(key.as_bytes())),
            _ => Err(refuse(400, "missing Sec-WebSocket-Key".to_string())),
        }
    };
    let accept_key = match checked {
        Ok(k) => k,
        Err((status, why)) => {
            let extra: &[(&str, &str)] = if status == 426 {
                &[("Sec-WebSocket-Version", "13")]
            } else {
                &[]
            };
            let _ = http::respond(io, status, "text/plain", extra, why.as_bytes()).await;
            return Err(HandshakeError { status, why });
        }
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept_key}\r\n\r\n"
    );
    if let Err(e) = tokio::io::AsyncWriteExt::write_all(io, response.as_bytes()).await {
        return Err(HandshakeError {
            status: 0,
            why: format!("writing the upgrade response: {e}"),
        });
    }
    if let Err(e) = tokio::io::AsyncWriteExt::flush(io).await {
        return Err(HandshakeError {
            status: 0,
            why: format!("writing the upgrade response: {e}"),
        });
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn handshake_status(request: &str) -> (Result<(), HandshakeError>, String) {
        let (a, mut b) = tokio::io::duplex(16 * 1024);
        b.write_all(request.as_bytes()).await.unwrap();
        let mut a = a;
        let res = accept(&mut a, "/chat").await.map(|_| ());
        drop(a);
        let mut answer = String::new();
        let _ = b.read_to_string(&mut answer).await;
        (res, answer)
    }

    #[tokio::test]
    async fn bad_handshakes_get_a_status_and_no_session() {
        let ok_headers = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let (res, answer) =
            handshake_status(&format!("GET /other HTTP/1.1\r\nHost: x\r\n{ok_headers}")).await;
        assert_eq!(res.unwrap_err().status, 404);
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        let (res, answer) = handshake_status("GET /chat HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(res.unwrap_err().status, 426);
        assert!(answer.contains("zinx frames"), "{answer}");
        let (res, _) = handshake_status("\x00\x00\x00\x01\x00\x00\x00\x00\r\n\r\n").await;
        assert_eq!(res.unwrap_err().status, 400);
        let (res, answer) = handshake_status(&format!(
            "GET /chat?v=1 HTTP/1.1\r\nHost: x\r\n{ok_headers}"
        ))
        .await;
        assert!(res.is_ok());
        // RFC 6455's example key and its accept value.
        assert!(answer.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{answer}");
    }
}
