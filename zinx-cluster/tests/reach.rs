//! Reaching a gate beyond plain TCP, and watching a node: WebSocket and TLS
//! client ports, the admin endpoint (`/metrics`, `/healthz`, `/readyz`) and
//! one trace per request across nodes.
//!
//! Nodes: gate-1 (1, group "gate", with WsPort and AdminPort), im-1 (2,
//! group "im", with AdminPort).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use zinx_cluster::Frame;
use zinx_cluster::prelude::*;
use zinx_cluster_client::{Client, ClientError, ClientTls};

use zinx_test_support::T;
use zinx_test_support::cluster::{Hold, TestCluster, assert_closed, expect, req, s};
use zinx_test_support::ports::free_ports;

#[handler(msg_id = 1, group = "gate")]
async fn login(ctx: &mut Ctx, name: String) -> Result<String, HandlerError> {
    ctx.bind(&name).await?;
    Ok(format!("hello {name}"))
}

#[handler(msg_id = 5, group = "gate")]
async fn gate_echo(_ctx: &mut Ctx, data: Bytes) -> Bytes {
    data
}

#[handler(msg_id = 6, group = "im")]
async fn im_echo(_ctx: &mut Ctx, data: Bytes) -> Bytes {
    data
}

/// 7: answers once the test releases [`IM_HOLD`] (a request still in
/// flight when a test stops the gate).
#[handler(msg_id = 7, group = "im")]
async fn im_slow(_ctx: &mut Ctx, data: Bytes) -> Bytes {
    IM_HOLD.hold().await;
    data
}

static IM_HOLD: Hold = Hold::new();

/// 3 "to text": pushes `text` on 3 to user `to`, answers "sent".
#[handler(msg_id = 3, group = "im")]
async fn send(ctx: &mut Ctx, line: String) -> Result<&'static str, HandlerError> {
    let (to, text) = line.split_once(' ').unwrap_or((line.as_str(), ""));
    ctx.push_to_uid(to, Frame::new(3, text.to_string())).await?;
    Ok("sent")
}

const ROUTE: &str = r#"{
    "gate": [{"MsgID": 1, "Name": "login"}, {"MsgID": 5, "Name": "echo"}],
    "im": [{"MsgID": 3, "Name": "send"}, {"MsgID": 6, "Name": "echo"}, {"MsgID": 7, "Name": "slow"}]
}"#;

/// Ports: gate-1 Port, WsPort, AdminPort; im-1 Port, AdminPort.
struct Ports {
    gate: u16,
    ws: u16,
    admin: u16,
    im: u16,
    im_admin: u16,
}

fn dinx(ws_path: &str) -> (String, Ports) {
    let f = free_ports(5).expect("free ports");
    let p = Ports {
        gate: f[0],
        ws: f[1],
        admin: f[2],
        im: f[3],
        im_admin: f[4],
    };
    let dinx = format!(
        r#"{{
        "gate": [{{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": {},
                   "WsPort": {}, "WsPath": "{ws_path}", "AdminPort": {}}}],
        "im": [{{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": {},
                 "AdminPort": {}}}]
    }}"#,
        p.gate, p.ws, p.admin, p.im, p.im_admin
    );
    (dinx, p)
}

const FAST: &str = r#""heartbeat_interval_ms": 100, "heartbeat_timeout_ms": 600,
    "reconnect_min_ms": 20, "reconnect_max_ms": 200, "secret": "test-secret""#;

async fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Launches gate-1 and im-1 with `settings` (a JSON object body) and waits
/// for their link.
async fn launch(ws_path: &str, settings: &str) -> (TestCluster, Ports) {
    let (dinx, ports) = dinx(ws_path);
    let tc = TestCluster::launch(dinx, ROUTE, format!("{{{FAST}{settings}}}"), &[1, 2]).await;
    tc.wait_link(1, 2).await;
    (tc, ports)
}

