//! The demo cluster as processes: one per node, or all in one; the chat
//! protocol end to end; losing an im node; shutdown on Ctrl-C.

use std::time::{Duration, Instant};

use serde_json::json;
use zinx_cluster::Frame;
use zinx_cluster_client::Client;
use zinx_test_support::T;
use zinx_test_support::chat::{body, check_chat, check_echo, login, wait_ready};
use zinx_test_support::conf::Conf;
use zinx_test_support::process::Proc;

/// The demo server built for this test run.
const DEMO: &str = env!("CARGO_BIN_EXE_demo");

/// What a machine running ten jobs on two cores may add to a bound.
const MARGIN: Duration = Duration::from_secs(2);

/// The im node serving `c`'s session (stats, 21, asks it).
async fn im_node_of(c: &mut Client) -> String {
    let f = c.request(21, "", T).await.expect("stats");
    assert_eq!(f.msg_id, 21, "{:?}", String::from_utf8_lossy(&f.data));
    body(&f)["node"].as_str().unwrap_or_default().to_string()
}

/// Why a round after the failover must be tried again: the gate answered
/// with its error frame (e.g. `no_live_node` while it still counted the
/// dead node), or nothing came (the message was on its way to the killed
/// node).
type Retry = String;

/// The next frame: the expected reply (`Ok`), an error frame or nothing
/// (`Err`, try again). Anything else fails the test.
async fn answer(c: &mut Client, msg_id: u32) -> Result<Frame, Retry> {
    match c.recv_timeout(Duration::from_millis(1000)).await {
        Ok(f) if f.msg_id == msg_id => Ok(f),
        Ok(f) if f.msg_id == 0 => Err(format!("error frame {}", String::from_utf8_lossy(&f.data))),
        Ok(f) => panic!(
            "waiting for msg {msg_id}, got msg {}: {:?}",
            f.msg_id,
            String::from_utf8_lossy(&f.data)
        ),
        Err(_) => Err(format!("no answer on msg {msg_id}")),
    }
}

/// Drops whatever is still arriving from an abandoned round.
async fn drain(c: &mut Client) {
    while c.recv_timeout(Duration::from_millis(100)).await.is_ok() {}
}

/// `from` sends `text` to `to`: an ok for `from`, then the line for `to`.
async fn send_line(
    a: &mut Client,
    b: &mut Client,
    from: &str,
    to: &str,
    text: &str,
) -> Result<(), Retry> {
    a.send(3, json!({"to": to, "text": text}).to_string())
        .await
        .unwrap();
    let f = answer(a, 3).await?;
    assert_eq!(body(&f), json!({"ok": true}), "{from} -> {to}");
    let f = b.recv_timeout(T).await.expect("the line after the ok");
    assert_eq!(
        (f.msg_id, body(&f)),
        (3, json!({"from": from, "text": text}))
    );
    Ok(())
}

/// Echo 6 on every session, a send each way and a broadcast, each of which
/// must be right when it is answered at all.
async fn round(
    alice: &mut Client,
    bob: &mut Client,
    others: &mut [Client],
    n: u32,
) -> Result<(), Retry> {
    let token = format!("round {n}");
    for c in others.iter_mut().chain([&mut *alice, &mut *bob]) {
        drain(c).await;
        c.send(6, token.clone()).await.unwrap();
        let f = answer(c, 6).await?;
        assert_eq!(&f.data[..], token.as_bytes());
    }

    send_line(alice, bob, "alice", "bob", &token).await?;
    send_line(bob, alice, "bob", "alice", &token).await?;

    alice
        .send(4, json!({"text": token}).to_string())
        .await
        .unwrap();
    let f = answer(alice, 4).await?;
    let line = json!({"from": "alice", "text": token});
    assert_eq!(body(&f), line);
    let f = bob
        .recv_timeout(T)
        .await
        .expect("bob's copy of the broadcast");
    assert_eq!((f.msg_id, body(&f)), (4, line));
    // Once each: a second broadcast the same way comes next, not a second
    // copy of the first.
    let marker = format!("{token}, once");
    alice
        .send(4, json!({ "text": marker }).to_string())
        .await
        .unwrap();
    let line = json!({"from": "alice", "text": marker});
    let f = answer(alice, 4).await?;
    assert_eq!(body(&f), line, "alice's next frame");
    let f = bob.recv_timeout(T).await.expect("bob's copy of the marker");
    assert_eq!((f.msg_id, body(&f)), (4, line), "bob's next frame");
    Ok(())
}

