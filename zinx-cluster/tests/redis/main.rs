//! Several gates sharing a user directory in a real Redis.
//!
//! Nodes: gate-1 (1) and gate-2 (2), both in group "gate"; im-1 (3) and
//! im-2 (4) in group "im". Each node runs as its own `RunningCluster` in
//! this process (one test runs gate-2 in a child process, to kill it with
//! SIGKILL). Every test starts its own `redis-server` (from PATH) on a free
//! port without persistence, and kills it afterwards.
//!
//! Without `redis-server` the tests print a loud notice and pass; with
//! `ZINX_REQUIRE_REDIS=1` a missing server fails them. `ZINX_REDIS_URL`
//! must not be set (it would point the nodes at another Redis).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use zinx_cluster::config::ClusterConfig;
use zinx_cluster::prelude::*;
use zinx_cluster::{Cluster, Frame, Select, SessionClosed, StartError};
use zinx_cluster_client::{Client, ClientError};

use zinx_test_support::T;
use zinx_test_support::cluster::{TestCluster, expect, req, s};
use zinx_test_support::free_ports;
use zinx_test_support::redis::RedisServer;
/// `directory_ttl_ms` of these tests (the smallest the config accepts).
const TTL: Duration = Duration::from_millis(3000);
/// `heartbeat_timeout_ms` of these tests: a gate's run key lives this long.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(600);
/// `link_queue` of these tests: also the bound of each bus queue.
const LINK_QUEUE: usize = 4096;

// ----------------------------------------------------------------------
// Handlers
// ----------------------------------------------------------------------

fn reply(s: impl Into<String>) -> Result<Option<Bytes>, HandlerError> {
    Ok(Some(Bytes::from(s.into())))
}

fn utf8(data: &Bytes) -> Result<String, HandlerError> {
    String::from_utf8(data.to_vec()).map_err(|_| HandlerError::msg("payload is not UTF-8"))
}

#[derive(Deserialize)]
struct Login {
    name: String,
}

#[derive(Deserialize)]
struct Chat {
    to: String,
    text: String,
}

#[handler(msg_id = 1, group = "gate")]
async fn login(ctx: &mut Ctx, data: Bytes) -> Result<Option<Bytes>, HandlerError> {
    let l: Login = serde_json::from_slice(&data).map_err(|e| HandlerError::msg(e.to_string()))?;
    let kicked = ctx.bind(&l.name).await?;
    reply(format!("ok {} kicked={}", l.name, kicked.is_some()))
}

#[handler(msg_id = 2, group = "gate")]
async fn logout(ctx: &mut Ctx, _data: Bytes) -> Result<Option<Bytes>, HandlerError> {
    ctx.unbind().await?;
    reply("bye")
}

#[handler(msg_id = 5, group = "gate")]
async fn gate_echo(_ctx: &mut Ctx, data: Bytes) -> Result<Option<Bytes>, HandlerError> {
    Ok(Some(data))
}

/// The session id as a number, with the gate's name.
#[handler(msg_id = 7, group = "gate")]
async fn gate_whoami(ctx: &mut Ctx, _data: Bytes) -> Result<Option<Bytes>, HandlerError> {
    let session = ctx.session().ok_or("no session")?;
    reply(format!("{} {}", ctx.node_name(), session.0))
}

/// Gate-side push to a uid (the payload), wherever it is.
#[handler(msg_id = 8, group = "gate")]
async fn gate_push(ctx: &mut Ctx, data: Bytes) -> Result<Option<Bytes>, HandlerError> {
    let uid = utf8(&data)?;
    let text = format!("from {} to {uid}", ctx.node_name());
    match ctx.push_to_uid(&uid, Frame::new(8, text)).await {
        Ok(()) => reply("pushed"),
        Err(SendError::NotOnline { .. }) => reply(format!("{uid} is not online")),
        Err(e) => Err(e.into()),
    }
}

#[handler(msg_id = 16, group = "gate")]
async fn gate_broadcast(ctx: &mut Ctx, data: Bytes) -> Result<Option<Bytes>, HandlerError> {
    ctx.broadcast(Frame::new(16, data))?;
    Ok(None)
}

/// Pushes `<count>` frames to session `<id>` (the payload: `<id> <count>`)
/// without waiting, and tells how each went.
#[handler(msg_id = 19, group = "gate")]
async fn gate_flood(ctx: &mut Ctx, data: Bytes) -> Result<Option<Bytes>, HandlerError> {
    let text = utf8(&data)?;
    let mut words = text.split(' ').map(|w| w.parse::<u64>());
    let (Some(Ok(session)), Some(Ok(count))) = (words.next(), words.next()) else {
        return Err(HandlerError::msg("expected `<session> <count>`"));
    };
    let (mut ok, mut congested, mut unreachable, mut other) = (0, 0, 0, 0);
    for i in 0..count {
        match ctx.push(SessionId(session), Frame::new(19, format!("flood {i}"))) {
            Ok(()) => ok += 1,
            Err(SendError::Congested { .. }) => congested += 1,
            Err(SendError::Unreachable { .. }) => unreachable += 1,
            Err(_) => other += 1,
        }
    }
    reply(format!(
        "ok={ok} congested={congested} unreachable={unreachable} other={other}"
    ))
}

