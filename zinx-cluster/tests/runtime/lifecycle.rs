//! Graceful shutdown of a gate and of a backend under traffic, and a
//! node's handle from `RunningCluster::node_handle`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use zinx_cluster::prelude::*;
use zinx_cluster_client::Client;
use zinx_test_support::T;
use zinx_test_support::cluster::{TestCluster, error_of, expect, req, s, wait_until};

use crate::{FAST, GATE_HOLD, RuntimeCluster};

#[tokio::test]
async fn frames_received_during_a_gate_shutdown_are_answered() {
    // A grace far longer than the test needs: the held handler is
    // released, not cut off.
    let settings = FAST.replace(
        r#""shutdown_grace_ms": 1000"#,
        r#""shutdown_grace_ms": 10000"#,
    );
    let mut tc = TestCluster::start(&settings, &[1, 2]).await;
    let mut c = tc.client().await;
    let mut probe = tc.client().await;
    // The gate's reader is held in a handler while ten more requests
    // arrive; then the gate shuts down.
    c.send(18, "").await.unwrap();
    GATE_HOLD.wait_held().await;
    for i in 0..10 {
        c.feed(if i % 2 == 0 { 5 } else { 6 }, i.to_string())
            .await
            .unwrap();
    }
    c.flush().await.unwrap();
    let gate = tc.take(1);
    let stopping = tokio::spawn(gate.shutdown());
    // The gate is stopping once another session's echo is answered
    // node_stopping; only then does the held handler go on.
    let deadline = std::time::Instant::now() + T;
    loop {
        let f = req(&mut probe, 5, "stopping?").await;
        if f.msg_id == 0 {
            assert_eq!(error_of(&f)["code"], "node_stopping");
            break;
        }
        assert_eq!(s(&f), "stopping?");
        assert!(
            std::time::Instant::now() < deadline,
            "the gate never stopped"
        );
    }
    GATE_HOLD.release();
    // The request in flight is answered; the ten that were never run get
    // the node_stopping answer, not silence; then the connection closes.
    expect(&mut c, 18, "released").await;
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

/// One request at a time on msg_id 6 (im echo) until `stop`, counting the
/// echoes in `echoes` too; returns (replies, node_stopping answers,
/// requests without any answer within T).
async fn echo_until(addr: String, stop: Arc<AtomicBool>, echoes: Arc<AtomicU64>) -> [u32; 3] {
    let mut c = Client::connect(&addr).await.expect("connect");
    let mut counts = [0u32; 3];
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        match c.request(6, n.to_string(), T).await {
            Ok(f) if f.msg_id == 6 => {
                assert_eq!(s(&f), n.to_string());
                counts[0] += 1;
                echoes.fetch_add(1, Ordering::Relaxed);
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
    let stop = Arc::new(AtomicBool::new(false));
    let echoes = Arc::new(AtomicU64::new(0));
    let load: Vec<_> = (0..16)
        .map(|_| tokio::spawn(echo_until(tc.addr(1), stop.clone(), echoes.clone())))
        .collect();
    // The load flows through both im nodes (16 sessions, sticky: all of
    // them on im-1 once in 65,536 runs)...
    let echoed = || echoes.load(Ordering::Relaxed);
    wait_until("64 echoes before the stop", || echoed() >= 64).await;
    wait_until("im-2 serves some of the load", || tc.metrics(3).handled > 0).await;
    // ...when im-2 stops gracefully while messages keep arriving for it,
    // and until im-1 has served 64 more.
    tc.stop(3).await;
    let after_stop = echoed();
    wait_until("64 echoes after the stop", || echoed() >= after_stop + 64).await;
    stop.store(true, Ordering::Relaxed);
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

/// `RunningCluster::node_handle`: a handle acting from the node asked for
/// (a gate's push stays on it, a backend's crosses its link to the gate),
/// `None` for a node this `RunningCluster` does not run; it stops with its
/// node.
#[tokio::test]
async fn node_handle_acts_from_the_node_asked_for() {
    let tc = TestCluster::start(FAST, &[1, 2]).await;
    let mut c = tc.client().await;
    let id = SessionId(s(&req(&mut c, 27, "").await).parse().expect("a session id"));
    let gate = tc.running(1).node_handle(1).expect("gate-1 runs there");
    let im = tc.running(2).node_handle(2).expect("im-1 runs there");
    assert_eq!((gate.node_id(), im.node_id()), (1, 2));
    assert!(
        tc.running(1).node_handle(2).is_none(),
        "im-1 runs elsewhere"
    );
    assert!(tc.running(1).node_handle(9).is_none(), "no node 9");

    let forwards = tc.metrics(1).forwards;
    gate.push(id, Frame::new(40, "from gate-1")).unwrap();
    expect(&mut c, 40, "from gate-1").await;
    im.push(id, Frame::new(41, "from im-1")).unwrap();
    expect(&mut c, 41, "from im-1").await;
    // A call from each: the callee tells which node it is (whoami), and
    // neither went through the gate's client path.
    let a: String = gate.call("im", Frame::new(9, "")).await.unwrap();
    assert_eq!(a, "im-1 -");
    let b: String = im.call("im", Frame::new(9, "")).await.unwrap();
    assert_eq!(b, "im-1 -");
    assert_eq!(tc.metrics(1).forwards, forwards);

    // Each stops with its own node only.
    let mut tc = tc;
    tc.stop(2).await;
    assert!(!im.is_running());
    assert!(gate.is_running());
    assert_eq!(im.push(id, Frame::new(41, "x")), Err(SendError::Stopped));
    tc.shutdown().await;
    assert!(!gate.is_running());
}
