//! The connection loop over real loopback sockets, with an echo for a
//! gate: every wire (TCP, WebSocket, TLS, WSS), WebSocket control frames
//! and close codes, closes with what was queued, resets for clients that
//! do not read.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::codec::Decoder;

use super::close::finish;
use super::conn::{Flow, Inbound, Reading, WsIn, serve};
use super::tls::{load_server_config, testing};
use super::tls_wire::{TlsIo, handshake};
use super::{Ended, conn::Wire, ws};
use crate::frame::{Frame, FrameCodec};
use crate::session::{CloseReason, GatePhase, QueueBound, Session, SessionId};

const T: Duration = Duration::from_secs(5);

/// A gate that echoes: msg 7 gets a push (8, "push") before its echo.
struct Echo {
    session: Arc<Session>,
    seen: Mutex<Vec<Frame>>,
    phase: AtomicU8,
}

impl Echo {
    fn new() -> Arc<Echo> {
        Arc::new(Echo {
            session: Session::new(
                SessionId::new(1, 1),
                QueueBound {
                    frames: 100_000,
                    bytes: 64 << 20,
                },
            ),
            seen: Mutex::new(Vec::new()),
            phase: AtomicU8::new(0),
        })
    }
}

impl Inbound for Echo {
    fn phase(&self) -> GatePhase {
        match self.phase.load(Ordering::Relaxed) {
            0 => GatePhase::Running,
            1 => GatePhase::Stopping,
            _ => GatePhase::Closed,
        }
    }

    async fn frame(&self, frame: Frame, _stopping: bool) -> Flow {
        self.seen.lock().unwrap().push(frame.clone());
        if frame.msg_id == 7 {
            self.session.offer(Frame::new(8, "push"));
        }
        self.session.offer(frame);
        Flow::Continue
    }
}

/// Which wire a test server speaks.
#[derive(Clone)]
enum Kind {
    Tcp,
    Ws,
    Tls(Arc<ServerConfig>),
    Wss(Arc<ServerConfig>),
}

/// Serves one connection of `listener` as `kind` with `echo`, to its end
/// (last words included); why it ended.
async fn serve_one(listener: TcpListener, kind: Kind, echo: Arc<Echo>) -> Ended {
    let (mut tcp, _) = listener.accept().await.unwrap();
    let (mut wire, input) = match kind {
        Kind::Tcp => (Wire::Tcp, BytesMut::new()),
        Kind::Ws => {
            let input = ws::accept(&mut tcp, "/").await.unwrap();
            (Wire::Ws(WsIn::default()), input)
        }
        Kind::Tls(config) => {
            let (tls, plain) = handshake(&tcp, &config).await.unwrap();
            (Wire::Tls(Box::new(tls)), plain)
        }
        Kind::Wss(config) => {
            let (tls, plain) = handshake(&tcp, &config).await.unwrap();
            let mut io = TlsIo::new(&tcp, tls, plain);
            let rest = ws::accept(&mut io, "/").await.unwrap();
            let (tls, mut plain) = io.into_parts();
            plain.extend_from_slice(&rest);
            (Wire::Wss(Box::new((tls, WsIn::default()))), plain)
        }
    };
    let stream = Arc::new(tcp);
    let mut reading = Reading::new(64 * 1024);
    let session = echo.session.clone();
    let ended = serve(&stream, &mut wire, input, &session, &*echo, &mut reading).await;
    finish(stream, &mut wire, &session, &mut reading, ended).await;
    ended
}

/// A server for one connection of `kind`: its address, its task, its echo.
async fn server(kind: Kind) -> (String, tokio::task::JoinHandle<Ended>, Arc<Echo>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let echo = Echo::new();
    let task = tokio::spawn(serve_one(listener, kind, echo.clone()));
    (addr, task, echo)
}

fn wire_bytes(frames: &[Frame]) -> Bytes {
    let mut b = BytesMut::new();
    for f in frames {
        f.encode_into(&mut b).unwrap();
    }
    b.freeze()
}