/// Gate-side kick of a uid (the payload), wherever it is.
#[handler(msg_id = 18, group = "gate")]
async fn gate_kick(ctx: &mut Ctx, data: Bytes) -> Result<Option<Bytes>, HandlerError> {
    ctx.kick(utf8(&data)?).await?;
    reply("kicked")
}

#[handler(msg_id = 3, group = "im")]
async fn send(ctx: &mut Ctx, data: Bytes) -> Result<Option<Bytes>, HandlerError> {
    let m: Chat = serde_json::from_slice(&data).map_err(|e| HandlerError::msg(e.to_string()))?;
    let from = ctx.uid().ok_or("not logged in")?.to_string();
    match ctx
        .push_to_uid(&m.to, Frame::new(3, format!("{from}: {}", m.text)))
        .await
    {
        Ok(()) => reply("sent"),
        Err(SendError::NotOnline { .. }) => reply(format!("{} is not online", m.to)),
        Err(e) => Err(e.into()),
    }
}

#[handler(msg_id = 4, group = "im")]
async fn im_broadcast(ctx: &mut Ctx, data: Bytes) -> Result<Option<Bytes>, HandlerError> {
    ctx.broadcast(Frame::new(4, data))?;
    Ok(None)
}

#[handler(msg_id = 6, group = "im")]
async fn im_echo(_ctx: &mut Ctx, data: Bytes) -> Result<Option<Bytes>, HandlerError> {
    Ok(Some(data))
}

#[handler(msg_id = 9, group = "im")]
async fn whoami(ctx: &mut Ctx, _data: Bytes) -> Result<Option<Bytes>, HandlerError> {
    reply(format!("{} {}", ctx.node_name(), ctx.uid().unwrap_or("-")))
}

/// Backend kick of a uid (the payload), wherever it is.
#[handler(msg_id = 14, group = "im")]
async fn kick_uid(ctx: &mut Ctx, data: Bytes) -> Result<Option<Bytes>, HandlerError> {
    ctx.kick(utf8(&data)?).await?;
    reply("kicked")
}

const ROUTE: &str = r#"{
    "gate": [{"MsgID": 1, "Name": "login"}, {"MsgID": 2, "Name": "logout"},
             {"MsgID": 5, "Name": "echo"}, {"MsgID": 7, "Name": "whoami"},
             {"MsgID": 8, "Name": "push"}, {"MsgID": 16, "Name": "broadcast"},
             {"MsgID": 18, "Name": "kick"}, {"MsgID": 19, "Name": "flood"}],
    "im": [{"MsgID": 3, "Name": "send"}, {"MsgID": 4, "Name": "broadcast"},
           {"MsgID": 6, "Name": "echo"}, {"MsgID": 9, "Name": "whoami"},
           {"MsgID": 14, "Name": "kick"}]
}"#;

// ----------------------------------------------------------------------
// A redis-server of our own
// ----------------------------------------------------------------------

/// What these tests ask the test Redis directly.
trait RedisQueries {
    async fn conn(&self) -> redis::aio::MultiplexedConnection;

    /// The session id bound to `uid`, if any.
    async fn binding(&self, uid: &str) -> Option<u64>;

    /// Subscribers of a gate's channel.
    async fn subscribers(&self, gate: u16) -> i64;
}

impl RedisQueries for RedisServer {
    async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("a valid URL")
            .get_multiplexed_async_connection()
            .await
            .expect("a connection to the test Redis")
    }

    /// The session id bound to `uid`, if any.
    async fn binding(&self, uid: &str) -> Option<u64> {
        let mut c = self.conn().await;
        // `<session>:<gate>:<run>`
        redis::cmd("GET")
            .arg(format!("zinx:uid:{uid}"))
            .query_async::<Option<String>>(&mut c)
            .await
            .expect("GET")
            .map(|v| {
                v.split(':')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("a session id first")
            })
    }

    /// Subscribers of a gate's channel.
    async fn subscribers(&self, gate: u16) -> i64 {
        let mut c = self.conn().await;
        let v: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(format!("zinx:gate:{gate}"))
            .query_async(&mut c)
            .await
            .expect("PUBSUB NUMSUB");
        v.first().map_or(0, |(_, n)| *n)
    }
}

