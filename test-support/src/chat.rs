//! A client speaking the demo's chat protocol (`demo/src/lib.rs`), and the
//! check of every flow of it against a running cluster.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zinx_cluster::Frame;
use zinx_cluster_client::Client;

use crate::T;

/// Waits until the gate answers an echo that crosses the cluster (msg 6):
/// the gate, a link and an im node are up. Bounded.
pub async fn wait_ready(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut c) = Client::connect(addr).await {
            if let Ok(f) = c.request(6, "ready?", Duration::from_millis(500)).await {
                if f.msg_id == 6 && &f.data[..] == b"ready?" {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the cluster at {addr} is not ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The JSON of a frame.
pub fn body(f: &Frame) -> Value {
    serde_json::from_slice(&f.data).unwrap_or_else(|e| {
        panic!(
            "msg {}: not JSON ({e}): {:?}",
            f.msg_id,
            String::from_utf8_lossy(&f.data)
        )
    })
}

/// The next frame, which must be `msg_id` with this JSON body.
pub async fn expect(c: &mut Client, msg_id: u32, want: Value) {
    let f = c.recv_timeout(T).await.expect("a frame");
    assert_eq!((f.msg_id, body(&f)), (msg_id, want));
}

/// Sends a JSON request and checks the next frame.
pub async fn ask(c: &mut Client, msg_id: u32, req: Value, want: Value) {
    c.send(msg_id, req.to_string()).await.unwrap();
    expect(c, msg_id, want).await;
}

/// Nothing more arrived: the answer to an im echo (6) sent now is the
/// very next frame. It crosses the gate and an im node, so anything they
/// had sent this client before (a second copy of a broadcast, a line for
/// someone else) would come first; no quiet period is timed.
pub async fn quiet(c: &mut Client, who: &str) {
    crate::cluster::nothing_before_echo(c, who, 6).await;
}

/// Each logged-in user got the broadcast `from` just sent once: `from`
/// (logged in as `name`) broadcasts a marker the same way, and the next
/// frame of `from` and of each of `others` is that marker (a second copy
/// would have come first).
pub async fn once_each(from: &mut Client, name: &str, others: &mut [&mut Client]) {
    let marker = format!("marker after the broadcasts of {name}");
    from.send(4, json!({ "text": marker }).to_string())
        .await
        .unwrap();
    let want = json!({"from": name, "text": marker});
    expect(from, 4, want.clone()).await;
    for c in others.iter_mut() {
        expect(c, 4, want.clone()).await;
    }
}

/// A client logged in as `name`.
pub async fn login(addr: &str, name: &str) -> Client {
    let mut c = Client::connect(addr).await.unwrap();
    ask(
        &mut c,
        1,
        json!({"name": name}),
        json!({"ok": true, "name": name}),
    )
    .await;
    c
}

/// Echo on `msg_id` returns the very bytes sent, whatever they are.
pub async fn check_echo(c: &mut Client, msg_id: u32) {
    let binary: Vec<u8> = (0..=255).collect();
    let big: Vec<u8> = (0..60 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    for payload in [Vec::new(), b"hi".to_vec(), binary, big] {
        let f = c.request(msg_id, payload.clone(), T).await.unwrap();
        assert_eq!(f.msg_id, msg_id);
        assert!(
            f.data[..] == payload[..],
            "echo {msg_id} of {} bytes came back as {} bytes",
            payload.len(),
            f.data.len()
        );
    }
}

/// alice (logged in as `alice`) and bob (as `bob`) send each other a line:
/// the addressee gets it, the sender an ok.
pub async fn send_both_ways(alice: &mut Client, bob: &mut Client) {
    ask(
        alice,
        3,
        json!({"to": "bob", "text": "hi bob"}),
        json!({"ok": true}),
    )
    .await;
    expect(bob, 3, json!({"from": "alice", "text": "hi bob"})).await;
    ask(
        bob,
        3,
        json!({"to": "alice", "text": "hi alice"}),
        json!({"ok": true}),
    )
    .await;
    expect(alice, 3, json!({"from": "bob", "text": "hi alice"})).await;
}

/// Every flow of the demo protocol against a running cluster.
pub async fn check_chat(addr: &str) {
    let mut alice = login(addr, "alice").await;
    let mut bob = login(addr, "bob").await;

    send_both_ways(&mut alice, &mut bob).await;
    ask(
        &mut alice,
        3,
        json!({"to": "carol", "text": "?"}),
        json!({"ok": false, "error": "carol is not online"}),
    )
    .await;

    // broadcast: each logged-in user once, the sender included; a
    // connection that never logged in gets nothing.
    let mut lurker = Client::connect(addr).await.unwrap();
    check_echo(&mut lurker, 5).await;
    alice
        .send(4, json!({"text": "hello"}).to_string())
        .await
        .unwrap();
    for c in [&mut alice, &mut bob] {
        expect(c, 4, json!({"from": "alice", "text": "hello"})).await;
    }
    once_each(&mut alice, "alice", &mut [&mut bob]).await;
    quiet(&mut lurker, "an anonymous connection").await;

    // echo by the gate and by an im node: the very bytes.
    check_echo(&mut alice, 5).await;
    check_echo(&mut alice, 6).await;

    // Before login, send and broadcast are refused on their own msg_id.
    let mut anon = Client::connect(addr).await.unwrap();
    let refused = json!({"ok": false, "error": "not logged in"});
    ask(
        &mut anon,
        3,
        json!({"to": "bob", "text": "x"}),
        refused.clone(),
    )
    .await;
    ask(&mut anon, 4, json!({"text": "x"}), refused).await;
    // A body that is not the expected JSON: the framework's error answer.
    anon.send(3, "not json").await.unwrap();
    let f = anon.recv_timeout(T).await.unwrap();
    assert_eq!(f.msg_id, 0);
    let err = body(&f);
    assert_eq!(
        (err["msg_id"].as_u64(), err["code"].as_str()),
        (Some(3), Some("bad_payload"))
    );
    quiet(&mut bob, "bob").await;

    // Logging in as alice again: the older session is told, then closed.
    let mut alice2 = login(addr, "alice").await;
    expect(
        &mut alice,
        1,
        json!({"ok": false, "error": "logged in elsewhere"}),
    )
    .await;
    assert!(
        alice.recv_timeout(T).await.is_err(),
        "the older alice is closed"
    );
    ask(
        &mut bob,
        3,
        json!({"to": "alice", "text": "new?"}),
        json!({"ok": true}),
    )
    .await;
    expect(&mut alice2, 3, json!({"from": "bob", "text": "new?"})).await;

    // Logout unbinds; the connection stays.
    ask(&mut alice2, 2, json!({}), json!({"ok": true})).await;
    ask(
        &mut bob,
        3,
        json!({"to": "alice", "text": "gone?"}),
        json!({"ok": false, "error": "alice is not online"}),
    )
    .await;
    ask(
        &mut alice2,
        3,
        json!({"to": "bob", "text": "x"}),
        json!({"ok": false, "error": "not logged in"}),
    )
    .await;
}
