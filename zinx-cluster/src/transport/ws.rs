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
//! - The WebSocket framing is our own ([`super::ws_frame`]): payload is
//!   unmasked straight into the session's read buffer, answers are written
//!   behind a fixed header, with no message object per frame (the library
//!   it replaced cost WebSocket clients a third of their throughput).
//!
//! Close codes: 1000 idle / kicked, 1001 shutdown, 1002 protocol error,
//! 1003 text message, 1008 a client that does not read, 1009 oversize.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tracing::warn;

use super::stream::{Framing, Parsed, serve_framed};
use super::ws_frame::{self, Control, Violation};
use super::{Ended, Endpoint, Limits, split_frames};
use crate::http::{self, HttpError};
use crate::session::CloseReason;

/// A client gets this long to send its upgrade request.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An upgraded connection: the stream, and what the client sent after
/// its upgrade request.
pub(crate) struct Upgraded<S> {
    io: S,
    input: BytesMut,
}

/// Why an upgrade was refused (the client got `status` and `why`).
#[derive(Debug, thiserror::Error)]
#[error("WebSocket handshake refused ({status}): {why}")]
pub(crate) struct HandshakeError {
    /// The HTTP status sent, 0 when none could be.
    pub(crate) status: u16,
    /// The reason, also the response body.
    pub(crate) why: String,
}

/// Reads and answers the upgrade request on `io` for `path`; the
/// upgraded connection, or why it was refused (the client has been told).
pub(crate) async fn accept<S>(mut io: S, path: &str) -> Result<Upgraded<S>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (req, rest) = match http::read_request(&mut io, HANDSHAKE_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => {
            let status = match e {
                HttpError::Malformed(_) | HttpError::TooLarge => 400,
                _ => 0,
            };
            if status != 0 {
                let _ = http::respond(&mut io, status, "text/plain", &[], e.to_string().as_bytes())
                    .await;
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
            let _ = http::respond(&mut io, status, "text/plain", extra, why.as_bytes()).await;
            return Err(HandshakeError { status, why });
        }
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept_key}\r\n\r\n"
    );
    if let Err(e) = tokio::io::AsyncWriteExt::write_all(&mut io, response.as_bytes()).await {
        return Err(HandshakeError {
            status: 0,
            why: format!("writing the upgrade response: {e}"),
        });
    }
    Ok(Upgraded { io, input: rest })
}

/// WebSocket framing of an upgraded connection (see [`ws_frame`]).
#[derive(Debug, Default)]
pub(crate) struct WsFraming {
    reader: ws_frame::Reader,
    /// A close frame went into the output: nothing may follow it.
    closed: bool,
}

impl Framing for WsFraming {
    fn parse(&mut self, input: &mut BytesMut, frames: &mut BytesMut, out: &mut BytesMut) -> Parsed {
        match self.reader.read(input, frames) {
            Ok(None) => Parsed::More,
            Ok(Some(Control::Ping(payload))) => {
                if !self.closed {
                    ws_frame::put_pong(out, &payload);
                }
                Parsed::Again
            }
            Ok(Some(Control::Pong)) => Parsed::Again,
            Ok(Some(Control::Close(payload))) => {
                if !self.closed {
                    ws_frame::put_close_reply(out, &payload);
                    self.closed = true;
                }
                Parsed::End(Ended::Session(CloseReason::ClientClosed))
            }
            Err(Violation::Text) => {
                warn!("WebSocket text message: closing (zinx frames travel in binary messages)");
                Parsed::End(Ended::TextMessage)
            }
            Err(Violation::Protocol(why)) => {
                warn!(why, "WebSocket protocol error: closing");
                Parsed::End(Ended::Protocol)
            }
        }
    }

    /// One binary message per frame, as zinx writes them.
    fn wrap(&mut self, frames: &mut BytesMut, out: &mut BytesMut) {
        if self.closed {
            frames.clear();
            return;
        }
        for frame in split_frames(frames) {
            ws_frame::put_binary(out, &frame);
        }
    }

    fn last_words(&mut self, ended: Ended, out: &mut BytesMut) {
        if self.closed {
            return;
        }
        if let Some((code, why)) = close_frame(ended) {
            ws_frame::put_close(out, code, why);
            self.closed = true;
        }
    }
}

