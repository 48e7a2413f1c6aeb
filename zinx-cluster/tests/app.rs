//! The application runtime: state given to the cluster, a `ClusterHandle`
//! used from tasks outside handlers, rooms across gates.
//!
//! Nodes: gate-1 (1) and gate-2 (2) in group "gate", im-1 (3) in group
//! "im", st-1 (4) in group "st" (only the start-refusal test runs it). One
//! gate runs without Redis; the two-gate tests start their own
//! `redis-server` (skipped with a loud notice when there is none, unless
//! `ZINX_REQUIRE_REDIS=1`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use zinx_cluster::config::ClusterConfig;
use zinx_cluster::prelude::*;
use zinx_cluster::{Cluster, RunningCluster, Select, StartError};
use zinx_cluster_client::Client;

use zinx_test_support::T;
use zinx_test_support::cluster::{Hold, expect, nothing_before_echo, req, s, wait_until};
use zinx_test_support::free_ports;
use zinx_test_support::redis::RedisServer;

// ----------------------------------------------------------------------
// State and handlers
// ----------------------------------------------------------------------

/// The application state of these tests.
#[derive(Default)]
struct Counter {
    handled: AtomicU64,
}

/// A second state type, to show several live side by side.
struct Motd(&'static str);

/// A typed push from a handle.
#[derive(Message, serde::Serialize, serde::Deserialize)]
#[message(id = 55)]
struct Note {
    text: String,
}

/// A state type nobody gives: a handler of group "st" asks for it.
#[derive(Clone)]
struct NeverGiven;

#[handler(msg_id = 40, group = "st")]
async fn needs_state(_ctx: &mut Ctx, State(_never): State<NeverGiven>) -> &'static str {
    "given"
}

#[handler(msg_id = 1, group = "gate")]
async fn login(ctx: &mut Ctx, name: String) -> Result<String, HandlerError> {
    ctx.bind(&name).await?;
    Ok(ctx.session().map(|s| s.0.to_string()).unwrap_or_default())
}

/// Joins the room in the payload, on the gate itself.
#[handler(msg_id = 7, group = "gate")]
async fn gate_join(ctx: &mut Ctx, room: String) -> Result<String, HandlerError> {
    Ok(format!("joined={}", ctx.join(&room).await?))
}

/// Leaves the room in the payload, on the gate itself.
#[handler(msg_id = 8, group = "gate")]
async fn gate_leave(ctx: &mut Ctx, room: String) -> Result<String, HandlerError> {
    Ok(format!("left={}", ctx.leave(&room).await?))
}

/// `room text`: publishes from the gate.
#[handler(msg_id = 10, group = "gate")]
async fn gate_say(ctx: &mut Ctx, line: String) -> Result<(), HandlerError> {
    let (room, text) = line.split_once(' ').ok_or("room text")?;
    ctx.publish(room, Frame::new(30, text.to_string()))?;
    Ok(())
}

/// Counts in the state (an extractor argument, before the payload),
/// answers with the count and the second state (from the context).
#[handler(msg_id = 12, group = "gate")]
async fn gate_count(
    ctx: &mut Ctx,
    State(counter): State<Arc<Counter>>,
    _ignored: Bytes,
) -> Result<String, HandlerError> {
    let n = counter.handled.fetch_add(1, Ordering::Relaxed) + 1;
    let motd = ctx.state::<Motd>().ok_or("no motd")?.0;
    Ok(format!("{n} {motd}"))
}

/// Joins the room in the payload, from a backend (goes to the gate).
#[handler(msg_id = 20, group = "im")]
async fn im_join(ctx: &mut Ctx, room: String) -> Result<String, HandlerError> {
    Ok(format!("joined={}", ctx.join(&room).await?))
}

/// Leaves the room in the payload, from a backend.
#[handler(msg_id = 21, group = "im")]
async fn im_leave(ctx: &mut Ctx, room: String) -> Result<String, HandlerError> {
    Ok(format!("left={}", ctx.leave(&room).await?))
}

/// `room text`: publishes from a backend.
#[handler(msg_id = 22, group = "im")]
async fn im_say(ctx: &mut Ctx, line: String) -> Result<&'static str, HandlerError> {
    let (room, text) = line.split_once(' ').ok_or("room text")?;
    ctx.publish(room, Frame::new(30, text.to_string()))?;
    Ok("said")
}

