//! In-process clusters on loopback, driven by a real zinx-format client.
//!
//! Nodes: gate-1 (1, group "gate"), im-1 (2) and im-2 (3) (group "im"),
//! calc-1 (4, group "calc"), and ghost-1 (5, group "ghost", never started).
//! Each node runs as its own `RunningCluster` so a test can stop and restart
//! one (and a few run one node in a child process).
//!
//! | file | what |
//! |---|---|
//! | `main.rs` | the handlers and the harness; routing and forwarding: echo, push, send, broadcast, order, failover, balancing; links and the cluster secret (setting and environment) |
//! | `calls.rs` | calls and casts between nodes, their timeouts, what a handler's `Ctx` tells, error answers |
//! | `sessions.rs` | session ids, kicks, rooms from a handle, the session limit, the client's frame limit |
//! | `lifecycle.rs` | graceful shutdown of a gate and of a backend under traffic, node handles |
//! | `limits.rs` | clients that never read, oversize frames, idle and trickling clients, garbage connections |

mod calls;
mod lifecycle;
mod limits;
mod sessions;

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use zinx_cluster::prelude::*;
use zinx_cluster::{Cluster, Select};
use zinx_cluster_client::Client;

use zinx_test_support::T;
use zinx_test_support::cluster::{
    Hold, TestCluster, assert_closed, error_of, expect, nothing_before_echo, req, s, wait_metrics,
};
use zinx_test_support::free_ports;

// ----------------------------------------------------------------------
// Handlers
// ----------------------------------------------------------------------

#[derive(Deserialize)]
struct Login {
    name: String,
}

#[handler(msg_id = 1, group = "gate")]
async fn login(ctx: &mut Ctx, Json(l): Json<Login>) -> Result<String, HandlerError> {
    let kicked = ctx.bind(&l.name).await?;
    Ok(format!("ok {} kicked={}", l.name, kicked.is_some()))
}

#[handler(msg_id = 2, group = "gate")]
async fn logout(ctx: &mut Ctx) -> Result<&'static str, HandlerError> {
    ctx.unbind().await?;
    Ok("bye")
}

#[handler(msg_id = 5, group = "gate")]
async fn gate_echo(_ctx: &mut Ctx, data: Bytes) -> Bytes {
    data
}

/// Gate-side push to a uid: payload is the uid.
#[handler(msg_id = 8, group = "gate")]
async fn gate_push(ctx: &mut Ctx, uid: String) -> Result<(), HandlerError> {
    ctx.push_to_uid(&uid, Frame::new(8, format!("from gate to {uid}")))
        .await?;
    Ok(())
}

/// Gate-side broadcast.
#[handler(msg_id = 16, group = "gate")]
async fn gate_broadcast(ctx: &mut Ctx, text: String) -> Result<(), HandlerError> {
    ctx.broadcast(Frame::new(16, text))?;
    Ok(())
}

/// Holds the gate's reader (an in-place handler) until the test releases
/// [`GATE_HOLD`], then answers "released".
#[handler(msg_id = 18, group = "gate")]
async fn gate_hold(_ctx: &mut Ctx) -> &'static str {
    GATE_HOLD.hold().await;
    "released"
}

/// The hold of msg 18 (one test uses it).
static GATE_HOLD: Hold = Hold::new();

/// The session id, as a number.
#[handler(msg_id = 27, group = "gate")]
async fn my_session(ctx: &mut Ctx) -> Result<String, HandlerError> {
    Ok(ctx.session().ok_or("no session")?.0.to_string())
}

#[handler(msg_id = 6, group = "im")]
async fn im_echo(_ctx: &mut Ctx, data: Bytes) -> Bytes {
    data
}

/// Who am I: node name and uid as the backend sees them.
#[handler(msg_id = 9, group = "im")]
async fn whoami(ctx: &mut Ctx) -> String {
    format!("{} {}", ctx.node_name(), ctx.uid().unwrap_or("-"))
}

#[derive(Deserialize)]
struct Send {
    to: String,
    text: String,
}

