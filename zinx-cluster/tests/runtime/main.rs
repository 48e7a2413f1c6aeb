//! In-process clusters on loopback, driven by a real zinx-format client.
//!
//! Nodes: gate-1 (1, group "gate"), im-1 (2) and im-2 (3) (group "im"),
//! calc-1 (4, group "calc"), and ghost-1 (5, group "ghost", never started).
//! Each node runs as its own `RunningCluster` so a test can stop and restart
//! one.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use zinx_cluster::prelude::*;
use zinx_cluster::{Cluster, Select};
use zinx_cluster_client::Client;

use zinx_test_support::T;
use zinx_test_support::cluster::{TestCluster, expect, req, s};
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

/// Sleeps for the given number of milliseconds, then answers "slept".
#[handler(msg_id = 18, group = "gate")]
async fn gate_slow(_ctx: &mut Ctx, ms: String) -> Result<&'static str, HandlerError> {
    let ms: u64 = ms.parse().map_err(|_| "not a number")?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok("slept")
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
                 {"MsgID": 16, "Name": "broadcast"}, {"MsgID": 18, "Name": "slow"}],
        "im": [{"MsgID": 3, "Name": "send"}, {"MsgID": 4, "Name": "broadcast"},
               {"MsgID": 6, "Name": "echo"}, {"MsgID": 9, "Name": "whoami"},
               {"MsgID": 10, "Name": "numbered"}, {"MsgID": 11, "Name": "call"},
               {"MsgID": 12, "Name": "cast"}, {"MsgID": 13, "Name": "ghost"},
               {"MsgID": 14, "Name": "kick"}, {"MsgID": 15, "Name": "flood"},
               {"MsgID": 17, "Name": "bind"}],
        "calc": [{"MsgID": 20, "Name": "double"}, {"MsgID": 21, "Name": "record"}],
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
    // Exactly once: nothing else is pending.
    for c in [&mut alice, &mut bob, &mut anon] {
        assert!(c.recv_timeout(Duration::from_millis(200)).await.is_err());
    }
    // Bind from a backend, then kick by uid from a backend.
    let f = req(&mut anon, 17, "carol").await;
    assert_eq!(s(&f), "bound carol");
    let f = req(&mut anon, 9, "").await;
    assert!(s(&f).ends_with(" carol"), "{}", s(&f));
    let f = req(&mut alice, 14, "carol").await;
    assert_eq!(s(&f), "kicked");
    assert!(matches!(
        anon.recv_timeout(T).await,
        Err(zinx_cluster_client::ClientError::Closed)
            | Err(zinx_cluster_client::ClientError::Frame(_))
    ));
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
async fn calls_and_casts_between_backends() {
    let tc = TestCluster::start(FAST, &[1, 2, 3, 4]).await;
    tc.wait_link(2, 4).await;
    tc.wait_link(3, 4).await;
    let mut c = tc.client().await;
    let f = req(&mut c, 11, "21").await;
    assert_eq!(s(&f), "42 by calc-1");
    // A failing callee: the error travels back as the caller's error.
    let f = req(&mut c, 11, "not a number").await;
    let v: serde_json::Value = serde_json::from_slice(&f.data).unwrap();
    assert_eq!(v["code"], "handler_error");
    assert!(v["error"].as_str().unwrap().contains("not a number"), "{v}");
    // A cast runs on calc and pushes back to our session.
    let f = req(&mut c, 12, "7").await;
    assert_eq!(s(&f), "cast sent");
    expect(&mut c, 21, "cast 7 ran on calc-1").await;
    // A call to a group with no live node fails at once, within the timeout.
    let started = std::time::Instant::now();
    let f = req(&mut c, 13, "").await;
    assert_eq!(s(&f), "call failed: no live node in group \"ghost\"");
    assert!(started.elapsed() < Duration::from_secs(1));
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
async fn frames_received_during_a_gate_shutdown_are_answered() {
    let mut tc = TestCluster::start(FAST, &[1, 2]).await;
    let mut c = tc.client().await;
    // The gate's reader is busy in a slow handler while ten more requests
    // arrive; then the gate shuts down.
    c.send(18, "400").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..10 {
        c.feed(if i % 2 == 0 { 5 } else { 6 }, i.to_string())
            .await
            .unwrap();
    }
    c.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let gate = tc.take(1);
    let stopping = tokio::spawn(gate.shutdown());
    // The request in flight is answered; the ten that were never run get
    // the node_stopping answer, not silence; then the connection closes.
    expect(&mut c, 18, "slept").await;
    for i in 0..10 {
        let f = c.recv_timeout(T).await.expect("an answer to every request");
        assert_eq!(f.msg_id, 0, "request {i} ran: {}", s(&f));
        let v: serde_json::Value = serde_json::from_slice(&f.data).unwrap();
        assert_eq!(v["code"], "node_stopping", "{v}");
        assert_eq!(v["msg_id"], if i % 2 == 0 { 5 } else { 6 });
    }
    assert!(c.recv_timeout(T).await.is_err(), "then closed");
    stopping.await.unwrap();
    tc.shutdown().await;
}

/// One request at a time on msg_id 6 (im echo) until `stop`; returns
/// (replies, node_stopping answers, requests without any answer).
async fn echo_until(addr: String, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> [u32; 3] {
    let mut c = Client::connect(&addr).await.expect("connect");
    let mut counts = [0u32; 3];
    let mut n = 0u32;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        match c.request(6, n.to_string(), Duration::from_secs(2)).await {
            Ok(f) if f.msg_id == 6 => {
                assert_eq!(s(&f), n.to_string());
                counts[0] += 1;
            }
            Ok(f) => {
                let v: serde_json::Value = serde_json::from_slice(&f.data).unwrap();
                assert_eq!(v["code"], "node_stopping", "{v}");
                counts[1] += 1;
            }
            Err(_) => {
                counts[2] += 1;
                // A late echo would now answer the wrong request: start over.
                c = Client::connect(&addr).await.expect("reconnect");
            }
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_shutting_down_under_load_loses_no_message() {
    let mut tc = TestCluster::start(FAST, &[1, 2, 3]).await;
    tc.wait_link(1, 3).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..16)
        .map(|_| tokio::spawn(echo_until(tc.addr(1), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // im-2 stops gracefully while messages keep arriving for it.
    tc.stop(3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = [0u32; 3];
    for l in load {
        let c = l.await.unwrap();
        for i in 0..3 {
            total[i] += c[i];
        }
    }
    let [replies, stopping, lost] = total;
    eprintln!(
        "FIGURES backend_shutdown_in_process: {replies} echoes, {stopping} node_stopping, {lost} unanswered"
    );
    assert!(replies > 0);
    // Every message got its echo, or node_stopping from im-2 while it
    // drained; none vanished while its links closed.
    assert_eq!(
        lost, 0,
        "{replies} echoes, {stopping} node_stopping, {lost} unanswered"
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
    tokio::time::sleep(Duration::from_millis(500)).await;
    // im-1 (lower id) dials calc-1; the hello fails both ways.
    assert!(
        !imposter.link_up(4, 2),
        "a node with the wrong secret linked"
    );
    assert!(
        !tc.running(2).link_up(2, 4),
        "a node with the wrong secret linked"
    );
    assert!(imposter.metrics(4).unwrap().link_auth_failures >= 1);
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
    // answer and bob gets nothing.
    let f = mallory.recv_timeout(T).await.unwrap();
    assert_eq!(f.msg_id, 0);
    assert!(bob.recv_timeout(Duration::from_millis(300)).await.is_err());
    tc.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_at_its_queue_bound() {
    let settings = r#"{"heartbeat_interval_ms": 100, "heartbeat_timeout_ms": 600,
        "session_queue": 64, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2, 3]).await;
    let mut lazy = tc.client().await;
    // 2,000 pushes of 16 KiB: far beyond the socket buffers and the queue.
    lazy.send(15, "2000 16384").await.unwrap();
    let mut ok = tc.client().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while tc.running(1).metrics(1).unwrap().queue_full_closes == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the lazy client was not closed"
        );
        // Others keep being served meanwhile.
        let f = req(&mut ok, 5, "alive").await;
        assert_eq!(s(&f), "alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let f = req(&mut ok, 6, "still alive").await;
    assert_eq!(s(&f), "still alive");
    tc.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_reads_broadcasts_is_closed_and_counted() {
    let settings = r#"{"session_queue": 16, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2]).await;
    let mut lazy = tc.client().await;
    let mut sender = tc.client().await;
    // Broadcasts of 32 KiB, one at a time (the sender reads its own copy):
    // the lazy client's socket buffers fill, then its queue of 16.
    let text = "x".repeat(32 * 1024);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tc.running(1).metrics(1).unwrap().queue_full_closes == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the lazy client was not closed"
        );
        sender.send(16, text.clone()).await.unwrap();
        let f = sender.recv_timeout(T).await.expect("the sender's own copy");
        assert_eq!(f.msg_id, 16);
    }
    let m = tc.running(1).metrics(1).unwrap();
    assert_eq!(m.queue_full_closes, 1);
    assert_eq!(m.sessions_open, 1, "only the sender remains");
    // The lazy client finds its connection closed after what was buffered.
    let closed = tokio::time::timeout(T, async { while lazy.recv().await.is_ok() {} }).await;
    assert!(closed.is_ok(), "the lazy client is still open");
    tc.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_reset_within_2s_of_filling_its_bound() {
    use tokio::io::AsyncReadExt;
    // A bound in bytes far below the frame bound: 8 broadcasts of 32 KiB.
    let settings = r#"{"session_queue_bytes": 262144, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2]).await;
    // A client with a 4 KiB receive window that never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut lazy = socket.connect(tc.addr(1).parse().unwrap()).await.unwrap();
    let mut sender = tc.client().await;
    let text = "x".repeat(32 * 1024);
    let started = std::time::Instant::now();
    let deadline = started + Duration::from_secs(20);
    let mut sent = 0;
    while tc.running(1).metrics(1).unwrap().queue_full_closes == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the lazy client was not closed"
        );
        sender.send(16, text.clone()).await.unwrap();
        sender.recv_timeout(T).await.expect("the sender's own copy");
        sent += 1;
    }
    let full = std::time::Instant::now();
    // Now it reads: what its own receive buffer held, then the reset.
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match lazy.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => got += n,
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("the lazy client's connection ended");
    let gone = full.elapsed();
    eprintln!(
        "FIGURES slow_reader_reset: bound filled after {sent} broadcasts of 32 KiB \
         ({:?}); connection reset {gone:?} later, after {got} bytes still in flight",
        full - started
    );
    let e = end.expect_err("a reset, not an orderly close");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    assert!(gone < Duration::from_secs(2), "gone after {gone:?}");
    let m = tc.running(1).metrics(1).unwrap();
    assert_eq!(m.queue_full_closes, 1);
    assert_eq!(m.sessions_open, 1, "only the sender remains");
    tc.shutdown().await;
}

#[tokio::test]
async fn sessions_beyond_the_limit_are_refused_at_once() {
    let settings = r#"{"max_sessions": 2, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2]).await;
    let mut a = tc.client().await;
    let _b = tc.client().await;
    assert_eq!(s(&req(&mut a, 5, "a").await), "a");
    let mut c = tc.client().await;
    let f = c.recv_timeout(T).await.expect("a refusal frame");
    let v: serde_json::Value = serde_json::from_slice(&f.data).unwrap();
    assert_eq!(v["code"], "server_full");
    assert!(c.recv_timeout(T).await.is_err(), "then closed");
    assert_eq!(tc.running(1).metrics(1).unwrap().sessions_refused, 1);
    tc.shutdown().await;
}

#[tokio::test]
async fn oversize_frames_and_idle_clients_are_closed() {
    let settings = r#"{"max_frame_len": 1024, "idle_timeout_ms": 300, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2]).await;
    let mut big = tc.client().await;
    use tokio::io::AsyncWriteExt;
    big.get_mut()
        .write_all(&[0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    assert!(big.recv_timeout(T).await.is_err());
    let mut idle = tc.client().await;
    idle.get_mut().write_all(&[0, 0, 0, 5, 0, 0]).await.unwrap(); // half a header
    let started = std::time::Instant::now();
    assert!(idle.recv_timeout(T).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
    let m = tc.running(1).metrics(1).unwrap();
    assert_eq!(m.oversize_closes, 1);
    assert_eq!(m.idle_closes, 1);
    tc.shutdown().await;
}

#[tokio::test]
async fn half_a_frame_then_silence_is_closed_at_the_idle_timeout() {
    let settings = r#"{"idle_timeout_ms": 400, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2]).await;
    use tokio::io::AsyncWriteExt;
    // A whole header announcing 100 bytes, then nothing; and the header
    // with 50 of its 100 bytes.
    let mut header_only = tc.client().await;
    let mut half_data = tc.client().await;
    let header = [0, 0, 0, 6, 0, 0, 0, 100];
    let mut half = header.to_vec();
    half.extend([7u8; 50]);
    // Before the writes: the gate's idle clock starts after it reads them.
    let started = std::time::Instant::now();
    header_only.get_mut().write_all(&header).await.unwrap();
    half_data.get_mut().write_all(&half).await.unwrap();
    // Meanwhile a client that talks every 100 ms is never idle.
    let mut talker = tc.client().await;
    let closed_after = |mut c: Client| async move {
        assert!(c.recv_timeout(T).await.is_err(), "closed");
        started.elapsed()
    };
    let talk = async {
        for i in 0..10 {
            assert_eq!(s(&req(&mut talker, 5, &i.to_string()).await), i.to_string());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (a, b, ()) = tokio::join!(closed_after(header_only), closed_after(half_data), talk);
    eprintln!(
        "FIGURES half_a_frame: closed after {a:?} (header only) and {b:?} (half the data), idle_timeout_ms 400"
    );
    for elapsed in [a, b] {
        // Not before the timeout, and not long after it.
        assert!(
            elapsed >= Duration::from_millis(400),
            "closed after {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_millis(400 + 2000),
            "closed after {elapsed:?}"
        );
    }
    assert_eq!(s(&req(&mut talker, 5, "still open").await), "still open");
    let m = tc.running(1).metrics(1).unwrap();
    assert_eq!(m.idle_closes, 2);
    // Only the talker's eleven frames were ever decoded.
    assert_eq!(m.frames_in, 11);
    tc.shutdown().await;
}

#[tokio::test]
async fn a_trickler_is_closed_at_the_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // One byte a second, idle timeout 2.5 s: every byte arrives well within
    // the timeout, but no frame is ever completed.
    let settings = r#"{"idle_timeout_ms": 2500, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2]).await;
    let mut trickler = tc.client().await;
    // A client completing a frame (a zinx heartbeat) every second stays.
    let mut steady = tc.client().await;
    let started = std::time::Instant::now();
    let trickle = async {
        // The header of a 100-byte frame, then its data, byte by byte.
        let mut wire = vec![0, 0, 0, 6, 0, 0, 0, 100];
        wire.extend([7u8; 100]);
        let stream = trickler.get_mut();
        let mut written = 0;
        for b in wire {
            if stream.write_all(&[b]).await.is_err() {
                break;
            }
            written += 1;
            // A second until the next byte, watching for the close.
            let mut probe = [0u8; 64];
            match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut probe)).await {
                Err(_) => {}
                Ok(Ok(n)) if n > 0 => panic!("the trickler got {n} bytes"),
                Ok(_) => break,
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the trickler is still open after {written} bytes"
            );
        }
        (written, started.elapsed())
    };
    let keep = async {
        for _ in 0..4 {
            steady.send(99999, "").await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let ((written, elapsed), ()) = tokio::join!(trickle, keep);
    eprintln!(
        "FIGURES trickler: closed after {elapsed:?} and {written} bytes at one a second, idle_timeout_ms 2500"
    );
    assert!(written >= 2, "{written} bytes");
    assert!(
        elapsed >= Duration::from_millis(2500),
        "closed after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(2500 + 2000),
        "closed after {elapsed:?}"
    );
    assert_eq!(s(&req(&mut steady, 5, "still open").await), "still open");
    let m = tc.running(1).metrics(1).unwrap();
    assert_eq!(m.idle_closes, 1);
    tc.shutdown().await;
}

#[tokio::test]
async fn session_ids_are_unique_and_carry_the_gate() {
    let a = zinx_cluster::SessionId::new(1, 1);
    let b = zinx_cluster::SessionId::new(2, 1);
    assert_ne!(a, b);
    assert_eq!(b.gate(), 2);
}

/// This process's VmRSS in KiB, or 0 when it cannot be read.
fn rss_kib() -> u64 {
    zinx_test_support::rss::rss_kib(std::process::id()).unwrap_or(0)
}

#[tokio::test]
async fn huge_length_headers_are_refused_promptly_without_allocating() {
    let tc = TestCluster::start(FAST, &[1, 2]).await;
    let before = rss_kib();
    use tokio::io::AsyncWriteExt;
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let mut c = tc.client().await;
        c.get_mut()
            .write_all(&[0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3])
            .await
            .unwrap();
        let started = std::time::Instant::now();
        assert!(c.recv_timeout(T).await.is_err(), "closed");
        slowest = slowest.max(started.elapsed());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "closed promptly"
        );
    }
    let after = rss_kib();
    eprintln!(
        "FIGURES huge_length_headers: 50 closed, slowest after {slowest:?}; test process RSS {before} -> {after} KiB"
    );
    // 50 x 4 GiB announced; growth stays within noise (a few MiB).
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert_eq!(tc.running(1).metrics(1).unwrap().oversize_closes, 50);
    tc.shutdown().await;
}

#[tokio::test]
async fn garbage_connections_are_closed_while_clients_are_served() {
    let settings = r#"{"idle_timeout_ms": 500, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2]).await;
    let addr = tc.addr(1);
    // A legitimate client keeps talking throughout, every 50 ms.
    let mut legit = tc.client().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let legit_task = tokio::spawn(async move {
        let mut served = 0u32;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let f = req(&mut legit, 6, &format!("legit {served}")).await;
            assert_eq!(s(&f), format!("legit {served}"));
            served += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        served
    });
    let started = std::time::Instant::now();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    // 5,000 garbage connections, 250 at a time (the test process holds both
    // ends of each socket).
    for _batch in 0..20 {
        let mut tasks = Vec::new();
        for _ in 0..250 {
            let mut garbage = vec![0u8; 64];
            for b in garbage.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            let addr = addr.clone();
            tasks.push(tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let _ = s.write_all(&garbage).await;
                // Read until the gate closes us (error frames may come first).
                let mut sink = [0u8; 4096];
                let closed = tokio::time::timeout(Duration::from_secs(5), async {
                    loop {
                        match s.read(&mut sink).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                closed.is_ok()
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap(), "a garbage connection was not closed");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let served = legit_task
        .await
        .expect("the legitimate client was served throughout");
    assert!(served >= 10, "only {served} legitimate requests");
    let m = tc.running(1).metrics(1).unwrap();
    eprintln!(
        "FIGURES garbage_connections: 5000 closed in {:?}; legitimate requests served meanwhile {served}; closes: oversize {} idle {}; error answers {}",
        started.elapsed(),
        m.oversize_closes,
        m.idle_closes,
        m.error_answers
    );
    assert_eq!(m.sessions_accepted, 5001);
    assert_eq!(m.sessions_open, 1, "only the legitimate session remains");
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
