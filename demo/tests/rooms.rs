//! Rooms and reminders of the demo over the wire: with one gate (every
//! node in one process), and with two gate processes sharing a Redis.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zinx_cluster_client::Client;
use zinx_test_support::chat::{ask, expect, login, quiet, wait_ready};
use zinx_test_support::conf::{Conf, DEMO_ROUTES, SETTINGS, write_conf};
use zinx_test_support::free_ports;
use zinx_test_support::process::Proc;
use zinx_test_support::redis::RedisServer;

/// The demo server built for this test run.
const DEMO: &str = env!("CARGO_BIN_EXE_demo");

fn ok() -> Value {
    json!({"ok": true})
}

async fn join(c: &mut Client, room: &str) {
    ask(c, 7, json!({"room": room}), ok()).await;
}

/// `who` says `text` in `room`: the ok comes back first when `who` is not
/// a member; a member also gets its own line (in either order).
async fn say(c: &mut Client, who: &str, room: &str, text: &str, member: bool) {
    c.send(9, json!({"room": room, "text": text}).to_string())
        .await
        .unwrap();
    let line = json!({"room": room, "from": who, "text": text});
    let mut want = vec![ok()];
    if member {
        want.push(line);
    }
    let mut got = Vec::new();
    for _ in 0..want.len() {
        let f = c.recv_timeout(zinx_test_support::T).await.expect("a frame");
        assert_eq!(f.msg_id, 9, "{:?}", String::from_utf8_lossy(&f.data));
        got.push(zinx_test_support::chat::body(&f));
    }
    for w in want {
        assert!(got.contains(&w), "{who}: want {w} in {got:?}");
    }
}

/// Rooms and a reminder, with the clients of `g1` and `g2` (the same gate
/// or two).
async fn rooms_and_reminders(g1: &str, g2: &str) {
    let mut alice = login(g1, "alice").await;
    let mut bob = login(g2, "bob").await;
    let mut carol = login(g2, "carol").await;
    join(&mut alice, "r1").await;
    join(&mut bob, "r1").await;

    // Every member once, the sender included; carol is no member.
    say(&mut alice, "alice", "r1", "hi", true).await;
    expect(
        &mut bob,
        9,
        json!({"room": "r1", "from": "alice", "text": "hi"}),
    )
    .await;
    say(&mut carol, "carol", "r1", "knock", false).await;
    for c in [&mut alice, &mut bob] {
        expect(
            c,
            9,
            json!({"room": "r1", "from": "carol", "text": "knock"}),
        )
        .await;
    }
    quiet(&mut carol, "carol").await;

    // Bob leaves: only alice hears.
    ask(&mut bob, 8, json!({"room": "r1"}), ok()).await;
    say(&mut carol, "carol", "r1", "bye bob", false).await;
    expect(
        &mut alice,
        9,
        json!({"room": "r1", "from": "carol", "text": "bye bob"}),
    )
    .await;
    quiet(&mut bob, "bob").await;

    // Not logged in: refused.
    let mut anon = Client::connect(g1).await.unwrap();
    ask(
        &mut anon,
        9,
        json!({"room": "r1", "text": "?"}),
        json!({"ok": false, "error": "not logged in"}),
    )
    .await;

    // A reminder follows bob to the other gate.
    let mut bob = reminder_follows(bob, g1).await;
    quiet(&mut bob, "bob").await;
    quiet(&mut alice, "alice").await;
}

/// `bob` asks for a reminder, leaves and logs in again on `to` before it
/// is due: it arrives there. The reminder's timer runs in the demo
/// process; it starts after the request is sent and before its answer,
/// and bob is bound on `to` before the answer to his login. So when the
/// login answer comes less than `after_ms` after the request was sent,
/// the reminder must arrive. On a machine too slow for that, it may be
/// lost (the user was offline when it fired): then the same again with
/// twice the delay (a distinct text each time), a few times.
async fn reminder_follows(mut bob: Client, to: &str) -> Client {
    let mut after_ms = 700u64;
    for attempt in 1..=4 {
        let text = format!("tea {attempt}");
        let asked = Instant::now();
        ask(
            &mut bob,
            11,
            json!({"after_ms": after_ms, "text": text}),
            ok(),
        )
        .await;
        drop(bob);
        bob = login(to, "bob").await;
        let back = asked.elapsed();
        let in_time = back < Duration::from_millis(after_ms);
        let due = Duration::from_millis(after_ms).saturating_sub(back);
        match bob.recv_timeout(due + zinx_test_support::T).await {
            Ok(f) => {
                assert_eq!(
                    (f.msg_id, zinx_test_support::chat::body(&f)),
                    (11, json!({"remind": text}))
                );
                return bob;
            }
            Err(e) if in_time => {
                panic!(
                    "bob was back {back:?} after asking, the reminder was due after {after_ms} ms, and it never came: {e}"
                )
            }
            Err(_) => {
                eprintln!(
                    "bob took {back:?} to come back, past the reminder's {after_ms} ms: again"
                );
                after_ms *= 2;
            }
        }
    }
    panic!("bob never came back before his reminder was due");
}

#[tokio::test]
async fn one_gate() {
    let conf = Conf::new();
    let mut demo = Proc::demo(DEMO, "demo", &conf, &[]);
    let gate = conf.gate_addr();
    wait_ready(&gate).await;
    rooms_and_reminders(&gate, &gate).await;
    demo.interrupt();
    let status = demo.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", demo.log());
}

#[tokio::test]
async fn two_gates_and_redis() {
    let Some(redis) = RedisServer::start("the demo's rooms across gates").await else {
        return;
    };
    let p = free_ports(3).expect("free ports");
    let dir = tempfile::tempdir().unwrap();
    let dinx = json!({
        "gate": [
            {"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": p[0]},
            {"ID": 2, "Name": "gate-2", "Type": 1, "IP": "127.0.0.1", "Port": p[1]}
        ],
        "im": [{"ID": 3, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": p[2]}]
    });
    let mut settings: Value = serde_json::from_str(SETTINGS).unwrap();
    settings["redis_url"] = json!(redis.url());
    settings["directory_ttl_ms"] = json!(3000);
    write_conf(
        dir.path(),
        &dinx.to_string(),
        DEMO_ROUTES,
        &settings.to_string(),
    )
    .unwrap();
    let mut procs: Vec<Proc> = (1..=3)
        .map(|id| {
            Proc::demo_in(
                DEMO,
                &format!("node-{id}"),
                dir.path(),
                &["--id", &id.to_string()],
            )
        })
        .collect();
    let (g1, g2) = (format!("127.0.0.1:{}", p[0]), format!("127.0.0.1:{}", p[1]));
    wait_ready(&g1).await;
    wait_ready(&g2).await;
    // A publish from gate to gate needs both subscribed.
    let deadline = std::time::Instant::now() + zinx_test_support::T;
    while redis
        .channels_listened(&["zinx:gate:1", "zinx:gate:2"])
        .await
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "gates did not subscribe"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rooms_and_reminders(&g1, &g2).await;
    for proc in &mut procs {
        proc.interrupt();
        let status = proc.wait_exit(Duration::from_secs(10));
        assert_eq!(status.code(), Some(0), "{}", proc.log());
    }
}