#[handler(msg_id = 3, group = "im")]
async fn send(ctx: &mut Ctx, Json(m): Json<Send>) -> Result<String, HandlerError> {
    let from = ctx.uid().ok_or("not logged in")?.to_string();
    match ctx
        .push_to_uid(&m.to, Frame::new(3, format!("{from}: {}", m.text)))
        .await
    {
        Ok(()) => Ok("sent".into()),
        Err(SendError::NotOnline { .. }) => Ok(format!("{} is not online", m.to)),
        Err(e) => Err(e.into()),
    }
}

#[handler(msg_id = 4, group = "im")]
async fn im_broadcast(ctx: &mut Ctx, text: String) -> Result<(), HandlerError> {
    ctx.broadcast(Frame::new(4, text))?;
    Ok(())
}

static SEEN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Ordering: records the number, replies after the last one with whether
/// they arrived in order.
#[handler(msg_id = 10, group = "im")]
async fn numbered(_ctx: &mut Ctx, n: String) -> Result<Option<String>, HandlerError> {
    let n: u32 = n.parse().map_err(|_| "not a number")?;
    if n % 7 == 0 {
        // Yield so that a racing next message would overtake us.
        tokio::task::yield_now().await;
    }
    let mut seen = SEEN.lock().map_err(|_| "poisoned")?;
    seen.push(n);
    if n == 999 {
        let ordered = seen.windows(2).all(|w| w[0] + 1 == w[1]) && seen.len() == 1000;
        return Ok(Some(format!("ordered={ordered} count={}", seen.len())));
    }
    Ok(None)
}

#[handler(msg_id = 11, group = "im")]
async fn call_calc(ctx: &mut Ctx, n: String) -> Result<Bytes, HandlerError> {
    Ok(ctx.call::<Bytes>("calc", Frame::new(20, n)).await?)
}

#[handler(msg_id = 12, group = "im")]
async fn cast_calc(ctx: &mut Ctx, n: String) -> Result<&'static str, HandlerError> {
    ctx.cast("calc", Frame::new(21, n))?;
    Ok("cast sent")
}

#[handler(msg_id = 13, group = "im")]
async fn call_ghost(ctx: &mut Ctx) -> String {
    match ctx.call::<Bytes>("ghost", Frame::new(30, "x")).await {
        Ok(_) => "unexpected answer".into(),
        Err(e) => format!("call failed: {e}"),
    }
}

/// Kick a uid from a backend.
#[handler(msg_id = 14, group = "im")]
async fn kick_uid(ctx: &mut Ctx, uid: String) -> Result<&'static str, HandlerError> {
    ctx.kick(uid).await?;
    Ok("kicked")
}

/// Flood this session with pushes: payload is "count size".
#[handler(msg_id = 15, group = "im")]
async fn flood(ctx: &mut Ctx, spec: String) -> Result<(), HandlerError> {
    let mut it = spec.split(' ');
    let count: usize = it.next().and_then(|s| s.parse().ok()).ok_or("count")?;
    let size: usize = it.next().and_then(|s| s.parse().ok()).ok_or("size")?;
    let session = ctx.session().ok_or("no session")?;
    let data = Bytes::from(vec![b'x'; size]);
    for _ in 0..count {
        if ctx.push(session, Frame::new(15, data.clone())).is_err() {
            break;
        }
    }
    Ok(())
}

/// Bind from a backend.
#[handler(msg_id = 17, group = "im")]
async fn im_bind(ctx: &mut Ctx, uid: String) -> Result<String, HandlerError> {
    ctx.bind(&uid).await?;
    Ok(format!("bound {}", ctx.uid().unwrap_or("-")))
}

#[handler(msg_id = 20, group = "calc")]
async fn double(ctx: &mut Ctx, n: String) -> Result<String, HandlerError> {
    let n: i64 = n.parse().map_err(|_| "not a number")?;
    Ok(format!("{} by {}", n * 2, ctx.node_name()))
}

/// A cast: pushes to the session that caused it, to prove it ran.
#[handler(msg_id = 21, group = "calc")]
async fn record(ctx: &mut Ctx, n: String) -> Result<(), HandlerError> {
    let session = ctx.session().ok_or("cast without session")?;
    ctx.push(
        session,
        Frame::new(21, format!("cast {n} ran on {}", ctx.node_name())),
    )?;
    Ok(())
}

// ----------------------------------------------------------------------
// Harness
// ----------------------------------------------------------------------

