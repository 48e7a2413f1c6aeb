//! Several gates as separate processes sharing a user directory in a real
//! Redis: gate-1, gate-2, im-1, im-2 are four `demo` processes.
//!
//! The test starts its own `redis-server` (from PATH) on a free port without
//! persistence. Without `redis-server` it prints a loud notice and passes;
//! with `ZINX_REQUIRE_REDIS=1` (as in CI) a missing server fails it.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use zinx_cluster_client::Client;
use zinx_test_support::T;
use zinx_test_support::chat::{
    ask, body, check_echo, expect, login, once_each, send_both_ways, wait_ready,
};
use zinx_test_support::conf::{DEMO_ROUTES, SETTINGS, write_conf};
use zinx_test_support::free_ports;
use zinx_test_support::process::Proc;
use zinx_test_support::redis::RedisServer;

/// The demo server built for this test run.
const DEMO: &str = env!("CARGO_BIN_EXE_demo");

/// Reading the test Redis with `redis-cli`.
trait RedisCli {
    /// `redis-cli` output of a command, one value per line.
    fn cli(&self, args: &[&str]) -> Vec<String>;

    /// uid → gate of every binding in Redis.
    fn bindings(&self) -> Vec<(String, u64)>;
}

impl RedisCli for RedisServer {
    fn cli(&self, args: &[&str]) -> Vec<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port().to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// uid → gate of every binding in Redis.
    fn bindings(&self) -> Vec<(String, u64)> {
        self.cli(&["--scan", "--pattern", "zinx:uid:*"])
            .into_iter()
            .filter_map(|key| {
                // `<session>:<gate>:<run>`
                let value = self.cli(&["GET", &key]);
                let sid: u64 = value.first()?.split(':').next()?.parse().ok()?;
                Some((key.trim_start_matches("zinx:uid:").to_string(), sid >> 48))
            })
            .collect()
    }
}

#[tokio::test]
async fn two_gate_processes_share_users_through_redis() {
    let Some(redis) = RedisServer::start("the several-gates process test").await else {
        return;
    };
    let p = free_ports(4).expect("free ports");
    let dir = tempfile::tempdir().unwrap();
    let dinx = json!({
        "gate": [
            {"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": p[0]},
            {"ID": 2, "Name": "gate-2", "Type": 1, "IP": "127.0.0.1", "Port": p[1]}
        ],
        "im": [
            {"ID": 3, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": p[2]},
            {"ID": 4, "Name": "im-2", "Type": 2, "IP": "127.0.0.1", "Port": p[3]}
        ]
    });
    let mut settings: serde_json::Value = serde_json::from_str(SETTINGS).unwrap();
    settings["redis_url"] = json!(redis.url());
    settings["directory_ttl_ms"] = json!(3000);
    write_conf(
        dir.path(),
        &dinx.to_string(),
        DEMO_ROUTES,
        &settings.to_string(),
    )
    .unwrap();

    let mut procs: Vec<Proc> = (1..=4)
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

    // alice on gate-1, bob on gate-2.
    let mut alice = login(&g1, "alice").await;
    let mut bob = login(&g2, "bob").await;
    let mut gates: Vec<(String, u64)> = redis.bindings();
    gates.sort();
    assert_eq!(gates, vec![("alice".into(), 1), ("bob".into(), 2)]);

    // send, both ways across the gates.
    send_both_ways(&mut alice, &mut bob).await;

    // broadcast: both once.
    bob.send(4, json!({"text": "all"}).to_string())
        .await
        .unwrap();
    for c in [&mut alice, &mut bob] {
        expect(c, 4, json!({"from": "bob", "text": "all"})).await;
    }
    once_each(&mut bob, "bob", &mut [&mut alice]).await;

    // alice logs in again on gate-2: the gate-1 session is told and closed.
    let mut alice2 = login(&g2, "alice").await;
    expect(
        &mut alice,
        1,
        json!({"ok": false, "error": "logged in elsewhere"}),
    )
    .await;
    assert!(alice.recv_timeout(T).await.is_err(), "old alice closed");
    ask(
        &mut bob,
        3,
        json!({"to": "alice", "text": "which one?"}),
        json!({"ok": true}),
    )
    .await;
    expect(&mut alice2, 3, json!({"from": "bob", "text": "which one?"})).await;

    // kill -9 gate-2: within the heartbeat timeout (its run key lapses) bob
    // is not online, and within the TTL Redis holds no binding of gate-2.
    let mut carol = login(&g1, "carol").await;
    procs[1].kill();
    let killed = Instant::now();
    let heartbeat_timeout =
        Duration::from_millis(settings["heartbeat_timeout_ms"].as_u64().unwrap());
    // A gate's run key lives heartbeat_timeout_ms, a binding
    // directory_ttl_ms (3 s); plus what a loaded machine adds.
    let margin = Duration::from_secs(2);
    let not_online_deadline = killed + heartbeat_timeout + margin;
    let deadline = killed + Duration::from_secs(3) + margin;
    loop {
        carol
            .send(3, json!({"to": "bob", "text": "there?"}).to_string())
            .await
            .unwrap();
        let f = carol
            .recv_timeout(T)
            .await
            .expect("an answer, never silence");
        if f.msg_id == 3 && body(&f) == json!({"ok": false, "error": "bob is not online"}) {
            break;
        }
        // Until gate-2's run key lapses: an error answer (gate-2
        // unreachable).
        assert!(
            f.msg_id == 0 || (f.msg_id == 3 && body(&f)["ok"] == json!(false)),
            "unexpected {:?}",
            String::from_utf8_lossy(&f.data)
        );
        assert!(
            Instant::now() < not_online_deadline,
            "bob still online {:?} after his gate was killed (heartbeat timeout {heartbeat_timeout:?})",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "bob reported not online {:?} after gate-2 was killed",
        killed.elapsed()
    );
    // Every binding gate-2 held (alice's newer one too) expires within the
    // TTL of its last refresh.
    while redis.bindings().iter().any(|(_, gate)| *gate == 2) {
        assert!(
            Instant::now() < deadline,
            "Redis still holds bindings of gate-2: {:?}",
            redis.bindings()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "no binding of gate-2 left {:?} after the kill",
        killed.elapsed()
    );
    // gate-1 keeps serving.
    check_echo(&mut carol, 6).await;
    let mut dave: Client = login(&g1, "dave").await;
    ask(
        &mut dave,
        3,
        json!({"to": "carol", "text": "still here"}),
        json!({"ok": true}),
    )
    .await;

    for (i, proc) in procs.iter_mut().enumerate() {
        if i == 1 {
            continue;
        }
        proc.interrupt();
        let status = proc.wait_exit(Duration::from_secs(10));
        assert_eq!(status.code(), Some(0), "{}", proc.log());
    }
}