/// The Redis of a test, or return (passing) when there is none.
macro_rules! require_redis {
    () => {{
        check_environment();
        match RedisServer::start("the several-gates tests").await {
            Some(r) => r,
            None => return,
        }
    }};
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts panics anywhere in the process (spawned tasks included) so a test
/// can assert that none happened; refuses to run against a Redis named by
/// `ZINX_REDIS_URL`.
fn check_environment() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
    assert!(
        std::env::var_os(zinx_cluster::config::REDIS_URL_ENV).is_none(),
        "unset {} to run these tests: it overrides the Redis each test starts",
        zinx_cluster::config::REDIS_URL_ENV
    );
}

fn assert_no_panics() {
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "something panicked (see the output)"
    );
}

// ----------------------------------------------------------------------
// Clusters
// ----------------------------------------------------------------------

fn dinx() -> String {
    let p = free_ports(4).expect("free ports");
    format!(
        r#"{{
        "gate": [{{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": {}}},
                 {{"ID": 2, "Name": "gate-2", "Type": 1, "IP": "127.0.0.1", "Port": {}}}],
        "im": [{{"ID": 3, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": {}}},
               {{"ID": 4, "Name": "im-2", "Type": 2, "IP": "127.0.0.1", "Port": {}}}]
    }}"#,
        p[0], p[1], p[2], p[3]
    )
}

fn settings(redis_url: Option<&str>) -> String {
    let redis = redis_url
        .map(|u| format!(r#", "redis_url": "{u}""#))
        .unwrap_or_default();
    format!(
        r#"{{"heartbeat_interval_ms": 100, "heartbeat_timeout_ms": {},
        "reconnect_min_ms": 20, "reconnect_max_ms": 200, "call_timeout_ms": 1000,
        "shutdown_grace_ms": 1000, "secret": "test-secret", "link_queue": {LINK_QUEUE},
        "directory_ttl_ms": {}{redis}}}"#,
        HEARTBEAT_TIMEOUT.as_millis(),
        TTL.as_millis()
    )
}

const GATES: [u16; 2] = [1, 2];
const BACKENDS: [u16; 2] = [3, 4];

/// What these tests start: a two-gate cluster on a test Redis.
trait RedisCluster {
    /// Starts the nodes `ids` of a fresh two-gate cluster on `redis_url`.
    async fn start(redis_url: &str, ids: &[u16]) -> TestCluster;

    async fn client(&self, gate: u16) -> Client;

    async fn login(&self, gate: u16, name: &str) -> Client;

    /// Waits until every running gate links to every backend and listens
    /// on its Redis channel.
    async fn wait_ready(&self, redis: &RedisServer);
}

impl RedisCluster for TestCluster {
    async fn start(redis_url: &str, ids: &[u16]) -> TestCluster {
        TestCluster::launch(dinx(), ROUTE, settings(Some(redis_url)), ids).await
    }

    async fn client(&self, gate: u16) -> Client {
        self.client_of(gate).await
    }

    async fn login(&self, gate: u16, name: &str) -> Client {
        let mut c = self.client(gate).await;
        let f = req(&mut c, 1, &format!(r#"{{"name":"{name}"}}"#)).await;
        assert_eq!(s(&f), format!("ok {name} kicked=false"));
        c
    }

    async fn wait_ready(&self, redis: &RedisServer) {
        let deadline = Instant::now() + T;
        for id in self.ids() {
            if !GATES.contains(&id) {
                continue;
            }
            for b in BACKENDS {
                while !self.running(id).link_up(id, b) {
                    assert!(
                        Instant::now() < deadline,
                        "link {id} -> {b} did not come up"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            while redis.subscribers(id).await < 1 {
                assert!(Instant::now() < deadline, "gate {id} did not subscribe");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The error answer of a frame on msg_id 0.
fn error_of(f: &Frame) -> serde_json::Value {
    assert_eq!(f.msg_id, 0, "expected an error answer, got {:?}", s(f));
    serde_json::from_slice(&f.data).expect("JSON error answer")
}

async fn assert_closed(c: &mut Client, who: &str) {
    assert!(
        matches!(
            c.recv_timeout(T).await,
            Err(ClientError::Closed) | Err(ClientError::Frame(_))
        ),
        "{who} should have been closed"
    );
}

async fn assert_quiet(c: &mut Client) {
    if let Ok(f) = c.recv_timeout(Duration::from_millis(300)).await {
        panic!("unexpected frame {} {:?}", f.msg_id, s(&f));
    }
}

fn chat(to: &str, text: &str) -> String {
    format!(r#"{{"to":"{to}","text":"{text}"}}"#)
}

// ----------------------------------------------------------------------
// Tests
// ----------------------------------------------------------------------

#[tokio::test]
async fn users_on_two_gates_reach_each_other() {
    let redis = require_redis!();
    let tc = TestCluster::start(&redis.url(), &[3, 4, 1, 2]).await;
    tc.wait_ready(&redis).await;
    let mut alice = tc.login(1, "alice").await;
    let mut bob = tc.login(2, "bob").await;

    // Session ids carry their gate, so they never collide between gates.
    let id_of = |f: &Frame| -> SessionId {
        SessionId(
            s(f).rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("an id"),
        )
    };
    let a = id_of(&req(&mut alice, 7, "").await);
    let b = id_of(&req(&mut bob, 7, "").await);
    assert_eq!((a.gate(), b.gate()), (1, 2));
    assert_ne!(a, b);
    assert_ne!(SessionId::new(1, b.seq()), b);
    assert_eq!(redis.binding("alice").await, Some(a.0));
    assert_eq!(redis.binding("bob").await, Some(b.0));

    // The backends see the uids bound on either gate.
    assert!(s(&req(&mut bob, 9, "").await).ends_with(" bob"));

    // Send both ways through a backend.
    assert_eq!(s(&req(&mut alice, 3, &chat("bob", "hi")).await), "sent");
    expect(&mut bob, 3, "alice: hi").await;
    assert_eq!(s(&req(&mut bob, 3, &chat("alice", "yo")).await), "sent");
    expect(&mut alice, 3, "bob: yo").await;
    assert_eq!(
        s(&req(&mut alice, 3, &chat("carol", "?")).await),
        "carol is not online"
    );

    // Gate-side push to a user on the other gate, both ways.
    assert_eq!(s(&req(&mut alice, 8, "bob").await), "pushed");
    expect(&mut bob, 8, "from gate-1 to bob").await;
    assert_eq!(s(&req(&mut bob, 8, "alice").await), "pushed");
    expect(&mut alice, 8, "from gate-2 to alice").await;
    assert_eq!(s(&req(&mut bob, 8, "carol").await), "carol is not online");

    // Broadcast from a backend and from a gate: every session on every gate
    // exactly once, logged in or not.
    let mut anon = tc.client(2).await;
    alice.send(4, "from a backend").await.unwrap();
    for c in [&mut alice, &mut bob, &mut anon] {
        expect(c, 4, "from a backend").await;
    }
    bob.send(16, "from gate-2").await.unwrap();
    for c in [&mut alice, &mut bob, &mut anon] {
        expect(c, 16, "from gate-2").await;
    }
    alice.send(16, "from gate-1").await.unwrap();
    for c in [&mut alice, &mut bob, &mut anon] {
        expect(c, 16, "from gate-1").await;
    }
    for c in [&mut alice, &mut bob, &mut anon] {
        assert_quiet(c).await;
    }

    // kick(uid) across gates: from a backend, and from the other gate.
    let mut carol = tc.login(2, "carol").await;
    assert_eq!(s(&req(&mut alice, 14, "carol").await), "kicked");
    assert_closed(&mut carol, "carol (kicked by a backend)").await;
    let mut dave = tc.login(1, "dave").await;
    assert_eq!(s(&req(&mut bob, 18, "dave").await), "kicked");
    assert_closed(&mut dave, "dave (kicked by gate-2)").await;
    // Their bindings went with their sessions.
    let deadline = Instant::now() + T;
    while redis.binding("carol").await.is_some() || redis.binding("dave").await.is_some() {
        assert!(
            Instant::now() < deadline,
            "bindings of kicked sessions remain"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A duplicate login on the other gate kicks the older session.
    let mut alice2 = tc.client(2).await;
    assert_eq!(
        s(&req(&mut alice2, 1, r#"{"name":"alice"}"#).await),
        "ok alice kicked=true"
    );
    assert_closed(&mut alice, "the older alice on gate-1").await;
    let a2 = id_of(&req(&mut alice2, 7, "").await);
    assert_eq!(a2.gate(), 2);
    assert_eq!(s(&req(&mut bob, 3, &chat("alice", "new?")).await), "sent");
    expect(&mut alice2, 3, "bob: new?").await;
    // The older session closing did not remove the newer binding.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(redis.binding("alice").await, Some(a2.0));

    // Logout unbinds everywhere.
    assert_eq!(s(&req(&mut alice2, 2, "").await), "bye");
    assert_eq!(redis.binding("alice").await, None);
    assert_eq!(
        s(&req(&mut bob, 3, &chat("alice", "gone?")).await),
        "alice is not online"
    );
    assert_eq!(s(&req(&mut bob, 8, "alice").await), "alice is not online");

    tc.shutdown().await;
    assert_no_panics();
}

#[tokio::test]
async fn a_gate_that_stops_takes_its_bindings_with_it() {
    let redis = require_redis!();
    let mut tc = TestCluster::start(&redis.url(), &[3, 4, 1, 2]).await;
    tc.wait_ready(&redis).await;
    let mut alice = tc.login(1, "alice").await;
    let _bob = tc.login(2, "bob").await;

    // Live gates keep their bindings well past the TTL.
    tokio::time::sleep(TTL + TTL / 2).await;
    assert!(
        redis.binding("bob").await.is_some(),
        "a live gate's binding expired"
    );
    let mut c = redis.conn().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg("zinx:uid:bob")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= TTL.as_millis() as i64, "PTTL {pttl}");

    // A graceful stop removes the gate's bindings at once.
    tc.stop(2).await;
    assert_eq!(redis.binding("bob").await, None);
    assert!(redis.binding("alice").await.is_some());
    assert_eq!(
        s(&req(&mut alice, 3, &chat("bob", "there?")).await),
        "bob is not online"
    );
    assert_eq!(s(&req(&mut alice, 8, "bob").await), "bob is not online");
    let f = req(&mut alice, 14, "bob").await;
    assert!(
        error_of(&f)["error"]
            .as_str()
            .unwrap()
            .contains("bob is not online")
    );

    // A binding nobody refreshes (what a gate killed with -9 leaves)
    // expires within the TTL.
    let fake = (7u64 << 48) | 1;
    let _: () = redis::cmd("SET")
        .arg("zinx:uid:ghost")
        .arg(fake)
        .arg("PX")
        .arg(TTL.as_millis() as u64)
        .query_async(&mut c)
        .await
        .unwrap();
    let written = Instant::now();
    while redis.binding("ghost").await.is_some() {
        assert!(
            written.elapsed() < TTL + Duration::from_millis(500),
            "stale binding outlived its TTL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    tc.shutdown().await;
    assert_no_panics();
}

/// Environment of the child process that runs one gate (see
/// `child_gate`).
const CHILD_GATE: &str = "ZINX_TEST_CHILD_GATE";
const CHILD_DINX: &str = "ZINX_TEST_CHILD_DINX";
const CHILD_SETTINGS: &str = "ZINX_TEST_CHILD_SETTINGS";
const CHILD_READY: &str = "ZINX-TEST-CHILD-GATE-READY";

/// Not a test of its own: when started by a test with a gate to kill
/// (with `ZINX_TEST_CHILD_GATE` set), runs that gate of the given cluster
/// until killed. Otherwise it returns at once.
#[tokio::test]
async fn child_gate() {
    let Ok(id) = std::env::var(CHILD_GATE) else {
        return;
    };
    let id: u16 = id.parse().expect("a node id");
    let dinx = std::env::var(CHILD_DINX).expect("dinx");
    let settings = std::env::var(CHILD_SETTINGS).expect("settings");
    let config = ClusterConfig::from_strs("child-conf", &dinx, ROUTE, Some(&settings))
        .expect("valid config");
    let running = Cluster::new(config)
        .start(Select::Id(id))
        .await
        .expect("gate starts");
    assert!(
        running.wait_links(T).await,
        "the child gate's links did not come up"
    );
    println!("{CHILD_READY}");
    std::future::pending::<()>().await;
}

/// A gate process, killed on drop.
struct ChildGate(Child);

impl ChildGate {
    /// Runs gate `id` of the cluster in a child process (this test binary,
    /// running only `child_gate`) and waits until its links are up.
    async fn start(tc: &TestCluster, id: u16) -> ChildGate {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "child_gate",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_GATE, id.to_string())
            .env(CHILD_DINX, &tc.files.0)
            .env(CHILD_SETTINGS, &tc.files.1)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the child gate starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let child = ChildGate(child);
        // Read its output to the end (a closed pipe would fail its writes),
        // telling us when it is ready.
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(CHILD_READY) {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        assert!(
            matches!(tokio::time::timeout(T, ready).await, Ok(Ok(()))),
            "the child gate did not become ready"
        );
        child
    }

    /// SIGSTOP (`true`) or SIGCONT: the gate freezes or goes on.
    fn freeze(&self, frozen: bool) {
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// SIGKILL: no cleanup at all.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildGate {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn a_killed_gate_s_users_are_not_online_within_the_heartbeat_timeout() {
    let redis = require_redis!();
    let tc = TestCluster::start(&redis.url(), &[3, 4, 1]).await;
    // gate-2 in its own process, to be killed without any cleanup.
    let mut child = ChildGate::start(&tc, 2).await;
    tc.wait_ready(&redis).await;
    while redis.subscribers(2).await < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut alice = tc.login(1, "alice").await;
    let mut bob = tc.login(2, "bob").await;
    assert_eq!(s(&req(&mut alice, 3, &chat("bob", "hi")).await), "sent");
    expect(&mut bob, 3, "alice: hi").await;
    // Kept alive past the TTL by the child's refreshes.
    tokio::time::sleep(TTL + TTL / 3).await;
    assert!(
        redis.binding("bob").await.is_some(),
        "the live child's binding expired"
    );

    // kill -9.
    child.kill();
    let killed = Instant::now();
    let mut c = redis.conn().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg("zinx:uid:bob")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        pttl > 0,
        "bob's binding is still there right after the kill"
    );
    // gate-2's run key lapses within the heartbeat timeout: from then on
    // bob is not online (before, an error answer, never silence), long
    // before his binding's TTL would have ended it.
    let mut errors = 0;
    let not_online_after = loop {
        let f = req(&mut alice, 3, &chat("bob", "still there?")).await;
        if s(&f) == "bob is not online" {
            break killed.elapsed();
        }
        error_of(&f);
        errors += 1;
        assert!(
            killed.elapsed() < HEARTBEAT_TIMEOUT + Duration::from_millis(1500),
            "bob still looks online {:?} after his gate was killed",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(not_online_after < TTL);
    // The stale binding was removed on the way (compare-and-delete).
    assert_eq!(redis.binding("bob").await, None);
    let removed_after = killed.elapsed();
    // Every later send says so too, from a backend and from a gate.
    for _ in 0..5 {
        assert_eq!(
            s(&req(&mut alice, 3, &chat("bob", "hello?")).await),
            "bob is not online"
        );
        assert_eq!(s(&req(&mut alice, 8, "bob").await), "bob is not online");
    }
    eprintln!(
        "FIGURES killed gate: bob not online {not_online_after:?} after the kill ({errors} error answers before; heartbeat timeout {HEARTBEAT_TIMEOUT:?}, binding TTL {TTL:?}, PTTL at the kill {pttl} ms); stale binding gone {removed_after:?} after the kill"
    );
    // The rest of the cluster is fine.
    assert_eq!(s(&req(&mut alice, 5, "echo").await), "echo");
    assert_eq!(s(&req(&mut alice, 6, "echo").await), "echo");
    tc.shutdown().await;
    assert_no_panics();
}

#[tokio::test]
async fn a_restarted_gate_never_reuses_the_session_ids_of_its_dead_run() {
    let redis = require_redis!();
    let mut tc = TestCluster::start(&redis.url(), &[3, 4, 1]).await;
    let mut child = ChildGate::start(&tc, 2).await;
    tc.wait_ready(&redis).await;
    while redis.subscribers(2).await < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _bob = tc.login(2, "bob").await;
    let stale = redis.binding("bob").await.expect("bob is bound");
    // gate-2 dies and comes straight back, well within the TTL: bob's
    // binding still names a session of the dead run.
    child.kill();
    tc.restart(2).await;
    tc.wait_ready(&redis).await;
    assert_eq!(redis.binding("bob").await, Some(stale));
    let mut carol = tc.client(2).await;
    let f = req(&mut carol, 7, "").await;
    let carol_id: u64 = s(&f)
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("an id");
    assert_ne!(
        carol_id, stale,
        "a new session got the id of a dead run's session"
    );
    // bob logs in again elsewhere: the stale holder is "kicked", which must
    // not close carol.
    let mut bob = tc.client(1).await;
    assert_eq!(
        s(&req(&mut bob, 1, r#"{"name":"bob"}"#).await),
        "ok bob kicked=true"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s(&req(&mut carol, 5, "still here").await), "still here");
    tc.shutdown().await;
    assert_no_panics();
}

#[tokio::test]
async fn redis_down_fails_directory_operations_clearly_then_recovers() {
    let mut redis = require_redis!();
    let tc = TestCluster::start(&redis.url(), &[3, 4, 1, 2]).await;
    tc.wait_ready(&redis).await;
    let mut alice = tc.login(1, "alice").await;
    let mut bob = tc.login(2, "bob").await;

    redis.stop();

    // What needs no directory keeps working.
    assert_eq!(s(&req(&mut alice, 5, "gate echo").await), "gate echo");
    assert_eq!(s(&req(&mut bob, 6, "im echo").await), "im echo");
    alice.send(4, "backend broadcast").await.unwrap();
    for c in [&mut alice, &mut bob] {
        expect(c, 4, "backend broadcast").await;
    }
    // Same-gate pushes need no directory either.
    let mut alice_friend = tc.client(1).await;
    assert_eq!(s(&req(&mut alice_friend, 8, "alice").await), "pushed");
    expect(&mut alice, 8, "from gate-1 to alice").await;

    // A login fails at once with an error answer naming the directory.
    let mut carol = tc.client(1).await;
    let started = Instant::now();
    let f = req(&mut carol, 1, r#"{"name":"carol"}"#).await;
    let took = started.elapsed();
    let e = error_of(&f);
    // The directory's own code, not a generic `handler_error`.
    assert_eq!(e["code"], "directory");
    let text = e["error"].as_str().unwrap();
    assert!(
        text.contains("user directory") && text.contains("Redis"),
        "{text}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "login failed only after {took:?}"
    );
    eprintln!("timing: with Redis down, a login failed in {took:?}");
    // So do pushes to users on other gates, from a backend and from a gate.
    let f = req(&mut alice, 3, &chat("bob", "hi")).await;
    assert!(
        error_of(&f)["error"]
            .as_str()
            .unwrap()
            .contains("user directory")
    );
    let f = req(&mut alice, 8, "bob").await;
    assert!(
        error_of(&f)["error"]
            .as_str()
            .unwrap()
            .contains("user directory")
    );
    // The failed login left no local binding: carol is anonymous.
    assert_eq!(s(&req(&mut carol, 5, "still here").await), "still here");

    // Redis comes back, empty (no persistence).
    redis.restart().await;
    let back = Instant::now();
    let login_back = loop {
        let f = req(&mut carol, 1, r#"{"name":"carol"}"#).await;
        if s(&f) == "ok carol kicked=false" {
            break back.elapsed();
        }
        error_of(&f);
        assert!(back.elapsed() < T, "logins did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The gates re-create the bindings Redis lost, and re-subscribe.
    let bindings_back = loop {
        if redis.binding("alice").await.is_some() && redis.binding("bob").await.is_some() {
            break back.elapsed();
        }
        assert!(back.elapsed() < TTL, "bindings were not re-created");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let deadline = Instant::now() + T;
    while redis.subscribers(1).await < 1 || redis.subscribers(2).await < 1 {
        assert!(Instant::now() < deadline, "gates did not re-subscribe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let subscribed_back = back.elapsed();
    eprintln!(
        "timing: after the Redis restart, logins worked in {login_back:?}, bindings were back in {bindings_back:?}, gates re-subscribed in {subscribed_back:?}"
    );
    assert_eq!(s(&req(&mut alice, 3, &chat("bob", "back")).await), "sent");
    expect(&mut bob, 3, "alice: back").await;
    assert_eq!(s(&req(&mut bob, 8, "carol").await), "pushed");
    expect(&mut carol, 8, "from gate-2 to carol").await;
    bob.send(16, "all gates again").await.unwrap();
    for c in [&mut alice, &mut bob, &mut carol] {
        expect(c, 16, "all gates again").await;
    }
    tc.shutdown().await;
    assert_no_panics();
}

#[tokio::test]
async fn a_hung_redis_fails_directory_operations_within_the_timeout() {
    let redis = require_redis!();
    let tc = TestCluster::start(&redis.url(), &[3, 4, 1, 2]).await;
    tc.wait_ready(&redis).await;
    let mut alice = tc.login(1, "alice").await;
    let mut bob = tc.login(2, "bob").await;

    redis.freeze(true);
    let mut carol = tc.client(1).await;
    let started = Instant::now();
    let f = req(&mut carol, 1, r#"{"name":"carol"}"#).await;
    let took = started.elapsed();
    let text = error_of(&f)["error"].as_str().unwrap().to_string();
    assert!(
        text.contains("user directory") && text.contains("no answer"),
        "{text}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "a hung Redis held the login {took:?}"
    );
    let f = req(&mut alice, 3, &chat("bob", "hi")).await;
    assert!(
        error_of(&f)["error"]
            .as_str()
            .unwrap()
            .contains("user directory")
    );
    // Other sessions, and the same session's next messages, are served.
    assert_eq!(s(&req(&mut bob, 6, "im echo").await), "im echo");
    assert_eq!(s(&req(&mut carol, 5, "gate echo").await), "gate echo");
    eprintln!("timing: with Redis hung, a login failed in {took:?}");

    redis.freeze(false);
    let back = Instant::now();
    loop {
        let f = req(&mut alice, 3, &chat("bob", "back")).await;
        if s(&f) == "sent" {
            break;
        }
        error_of(&f);
        assert!(back.elapsed() < T, "the directory did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    expect(&mut bob, 3, "alice: back").await;
    tc.shutdown().await;
    assert_no_panics();
}

#[tokio::test]
async fn a_cluster_starts_while_redis_is_down() {
    let mut redis = require_redis!();
    redis.stop();
    let started = Instant::now();
    let tc = TestCluster::start(&redis.url(), &[3, 4, 1, 2]).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "start waited for Redis"
    );
    let mut c = tc.client(1).await;
    assert_eq!(s(&req(&mut c, 5, "up").await), "up");
    let f = req(&mut c, 1, r#"{"name":"alice"}"#).await;
    assert!(
        error_of(&f)["error"]
            .as_str()
            .unwrap()
            .contains("user directory")
    );

    redis.restart().await;
    tc.wait_ready(&redis).await;
    let back = Instant::now();
    loop {
        let f = req(&mut c, 1, r#"{"name":"alice"}"#).await;
        if s(&f) == "ok alice kicked=false" {
            break;
        }
        assert!(back.elapsed() < T, "logins did not start working");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut bob = tc.login(2, "bob").await;
    assert_eq!(s(&req(&mut bob, 3, &chat("alice", "hi")).await), "sent");
    expect(&mut c, 3, "bob: hi").await;
    tc.shutdown().await;
    assert_no_panics();
}

#[tokio::test]
async fn several_gates_without_redis_refuse_to_start() {
    check_environment();
    let config = ClusterConfig::from_strs("test-conf", &dinx(), ROUTE, Some(&settings(None)))
        .expect("valid test config");
    let e = Cluster::new(config).start(Select::Id(1)).await.unwrap_err();
    assert!(matches!(e, StartError::ManyGatesWithoutRedis(2)), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("redis_url") && text.contains("ZINX_REDIS_URL"),
        "{text}"
    );
}

#[tokio::test]
async fn a_bad_redis_url_is_refused_at_start() {
    check_environment();
    let settings = settings(Some("http://:hunter2@example.invalid/"));
    let config = ClusterConfig::from_strs("test-conf", &dinx(), ROUTE, Some(&settings))
        .expect("valid test config");
    let e = Cluster::new(config).start(Select::Id(3)).await.unwrap_err();
    assert!(matches!(e, StartError::Directory(_)), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("invalid Redis URL"), "{text}");
    assert!(!text.contains("hunter2"), "the password leaked: {text}");
}

/// The counters of node `id` of the test cluster.
fn metrics_of(tc: &TestCluster, id: u16) -> zinx_cluster::metrics::MetricsSnapshot {
    tc.running(id).metrics(id).expect("a node of the cluster")
}

/// Waits until `check` holds for node `id`'s counters.
async fn wait_metrics(
    tc: &TestCluster,
    id: u16,
    what: &str,
    check: impl Fn(&zinx_cluster::metrics::MetricsSnapshot) -> bool,
) {
    let deadline = Instant::now() + T;
    while !check(&metrics_of(tc, id)) {
        assert!(
            Instant::now() < deadline,
            "node {id}: {what}: {:?}",
            metrics_of(tc, id)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn messages_on_a_gate_channel_without_the_secret_reach_nobody() {
    use futures::StreamExt;

    let redis = require_redis!();
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
    wait_metrics(&tc, 2, "3 forged, 1 replayed", |m| {
        m.bus_forged == 3 && m.bus_replayed == 1
    })
    .await;
    // Signed for gate-2: on gate-1's channel it proves nothing.
    wait_metrics(&tc, 1, "1 forged", |m| m.bus_forged == 1).await;
    assert_quiet(&mut bob).await;
    assert_quiet(&mut alice).await;

    // Genuine traffic still flows, both ways.
    assert_eq!(s(&req(&mut alice, 8, "bob").await), "pushed");
    expect(&mut bob, 8, "from gate-1 to bob").await;
    assert_eq!(s(&req(&mut bob, 8, "alice").await), "pushed");
    expect(&mut alice, 8, "from gate-2 to alice").await;
    let (m1, m2) = (metrics_of(&tc, 1), metrics_of(&tc, 2));
    eprintln!(
        "FIGURES forged bus messages: gate-2 dropped {} forged and {} replayed, gate-1 dropped {} forged; none reached a client",
        m2.bus_forged, m2.bus_replayed, m1.bus_forged
    );
    tc.shutdown().await;
    assert_no_panics();
}

#[tokio::test]
async fn pushes_to_another_gate_are_bounded_and_report_failure() {
    let redis = require_redis!();
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
    assert_eq!(metrics_of(&tc, 1).bus_queue_full, congested as u64);
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
    use std::sync::{Arc, Mutex};

    let redis = require_redis!();
    let tc = TestCluster::start(&redis.url(), &[1]).await;
    // The backends, with a hook that records the sessions they end.
    let ended: Arc<Mutex<Vec<(u16, SessionId)>>> = Arc::default();
    let mut backends = Vec::new();
    for id in BACKENDS {
        let ended = ended.clone();
        let running = Cluster::new(tc.config.clone())
            .on_session_closed(move |c: SessionClosed| {
                let ended = ended.clone();
                async move { ended.lock().unwrap().push((c.node, c.session)) }
            })
            .start(Select::Id(id))
            .await
            .expect("backend starts");
        backends.push((id, running));
    }
    let mut child = ChildGate::start(&tc, 2).await;
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
    assert!(s(&req(&mut carol, 9, "").await).ends_with(" carol"));
    let ended_for = |session: SessionId| -> Vec<u16> {
        ended
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| *s == session)
            .map(|(n, _)| *n)
            .collect()
    };

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
    tokio::time::sleep(HEARTBEAT_TIMEOUT + Duration::from_millis(700)).await;
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