/// `text`: answers at once; a task pushes `text` to the user later through
/// the handle (to the uid: it follows a reconnect). "Later" is when the
/// test releases [`REMINDER`] (a timer's stand-in that the test controls:
/// the user is surely back by then, however slow the machine).
#[handler(msg_id = 23, group = "im")]
async fn im_remind(ctx: &mut Ctx, text: String) -> Result<&'static str, HandlerError> {
    let uid = ctx.uid().ok_or("not logged in")?.to_string();
    let handle = ctx.handle();
    tokio::spawn(async move {
        REMINDER.hold().await;
        if let Err(e) = handle.push_to_uid(&uid, Frame::new(23, text)).await {
            tracing::warn!(error = %e, "reminder lost");
        }
    });
    Ok("ok")
}

/// When the reminder of msg 23 is due.
static REMINDER: Hold = Hold::new();

#[handler(msg_id = 5, group = "gate")]
async fn gate_echo(_ctx: &mut Ctx, data: Bytes) -> Bytes {
    data
}

#[handler(msg_id = 6, group = "im")]
async fn im_echo(_ctx: &mut Ctx, data: Bytes) -> Bytes {
    data
}

/// Answers calls made through a handle.
#[handler(msg_id = 24, group = "im")]
async fn im_double(ctx: &mut Ctx, n: String) -> Result<String, HandlerError> {
    let counter = ctx.state::<Arc<Counter>>().ok_or("no counter")?;
    counter.handled.fetch_add(1, Ordering::Relaxed);
    let n: u64 = n.parse().map_err(|_| "n")?;
    Ok(format!("{} session={}", n * 2, ctx.session().is_some()))
}

// ----------------------------------------------------------------------
// Configuration
// ----------------------------------------------------------------------

const ROUTE: &str = r#"{
    "gate": [{"MsgID": 1, "Name": "login"}, {"MsgID": 5, "Name": "echo"},
             {"MsgID": 7, "Name": "join"}, {"MsgID": 8, "Name": "leave"},
             {"MsgID": 10, "Name": "say"}, {"MsgID": 12, "Name": "count"}],
    "im": [{"MsgID": 6, "Name": "echo"}, {"MsgID": 20, "Name": "join"}, {"MsgID": 21, "Name": "leave"},
           {"MsgID": 22, "Name": "say"}, {"MsgID": 23, "Name": "remind"},
           {"MsgID": 24, "Name": "double"}],
    "st": [{"MsgID": 40, "Name": "needs"}]
}"#;