/// `dinx.json` of these tests on free ports.
fn dinx() -> String {
    let p = free_ports(5).expect("free ports");
    format!(
        r#"{{
        "gate": [{{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": {}}}],
        "im": [{{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": {}}},
               {{"ID": 3, "Name": "im-2", "Type": 2, "IP": "127.0.0.1", "Port": {}}}],
        "calc": [{{"ID": 4, "Name": "calc-1", "Type": 2, "IP": "127.0.0.1", "Port": {}}}],
        "ghost": [{{"ID": 5, "Name": "ghost-1", "Type": 2, "IP": "127.0.0.1", "Port": {}}}]
    }}"#,
        p[0], p[1], p[2], p[3], p[4]
    )
}

const ROUTE: &str = r#"{
        "gate": [{"MsgID": 1, "Name": "login"}, {"MsgID": 2, "Name": "logout"},
                 {"MsgID": 5, "Name": "echo"}, {"MsgID": 8, "Name": "push"},
                 {"MsgID": 16, "Name": "broadcast"}, {"MsgID": 18, "Name": "hold"},
                 {"MsgID": 27, "Name": "session"}],
        "im": [{"MsgID": 3, "Name": "send"}, {"MsgID": 4, "Name": "broadcast"},
               {"MsgID": 6, "Name": "echo"}, {"MsgID": 9, "Name": "whoami"},
               {"MsgID": 10, "Name": "numbered"}, {"MsgID": 11, "Name": "call"},
               {"MsgID": 12, "Name": "cast"}, {"MsgID": 13, "Name": "ghost"},
               {"MsgID": 14, "Name": "kick"}, {"MsgID": 15, "Name": "flood"},
               {"MsgID": 17, "Name": "bind"}, {"MsgID": 19, "Name": "ctx"},
               {"MsgID": 23, "Name": "call_raw"}, {"MsgID": 24, "Name": "call_caller"},
               {"MsgID": 26, "Name": "kick_session"}],
        "calc": [{"MsgID": 20, "Name": "double"}, {"MsgID": 21, "Name": "record"},
                 {"MsgID": 22, "Name": "caller"}, {"MsgID": 25, "Name": "hold"}],
        "ghost": [{"MsgID": 30, "Name": "boo"}]
    }"#;

const FAST: &str = r#"{"heartbeat_interval_ms": 100, "heartbeat_timeout_ms": 600,
    "reconnect_min_ms": 20, "reconnect_max_ms": 200, "call_timeout_ms": 1000,
    "shutdown_grace_ms": 1000, "secret": "test-secret"}"#;

/// What these tests start: their configuration, their gate.
trait RuntimeCluster {
    /// The nodes `ids` of a fresh cluster with these settings, once the
    /// gate links to im-1.
    async fn start(settings: &str, ids: &[u16]) -> TestCluster;

    /// A client of gate-1.
    async fn client(&self) -> Client;
}

impl RuntimeCluster for TestCluster {
    async fn start(settings: &str, ids: &[u16]) -> TestCluster {
        let tc = TestCluster::launch(dinx(), ROUTE, settings.to_string(), ids).await;
        tc.wait_link(1, 2).await;
        tc
    }

    async fn client(&self) -> Client {
        self.client_of(1).await
    }
}

async fn logged_in(tc: &TestCluster, name: &str) -> Client {
    let mut c = tc.client().await;
    let f = req(&mut c, 1, &format!(r#"{{"name":"{name}"}}"#)).await;
    assert_eq!(s(&f), format!("ok {name} kicked=false"));
    c
}

// ----------------------------------------------------------------------
// Tests
// ----------------------------------------------------------------------

#[tokio::test]
async fn local_and_forwarded_echo_and_errors() {
    let tc = TestCluster::start(FAST, &[1, 2, 3, 4]).await;
    let mut c = tc.client().await;
    for payload in ["", "hi", &"x".repeat(60 * 1024)] {
        let f = req(&mut c, 5, payload).await;
        assert_eq!((f.msg_id, s(&f)), (5, payload.to_string()));
        let f = req(&mut c, 6, payload).await;
        assert_eq!((f.msg_id, s(&f)), (6, payload.to_string()));
    }
    // Heartbeats are accepted and never answered: the echo after it is the
    // next frame.
    c.send(99999, "ping").await.unwrap();
    let f = req(&mut c, 5, "after heartbeat").await;
    assert_eq!(s(&f), "after heartbeat");
    // Unknown msg_id: an error frame on msg_id 0, connection kept.
    let f = req(&mut c, 4242, "?").await;
    assert_eq!(f.msg_id, 0);
    let v: serde_json::Value = serde_json::from_slice(&f.data).unwrap();
    assert_eq!(v["code"], "unknown_msg_id");
    assert_eq!(v["msg_id"], 4242);
    // Bad payload: the handler is not called, the error says why.
    let f = req(&mut c, 1, "not json").await;
    let v: serde_json::Value = serde_json::from_slice(&f.data).unwrap();
    assert_eq!(v["code"], "bad_payload");
    assert!(v["error"].as_str().unwrap().contains("JSON Login"), "{v}");
    let f = req(&mut c, 5, "still here").await;
    assert_eq!(s(&f), "still here");
    let m = tc.running(1).metrics(1).unwrap();
    assert_eq!(m.unknown_msg_id, 1);
    assert_eq!(m.bad_payload, 1);
    assert_eq!(m.heartbeats_in, 1);
    tc.shutdown().await;
}

#[tokio::test]
async fn push_send_broadcast_across_the_cluster() {
    let tc = TestCluster::start(FAST, &[1, 2, 3, 4]).await;
    tc.wait_link(1, 3).await;
    let mut alice = logged_in(&tc, "alice").await;
    let mut bob = logged_in(&tc, "bob").await;
    // The backend sees the uid bound on the gate.
    let f = req(&mut alice, 9, "").await;
    assert!(s(&f).ends_with(" alice"), "{}", s(&f));
    // send, forwarded to an im node, pushed to bob through the gate.
    let f = req(&mut alice, 3, r#"{"to":"bob","text":"hi"}"#).await;
    assert_eq!(s(&f), "sent");
    expect(&mut bob, 3, "alice: hi").await;
    let f = req(&mut bob, 3, r#"{"to":"alice","text":"yo"}"#).await;
    assert_eq!(s(&f), "sent");
    expect(&mut alice, 3, "bob: yo").await;
    let f = req(&mut alice, 3, r#"{"to":"carol","text":"?"}"#).await;
    assert_eq!(s(&f), "carol is not online");
    // Gate-side push_to_uid.
    alice.send(8, "bob").await.unwrap();
    expect(&mut bob, 8, "from gate to bob").await;
    // Broadcast from a backend and from the gate: every session once.
    let mut anon = tc.client().await;
    alice.send(4, "hello all").await.unwrap();
    for c in [&mut alice, &mut bob, &mut anon] {
        expect(c, 4, "hello all").await;
    }
    bob.send(16, "gate says").await.unwrap();
    for c in [&mut alice, &mut bob, &mut anon] {
        expect(c, 16, "gate says").await;
    }
    // Exactly once: nothing else came before an echo through the gate and
    // a backend, sent after both copies arrived.
    for (c, who) in [
        (&mut alice, "alice"),
        (&mut bob, "bob"),
        (&mut anon, "anon"),
    ] {
        nothing_before_echo(c, who, 6).await;
    }
    // Bind from a backend, then kick by uid from a backend.
    let f = req(&mut anon, 17, "carol").await;
    assert_eq!(s(&f), "bound carol");
    let f = req(&mut anon, 9, "").await;
    assert!(s(&f).ends_with(" carol"), "{}", s(&f));
    let f = req(&mut alice, 14, "carol").await;
    assert_eq!(s(&f), "kicked");
    assert_closed(&mut anon, "carol, kicked by uid").await;
    // Duplicate login kicks the older session.
    let mut alice2 = tc.client().await;
    let f = req(&mut alice2, 1, r#"{"name":"alice"}"#).await;
    assert_eq!(s(&f), "ok alice kicked=true");
    assert!(alice.recv_timeout(T).await.is_err(), "old alice is closed");
    let f = req(&mut bob, 3, r#"{"to":"alice","text":"new?"}"#).await;
    assert_eq!(s(&f), "sent");
    expect(&mut alice2, 3, "bob: new?").await;
    // Logout unbinds.
    let f = req(&mut alice2, 2, "").await;
    assert_eq!(s(&f), "bye");
    let f = req(&mut bob, 3, r#"{"to":"alice","text":"gone?"}"#).await;
    assert_eq!(s(&f), "alice is not online");
    tc.shutdown().await;
}

#[tokio::test]
async fn one_session_is_handled_in_order() {
    let tc = TestCluster::start(FAST, &[1, 2, 3, 4]).await;
    let mut c = tc.client().await;
    for n in 0..1000 {
        c.feed(10, n.to_string()).await.unwrap();
    }
    c.flush().await.unwrap();
    expect(&mut c, 10, "ordered=true count=1000").await;
    tc.shutdown().await;
}

#[tokio::test]
async fn a_stopped_node_is_failed_over_and_comes_back() {
    let mut tc = TestCluster::start(FAST, &[1, 2, 3]).await;
    tc.wait_link(1, 3).await;
    // Many sessions so that both im nodes serve some.
    let mut clients = Vec::new();
    for _ in 0..16 {
        clients.push(tc.client().await);
    }
    let mut served_by_3 = 0;
    for c in clients.iter_mut() {
        let f = req(c, 9, "").await;
        if s(&f).starts_with("im-2") {
            served_by_3 += 1;
        }
    }
    assert!(
        served_by_3 > 0 && served_by_3 < 16,
        "sticky spread: {served_by_3}/16 on im-2"
    );
    tc.stop(3).await;
    // Within the heartbeat bound every session is served by im-1.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let mut all_im1 = true;
        for c in clients.iter_mut() {
            let f = req(c, 9, "").await;
            let text = s(&f);
            if !text.starts_with("im-1") {
                all_im1 = false;
                // While the gate still believes im-2 alive, the answer is an
                // error frame, never silence.
                assert_eq!(f.msg_id, 0, "unexpected answer {text}");
            }
        }
        if all_im1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "failover took too long"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // im-2 comes back: links re-form and its sessions return to it.
    tc.restart(3).await;
    tc.wait_link(1, 3).await;
    let mut back = 0;
    for c in clients.iter_mut() {
        let f = req(c, 9, "").await;
        if s(&f).starts_with("im-2") {
            back += 1;
        }
    }
    assert_eq!(
        back, served_by_3,
        "sticky sessions return to the restarted node"
    );
    tc.shutdown().await;
}

#[tokio::test]
async fn nodes_of_one_process_link_without_sockets_unless_told_not_to() {
    let tcp_only = FAST.replace('}', r#", "local_links": false}"#);
    for (settings, in_process) in [(FAST.to_string(), true), (tcp_only, false)] {
        let tc = TestCluster::start(&settings, &[1, 2, 3]).await;
        assert_eq!(tc.running(1).link_in_process(1, 2), in_process);
        assert_eq!(tc.running(2).link_in_process(2, 1), in_process);
        // Forwarded both ways over either kind of link, in order.
        let mut c = tc.client().await;
        for i in 0..50 {
            c.send(6, format!("m{i}")).await.unwrap();
        }
        for i in 0..50 {
            expect(&mut c, 6, &format!("m{i}")).await;
        }
        // A backend that stops takes its in-process link down, and is
        // linked again when it is back.
        let mut tc = tc;
        tc.stop(2).await;
        tc.stop(3).await;
        let f = req(&mut c, 6, "nobody").await;
        let v: serde_json::Value = serde_json::from_slice(&f.data).unwrap();
        assert_eq!(v["code"], "no_live_node");
        tc.restart(2).await;
        tc.wait_link(1, 2).await;
        assert_eq!(tc.running(1).link_in_process(1, 2), in_process);
        let f = req(&mut c, 6, "back").await;
        assert_eq!(s(&f), "back");
        tc.shutdown().await;
    }
}

#[tokio::test]
async fn no_live_node_gets_the_error_answer_at_once() {
    let tc = TestCluster::start(FAST, &[1, 2]).await;
    let mut c = tc.client().await;
    let f = req(&mut c, 20, "1").await;
    let v: serde_json::Value = serde_json::from_slice(&f.data).unwrap();
    assert_eq!(v["code"], "no_live_node");
    assert_eq!(v["msg_id"], 20);
    tc.shutdown().await;
}

#[tokio::test]
async fn links_without_the_secret_are_refused() {
    let tc = TestCluster::start(FAST, &[1, 2, 3]).await;
    // A node with another secret cannot join: start calc-1 with a wrong one.
    let mut wrong = tc.config.clone();
    wrong.settings.secret = Some("wrong".into());
    let imposter = Cluster::new(wrong).start(Select::Id(4)).await.unwrap();
    // The lower ids (gate-1, im-1, im-2) dial calc-1 and retry every
    // reconnect_max_ms at most; calc-1 refuses each hello and counts it.
    // Three refusals: the dials had their answer, and no link came of them.
    wait_metrics(&imposter, 4, "hellos refused", |m| {
        m.link_auth_failures >= 3
    })
    .await;
    assert!(
        !imposter.link_up(4, 2),
        "a node with the wrong secret linked"
    );
    assert!(
        !tc.running(2).link_up(2, 4),
        "a node with the wrong secret linked"
    );
    imposter.shutdown().await;
    // A raw TCP client speaking envelopes to a backend port gets nothing run.
    let mut raw = Client::connect(tc.addr(2)).await.unwrap();
    let challenge = raw.recv_timeout(T).await.unwrap();
    assert_eq!(
        challenge.data[0], 1,
        "the acceptor speaks first with a challenge"
    );
    // A Forward envelope (kind 5) from "gate 1", written by hand.
    let forged = raw_envelope(5, 6, 1, 1 << 48 | 1, b"", b"forged");
    use tokio::io::AsyncWriteExt;
    raw.get_mut().write_all(&forged).await.unwrap();
    assert!(raw.recv_timeout(T).await.is_err(), "the forger is dropped");
    assert_eq!(tc.running(2).metrics(2).unwrap().handled, 0);
    tc.shutdown().await;
}

#[tokio::test]
async fn envelope_bytes_sent_to_a_gate_are_client_data() {
    let tc = TestCluster::start(FAST, &[1, 2, 3]).await;
    let mut bob = logged_in(&tc, "bob").await;
    let mut mallory = tc.client().await;
    // A ToUid envelope addressed to bob, sent as a client frame.
    // A ToUid envelope (kind 7), written by hand.
    let wire = raw_envelope(7, 3, 0, 0, b"bob", b"forged push");
    use tokio::io::AsyncWriteExt;
    mallory.get_mut().write_all(&wire).await.unwrap();
    // msg_id 3 is "send": its payload is not JSON, so mallory gets an error
    // answer and bob gets nothing (a push to him would have been queued
    // before that answer, and before the echo of a probe sent after it).
    let f = mallory.recv_timeout(T).await.unwrap();
    assert_eq!(error_of(&f)["code"], "bad_payload");
    nothing_before_echo(&mut bob, "bob", 6).await;
    tc.shutdown().await;
}

#[tokio::test]
async fn a_queued_message_runs_as_the_user_who_sent_it() {
    let tc = TestCluster::start(FAST, &[1, 2]).await;
    let mut c = logged_in(&tc, "alice").await;
    // Many messages as alice, then a logout (run by the gate at once) and
    // one more: the backend still has alice's messages queued when the
    // anonymous one arrives.
    for _ in 0..200 {
        c.feed(9, "").await.unwrap();
    }
    c.feed(2, "").await.unwrap();
    c.feed(9, "").await.unwrap();
    c.flush().await.unwrap();
    let mut uids = Vec::new();
    while uids.len() < 201 {
        let f = c.recv_timeout(T).await.expect("a frame");
        if f.msg_id == 9 {
            uids.push(s(&f).rsplit(' ').next().unwrap_or("").to_string());
        }
    }
    assert!(uids[..200].iter().all(|u| u == "alice"), "{uids:?}");
    assert_eq!(uids[200], "-");
    tc.shutdown().await;
}

/// An internal envelope as it crosses a link (see `envelope.rs`): the TLV
/// header, then kind, flags, node, session, request, uid length, uid and
/// payload, big-endian. Written by hand, as a forger outside would.
fn raw_envelope(
    kind: u8,
    msg_id: u32,
    node: u16,
    session: u64,
    uid: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut body = vec![kind, 0];
    body.extend_from_slice(&node.to_be_bytes());
    body.extend_from_slice(&session.to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&(uid.len() as u16).to_be_bytes());
    body.extend_from_slice(uid);
    body.extend_from_slice(payload);
    let mut wire = msg_id.to_be_bytes().to_vec();
    wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
    wire.extend_from_slice(&body);
    wire
}

/// `balance` per group, in a running cluster, seen from one session by the
/// node that answers: `round_robin` takes the live im nodes in turn,
/// `random` spreads the messages over both, `sticky` (the default) keeps
/// the session on one.
#[tokio::test]
async fn round_robin_and_random_balance_spread_a_session_s_messages() {
    for policy in ["round_robin", "random", "sticky"] {
        let settings = FAST.replace('}', &format!(r#", "balance": {{"im": "{policy}"}}}}"#));
        let tc = TestCluster::start(&settings, &[1, 2, 3]).await;
        tc.wait_link(1, 3).await;
        let mut c = tc.client().await;
        let mut answered = Vec::new();
        for _ in 0..40 {
            let f = req(&mut c, 9, "").await;
            answered.push(s(&f).split(' ').next().unwrap_or_default().to_string());
        }
        let on_im1 = answered.iter().filter(|n| *n == "im-1").count();
        let on_im2 = answered.iter().filter(|n| *n == "im-2").count();
        assert_eq!(on_im1 + on_im2, 40, "{policy}: {answered:?}");
        match policy {
            "round_robin" => {
                assert!(
                    answered.windows(2).all(|w| w[0] != w[1]),
                    "{policy}: not in turn: {answered:?}"
                );
                assert_eq!((on_im1, on_im2), (20, 20), "{policy}");
            }
            // Binomial(40, 1/2) leaves [5, 35] about once in five million.
            "random" => assert!((5..=35).contains(&on_im1), "{policy}: {answered:?}"),
            _ => assert!(on_im1 == 40 || on_im2 == 40, "{policy}: {answered:?}"),
        }
        tc.shutdown().await;
    }
}

/// Not a test: a node of these tests in a child process
/// (`zinx_test_support::child`), started by the tests that need one.
#[tokio::test]
#[ignore = "not a test: runs a node in a child process for the tests that start one"]
async fn child_node() {
    zinx_test_support::child::serve_from_env().await;
}

/// `ZINX_CLUSTER_SECRET` overrides the `secret` setting. gate-1 runs in a
/// child process (the environment is the process's): with a wrong secret
/// in its settings but the right one in its environment it links and
/// serves; with the right settings but a wrong secret in its environment,
/// im-1 refuses its hellos.
#[tokio::test]
async fn the_secret_from_the_environment_overrides_the_setting() {
    use zinx_cluster::config::SECRET_ENV;
    use zinx_test_support::child::{ChildNode, ChildSpec};

    let tc = TestCluster::launch(dinx(), ROUTE, FAST.to_string(), &[2, 3]).await;
    let mut spec = ChildSpec::of(&tc, "child_node", 1);
    // Its other peers (calc-1, ghost-1) are not running: ready once started.
    spec.wait_links = false;
    spec.files.2 = FAST.replace("test-secret", "not-the-secret");
    spec.env = vec![(SECRET_ENV.to_string(), "test-secret".to_string())];
    let child = ChildNode::start(spec.clone()).await;
    tc.wait_link(2, 1).await;
    tc.wait_link(3, 1).await;
    let mut c = tc.client_of(1).await;
    assert_eq!(
        s(&req(&mut c, 6, "through the child").await),
        "through the child"
    );
    drop(c);
    drop(child);

    let refused = tc.metrics(2).link_auth_failures;
    spec.files.2 = FAST.to_string();
    spec.env = vec![(SECRET_ENV.to_string(), "not-the-secret".to_string())];
    let _child = ChildNode::start(spec).await;
    // gate-1 dials im-1 again and again (every reconnect_max_ms at most):
    // two refusals are two answered hellos, neither of which linked.
    tc.wait_metrics(2, "gate-1's hellos refused", |m| {
        m.link_auth_failures >= refused + 2
    })
    .await;
    assert!(!tc.running(2).link_up(2, 1), "a wrong secret linked");
    tc.shutdown().await;
}
