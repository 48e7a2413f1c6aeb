//! The bus between gates (each gate's channel in Redis): messages without
//! the cluster secret or replayed reach nobody, a gate's queue towards
//! another is bounded and reports failures; and a backend keeps a gate's
//! sessions across a blip of its link, ending them when the gate dies.

use std::time::{Duration, Instant};

use zinx_cluster::{Select, SessionId};
use zinx_test_support::T;
use zinx_test_support::cluster::{TestCluster, error_of, expect, nothing_before_echo, req, s};
use zinx_test_support::logs::LogCapture;

use crate::{
    BACKENDS, HEARTBEAT_TIMEOUT, LINK_QUEUE, RedisCluster, RedisQueries, assert_no_panics,
    child_gate, test_redis,
};

#[tokio::test]
async fn messages_on_a_gate_channel_without_the_secret_reach_nobody() {
    use futures::StreamExt;

    let Some(redis) = test_redis().await else {
        return;
    };
    let tc = TestCluster::start(&redis.url(), &[3, 4, 1, 2]).await;
    tc.wait_ready(&redis).await;
    let mut alice = tc.login(1, "alice").await;
    let mut bob = tc.login(2, "bob").await;

    // Listen on gate-2's channel, to capture what gate-1 sends there.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("zinx:gate:2").await.unwrap();
    let mut heard = pubsub.into_on_message();
    assert_eq!(s(&req(&mut alice, 8, "bob").await), "pushed");
    expect(&mut bob, 8, "from gate-1 to bob").await;
    let genuine: Vec<u8> = tokio::time::timeout(T, heard.next())
        .await
        .expect("gate-1's message on gate-2's channel")
        .expect("a message")
        .get_payload_bytes()
        .to_vec();

    // What anyone who can PUBLISH on this Redis could send before: the
    // bare envelope pushing to bob, without its trailer (run, seq, time:
    // 24 bytes; HMAC-SHA256: 32).
    let unsigned = genuine[..genuine.len() - 56].to_vec();
    // The genuine message with its frame altered (its text), and with its
    // MAC altered.
    let mut altered = genuine.clone();
    let at = altered
        .windows(4)
        .position(|w| w == b"from")
        .expect("the text in the frame");
    altered[at..at + 4].copy_from_slice(b"FROM");
    let mut bad_mac = genuine.clone();
    let last = bad_mac.len() - 1;
    bad_mac[last] ^= 0x55;

    let mut c = redis.conn().await;
    let mut publish = async |channel: &str, payload: &[u8]| -> i64 {
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut c)
            .await
            .unwrap()
    };
    for forged in [&unsigned, &altered, &bad_mac] {
        assert!(publish("zinx:gate:2", forged).await >= 1);
    }
    // A replay of the genuine message, to gate-2 and to gate-1.
    assert!(publish("zinx:gate:2", &genuine).await >= 1);
    assert!(publish("zinx:gate:1", &genuine).await >= 1);

    // Nobody got anything; every one was counted.
    tc.wait_metrics(2, "3 forged, 1 replayed", |m| {
        m.bus_forged == 3 && m.bus_replayed == 1
    })
    .await;
    // Signed for gate-2: on gate-1's channel it proves nothing.
    tc.wait_metrics(1, "1 forged", |m| m.bus_forged == 1).await;
    // Dropped, not delivered: nothing came before the echo of a probe.
    nothing_before_echo(&mut bob, "bob", 6).await;
    nothing_before_echo(&mut alice, "alice", 6).await;

    // Genuine traffic still flows, both ways.
    assert_eq!(s(&req(&mut alice, 8, "bob").await), "pushed");
    expect(&mut bob, 8, "from gate-1 to bob").await;
    assert_eq!(s(&req(&mut bob, 8, "alice").await), "pushed");
    expect(&mut alice, 8, "from gate-2 to alice").await;
    let (m1, m2) = (tc.metrics(1), tc.metrics(2));
    eprintln!(
        "FIGURES forged bus messages: gate-2 dropped {} forged and {} replayed, gate-1 dropped {} forged; none reached a client",
        m2.bus_forged, m2.bus_replayed, m1.bus_forged
    );
    tc.shutdown().await;
    assert_no_panics();
}