/// The same conversation over any client: gate-local and forwarded echo
/// (empty, small, 60 KiB), an unknown msg_id, a heartbeat.
async fn converse(c: &mut Client) {
    for payload in ["", "hi", &"x".repeat(60 * 1024)] {
        let f = req(c, 5, payload).await;
        assert_eq!((f.msg_id, s(&f)), (5, payload.to_string()));
        let f = req(c, 6, payload).await;
        assert_eq!((f.msg_id, s(&f)), (6, payload.to_string()));
    }
    c.send(99999, "ping").await.unwrap();
    let f = req(c, 4242, "?").await;
    assert_eq!(f.msg_id, 0);
    let v: serde_json::Value = serde_json::from_slice(&f.data).unwrap();
    assert_eq!(v["code"], "unknown_msg_id");
}

fn wire(frames: &[(u32, &str)]) -> Bytes {
    let mut b = BytesMut::new();
    for (id, data) in frames {
        Frame::new(*id, data.to_string())
            .encode_into(&mut b)
            .unwrap();
    }
    b.freeze()
}

#[tokio::test]
async fn a_websocket_client_gets_the_same_answers_as_a_tcp_client() {
    let (tc, p) = launch("/zinx", "").await;
    let mut tcp = tc.client_of(1).await;
    let mut ws = Client::connect_ws(&format!("ws://127.0.0.1:{}/zinx", p.ws), None)
        .await
        .unwrap();
    converse(&mut tcp).await;
    converse(&mut ws).await;

    // Several frames in one message, local and forwarded, all answered
    // (a gate-local answer may overtake a forwarded one, as on TCP).
    ws.send_raw(wire(&[(5, "a"), (6, "b"), (5, "c")]))
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let f = ws.recv_timeout(T).await.unwrap();
        got.push((f.msg_id, s(&f)));
    }
    got.sort();
    assert_eq!(got, [(5, "a".into()), (5, "c".into()), (6, "b".into())]);
    // One frame over three messages, cut inside its header.
    let big = wire(&[(6, &"y".repeat(60 * 1024))]);
    ws.send_raw(big.slice(..3)).await.unwrap();
    ws.send_raw(big.slice(3..40_000)).await.unwrap();
    ws.send_raw(big.slice(40_000..)).await.unwrap();
    expect(&mut ws, 6, &"y".repeat(60 * 1024)).await;

    // A WebSocket user and a TCP user push to each other.
    assert_eq!(s(&req(&mut ws, 1, "wendy").await), "hello wendy");
    assert_eq!(s(&req(&mut tcp, 1, "tom").await), "hello tom");
    assert_eq!(s(&req(&mut tcp, 3, "wendy hi from tcp").await), "sent");
    expect(&mut ws, 3, "hi from tcp").await;
    assert_eq!(s(&req(&mut ws, 3, "tom hi from ws").await), "sent");
    expect(&mut tcp, 3, "hi from ws").await;
    tc.shutdown().await;
}