/// The close frame's code and reason telling the client why, when there
/// is one to send.
fn close_frame(ended: Ended) -> Option<(u16, &'static str)> {
    Some(match ended {
        Ended::TextMessage => (1003, "zinx frames travel in binary messages"),
        Ended::Protocol => (1002, "WebSocket protocol error"),
        Ended::Session(CloseReason::Oversize) => (1009, "frame over max_frame_len"),
        Ended::Session(CloseReason::Idle) => (1000, "idle timeout"),
        Ended::Session(CloseReason::Kicked) => (1000, "kicked"),
        Ended::Session(CloseReason::QueueFull) => (1008, "client does not read"),
        Ended::Session(CloseReason::Shutdown) => (1001, "server shutting down"),
        Ended::Session(CloseReason::ClientClosed | CloseReason::IoError) => return None,
    })
}

/// Serves one upgraded client until the connection ends; returns why.
pub(crate) async fn serve<S, E>(up: Upgraded<S>, ep: &E, limits: Limits) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    E: Endpoint,
{
    serve_framed(up.io, up.input, WsFraming::default(), ep, limits).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, FrameCodec};
    use crate::transport::testing::Echo;
    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::client_async;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_util::codec::Decoder;

    fn limits() -> Limits {
        Limits {
            max_frame_len: 64 * 1024,
            idle: Some(Duration::from_secs(5)),
        }
    }

    fn wire(frames: &[Frame]) -> bytes::Bytes {
        let mut b = BytesMut::new();
        for f in frames {
            f.encode_into(&mut b).unwrap();
        }
        b.freeze()
    }

    fn frame_of(msg: Message) -> Frame {
        let Message::Binary(mut b) = msg else {
            panic!("expected a binary message, got {msg:?}")
        };
        let f = FrameCodec::new(1 << 20)
            .decode(&mut BytesMut::from(&b[..]))
            .unwrap()
            .unwrap();
        assert_eq!(b.len(), f.wire_len(), "one frame per message");
        b.clear();
        f
    }

    /// A server task serving an echo endpoint on one end of a pipe, and a
    /// client on the other.
    async fn pair() -> (
        WebSocketStream<DuplexStream>,
        tokio::task::JoinHandle<Ended>,
        std::sync::Arc<Echo>,
    ) {
        let (a, b) = tokio::io::duplex(256 * 1024);
        let ep = std::sync::Arc::new(Echo::default());
        let server_ep = ep.clone();
        let server = tokio::spawn(async move {
            let ws = accept(a, "/").await.unwrap();
            serve(ws, &*server_ep, limits()).await
        });
        let (client, resp) = client_async("ws://localhost/", b).await.unwrap();
        assert_eq!(resp.status(), 101);
        (client, server, ep)
    }

    #[tokio::test]
    async fn frames_batched_and_split_across_messages() {
        let (mut c, server, ep) = pair().await;
        // Three frames in one message.
        let three = wire(&[Frame::new(1, "a"), Frame::new(2, ""), Frame::new(3, "ccc")]);
        c.send(Message::Binary(three)).await.unwrap();
        for want in [Frame::new(1, "a"), Frame::new(2, ""), Frame::new(3, "ccc")] {
            assert_eq!(frame_of(c.next().await.unwrap().unwrap()), want);
        }
        // One 60 KiB frame over three messages, the cut inside the header.
        let big = wire(&[Frame::new(6, vec![9u8; 60 * 1024])]);
        c.send(Message::Binary(big.slice(..5))).await.unwrap();
        c.send(Message::Binary(big.slice(5..30_000))).await.unwrap();
        c.send(Message::Binary(big.slice(30_000..))).await.unwrap();
        assert_eq!(
            frame_of(c.next().await.unwrap().unwrap()),
            Frame::new(6, vec![9u8; 60 * 1024])
        );
        // A push and a reply: two messages.
        c.send(Message::Binary(wire(&[Frame::new(7, "x")])))
            .await
            .unwrap();
        assert_eq!(
            frame_of(c.next().await.unwrap().unwrap()),
            Frame::new(8, "push")
        );
        assert_eq!(
            frame_of(c.next().await.unwrap().unwrap()),
            Frame::new(7, "x")
        );
        assert_eq!(ep.seen.lock().unwrap().len(), 5);
        c.close(None).await.unwrap();
        assert_eq!(
            server.await.unwrap(),
            Ended::Session(CloseReason::ClientClosed)
        );
    }

    async fn close_code(c: &mut WebSocketStream<DuplexStream>) -> CloseCode {
        loop {
            match c.next().await {
                Some(Ok(Message::Close(Some(f)))) => return f.code,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn text_oversize_and_kick_close_with_a_code() {
        let (mut c, server, _) = pair().await;
        c.send(Message::text("hello")).await.unwrap();
        assert_eq!(close_code(&mut c).await, CloseCode::Unsupported);
        assert_eq!(server.await.unwrap(), Ended::TextMessage);

        let (mut c, server, _) = pair().await;
        let head = wire(&[Frame::new(1, vec![0u8; 64 * 1024 + 1])]).slice(..8);
        c.send(Message::Binary(head)).await.unwrap();
        assert_eq!(close_code(&mut c).await, CloseCode::Size);
        assert_eq!(server.await.unwrap(), Ended::Session(CloseReason::Oversize));

        let (mut c, server, ep) = pair().await;
        ep.out.lock().unwrap().push_back(Frame::new(1, "bye"));
        ep.kick(CloseReason::Kicked);
        assert_eq!(
            frame_of(c.next().await.unwrap().unwrap()),
            Frame::new(1, "bye")
        );
        assert_eq!(close_code(&mut c).await, CloseCode::Normal);
        assert_eq!(server.await.unwrap(), Ended::Session(CloseReason::Kicked));
    }

    #[tokio::test]
    async fn pings_are_answered_and_a_close_is_echoed() {
        let (mut c, server, _) = pair().await;
        c.send(Message::Ping(bytes::Bytes::from_static(b"still there?")))
            .await
            .unwrap();
        c.send(Message::Binary(wire(&[Frame::new(3, "after the ping")])))
            .await
            .unwrap();
        match c.next().await.unwrap().unwrap() {
            Message::Pong(p) => assert_eq!(&p[..], b"still there?"),
            other => panic!("expected the pong first, got {other:?}"),
        }
        assert_eq!(
            frame_of(c.next().await.unwrap().unwrap()),
            Frame::new(3, "after the ping")
        );
        c.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: CloseCode::Away,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
        // The client's close is answered with its code.
        assert_eq!(close_code(&mut c).await, CloseCode::Away);
        assert_eq!(
            server.await.unwrap(),
            Ended::Session(CloseReason::ClientClosed)
        );
    }

    #[tokio::test]
    async fn an_unmasked_client_frame_is_a_protocol_error() {
        let (a, mut b) = tokio::io::duplex(16 * 1024);
        let server = tokio::spawn(async move {
            let up = accept(a, "/").await.unwrap();
            serve(up, &Echo::default(), limits()).await
        });
        b.write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
        // A binary frame without a mask, as only a server may send.
        b.write_all(&[0x82, 0x01, 0x00]).await.unwrap();
        let mut answer = Vec::new();
        b.read_to_end(&mut answer).await.unwrap();
        let at = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an upgrade response")
            + 4;
        // Close, 1002, and the reason.
        assert_eq!(
            &answer[at..at + 4],
            &[0x88, 26, 0x03, 0xEA],
            "{answer:02x?}"
        );
        assert_eq!(server.await.unwrap(), Ended::Protocol);
    }

    #[test]
    fn nothing_follows_a_close_frame() {
        let mut f = WsFraming::default();
        // A client's close, code 1000 (masked with a zero key).
        let mut input = BytesMut::from(&[0x88u8, 0x82, 0, 0, 0, 0, 0x03, 0xE8][..]);
        let (mut frames, mut out) = (BytesMut::new(), BytesMut::new());
        assert_eq!(
            f.parse(&mut input, &mut frames, &mut out),
            Parsed::End(Ended::Session(CloseReason::ClientClosed))
        );
        assert_eq!(&out[..], &[0x88, 2, 0x03, 0xE8]);
        // A frame queued meanwhile and the shutdown's own close: dropped.
        let mut queued = BytesMut::new();
        Frame::new(1, "late").encode_into(&mut queued).unwrap();
        f.wrap(&mut queued, &mut out);
        f.last_words(Ended::Session(CloseReason::Shutdown), &mut out);
        assert_eq!(&out[..], &[0x88, 2, 0x03, 0xE8]);
        assert!(queued.is_empty());
    }

    async fn handshake_status(request: &str) -> (Result<(), HandshakeError>, String) {
        let (a, mut b) = tokio::io::duplex(16 * 1024);
        b.write_all(request.as_bytes()).await.unwrap();
        let res = accept(a, "/chat").await.map(|_| ());
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