#[tokio::test]
async fn pushes_to_another_gate_are_bounded_and_report_failure() {
    let Some(redis) = test_redis().await else {
        return;
    };
    let mut tc = TestCluster::start(&redis.url(), &[3, 4, 1, 2]).await;
    tc.wait_ready(&redis).await;
    let mut alice = tc.login(1, "alice").await;
    let mut bob = tc.login(2, "bob").await;
    let bob_id: u64 = s(&req(&mut bob, 7, "").await)
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("an id");

    // Redis hangs: nothing drains gate-1's queue for gate-2. 10,000 pushes
    // fill it (the publisher holds one batch) and the rest are refused at
    // once: no task, no memory per push beyond the bound.
    redis.freeze(true);
    let count = 10_000;
    let started = Instant::now();
    let f = req(&mut alice, 19, &format!("{bob_id} {count}")).await;
    let took = started.elapsed();
    let outcome = s(&f);
    let field = |name: &str| -> usize {
        outcome
            .split(' ')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {outcome:?}"))
    };
    let (ok, congested, other) = (field("ok"), field("congested"), field("other"));
    assert!(
        ok <= LINK_QUEUE + 64,
        "{outcome}: more queued than the bound"
    );
    assert!(ok >= LINK_QUEUE, "{outcome}: the queue did not fill");
    assert_eq!(ok + congested + field("unreachable"), count, "{outcome}");
    assert_eq!(other, 0, "{outcome}");
    assert_eq!(tc.metrics(1).bus_queue_full, congested as u64);
    eprintln!(
        "FIGURES bounded bus: {count} pushes to a gate with Redis hung took {took:?}: {outcome}"
    );
    redis.freeze(false);
    // What was queued is published once Redis is back (bob reads them or
    // is closed for a full queue: either way gate-1 recovers).
    let _ = bob;

    // gate-2 stops: a broadcast from gate-1 reports that it did not reach
    // it, at the latest once a publish reached nobody.
    tc.stop(2).await;
    let stopped = Instant::now();
    let reported = loop {
        let f = req(&mut alice, 16, "anyone?").await;
        if f.msg_id == 0 {
            let text = error_of(&f)["error"].as_str().unwrap().to_string();
            assert!(text.contains("did not reach gate(s) [2]"), "{text}");
            break stopped.elapsed();
        }
        assert_eq!(s(&f), "anyone?", "alice's own copy");
        assert!(
            stopped.elapsed() < T,
            "broadcasts kept reporting success to a stopped gate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "FIGURES bus failure: a broadcast reported gate-2 unreached {reported:?} after it stopped"
    );
    tc.shutdown().await;
    assert_no_panics();
}

#[tokio::test]
async fn a_backend_keeps_a_gate_s_sessions_across_a_link_blip_and_ends_them_when_it_dies() {
    // The backends run here, on this test's thread: their log lines are
    // this capture's.
    let logs = LogCapture::this_thread("zinx_cluster::backend=debug");
    let Some(redis) = test_redis().await else {
        return;
    };
    let tc = TestCluster::start(&redis.url(), &[1]).await;
    // The backends, whose session-closed hooks `tc` records.
    let mut backends = Vec::new();
    for id in BACKENDS {
        let running = tc
            .cluster()
            .start(Select::Id(id))
            .await
            .expect("backend starts");
        backends.push((id, running));
    }
    let mut child = child_gate(&tc, 2).await;
    tc.wait_ready(&redis).await;
    let mut bob = tc.login(2, "bob").await;
    let bob_id = SessionId(
        s(&req(&mut bob, 7, "").await)
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("an id"),
    );
    // A backend serves bob (the same one for the session's life: sticky),
    // and carol.
    let served_by = s(&req(&mut bob, 9, "").await);
    assert!(served_by.ends_with(" bob"), "{served_by}");
    let mut carol = tc.login(2, "carol").await;
    let carol_id = SessionId(
        s(&req(&mut carol, 7, "").await)
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("an id"),
    );
    let carol_by = s(&req(&mut carol, 9, "").await);
    assert!(carol_by.ends_with(" carol"), "{carol_by}");
    let ended_for = |session: SessionId| tc.closed_on(session);
    // The backends holding sessions of gate-2 when its links go down.
    let mut holders: Vec<&str> = vec![node_of(&served_by), node_of(&carol_by)];
    holders.dedup();

    // A blip: gate-2 freezes until both backends declare its links dead,
    // then goes on and links again, from the same run. carol leaves
    // meanwhile: her gate tells the backend when it can.
    child.freeze(true);
    drop(carol);
    let frozen = Instant::now();
    for (id, b) in &backends {
        while b.link_up(*id, 2) {
            assert!(frozen.elapsed() < T, "backend {id} did not notice");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let down = frozen.elapsed();
    child.freeze(false);
    for (id, b) in &backends {
        while !b.link_up(*id, 2) {
            assert!(frozen.elapsed() < T, "link {id} -> 2 did not come back");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let back = frozen.elapsed();
    while ended_for(carol_id).is_empty() {
        assert!(
            frozen.elapsed() < back + T,
            "carol's session close never reached the backend that served her"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let carol_ended = frozen.elapsed();
    // Each backend that held gate-2's sessions decides, a heartbeat timeout
    // after the loss, that the link came back from the same run: the
    // sessions live on. By then gate-2 has re-sent, every heartbeat
    // interval, the close notices its old link may have lost.
    logs.wait_line(&["gate=gate-2", "its sessions live on"], holders.len(), T)
        .await;
    assert!(
        logs.lines(&["gate gone"]).is_empty(),
        "a backend ended gate-2's sessions: {:?}",
        logs.lines(&["gate gone"])
    );
    assert_eq!(ended_for(carol_id).len(), 1, "carol's hook ran twice");
    assert_eq!(
        ended_for(bob_id),
        Vec::<u16>::new(),
        "a backend ended bob's session although his gate only blipped"
    );
    assert!(s(&req(&mut bob, 9, "").await).ends_with(" bob"));

    // gate-2 dies: the backend ends bob's session within the heartbeat
    // timeout of noticing.
    child.kill();
    let killed = Instant::now();
    while ended_for(bob_id).is_empty() {
        assert!(
            killed.elapsed() < 2 * HEARTBEAT_TIMEOUT + Duration::from_secs(3),
            "bob's session not ended by {served_by:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gone = killed.elapsed();
    eprintln!(
        "FIGURES gate blip: links down {down:?} after SIGSTOP, back {back:?} after it, sessions kept; the close of a session during the blip reached its backend {carol_ended:?} after SIGSTOP; after kill -9 the backends ended the gate's sessions in {gone:?} (heartbeat timeout {HEARTBEAT_TIMEOUT:?})"
    );
    for (_, b) in backends {
        b.shutdown().await;
    }
    tc.shutdown().await;
    assert_no_panics();
}

/// The node's name in a whoami answer (`im-1 bob`).
fn node_of(answer: &str) -> &str {
    answer.split(' ').next().unwrap_or_default()
}
