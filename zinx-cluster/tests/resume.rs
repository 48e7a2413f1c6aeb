//! Session resume on one gate, spoken by raw zinx frames (PROTOCOL.md,
//! "Session resume"): a dropped connection resumed with every push kept, in
//! order, once; expiry; overflow; forged, foreign and used tokens; an old
//! socket still open when the resume comes; an idle socket dropped while
//! the session waits; and a plain zinx client that never sees a control
//! frame.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zinx_cluster::prelude::*;
use zinx_cluster::{ClusterHandle, RunningCluster};
use zinx_cluster_client::Client;
use zinx_cluster_client::wire::{ACK_MSG_ID, BYE_MSG_ID, HELLO_MSG_ID, is_control};
use zinx_test_support::cluster::TestCluster;
use zinx_test_support::ports::free_ports;

const T: Duration = Duration::from_secs(5);

#[handler(msg_id = 1, group = "gate")]
async fn login(ctx: &mut Ctx, name: String) -> Result<&'static str, HandlerError> {
    ctx.bind(&name).await?;
    Ok("ok")
}

#[handler(msg_id = 2, group = "gate")]
async fn join(ctx: &mut Ctx, room: String) -> Result<&'static str, HandlerError> {
    ctx.join(&room).await?;
    Ok("joined")
}

#[handler(msg_id = 5, group = "gate")]
async fn echo(_ctx: &mut Ctx, data: Bytes) -> Bytes {
    data
}

const ROUTE: &str = r#"{"gate": [{"MsgID": 1, "Name": "login"}, {"MsgID": 2, "Name": "join"},
                                  {"MsgID": 5, "Name": "echo"}]}"#;

