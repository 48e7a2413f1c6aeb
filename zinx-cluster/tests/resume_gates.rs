//! Session resume across gates, with a real `redis-server` for the shared
//! directory and bus: a gate that shuts down tells its resumable clients to
//! move, and their sessions move to the gate they resume on (uid, rooms,
//! unread frames) with no push lost or doubled; a session whose gate is
//! gone is `unknown` within a second.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zinx_cluster::prelude::*;
use zinx_cluster_client::Client;
use zinx_cluster_client::wire::{HELLO_MSG_ID, MOVE_MSG_ID};
use zinx_test_support::cluster::TestCluster;
use zinx_test_support::ports::free_ports;
use zinx_test_support::redis::RedisServer;

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

/// Two gates on `redis`, not started.
fn files(redis: &RedisServer) -> (String, String) {
    let p = free_ports(2).expect("ports");
    let dinx = format!(
        r#"{{"gate": [
            {{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": {}}},
            {{"ID": 2, "Name": "gate-2", "Type": 1, "IP": "127.0.0.1", "Port": {}}}]}}"#,
        p[0], p[1]
    );
    let settings = format!(
        r#"{{"secret": "resume-gates", "redis_url": "{}", "heartbeat_interval_ms": 100,
            "heartbeat_timeout_ms": 600, "shutdown_grace_ms": 3000}}"#,
        redis.url()
    );
    (dinx, settings)
}

async fn hello(c: &mut Client, body: Value) -> Value {
    c.send(HELLO_MSG_ID, body.to_string()).await.expect("HELLO");
    let f = c.recv_timeout(T).await.expect("HELLO's answer");
    assert_eq!(f.msg_id, HELLO_MSG_ID, "{f:?}");
    serde_json::from_slice(&f.data).expect("JSON")
}

async fn request(c: &mut Client, msg_id: u32, data: &str) -> String {
    let f = c
        .request(msg_id, data.to_string(), T)
        .await
        .expect("answer");
    assert_eq!(f.msg_id, msg_id, "{}", String::from_utf8_lossy(&f.data));
    String::from_utf8_lossy(&f.data).into_owned()
}

fn number(f: &Frame) -> u32 {
    assert!(matches!(f.msg_id, 50 | 51), "a push, got {f:?}");
    String::from_utf8_lossy(&f.data).parse().expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_gate_moves_its_resumable_clients_without_losing_a_push() {
    let Some(redis) = RedisServer::start("resume across gates").await else {
        return;
    };
    let (dinx, settings) = files(&redis);
    let mut tc = TestCluster::launch(dinx, ROUTE, settings, &[1, 2]).await;
    // Alice on gate 1, resumable, in room r; bob on gate 2 sends to her.
    let mut c = tc.client_of(1).await;
    let token = hello(&mut c, json!({})).await["token"]
        .as_str()
        .map(str::to_string)
        .expect("token");
    assert_eq!(request(&mut c, 1, "alice").await, "ok");
    assert_eq!(request(&mut c, 2, "r").await, "joined");
    let mut received = 2u64;
    let bob = tc.running(2).handle();
    // Pushes from gate 2 all along: by uid, and to the room.
    let pusher = tokio::spawn(async move {
        for n in 1..=300u32 {
            let data = n.to_string();
            if n % 2 == 1 {
                bob.push_to_uid("alice", Frame::new(50, data))
                    .await
                    .unwrap_or_else(|e| panic!("push {n}: {e}"));
            } else {
                // Gate 1 stops meanwhile: a publish that misses it (it is
                // gone) still reaches the members on the gates that run.
                match bob.publish("r", Frame::new(51, data)) {
                    Ok(()) | Err(SendError::Partial { .. }) => {}
                    Err(e) => panic!("publish {n}: {e}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    // Gate 1 shuts down while pushes flow; its client gets MOVE.
    let mut got = Vec::new();
    while got.len() < 40 {
        got.push(number(&c.recv_timeout(T).await.expect("a push")));
        received += 1;
    }
    let gate1 = tc.take(1);
    let stopping = tokio::spawn(async move { gate1.shutdown().await });
    loop {
        let f = c.recv_timeout(T).await.expect("pushes, then MOVE");
        if f.msg_id == MOVE_MSG_ID {
            let m: Value = serde_json::from_slice(&f.data).expect("JSON");
            assert_eq!(m["reason"], "draining");
            break;
        }
        got.push(number(&f));
        received += 1;
    }
    drop(c);
    // Resumed on gate 2.
    let mut c = tc.client_of(2).await;
    let answer = hello(&mut c, json!({"token": token, "received": received})).await;
    assert_eq!(answer["resumed"], true, "{answer}");
    while got.len() < 300 {
        got.push(number(
            &c.recv_timeout(T).await.expect("a push after the move"),
        ));
    }
    pusher.await.expect("every push accepted");
    // Order: by uid and by room each in order; together, each number once.
    let mut all = got.clone();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 300, "no push lost or doubled: {got:?}");
    for parity in [0, 1] {
        let mine: Vec<u32> = got.iter().copied().filter(|n| n % 2 == parity).collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "in order: {mine:?}");
    }
    // Alice is alice on gate 2 now: a push by uid from there reaches her.
    assert_eq!(request(&mut c, 5, "after").await, "after");
    stopping.await.expect("gate 1 stopped");
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_a_gate_that_is_gone_is_unknown_within_a_second() {
    let Some(redis) = RedisServer::start("resume across gates").await else {
        return;
    };
    let (dinx, settings) = files(&redis);
    let mut tc = TestCluster::launch(dinx, ROUTE, settings, &[1, 2]).await;
    let mut c = tc.client_of(1).await;
    let token = hello(&mut c, json!({})).await["token"]
        .as_str()
        .map(str::to_string)
        .expect("token");
    drop(c);
    // Gate 1 goes away entirely (its session with it).
    let gate1 = tc.take(1);
    gate1.shutdown().await;
    let mut c = tc.client_of(2).await;
    let started = Instant::now();
    let answer = hello(&mut c, json!({"token": token, "received": 0})).await;
    let took = started.elapsed();
    assert_eq!(answer["reason"], "unknown", "{answer}");
    assert!(
        took < Duration::from_millis(1500),
        "answered in {took:?} (the bound is the 1 s handover wait)"
    );
    tc.shutdown().await;
}