/// Reads until the server closes; the close code.
async fn close_code<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> u16
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match tokio::time::timeout(T, ws.next()).await.expect("a close") {
            Some(Ok(Message::Close(Some(f)))) => return f.code.into(),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn websocket_clients_are_told_when_the_gate_shuts_down() {
    let (tc, p) = launch("/", "").await;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", p.ws))
        .await
        .unwrap();
    let url = format!("ws://127.0.0.1:{}/", p.ws);
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
        .await
        .unwrap();
    ws.send(Message::Binary(wire(&[(5, "up")]))).await.unwrap();
    match tokio::time::timeout(T, ws.next()).await.expect("an echo") {
        Some(Ok(Message::Binary(b))) => assert_eq!(&b[8..], b"up"),
        other => panic!("expected the echo, got {other:?}"),
    }
    // The session's loop waits for nothing but its own wake-ups: the
    // gate's shutdown must still reach it, with 1001 "going away".
    let stop = tokio::spawn(tc.shutdown());
    assert_eq!(close_code(&mut ws).await, 1001);
    tokio::time::timeout(T, stop)
        .await
        .expect("shutdown ends")
        .unwrap();
}

#[tokio::test]
async fn websocket_mistakes_close_with_a_code_and_the_gate_keeps_serving() {
    let (tc, p) = launch("/", r#", "max_frame_len": 1024"#).await;
    let url = format!("ws://127.0.0.1:{}/", p.ws);
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", p.ws))
            .await
            .unwrap();
        tokio_tungstenite::client_async(url.as_str(), tcp)
            .await
            .unwrap()
            .0
    };
    let mut text = connect().await;
    text.send(Message::text("hello")).await.unwrap();
    assert_eq!(close_code(&mut text).await, 1003);
    let mut big = connect().await;
    big.send(Message::Binary(wire(&[(5, &"z".repeat(2000))])))
        .await
        .unwrap();
    assert_eq!(close_code(&mut big).await, 1009);
    // Wrong path and plain HTTP: an HTTP error, no session.
    let (status, _) = http_get(p.ws, "/elsewhere").await;
    assert_eq!(status, 404);
    let (status, body) = http_get(p.ws, "/").await;
    assert_eq!(status, 426);
    assert!(body.contains("WebSocket"), "{body}");
    // Still serving.
    let mut ws = Client::connect_ws(&url, None).await.unwrap();
    expect_echo(&mut ws).await;
    let m = tc.running(1).metrics(1).unwrap();
    assert_eq!(m.oversize_closes, 1);
    let (_, metrics) = http_get(p.admin, "/metrics").await;
    assert!(
        metrics.contains(r#"zinx_session_closes_total{node="gate-1",reason="text_message"} 1"#),
        "{metrics}"
    );
    tc.shutdown().await;
}

async fn expect_echo(c: &mut Client) {
    let f = req(c, 5, "still here").await;
    assert_eq!(s(&f), "still here");
}

#[tokio::test]
async fn tls_and_wss_with_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, trust) = self_signed(dir.path());
    let (tc, p) = launch("/", &settings).await;
    let mut tls = Client::connect_tls(("127.0.0.1", p.gate), &trust, "localhost")
        .await
        .unwrap();
    converse(&mut tls).await;
    let mut wss = Client::connect_ws(&format!("wss://localhost:{}/", p.ws), Some(&trust))
        .await
        .unwrap();
    converse(&mut wss).await;
    // A plain client on the TLS port gets nothing it could mistake for an
    // answer: its connection ends without a frame.
    let mut plain = tc.client_of(1).await;
    plain.send(5, "hi").await.unwrap();
    let got = plain.recv_timeout(T).await;
    assert!(
        matches!(got, Err(ClientError::Closed | ClientError::Frame(_))),
        "a plain client on the TLS port: {got:?}"
    );
    let (_, metrics) = http_get(p.admin, "/metrics").await;
    assert!(
        metrics.contains(r#"zinx_sessions{node="gate-1",transport="tls"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"zinx_sessions{node="gate-1",transport="wss"} 1"#),
        "{metrics}"
    );
    tc.shutdown().await;
}

/// A self-signed certificate for `localhost` written to `dir`: the
/// settings (a JSON fragment) that serve it, and the client's trust.
fn self_signed(dir: &std::path::Path) -> (String, ClientTls) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = dir.join("gate.pem");
    let key_path = dir.join("gate.key");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let settings = format!(
        r#", "tls_cert": {:?}, "tls_key": {:?}"#,
        cert_path.display().to_string(),
        key_path.display().to_string()
    );
    let trust = ClientTls::trusting_pem(cert.cert.pem().as_bytes()).unwrap();
    (settings, trust)
}

/// `idle_timeout_ms` of the idle test.
const IDLE_MS: u64 = 600;