/// The configuration: with `two_gates`, gate-2 too, on `redis`.
fn config(two_gates: bool, redis: Option<&str>) -> ClusterConfig {
    let p = free_ports(4).expect("free ports");
    let gate2 = if two_gates {
        format!(
            r#", {{"ID": 2, "Name": "gate-2", "Type": 1, "IP": "127.0.0.1", "Port": {}}}"#,
            p[1]
        )
    } else {
        String::new()
    };
    let dinx = format!(
        r#"{{
        "gate": [{{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": {}}}{gate2}],
        "im": [{{"ID": 3, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": {}}}],
        "st": [{{"ID": 4, "Name": "st-1", "Type": 2, "IP": "127.0.0.1", "Port": {}}}]
    }}"#,
        p[0], p[2], p[3]
    );
    let redis = redis
        .map(|u| format!(r#", "redis_url": "{u}""#))
        .unwrap_or_default();
    let settings = format!(
        r#"{{"heartbeat_interval_ms": 100, "heartbeat_timeout_ms": 600,
        "reconnect_min_ms": 20, "reconnect_max_ms": 200, "call_timeout_ms": 2000,
        "shutdown_grace_ms": 1000, "secret": "test-secret",
        "directory_ttl_ms": 3000{redis}}}"#
    );
    ClusterConfig::from_strs("app-test", &dinx, ROUTE, Some(&settings)).expect("valid config")
}

/// Node `id` with the tests' state.
async fn start(config: &ClusterConfig, id: u16, counter: &Arc<Counter>) -> RunningCluster {
    Cluster::new(config.clone())
        .with_state(counter.clone())
        .with_state(Motd("hello"))
        .start(Select::Id(id))
        .await
        .expect("node starts")
}

async fn client(config: &ClusterConfig, gate: u16) -> Client {
    Client::connect(config.node(gate).expect("gate").addr())
        .await
        .expect("connect")
}

/// A client logged in as `name`, and its session id.
async fn logged_in(config: &ClusterConfig, gate: u16, name: &str) -> (Client, SessionId) {
    let mut c = client(config, gate).await;
    let id = s(&req(&mut c, 1, name).await)
        .parse()
        .expect("a session id");
    (c, SessionId(id))
}

/// Nothing came before the echo of a probe through the gate and im-1:
/// what gates and im-1 sent this client earlier would have come first.
async fn assert_quiet(c: &mut Client) {
    nothing_before_echo(c, "a client", 6).await;
}

// ----------------------------------------------------------------------
// Tests
// ----------------------------------------------------------------------

#[tokio::test]
async fn state_reaches_handlers_and_a_missing_type_refuses_the_start() {
    let config = config(false, None);
    let counter = Arc::new(Counter::default());
    // "st" has a handler taking State<NeverGiven>: refused before any port
    // is bound, naming the handler and the type.
    let refused = Cluster::new(config.clone())
        .with_state(counter.clone())
        .start(Select::Id(4))
        .await;
    match refused {
        Err(StartError::MissingState(missing)) => {
            assert_eq!(missing.len(), 1, "{missing:?}");
            let text = missing[0].to_string();
            assert!(text.contains("needs_state"), "{text}");
            assert!(text.contains("NeverGiven"), "{text}");
        }
        other => panic!("expected MissingState, got {other:?}"),
    }
    // Given the type, it starts.
    let st = Cluster::new(config.clone())
        .with_state(NeverGiven)
        .start(Select::Id(4))
        .await
        .expect("starts with the state");
    st.shutdown().await;

    // Nodes that do not serve "st" are not held to its needs; two types.
    let gate = start(&config, 1, &counter).await;
    let mut c = client(&config, 1).await;
    assert_eq!(s(&req(&mut c, 12, "").await), "1 hello");
    assert_eq!(s(&req(&mut c, 12, "").await), "2 hello");
    assert_eq!(counter.handled.load(Ordering::Relaxed), 2);
    // The handle lends the same value.
    let h = gate.handle();
    assert!(
        h.state::<Arc<Counter>>()
            .is_some_and(|c| Arc::ptr_eq(c, &counter))
    );
    assert!(h.state::<NeverGiven>().is_none());
    gate.shutdown().await;
}

#[tokio::test]
async fn a_handle_works_from_spawned_tasks_on_a_gate_and_a_backend() {
    let config = config(false, None);
    let counter = Arc::new(Counter::default());
    // The started hook runs before `start` returns, with a handle.
    let started = Arc::new(AtomicU64::new(0));
    let seen = started.clone();
    let im = Cluster::new(config.clone())
        .with_state(counter.clone())
        .with_state(Motd("hello"))
        .on_started(move |h| async move {
            seen.store(u64::from(h.node_id()), Ordering::Relaxed);
        })
        .start(Select::Id(3))
        .await
        .expect("im starts");
    assert_eq!(started.load(Ordering::Relaxed), 3);
    let gate = start(&config, 1, &counter).await;
    wait_until("gate links to im", || gate.link_up(1, 3)).await;
    wait_until("im links to gate", || im.link_up(3, 1)).await;

    let (mut alice, a) = logged_in(&config, 1, "alice").await;
    let (mut bob, b) = logged_in(&config, 1, "bob").await;
    let mut anon = client(&config, 1).await;

    for (name, handle) in [("gate", gate.handle()), ("im", im.handle())] {
        // From a task that is no handler.
        let h = handle.clone();
        let task = tokio::spawn(async move {
            h.push(a, Frame::new(50, "to a session"))?;
            h.push(
                a,
                &Note {
                    text: "typed".into(),
                },
            )?;
            h.push_to_uid("bob", Frame::new(51, "to a uid")).await?;
            h.broadcast(Frame::new(52, "everyone"))?;
            h.broadcast_to_users(Frame::new(53, "users"))?;
            assert!(h.for_session(b).join("r").await?, "bob joins");
            h.publish("r", Frame::new(54, "room"))?;
            assert!(h.for_session(b).leave("r").await?, "bob leaves");
            h.publish("r", Frame::new(54, "nobody"))?;
            let doubled = h
                .call::<Bytes>("im", Frame::new(24, "21"))
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .map_err(|e| e.to_string());
            let cast = h.cast("im", Frame::new(24, "1")).map_err(|e| e.to_string());
            Ok::<_, SendError>((doubled, cast))
        });
        let (doubled, cast) = task.await.expect("task ran").expect("handle ops");
        assert_eq!(doubled.as_deref(), Ok("42 session=false"), "{name}");
        assert_eq!(cast, Ok(()), "{name}");
        expect(&mut alice, 50, "to a session").await;
        expect(&mut alice, 55, r#"{"text":"typed"}"#).await;
        expect(&mut bob, 51, "to a uid").await;
        for c in [&mut alice, &mut bob, &mut anon] {
            expect(c, 52, "everyone").await;
        }
        expect(&mut alice, 53, "users").await;
        expect(&mut bob, 53, "users").await;
        expect(&mut bob, 54, "room").await;
        for c in [&mut alice, &mut bob, &mut anon] {
            assert_quiet(c).await;
        }
    }
    // The call and the cast of each handle ran on im-1 and counted there.
    wait_until("casts counted", || {
        counter.handled.load(Ordering::Relaxed) == 4
    })
    .await;
    // Kick by uid through the backend's handle.
    im.handle().kick("alice").await.expect("kick");
    assert!(alice.recv_timeout(T).await.is_err(), "alice is closed");

    // After shutdown: errors at once, never a hang.
    let (gh, ih) = (gate.handle(), im.handle());
    gate.shutdown().await;
    im.shutdown().await;
    for h in [gh, ih] {
        assert!(!h.is_running());
        let quick = tokio::time::timeout(Duration::from_secs(2), async {
            assert_eq!(h.push(b, Frame::new(1, "x")), Err(SendError::Stopped));
            assert_eq!(h.publish("r", Frame::new(1, "x")), Err(SendError::Stopped));
            assert_eq!(
                h.push_to_uid("bob", Frame::new(1, "x")).await,
                Err(SendError::Stopped)
            );
            assert_eq!(h.kick(b).await, Err(SendError::Stopped));
            assert_eq!(h.for_session(b).join("r").await, Err(SendError::Stopped));
            assert!(matches!(
                h.call::<Bytes>("im", Frame::new(24, "1")).await,
                Err(zinx_cluster::CallError::Stopped)
            ));
        });
        quick
            .await
            .expect("handle operations after shutdown return at once");
    }
}

macro_rules! require_redis {
    () => {{
        match RedisServer::start("the rooms-across-gates tests").await {
            Some(r) => r,
            None => return,
        }
    }};
}

/// gate-1, gate-2 and im-1 on `redis`, linked and subscribed.
async fn two_gates(
    redis: &RedisServer,
    counter: &Arc<Counter>,
) -> (ClusterConfig, Vec<RunningCluster>) {
    let config = config(true, Some(&redis.url()));
    let im = start(&config, 3, counter).await;
    let g1 = start(&config, 1, counter).await;
    let g2 = start(&config, 2, counter).await;
    wait_until("links up", || g1.link_up(1, 3) && g2.link_up(2, 3)).await;
    wait_until("backend links up", || im.link_up(3, 1) && im.link_up(3, 2)).await;
    // A publish from one gate reaches the other through its Redis channel:
    // wait until both listen (a probe room nobody is in would say nothing).
    let deadline = Instant::now() + T;
    while redis
        .channels_listened(&["zinx:gate:1", "zinx:gate:2"])
        .await
        < 2
    {
        assert!(Instant::now() < deadline, "gates did not subscribe");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (config, vec![g1, g2, im])
}

#[tokio::test]
async fn rooms_span_gates_and_each_member_gets_a_publish_once() {
    let redis = require_redis!();
    let counter = Arc::new(Counter::default());
    let (config, nodes) = two_gates(&redis, &counter).await;
    let (mut alice, _) = logged_in(&config, 1, "alice").await;
    let (mut bob, _) = logged_in(&config, 2, "bob").await;
    let (mut carol, _) = logged_in(&config, 2, "carol").await;
    let mut anon = client(&config, 1).await;

    // Alice joins on her gate; bob through a backend; carol stays out.
    assert_eq!(s(&req(&mut alice, 7, "r1").await), "joined=true");
    assert_eq!(s(&req(&mut alice, 7, "r1").await), "joined=false");
    assert_eq!(s(&req(&mut bob, 20, "r1").await), "joined=true");
    assert_eq!(nodes[0].handle().local_members("r1"), 1);
    assert_eq!(nodes[1].handle().local_members("r1"), 1);

    // From a backend, from gate-1, from gate-2: each member once.
    assert_eq!(s(&req(&mut carol, 22, "r1 from im").await), "said");
    alice.send(10, "r1 from gate-1").await.expect("send");
    bob.send(10, "r1 from gate-2").await.expect("send");
    // The three publishes race each other; each arrives once, on 30.
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    for _ in 0..3 {
        for (c, got) in [(&mut alice, &mut got_a), (&mut bob, &mut got_b)] {
            let f = c.recv_timeout(T).await.expect("a member gets it");
            assert_eq!(f.msg_id, 30);
            got.push(s(&f));
        }
    }
    got_a.sort();
    got_b.sort();
    let want = vec!["from gate-1", "from gate-2", "from im"];
    assert_eq!(got_a, want);
    assert_eq!(got_b, want);
    // Once each: a second copy would come before a marker published after
    // it the same way (a gate's channel, a link, are in order), so the next
    // three frames of a member are the three markers. Who is no member
    // would have been sent its copy on the way: nothing before a probe.
    assert_eq!(s(&req(&mut carol, 22, "r1 marker from im").await), "said");
    alice.send(10, "r1 marker from gate-1").await.expect("send");
    bob.send(10, "r1 marker from gate-2").await.expect("send");
    for c in [&mut alice, &mut bob] {
        let mut got = Vec::new();
        for _ in 0..3 {
            let f = c.recv_timeout(T).await.expect("a marker");
            assert_eq!(f.msg_id, 30);
            got.push(s(&f));
        }
        got.sort();
        assert_eq!(
            got,
            ["marker from gate-1", "marker from gate-2", "marker from im"]
        );
    }
    for c in [&mut carol, &mut anon] {
        assert_quiet(c).await;
    }

    // Leave (bob, through the backend), then a publish reaches alice only.
    assert_eq!(s(&req(&mut bob, 21, "r1").await), "left=true");
    assert_eq!(s(&req(&mut bob, 21, "r1").await), "left=false");
    assert_eq!(s(&req(&mut carol, 22, "r1 after leave").await), "said");
    expect(&mut alice, 30, "after leave").await;
    assert_quiet(&mut bob).await;

    // Close: carol joins on gate-2 then disconnects; she leaves the room.
    assert_eq!(s(&req(&mut carol, 7, "r1").await), "joined=true");
    assert_eq!(nodes[1].handle().local_members("r1"), 1);
    drop(carol);
    let g2 = nodes[1].handle();
    wait_until("carol's close leaves the room", || {
        g2.local_members("r1") == 0
    })
    .await;
    assert_eq!(s(&req(&mut bob, 22, "r1 after close").await), "said");
    expect(&mut alice, 30, "after close").await;
    assert_quiet(&mut bob).await;
    assert_quiet(&mut anon).await;

    // Bad names are refused, not panics.
    let f = req(&mut alice, 7, "").await;
    assert_eq!(f.msg_id, 0, "{}", s(&f));

    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn a_reminder_follows_its_user_to_the_other_gate() {
    let redis = require_redis!();
    let counter = Arc::new(Counter::default());
    let (config, nodes) = two_gates(&redis, &counter).await;
    let (mut alice, _) = logged_in(&config, 1, "alice").await;
    assert_eq!(s(&req(&mut alice, 23, "tea").await), "ok");
    // She reconnects to the other gate before the reminder is due.
    drop(alice);
    let (mut alice, a2) = logged_in(&config, 2, "alice").await;
    assert_eq!(a2.gate(), 2);
    REMINDER.wait_held().await;
    REMINDER.release();
    expect(&mut alice, 23, "tea").await;
    assert_quiet(&mut alice).await;
    for n in nodes {
        n.shutdown().await;
    }
}