fn frame_of(msg: Message) -> Frame {
    let Message::Binary(b) = msg else {
        panic!("expected a binary message, got {msg:?}")
    };
    let f = FrameCodec::new(1 << 20)
        .decode(&mut BytesMut::from(&b[..]))
        .unwrap()
        .unwrap();
    assert_eq!(b.len(), f.wire_len(), "one frame per message");
    f
}

async fn ws_client(addr: &str) -> WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (c, resp) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    c
}

async fn next_ws(c: &mut WebSocketStream<TcpStream>) -> Message {
    tokio::time::timeout(T, c.next())
        .await
        .expect("a message in time")
        .expect("a message")
        .expect("no error")
}

async fn close_code(c: &mut WebSocketStream<TcpStream>) -> CloseCode {
    loop {
        match next_ws(c).await {
            Message::Close(Some(f)) => return f.code,
            Message::Close(None) => panic!("a close frame without a code"),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn tcp_frames_and_a_kick_with_what_was_queued() {
    let (addr, task, echo) = server(Kind::Tcp).await;
    let mut c = TcpStream::connect(&addr).await.unwrap();
    let mut codec = FrameCodec::new(1 << 20);
    let mut rbuf = BytesMut::new();
    c.write_all(&wire_bytes(&[Frame::new(7, "x")]))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        while let Some(f) = codec.decode(&mut rbuf).unwrap() {
            got.push(f);
        }
        if got.len() < 2 {
            c.read_buf(&mut rbuf).await.unwrap();
        }
    }
    assert_eq!(got, [Frame::new(8, "push"), Frame::new(7, "x")]);
    // Kicked with a frame queued: the client gets it, then the end.
    echo.session.offer(Frame::new(1, "bye"));
    echo.session.close_with(CloseReason::Kicked);
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).await.unwrap();
    assert_eq!(&rest[..], &wire_bytes(&[Frame::new(1, "bye")])[..]);
    drop(c);
    assert_eq!(task.await.unwrap(), Ended::Session(CloseReason::Kicked));
}

#[tokio::test]
async fn an_oversize_frame_closes_a_tcp_connection() {
    let (addr, task, _) = server(Kind::Tcp).await;
    let mut c = TcpStream::connect(&addr).await.unwrap();
    let head = &wire_bytes(&[Frame::new(1, vec![0u8; 64 * 1024 + 1])])[..8];
    c.write_all(head).await.unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest).await;
    assert!(rest.is_empty());
    assert_eq!(task.await.unwrap(), Ended::Session(CloseReason::Oversize));
}

#[tokio::test]
async fn ws_frames_batched_and_split_across_messages() {
    let (addr, task, echo) = server(Kind::Ws).await;
    let mut c = ws_client(&addr).await;
    // Three frames in one message.
    let three = wire_bytes(&[Frame::new(1, "a"), Frame::new(2, ""), Frame::new(3, "ccc")]);
    c.send(Message::Binary(three)).await.unwrap();
    for want in [Frame::new(1, "a"), Frame::new(2, ""), Frame::new(3, "ccc")] {
        assert_eq!(frame_of(next_ws(&mut c).await), want);
    }
    // One 60 KiB frame over three messages, the cut inside the header.
    let big = wire_bytes(&[Frame::new(6, vec![9u8; 60 * 1024])]);
    c.send(Message::Binary(big.slice(..5))).await.unwrap();
    c.send(Message::Binary(big.slice(5..30_000))).await.unwrap();
    c.send(Message::Binary(big.slice(30_000..))).await.unwrap();
    assert_eq!(
        frame_of(next_ws(&mut c).await),
        Frame::new(6, vec![9u8; 60 * 1024])
    );
    // A push and a reply: two messages.
    c.send(Message::Binary(wire_bytes(&[Frame::new(7, "x")])))
        .await
        .unwrap();
    assert_eq!(frame_of(next_ws(&mut c).await), Frame::new(8, "push"));
    assert_eq!(frame_of(next_ws(&mut c).await), Frame::new(7, "x"));
    assert_eq!(echo.seen.lock().unwrap().len(), 5);
    c.close(None).await.unwrap();
    assert_eq!(
        task.await.unwrap(),
        Ended::Session(CloseReason::ClientClosed)
    );
}

