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
//!
//! Close codes: 1000 idle / kicked, 1001 shutdown, 1002 protocol error,
//! 1003 text message, 1008 a client that does not read, 1009 oversize.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tracing::{debug, warn};

use super::{
    Ended, Endpoint, Limits, WRITE_BATCH, frames_in, idle_expired, split_frames,
    write_unless_closed,
};
use crate::frame::{FrameCodec, HEADER_LEN};
use crate::http::{self, HttpError};
use crate::session::CloseReason;

/// A client gets this long to send its upgrade request.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// tungstenite's read buffer, allocated per connection: small, so that many
/// idle sessions stay cheap.
const READ_BUFFER: usize = 8 * 1024;
/// Messages already received that one read handles before writing answers.
const READ_BURST: usize = 64;
/// On close, the close frame (and what was queued) gets this long.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Why an upgrade was refused (the client got `status` and `why`).
#[derive(Debug, thiserror::Error)]
#[error("WebSocket handshake refused ({status}): {why}")]
pub(crate) struct HandshakeError {
    /// The HTTP status sent, 0 when none could be.
    pub(crate) status: u16,
    /// The reason, also the response body.
    pub(crate) why: String,
}

/// The WebSocket settings of a message size: a message may batch frames,
/// so it may exceed one frame, by at most one write batch.
fn ws_config(max_frame_len: usize) -> WebSocketConfig {
    let max_message = max_frame_len
        .saturating_add(HEADER_LEN)
        .saturating_add(WRITE_BATCH);
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BATCH)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// Reads and answers the upgrade request on `io` for `path`; the
/// WebSocket, or why it was refused (the client has been told).
pub(crate) async fn accept<S>(
    mut io: S,
    path: &str,
    max_frame_len: usize,
) -> Result<WebSocketStream<S>, HandshakeError>
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
    Ok(WebSocketStream::from_partially_read(
        io,
        rest.to_vec(),
        Role::Server,
        Some(ws_config(max_frame_len)),
    )
    .await)
}

/// A WebSocket error as an I/O error (only "failed" matters to the loop).
fn ws_io(e: WsError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Handles one read from the WebSocket; `Some` when the connection ends.
async fn on_message<S, E>(
    msg: Option<Result<Message, WsError>>,
    ws: &mut WebSocketStream<S>,
    rbuf: &mut BytesMut,
    codec: &mut FrameCodec,
    ep: &E,
) -> Option<Ended>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    E: Endpoint,
{
    let data = match msg {
        Some(Ok(Message::Binary(data))) => data,
        Some(Ok(Message::Text(_))) => {
            warn!("WebSocket text message: closing (zinx frames travel in binary messages)");
            return Some(Ended::TextMessage);
        }
        Some(Ok(Message::Ping(_))) => {
            // tungstenite queued the pong; send it now.
            let _ = ws.flush().await;
            return None;
        }
        Some(Ok(Message::Pong(_) | Message::Frame(_))) => return None,
        Some(Ok(Message::Close(_))) | None => {
            return Some(Ended::Session(CloseReason::ClientClosed));
        }
        Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
            warn!(
                size,
                max_size, "WebSocket message over the size limit: closing"
            );
            return Some(Ended::Session(CloseReason::Oversize));
        }
        Some(Err(WsError::Protocol(e))) => {
            warn!(error = %e, "WebSocket protocol error: closing");
            return Some(Ended::Protocol);
        }
        Some(Err(e)) => {
            debug!(error = %e, "WebSocket read failed");
            return Some(Ended::Session(CloseReason::IoError));
        }
    };
    // The common case, whole frames in one message, decodes from the
    // message itself without a copy.
    if rbuf.is_empty() {
        *rbuf = BytesMut::from(data);
    } else {
        rbuf.extend_from_slice(&data);
    }
    if let Some(r) = frames_in(codec, rbuf, ep).await {
        return Some(Ended::Session(r));
    }
    if rbuf.is_empty() {
        *rbuf = BytesMut::new();
    }
    None
}