/// A one-gate cluster with these extra settings.
async fn gate(extra: &str) -> TestCluster {
    let p = free_ports(1).expect("a port");
    let dinx = format!(
        r#"{{"gate": [{{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": {}}}]}}"#,
        p[0]
    );
    let settings = format!(r#"{{"secret": "resume-test"{extra}}}"#);
    TestCluster::launch(dinx, ROUTE, settings, &[1]).await
}

fn json_of(f: &Frame) -> Value {
    serde_json::from_slice(&f.data).expect("a JSON payload")
}

/// Sends HELLO with `body` and returns the answer.
async fn hello(c: &mut Client, body: Value) -> Value {
    c.send(HELLO_MSG_ID, body.to_string())
        .await
        .expect("send HELLO");
    let f = c.recv_timeout(T).await.expect("HELLO's answer");
    assert_eq!(f.msg_id, HELLO_MSG_ID, "the answer comes first: {f:?}");
    json_of(&f)
}

async fn request(c: &mut Client, msg_id: u32, data: &str) -> String {
    let f = c
        .request(msg_id, data.to_string(), T)
        .await
        .expect("answer");
    assert_eq!(f.msg_id, msg_id, "{}", String::from_utf8_lossy(&f.data));
    String::from_utf8_lossy(&f.data).into_owned()
}

/// Waits until `ok` holds (checked every few ms), at most `T`.
async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {T:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn detached(gate: &RunningCluster) -> u64 {
    gate.metrics(1).expect("gate metrics").sessions_detached
}

/// Push number `n` to alice: odd ones by uid (msg 50), even ones to her
/// room (msg 51).
async fn push(h: &ClusterHandle, n: u32) {
    let data = n.to_string();
    if n % 2 == 1 {
        h.push_to_uid("alice", Frame::new(50, data))
            .await
            .unwrap_or_else(|e| panic!("push {n} refused: {e}"));
    } else {
        h.publish("r", Frame::new(51, data))
            .unwrap_or_else(|e| panic!("publish {n} refused: {e}"));
    }
}

/// The number of a pushed frame.
fn number(f: &Frame) -> u32 {
    assert!(matches!(f.msg_id, 50 | 51), "a push, got {f:?}");
    String::from_utf8_lossy(&f.data).parse().expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_with_every_push_once_and_in_order() {
    let tc = gate("").await;
    let h = tc.running(1).handle();
    let mut c = tc.client_of(1).await;
    let answer = hello(&mut c, json!({})).await;
    let token = answer["token"].as_str().expect("a token").to_string();
    assert_eq!(answer["window_ms"], 30_000);
    assert_eq!(request(&mut c, 1, "alice").await, "ok");
    assert_eq!(request(&mut c, 2, "r").await, "joined");

    for n in 1..=150 {
        push(&h, n).await;
    }
    // The client reads 100 pushes (102 frames with the two answers),
    // acknowledges 60, and its connection dies.
    for n in 1..=100 {
        assert_eq!(number(&c.recv_timeout(T).await.expect("a push")), n);
    }
    c.send(ACK_MSG_ID, json!({"received": 60}).to_string())
        .await
        .expect("ACK");
    drop(c);
    let gate = tc.running(1);
    until("the session waits for a resume", || detached(gate) == 1).await;
    // Pushes while it waits: accepted (no `not_online`), kept.
    for n in 151..=300 {
        push(&h, n).await;
    }

    let mut c = tc.client_of(1).await;
    let answer = hello(&mut c, json!({"token": token, "received": 102})).await;
    assert_eq!(answer["resumed"], true, "{answer}");
    assert_eq!(answer["replayed"], 200, "{answer}");
    let token2 = answer["token"].as_str().expect("a new token");
    assert_ne!(token2, token);
    for n in 101..=300 {
        assert_eq!(number(&c.recv_timeout(T).await.expect("a push")), n);
    }
    // Nothing more: the next frame is the answer to a request sent now.
    assert_eq!(request(&mut c, 5, "after").await, "after");
    assert_eq!(detached(gate), 0);
    let m = gate.metrics(1).expect("metrics");
    assert_eq!((m.resumes_resumed, m.replayed_frames), (1, 200));

    // The old token was used: it resumes nothing now.
    let mut other = tc.client_of(1).await;
    let refused = hello(&mut other, json!({"token": token, "received": 102})).await;
    assert_eq!(refused["resumed"], false);
    assert_eq!(refused["reason"], "unknown");
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_expires_at_the_end_of_its_window() {
    let tc = gate(r#", "resume_window_ms": 300"#).await;
    let h = tc.running(1).handle();
    let mut c = tc.client_of(1).await;
    let token = hello(&mut c, json!({})).await["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(request(&mut c, 1, "alice").await, "ok");
    drop(c);
    let gate = tc.running(1);
    until("detached", || detached(gate) == 1).await;
    // While it waits, alice is online.
    h.push_to_uid("alice", Frame::new(50, "kept"))
        .await
        .expect("alice is online while her session waits");
    until("expired", || {
        gate.metrics(1)
            .is_some_and(|m| m.sessions_detached == 0 && m.sessions_open == 0)
    })
    .await;
    let e = h
        .push_to_uid("alice", Frame::new(50, "late"))
        .await
        .expect_err("alice left with her session");
    assert!(matches!(e, SendError::NotOnline { .. }), "{e}");
    let mut c = tc.client_of(1).await;
    let answer = hello(&mut c, json!({"token": token, "received": 0})).await;
    assert_eq!(
        (answer["resumed"].clone(), answer["reason"].clone()),
        (json!(false), json!("expired"))
    );
    // The refused resume left a fresh, resumable session, not logged in.
    assert!(answer["token"].as_str().is_some_and(|t| !t.is_empty()));
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_buffer_a_session_cannot_be_resumed() {
    let tc = gate(r#", "resume_buffer_bytes": 2000"#).await;
    let h = tc.running(1).handle();
    let mut c = tc.client_of(1).await;
    let token = hello(&mut c, json!({})).await["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(request(&mut c, 1, "alice").await, "ok");
    // 40 frames of ~108 bytes, never acknowledged.
    for _ in 0..40 {
        h.push_to_uid("alice", Frame::new(50, vec![b'x'; 100]))
            .await
            .expect("push");
    }
    for _ in 0..40 {
        c.recv_timeout(T).await.expect("a push");
    }
    drop(c);
    let mut c = tc.client_of(1).await;
    let answer = hello(&mut c, json!({"token": token, "received": 40})).await;
    assert_eq!(answer["reason"], "overflow", "{answer}");
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_foreign_tokens_resume_nothing() {
    let tc = gate("").await;
    let mut a = tc.client_of(1).await;
    let token = hello(&mut a, json!({})).await["token"]
        .as_str()
        .expect("token")
        .to_string();
    // One flipped character; a made-up token; not hex at all.
    let mut forged = token.clone().into_bytes();
    forged[30] = if forged[30] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).expect("hex");
    for bad in [forged.as_str(), "00000000000000010000000100", "not a token"] {
        let mut c = tc.client_of(1).await;
        let answer = hello(&mut c, json!({"token": bad, "received": 0})).await;
        assert_eq!(answer["reason"], "unknown", "{bad}: {answer}");
    }
    // A token of another cluster (another secret) for the same session id.
    let other = gate("").await;
    let mut b = other.client_of(1).await;
    let _ = hello(&mut b, json!({})).await;
    let mut c = other.client_of(1).await;
    let answer = hello(&mut c, json!({"token": token, "received": 0})).await;
    assert_eq!(answer["reason"], "unknown");
    // The session of the real token is untouched.
    assert_eq!(request(&mut a, 5, "still").await, "still");
    other.shutdown().await;
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_takes_over_from_a_socket_that_still_looks_alive() {
    let tc = gate("").await;
    let h = tc.running(1).handle();
    let mut old = tc.client_of(1).await;
    let token = hello(&mut old, json!({})).await["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(request(&mut old, 1, "alice").await, "ok");
    h.push_to_uid("alice", Frame::new(50, "1"))
        .await
        .expect("push");
    assert_eq!(number(&old.recv_timeout(T).await.expect("push 1")), 1);
    // The phone moved networks: the old socket never closed. It received
    // two frames (the login's answer, push 1).
    let mut new = tc.client_of(1).await;
    let answer = hello(&mut new, json!({"token": token, "received": 2})).await;
    assert_eq!(answer["resumed"], true, "{answer}");
    h.push_to_uid("alice", Frame::new(50, "2"))
        .await
        .expect("push");
    assert_eq!(number(&new.recv_timeout(T).await.expect("push 2")), 2);
    // The gate closed the old socket.
    let closed = old.recv_timeout(T).await;
    assert!(closed.is_err(), "the old socket ends: {closed:?}");
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_resumable_socket_is_dropped_but_its_session_waits() {
    let tc = gate(r#", "idle_timeout_ms": 200"#).await;
    let h = tc.running(1).handle();
    let mut c = tc.client_of(1).await;
    let token = hello(&mut c, json!({})).await["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(request(&mut c, 1, "alice").await, "ok");
    let gate = tc.running(1);
    until("detached after idle", || detached(gate) == 1).await;
    h.push_to_uid("alice", Frame::new(50, "1"))
        .await
        .expect("still online");
    // It had received the login's answer.
    let mut c = tc.client_of(1).await;
    let answer = hello(&mut c, json!({"token": token, "received": 1})).await;
    assert_eq!(answer["replayed"], 1, "{answer}");
    assert_eq!(number(&c.recv_timeout(T).await.expect("push 1")), 1);
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bye_ends_the_session_at_once() {
    let tc = gate("").await;
    let h = tc.running(1).handle();
    let mut c = tc.client_of(1).await;
    let _ = hello(&mut c, json!({})).await;
    assert_eq!(request(&mut c, 1, "alice").await, "ok");
    c.send(BYE_MSG_ID, "{}").await.expect("BYE");
    let gate = tc.running(1);
    until("the session ended", || {
        gate.metrics(1).is_some_and(|m| m.sessions_open == 0)
    })
    .await;
    assert_eq!(detached(gate), 0);
    let e = h
        .push_to_uid("alice", Frame::new(50, "gone"))
        .await
        .expect_err("alice left");
    assert!(matches!(e, SendError::NotOnline { .. }), "{e}");
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_zinx_client_never_sees_a_control_frame_and_ends_with_its_socket() {
    let tc = gate("").await;
    let h = tc.running(1).handle();
    let mut c = tc.client_of(1).await;
    assert_eq!(request(&mut c, 1, "bob").await, "ok");
    assert_eq!(request(&mut c, 2, "r").await, "joined");
    h.push_to_uid("bob", Frame::new(50, "1"))
        .await
        .expect("push");
    h.publish("r", Frame::new(51, "2")).expect("publish");
    for n in 1..=2 {
        let f = c.recv_timeout(T).await.expect("a frame");
        assert!(!is_control(f.msg_id), "{f:?}");
        assert_eq!(number(&f), n);
    }
    assert_eq!(request(&mut c, 5, "x").await, "x");
    drop(c);
    let gate = tc.running(1);
    until("bob's session ended", || {
        gate.metrics(1).is_some_and(|m| m.sessions_open == 0)
    })
    .await;
    assert_eq!(detached(gate), 0, "a plain client's session never waits");
    let e = h
        .push_to_uid("bob", Frame::new(50, "gone"))
        .await
        .expect_err("bob left");
    assert!(matches!(e, SendError::NotOnline { .. }), "{e}");
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_resume_off_hello_is_answered_disabled() {
    let tc = gate(r#", "resume_window_ms": 0"#).await;
    let mut c = tc.client_of(1).await;
    let answer = hello(&mut c, json!({})).await;
    assert_eq!(answer["reason"], "disabled", "{answer}");
    assert_eq!(answer["window_ms"], 0);
    tc.shutdown().await;
}