#[tokio::test]
async fn ws_text_oversize_and_kick_close_with_a_code() {
    let (addr, task, _) = server(Kind::Ws).await;
    let mut c = ws_client(&addr).await;
    c.send(Message::text("hello")).await.unwrap();
    assert_eq!(close_code(&mut c).await, CloseCode::Unsupported);
    drop(c);
    assert_eq!(task.await.unwrap(), Ended::TextMessage);

    let (addr, task, _) = server(Kind::Ws).await;
    let mut c = ws_client(&addr).await;
    let head = wire_bytes(&[Frame::new(1, vec![0u8; 64 * 1024 + 1])]).slice(..8);
    c.send(Message::Binary(head)).await.unwrap();
    assert_eq!(close_code(&mut c).await, CloseCode::Size);
    drop(c);
    assert_eq!(task.await.unwrap(), Ended::Session(CloseReason::Oversize));

    let (addr, task, echo) = server(Kind::Ws).await;
    let mut c = ws_client(&addr).await;
    // The session exists once the upgrade is done; queue, then kick.
    c.send(Message::Binary(wire_bytes(&[Frame::new(3, "hi")])))
        .await
        .unwrap();
    assert_eq!(frame_of(next_ws(&mut c).await), Frame::new(3, "hi"));
    echo.session.offer(Frame::new(1, "bye"));
    echo.session.close_with(CloseReason::Kicked);
    assert_eq!(frame_of(next_ws(&mut c).await), Frame::new(1, "bye"));
    assert_eq!(close_code(&mut c).await, CloseCode::Normal);
    drop(c);
    assert_eq!(task.await.unwrap(), Ended::Session(CloseReason::Kicked));
}

#[tokio::test]
async fn ws_pings_are_answered_and_a_close_is_echoed_after_the_answers() {
    let (addr, task, _) = server(Kind::Ws).await;
    let mut c = ws_client(&addr).await;
    c.send(Message::Ping(Bytes::from_static(b"still there?")))
        .await
        .unwrap();
    c.send(Message::Binary(wire_bytes(&[Frame::new(
        3,
        "after the ping",
    )])))
    .await
    .unwrap();
    match next_ws(&mut c).await {
        Message::Pong(p) => assert_eq!(&p[..], b"still there?"),
        other => panic!("expected the pong first, got {other:?}"),
    }
    assert_eq!(
        frame_of(next_ws(&mut c).await),
        Frame::new(3, "after the ping")
    );
    // A frame and the close in one go: the frame's answer, then the close
    // reply echoing the client's code, then nothing.
    let mut both = BytesMut::new();
    let tcp = c.get_mut();
    let frame = wire_bytes(&[Frame::new(4, "last")]);
    // Masked client frames by hand: binary with the frame, then close 1001.
    both.extend_from_slice(&[0x82, 0x80 | frame.len() as u8, 0, 0, 0, 0]);
    both.extend_from_slice(&frame);
    both.extend_from_slice(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE9]);
    tcp.write_all(&both).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(T, tcp.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let mut want = BytesMut::new();
    want.extend_from_slice(&[0x82, frame.len() as u8]);
    want.extend_from_slice(&frame);
    want.extend_from_slice(&[0x88, 2, 0x03, 0xE9]);
    assert_eq!(rest, &want[..]);
    assert_eq!(
        task.await.unwrap(),
        Ended::Session(CloseReason::ClientClosed)
    );
}