/// Sends a zinx heartbeat every 150 ms through four idle timeouts, then
/// checks the client is still served.
async fn talk_through_idle_timeouts(c: &mut Client, who: &str) {
    let rounds = 4 * IDLE_MS / 150;
    for _ in 0..rounds {
        c.send(99999, "")
            .await
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let f = c.request(5, who.to_string(), T).await;
    assert!(
        matches!(&f, Ok(f) if f.msg_id == 5 && f.data == who.as_bytes()),
        "{who}, which sent a frame every 150 ms, was closed as idle: {f:?}"
    );
}

/// Reading a frame from a WebSocket or TLS client counts for the idle
/// sweep as on plain TCP: clients sending a heartbeat every 150 ms stay
/// open through four `idle_timeout_ms` of 600, while silent clients of the
/// same transports are closed. (Only TCP sessions used to refresh the
/// sweep's clock: an active WebSocket client was closed as idle.)
#[tokio::test]
async fn websocket_and_tls_clients_that_talk_are_not_idle() {
    let idle = format!(r#", "idle_timeout_ms": {IDLE_MS}"#);
    let dir = tempfile::tempdir().unwrap();
    let (tls, trust) = self_signed(dir.path());
    let (plain, p) = launch("/", &idle).await;
    let (secure, q) = launch("/", &format!("{idle}{tls}")).await;
    let ws_url = format!("ws://127.0.0.1:{}/", p.ws);
    let wss_url = format!("wss://localhost:{}/", q.ws);
    let tls_addr = ("127.0.0.1", q.gate);
    let mut ws = Client::connect_ws(&ws_url, None).await.unwrap();
    let mut wss = Client::connect_ws(&wss_url, Some(&trust)).await.unwrap();
    let mut tls_talker = Client::connect_tls(tls_addr, &trust, "localhost")
        .await
        .unwrap();
    let mut tcp = plain.client_of(1).await;
    let mut silent_ws = Client::connect_ws(&ws_url, None).await.unwrap();
    let mut silent_tls = Client::connect_tls(tls_addr, &trust, "localhost")
        .await
        .unwrap();
    tokio::join!(
        talk_through_idle_timeouts(&mut ws, "ws"),
        talk_through_idle_timeouts(&mut wss, "wss"),
        talk_through_idle_timeouts(&mut tls_talker, "tls"),
        talk_through_idle_timeouts(&mut tcp, "tcp"),
        assert_closed(&mut silent_ws, "a silent WebSocket client"),
        assert_closed(&mut silent_tls, "a silent TLS client"),
    );
    for (tc, who) in [(&plain, "ws and tcp"), (&secure, "wss and tls")] {
        let m = tc.running(1).metrics(1).unwrap();
        assert_eq!(m.idle_closes, 1, "{who}: only the silent client is idle");
    }
    plain.shutdown().await;
    secure.shutdown().await;
}

#[tokio::test]
async fn a_missing_certificate_is_a_start_error_naming_the_file() {
    let (dinx, _) = dinx("/");
    let settings = format!(
        r#"{{{FAST}, "tls_cert": "/nonexistent/gate.pem", "tls_key": "/nonexistent/gate.key"}}"#
    );
    let config =
        zinx_cluster::config::ClusterConfig::from_strs("conf", &dinx, ROUTE, Some(&settings))
            .unwrap();
    let e = zinx_cluster::Cluster::new(config)
        .start(zinx_cluster::Select::Id(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/gate.pem") && e.contains("cannot read"),
        "{e}"
    );
}

#[tokio::test]
async fn metrics_after_traffic_and_health() {
    let (tc, p) = launch("/", "").await;
    let mut c = tc.client_of(1).await;
    converse(&mut c).await;
    // Eight more forwards: the forward timer times one in 8 per thread
    // (the cluster runs on this test's one thread), so at least one of the
    // 11 is timed.
    for i in 0..8 {
        let f = req(&mut c, 6, &format!("more {i}")).await;
        assert_eq!(s(&f), format!("more {i}"));
    }
    let (status, body) = http_get(p.admin, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, m) = http_get(p.admin, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        r#"zinx_messages_total{node="gate-1",msg_id="5",outcome="ok"} 3"#,
        r#"zinx_messages_total{node="gate-1",msg_id="6",outcome="forwarded"} 11"#,
        r#"zinx_messages_total{node="gate-1",msg_id="other",outcome="unknown_msg_id"} 1"#,
        r#"zinx_sessions{node="gate-1",transport="tcp"} 1"#,
        r#"zinx_link_up{node="gate-1",peer="im-1"} 1"#,
        r#"zinx_heartbeats_in_total{node="gate-1"} 1"#,
    ] {
        assert!(m.contains(line), "missing {line} in\n{m}");
    }
    // The handler and forward timers time one in 8 per thread, each
    // sample weighted by 8: the counts are estimates, multiples of 8.
    let count = |prefix: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("missing {prefix} in\n{m}"))
            .trim()
            .parse()
            .expect("a count")
    };
    let handled = count(r#"zinx_handler_duration_seconds_count{node="gate-1",msg_id="5"} "#);
    assert_eq!(handled % 8, 0, "{handled}");
    let forwards = count(r#"zinx_forward_duration_seconds_count{node="gate-1",group="im"} "#);
    assert!(
        forwards % 8 == 0 && (8..=16).contains(&forwards),
        "11 forwards, one or two of them timed: {forwards}"
    );
    let (_, m) = http_get(p.im_admin, "/metrics").await;
    for line in [
        r#"zinx_messages_total{node="im-1",msg_id="6",outcome="ok"} 11"#,
        r#"zinx_handler_duration_seconds_count{node="im-1",msg_id="6"} "#,
    ] {
        assert!(m.contains(line), "missing {line} in\n{m}");
    }
    tc.shutdown().await;
}

/// Polls `/readyz` until it answers `status` (at most 5 s); the body.
async fn ready_becomes(port: u16, status: u16) -> String {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let (got, body) = http_get(port, "/readyz").await;
        if got == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed {got}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn readyz_follows_the_last_node_of_a_forwarded_group() {
    let (mut tc, p) = launch("/", "").await;
    assert_eq!(ready_becomes(p.admin, 200).await, "ready\n");
    tc.stop(2).await;
    let body = ready_becomes(p.admin, 503).await;
    assert!(
        body.contains("no live node") && body.contains("im"),
        "{body}"
    );
    tc.restart(2).await;
    tc.wait_link(1, 2).await;
    ready_becomes(p.admin, 200).await;
    // A gate shutting down is not ready, so a load balancer drains it:
    // seen while it waits for the answer of a slow request.
    let mut c = Client::connect(format!("127.0.0.1:{}", p.gate))
        .await
        .unwrap();
    expect_echo(&mut c).await;
    c.send(7, "slow").await.unwrap();
    IM_HOLD.wait_held().await;
    let gate = tc.take(1);
    let stopping = tokio::spawn(gate.shutdown());
    let body = ready_becomes(p.admin, 503).await;
    assert!(body.contains("shutting down"), "{body}");
    IM_HOLD.release();
    expect(&mut c, 7, "slow").await;
    stopping.await.unwrap();
    tc.shutdown().await;
}

#[tokio::test]
async fn one_trace_spans_the_gate_and_the_backend() {
    let (dinx, _) = dinx("/");
    let config = zinx_cluster::config::ClusterConfig::from_strs(
        "conf",
        &dinx,
        ROUTE,
        Some(&format!("{{{FAST}}}")),
    )
    .unwrap();
    let spans = zinx_cluster::trace::InMemoryExporter::new();
    let running = zinx_cluster::Cluster::new(config.clone())
        .with_span_exporter(spans.clone())
        .start(zinx_cluster::Select::All)
        .await
        .unwrap();
    assert!(running.wait_links(T).await);
    let mut c = Client::connect(config.node(1).unwrap().addr())
        .await
        .unwrap();
    expect_echo(&mut c).await;
    let f = req(&mut c, 6, "across").await;
    assert_eq!(s(&f), "across");
    running.shutdown().await;
    let spans = spans.spans();
    let gate = spans
        .iter()
        .find(|s| {
            s.name == "zinx.message"
                && s.attributes
                    .contains(&("zinx.msg_id", zinx_cluster::trace::AttrValue::Int(6)))
        })
        .expect("the gate's span");
    let backend = spans
        .iter()
        .find(|s| s.name == "zinx.handler" && s.context.trace_id == gate.context.trace_id)
        .expect("the backend's span in the same trace");
    assert_eq!(backend.parent_span_id, Some(gate.context.span_id));
    assert!(backend.attributes.contains(&(
        "zinx.node",
        zinx_cluster::trace::AttrValue::Str("im-1".into())
    )));
    // The gate-local echo is a trace of its own, with the handler inside.
    let local: Vec<_> = spans
        .iter()
        .filter(|s| {
            s.attributes
                .contains(&("zinx.msg_id", zinx_cluster::trace::AttrValue::Int(5)))
        })
        .collect();
    assert_eq!(local.len(), 2, "{local:?}");
    assert_eq!(local[0].context.trace_id, local[1].context.trace_id);
    assert_ne!(local[0].context.trace_id, gate.context.trace_id);
}