#[tokio::test]
async fn three_processes_chat_survive_a_crashed_im_node_and_stop_cleanly() {
    let conf = Conf::new();
    let mut im1 = Proc::demo(DEMO, "im-1", &conf, &["--id", "2"]);
    let mut im2 = Proc::demo(DEMO, "im-2", &conf, &["--id", "3"]);
    let mut gate = Proc::demo(DEMO, "gate-1", &conf, &["--id", "1"]);
    let addr = conf.gate_addr();
    wait_ready(&addr).await;
    // Both im nodes linked to the gate, so both serve sessions.
    for im in ["im-1", "im-2"] {
        gate.wait_log(&[&format!("peer={im}"), "link up"], T);
    }

    check_chat(&addr).await;

    // im-1 crashes. Within the heartbeat bound the gate sends everything
    // to im-2; until then an answer is right or an error frame, never
    // wrong.
    // Sessions are spread over the live im nodes by a hash of their id:
    // more of them until some are on im-1 (a session's calls go where its
    // messages go, so stats, 21, names its im node).
    let mut alice = login(&addr, "alice").await;
    let mut bob = login(&addr, "bob").await;
    let mut others = Vec::new();
    let mut on_im1 = 0;
    for c in [&mut alice, &mut bob] {
        on_im1 += usize::from(im_node_of(c).await == "im-1");
    }
    while others.len() < 8 || on_im1 == 0 {
        assert!(others.len() < 64, "no session of 66 on im-1");
        let mut c = Client::connect(&addr).await.unwrap();
        assert_eq!(c.request(6, "x", T).await.unwrap().msg_id, 6);
        on_im1 += usize::from(im_node_of(&mut c).await == "im-1");
        others.push(c);
    }
    eprintln!("{on_im1} of {} sessions on im-1", others.len() + 2);
    im1.kill();
    // The gate knows at once (the socket closes); the design's bound for
    // knowing a node is dead is 3 s, plus a loaded machine's margin.
    let deadline = Instant::now() + Duration::from_secs(3) + MARGIN;
    let mut n = 0;
    loop {
        n += 1;
        match round(&mut alice, &mut bob, &mut others, n).await {
            Ok(()) => break,
            Err(why) => {
                eprintln!("round {n} after the crash: {why}");
                assert!(
                    Instant::now() < deadline,
                    "still failing 5 s after the crash: {why}"
                );
            }
        }
    }
    // And from now on everything works the first time.
    round(&mut alice, &mut bob, &mut others, 1000)
        .await
        .expect("served by im-2");
    check_echo(&mut alice, 6).await;
    gate.wait_log(&["peer=im-1", "link down"], T);

    // Ctrl-C: both remaining processes shut down gracefully and exit 0.
    gate.interrupt();
    im2.interrupt();
    for p in [&mut gate, &mut im2] {
        let status = p.wait_exit(Duration::from_secs(10));
        assert_eq!(status.code(), Some(0), "{}", p.log());
    }
    assert!(gate.log().contains("shutdown complete"));
}

#[tokio::test]
async fn all_nodes_in_one_process() {
    let conf = Conf::new();
    let mut demo = Proc::demo(DEMO, "demo", &conf, &[]);
    let addr = conf.gate_addr();
    wait_ready(&addr).await;
    let log = demo.log();
    for node in ["gate-1", "im-1", "im-2"] {
        assert!(log.contains(&format!("node {node} (ID")), "{log}");
    }

    check_chat(&addr).await;
    check_stats(&addr).await;

    demo.interrupt();
    let status = demo.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", demo.log());
}

/// 21 asks an im node through its internal 20 and answers with its name
/// and the im messages its process handled;
/// 20 itself, from a client, is an unknown msg_id.
async fn check_stats(addr: &str) {
    let mut c = Client::connect(addr).await.expect("connect");
    let f = c.request(21, "", T).await.expect("an answer");
    assert_eq!(f.msg_id, 21);
    let node = body(&f)["node"].as_str().unwrap_or_default().to_string();
    assert!(node == "im-1" || node == "im-2", "{}", body(&f));
    // The chat before this went through the im handlers, which count in
    // the process's state (one process here: both im nodes share it).
    let handled = body(&f)["handled"].as_u64().unwrap_or_default();
    assert!(handled > 0, "{}", body(&f));

    let internal = c.request(20, "null", T).await.expect("an answer");
    let unknown = c.request(70, "null", T).await.expect("an answer");
    assert_eq!((internal.msg_id, unknown.msg_id), (0, 0), "error frames");
    let (internal, unknown) = (body(&internal), body(&unknown));
    assert_eq!(internal["code"], "unknown_msg_id");
    assert_eq!(
        internal["error"].as_str().unwrap().replace("20", "N"),
        unknown["error"].as_str().unwrap().replace("70", "N"),
        "an internal msg_id looks exactly unknown"
    );
}