#[tokio::test]
async fn an_unmasked_client_frame_is_a_protocol_error() {
    let (addr, task, _) = server(Kind::Ws).await;
    let mut b = TcpStream::connect(&addr).await.unwrap();
    b.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    // A binary frame without a mask, as only a server may send.
    b.write_all(&[0x82, 0x01, 0x00]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(T, b.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
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
    drop(b);
    assert_eq!(task.await.unwrap(), Ended::Protocol);
}

#[tokio::test]
async fn tls_and_wss_carry_frames() {
    use zinx_cluster_client::{Client, ClientTls};
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = testing::self_signed(dir.path());
    let config = load_server_config(&cert, &key).unwrap();
    let trust = ClientTls::trusting_pem_file(&cert).unwrap();

    let (addr, task, _) = server(Kind::Tls(config.clone())).await;
    let mut c = Client::connect_tls(addr.as_str(), &trust, "localhost")
        .await
        .unwrap();
    assert_eq!(
        c.request(5, "over tls", T).await.unwrap(),
        Frame::new(5, "over tls")
    );
    drop(c);
    assert_eq!(task.await.unwrap().reason(), CloseReason::ClientClosed);

    let (addr, task, _) = server(Kind::Wss(config)).await;
    let port = addr.rsplit(':').next().unwrap().to_string();
    let url = format!("wss://localhost:{port}/");
    let mut c = Client::connect_ws(&url, Some(&trust)).await.unwrap();
    c.send(9, vec![7u8; 1000]).await.unwrap();
    assert_eq!(
        c.recv_timeout(T).await.unwrap(),
        Frame::new(9, vec![7u8; 1000])
    );
    // Two frames in one message, answered as two.
    let mut two = BytesMut::new();
    Frame::new(1, "x").encode_into(&mut two).unwrap();
    Frame::new(2, "y").encode_into(&mut two).unwrap();
    c.send_raw(two.freeze()).await.unwrap();
    assert_eq!(c.recv_timeout(T).await.unwrap(), Frame::new(1, "x"));
    assert_eq!(c.recv_timeout(T).await.unwrap(), Frame::new(2, "y"));
    drop(c);
    assert_eq!(task.await.unwrap().reason(), CloseReason::ClientClosed);
}

#[tokio::test]
async fn a_big_frame_crosses_tls_whole() {
    use zinx_cluster_client::{Client, ClientTls};
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = testing::self_signed(dir.path());
    let config = load_server_config(&cert, &key).unwrap();
    let trust = ClientTls::trusting_pem_file(&cert).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let echo = Echo::new();
    let task = tokio::spawn(async move {
        // Frames up to 256 KiB on this connection: several TLS records
        // each way.
        let (tcp, _) = listener.accept().await.unwrap();
        let (tls, plain) = handshake(&tcp, &config).await.unwrap();
        let mut wire = Wire::Tls(Box::new(tls));
        let stream = Arc::new(tcp);
        let mut reading = Reading::new(256 * 1024);
        let session = echo.session.clone();
        let ended = serve(&stream, &mut wire, plain, &session, &*echo, &mut reading).await;
        finish(stream, &mut wire, &session, &mut reading, ended).await;
        ended
    });
    let mut c = Client::connect_tls(addr.as_str(), &trust, "localhost")
        .await
        .unwrap();
    let big = vec![5u8; 60 * 1024];
    assert_eq!(
        c.request(9, big.clone(), T).await.unwrap(),
        Frame::new(9, big)
    );
    drop(c);
    assert_eq!(task.await.unwrap().reason(), CloseReason::ClientClosed);
}

#[tokio::test]
async fn a_client_that_does_not_read_is_reset_when_kicked() {
    let (addr, task, echo) = server(Kind::Tcp).await;
    let c = TcpStream::connect(&addr).await.unwrap();
    // Wait for the session to be served, then fill the client's socket
    // (it never reads).
    let mut c = c;
    c.write_all(&wire_bytes(&[Frame::new(3, "hi")]))
        .await
        .unwrap();
    while echo.seen.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    for _ in 0..200 {
        echo.session.offer(Frame::new(1, vec![0u8; 60 * 1024]));
    }
    echo.session.close_with(CloseReason::Kicked);
    // The server's side ends within its flush bound, by a reset: the
    // client's reads end with an error, not a clean end of stream, after
    // at most what the buffers held.
    let ended = tokio::time::timeout(Duration::from_secs(4), task)
        .await
        .expect("the kicked connection ends within the close bound");
    assert_eq!(ended.unwrap(), Ended::Session(CloseReason::Kicked));
    let mut sink = vec![0u8; 1 << 20];
    let mut reset = false;
    loop {
        match c.read(&mut sink).await {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) => {
                reset = e.kind() == std::io::ErrorKind::ConnectionReset;
                break;
            }
        }
    }
    assert!(
        reset,
        "a client that did not read is reset, not closed in order"
    );
}