/// The close frame telling the client why, when there is one to send.
fn close_frame(ended: Ended) -> Option<CloseFrame> {
    let (code, reason) = match ended {
        Ended::TextMessage => (
            CloseCode::Unsupported,
            "zinx frames travel in binary messages",
        ),
        Ended::Protocol => (CloseCode::Protocol, "WebSocket protocol error"),
        Ended::Session(CloseReason::Oversize) => (CloseCode::Size, "frame over max_frame_len"),
        Ended::Session(CloseReason::Idle) => (CloseCode::Normal, "idle timeout"),
        Ended::Session(CloseReason::Kicked) => (CloseCode::Normal, "kicked"),
        Ended::Session(CloseReason::QueueFull) => (CloseCode::Policy, "client does not read"),
        Ended::Session(CloseReason::Shutdown) => (CloseCode::Away, "server shutting down"),
        Ended::Session(CloseReason::ClientClosed | CloseReason::IoError) => return None,
    };
    Some(CloseFrame {
        code,
        reason: reason.into(),
    })
}

/// Serves one upgraded client until the connection ends; returns why.
pub(crate) async fn serve<S, E>(mut ws: WebSocketStream<S>, ep: &E, limits: Limits) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    E: Endpoint,
{
    let mut codec = FrameCodec::new(limits.max_frame_len);
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    let idle = limits.idle;
    let mut last_read = Instant::now();
    let idle_timer = tokio::time::sleep(idle.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(idle_timer);
    let ended = 'conn: loop {
        // Write everything queued: one binary message per frame.
        loop {
            ep.drain_out(&mut wbuf, WRITE_BATCH);
            if wbuf.is_empty() {
                break;
            }
            let write = async {
                for frame in split_frames(&mut wbuf) {
                    ws.feed(Message::Binary(frame)).await.map_err(ws_io)?;
                }
                ws.flush().await.map_err(ws_io)
            };
            let written = match write_unless_closed(write, ep).await {
                Ok(w) => w,
                Err(r) => break 'conn Ended::Session(r),
            };
            if written.is_err() {
                return Ended::Session(CloseReason::IoError);
            }
            // Frames queued during the write consumed their wake-up: the
            // loop drains until the queue is empty.
        }
        tokio::select! {
            biased;
            r = ep.closing() => break Ended::Session(r),
            _ = ep.queued() => {}
            _ = &mut idle_timer, if idle.is_some() => {
                let d = idle.unwrap_or_default();
                if idle_expired(ep, last_read, d, idle_timer.as_mut()) {
                    break Ended::Session(CloseReason::Idle);
                }
            }
            msg = ws.next() => {
                // Then whatever else has already arrived, so that answers
                // to a pipelined burst leave in one write, as on TCP.
                let mut msg = msg;
                let mut handled = 0;
                // Once per burst: a clock read per message showed in
                // pipelined profiles, and idle is a matter of seconds.
                last_read = Instant::now();
                loop {
                    if let Some(ended) = on_message(msg, &mut ws, &mut rbuf, &mut codec, ep).await {
                        break 'conn ended;
                    }
                    handled += 1;
                    if handled == READ_BURST {
                        break;
                    }
                    match ws.next().now_or_never() {
                        Some(next) => msg = next,
                        None => break,
                    }
                }
            }
        }
    };
    let reason = ended.reason();
    let close = async {
        if reason != CloseReason::QueueFull {
            wbuf.clear();
            ep.drain_out(&mut wbuf, usize::MAX);
            for frame in split_frames(&mut wbuf) {
                ws.feed(Message::Binary(frame)).await?;
            }
        }
        if let Some(frame) = close_frame(ended) {
            ws.close(Some(frame)).await
        } else {
            ws.flush().await
        }
    };
    let _ = tokio::time::timeout(CLOSE_FLUSH, close).await;
    ended
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use crate::transport::testing::Echo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_tungstenite::client_async;
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
            let ws = accept(a, "/", 64 * 1024).await.unwrap();
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

    async fn handshake_status(request: &str) -> (Result<(), HandshakeError>, String) {
        let (a, mut b) = tokio::io::duplex(16 * 1024);
        b.write_all(request.as_bytes()).await.unwrap();
        let res = accept(a, "/chat", 1024).await.map(|_| ());
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
