//! Typed messages over a real cluster: typed push, broadcast, call and
//! cast; a protobuf message through a gate to a backend and back; internal
//! handlers that clients cannot reach; and the error codes a client sees.
//!
//! Nodes: gate-1 (1, "gate"), im-1 (2, "im"), calc-1 (3, "calc"), and
//! ghost-1 (4, "ghost", never started).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zinx_cluster::prelude::*;
use zinx_cluster_client::Client;
use zinx_test_support::T;
use zinx_test_support::cluster::{TestCluster, error_of, req, s};
use zinx_test_support::free_ports;

// ----------------------------------------------------------------------
// Messages
// ----------------------------------------------------------------------

#[derive(Message, Serialize, Deserialize)]
#[message(id = 1)]
struct Login {
    name: String,
}

#[derive(Message, Serialize, Deserialize)]
#[message(id = 3)]
struct Chat {
    to: String,
    text: String,
}

#[derive(Message, Serialize, Deserialize)]
#[message(id = 3)]
struct Delivery {
    from: String,
    text: String,
}

#[derive(Message, Serialize, Deserialize)]
#[message(id = 4)]
struct Shout {
    text: String,
}

#[derive(Message, Serialize, Deserialize)]
#[message(id = 4)]
struct Shouted {
    from: String,
    text: String,
}

/// The protobuf message: through the gate to im and back.
#[derive(Clone, PartialEq, prost::Message, zinx_cluster::Message)]
#[message(id = 30, codec = "protobuf")]
struct Move {
    #[prost(int32, tag = "1")]
    x: i32,
    #[prost(int32, tag = "2")]
    y: i32,
    #[prost(string, tag = "3")]
    who: String,
}

#[derive(Message, Serialize, Deserialize)]
#[message(id = 50)]
struct Double {
    n: u64,
}

#[derive(Message, Serialize, Deserialize)]
#[message(id = 40)]
struct Doubled {
    n: u64,
    by: String,
}

#[derive(Message, Serialize, Deserialize)]
#[message(id = 51)]
struct Strict;

#[derive(Message, Serialize, Deserialize)]
#[message(id = 52)]
struct StatsQuery;

#[derive(Message, Serialize, Deserialize)]
#[message(id = 42)]
struct Stats {
    node: String,
}

#[derive(Message, Serialize, Deserialize)]
#[message(id = 53)]
struct Sleep {
    ms: u64,
}

#[derive(Message, Serialize, Deserialize)]
#[message(id = 54)]
struct Silent;

#[derive(Message, Serialize, Deserialize)]
#[message(id = 55)]
struct Record {
    text: String,
}

#[derive(Message)]
#[message(id = 49, codec = "raw")]
struct Recorded(String);

#[derive(Message, Serialize, Deserialize)]
#[message(id = 60)]
struct Boo;

// ----------------------------------------------------------------------
// Handlers
// ----------------------------------------------------------------------

#[handler(group = "gate")]
async fn login(ctx: &mut Ctx, login: Login) -> Result<String, HandlerError> {
    ctx.bind(&login.name).await?;
    Ok(format!("ok {}", login.name))
}

/// A typed push to a uid; not online is the handler's error, with its code.
#[handler(group = "im")]
async fn send(ctx: &mut Ctx, chat: Chat) -> Result<&'static str, HandlerError> {
    let from = ctx.uid().ok_or("not logged in")?.to_string();
    let delivery = Delivery {
        from,
        text: chat.text,
    };
    ctx.push_to_uid(&chat.to, &delivery).await?;
    Ok("sent")
}

#[handler(group = "im")]
async fn shout(ctx: &mut Ctx, shout: Shout) -> Result<(), HandlerError> {
    let from = ctx.uid().unwrap_or("-").to_string();
    ctx.broadcast(&Shouted {
        from,
        text: shout.text,
    })?;
    Ok(())
}

/// protobuf in, protobuf out, on a backend.
#[handler(group = "im")]
async fn step(ctx: &mut Ctx, m: Move) -> Move {
    Move {
        x: m.x + 1,
        y: m.y * 2,
        who: ctx.node_name().to_string(),
    }
}

/// 40: a typed call with a typed answer.
#[handler(msg_id = 40, group = "gate")]
async fn top(ctx: &mut Ctx, n: String) -> Result<Doubled, HandlerError> {
    let n: u64 = n.trim().parse()?;
    Ok(ctx.call("calc", &Double { n }).await?)
}

/// 41: the callee's own code reaches the client.
#[handler(msg_id = 41, group = "gate")]
async fn strict(ctx: &mut Ctx) -> Result<Bytes, HandlerError> {
    Ok(ctx.call("calc", &Strict).await?)
}

/// 42: a gate may call an internal handler.
#[handler(msg_id = 42, group = "gate")]
async fn stats(ctx: &mut Ctx) -> Result<Stats, HandlerError> {
    Ok(ctx.call("calc", &StatsQuery).await?)
}

/// 43: a group with no live node.
#[handler(msg_id = 43, group = "gate")]
async fn ghost(ctx: &mut Ctx) -> Result<Bytes, HandlerError> {
    Ok(ctx.call("ghost", &Boo).await?)
}

/// 44: an answer later than the timeout.
#[handler(msg_id = 44, group = "gate")]
async fn slow(ctx: &mut Ctx) -> Result<Bytes, HandlerError> {
    let sleep = Sleep { ms: 2_000 };
    Ok(ctx
        .call("calc", &sleep)
        .timeout(Duration::from_millis(100))
        .await?)
}

/// 45: a callee that answers nothing.
#[handler(msg_id = 45, group = "gate")]
async fn silent(ctx: &mut Ctx) -> Result<Bytes, HandlerError> {
    Ok(ctx.call("calc", &Silent).await?)
}

/// 46: an answer that is not the type expected.
#[handler(msg_id = 46, group = "gate")]
async fn bad_answer(ctx: &mut Ctx) -> Result<Stats, HandlerError> {
    Ok(ctx.call("calc", &Double { n: 1 }).await?)
}

/// 47: a group that does not exist.
#[handler(msg_id = 47, group = "gate")]
async fn nowhere(ctx: &mut Ctx) -> Result<Bytes, HandlerError> {
    Ok(ctx.call("nowhere", &Boo).await?)
}

/// 48: a code of the handler's own.
#[handler(msg_id = 48, group = "gate")]
async fn own_code(_ctx: &mut Ctx) -> Result<(), HandlerError> {
    Err(HandlerError::new("quota", "at most 10 rooms"))
}

/// 49: a typed cast; the callee pushes back to this session, typed.
#[handler(msg_id = 49, group = "gate")]
async fn record(ctx: &mut Ctx, text: String) -> Result<&'static str, HandlerError> {
    ctx.cast("calc", &Record { text })?;
    Ok("cast")
}

#[handler(group = "calc")]
async fn double(ctx: &mut Ctx, d: Double) -> Doubled {
    Doubled {
        n: d.n * 2,
        by: ctx.node_name().to_string(),
    }
}

#[handler(group = "calc")]
async fn strict_callee(_ctx: &mut Ctx, _: Strict) -> Result<(), HandlerError> {
    Err(HandlerError::new("quota", "too many rooms"))
}

/// How often the internal handler ran.
static STATS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[handler(group = "calc", internal)]
async fn calc_stats(ctx: &mut Ctx, _: StatsQuery) -> Stats {
    STATS_RUNS.fetch_add(1, Ordering::SeqCst);
    Stats {
        node: ctx.node_name().to_string(),
    }
}

#[handler(group = "calc")]
async fn sleep(_ctx: &mut Ctx, s: Sleep) -> &'static str {
    tokio::time::sleep(Duration::from_millis(s.ms)).await;
    "slept"
}

#[handler(group = "calc")]
async fn quiet(_ctx: &mut Ctx, _: Silent) {}

#[handler(group = "calc")]
async fn recorder(ctx: &mut Ctx, r: Record) -> Result<(), HandlerError> {
    let session = ctx.session().ok_or("no session")?;
    ctx.push(session, &Recorded(format!("recorded {}", r.text)))?;
    Ok(())
}

// ----------------------------------------------------------------------
// Harness
// ----------------------------------------------------------------------

const ROUTE: &str = r#"{
    "gate": [{"MsgID": 1, "Name": "login"}, {"MsgID": 40, "Name": "top"},
             {"MsgID": 41, "Name": "strict"}, {"MsgID": 42, "Name": "stats"},
             {"MsgID": 43, "Name": "ghost"}, {"MsgID": 44, "Name": "slow"},
             {"MsgID": 45, "Name": "silent"}, {"MsgID": 46, "Name": "bad_answer"},
             {"MsgID": 47, "Name": "nowhere"}, {"MsgID": 48, "Name": "own_code"},
             {"MsgID": 49, "Name": "record"}],
    "im": [{"MsgID": 3, "Name": "send"}, {"MsgID": 4, "Name": "shout"},
           {"MsgID": 30, "Name": "step"}],
    "calc": [{"MsgID": 50, "Name": "double"}, {"MsgID": 51, "Name": "strict"},
             {"MsgID": 52, "Name": "stats", "Internal": true},
             {"MsgID": 53, "Name": "sleep"}, {"MsgID": 54, "Name": "silent"},
             {"MsgID": 55, "Name": "record"}],
    "ghost": [{"MsgID": 60, "Name": "boo"}]
}"#;

async fn start() -> TestCluster {
    let p = free_ports(4).expect("free ports");
    let dinx = format!(
        r#"{{
        "gate": [{{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": {}}}],
        "im": [{{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": {}}}],
        "calc": [{{"ID": 3, "Name": "calc-1", "Type": 2, "IP": "127.0.0.1", "Port": {}}}],
        "ghost": [{{"ID": 4, "Name": "ghost-1", "Type": 2, "IP": "127.0.0.1", "Port": {}}}]
    }}"#,
        p[0], p[1], p[2], p[3]
    );
    let settings = r#"{"heartbeat_interval_ms": 100, "heartbeat_timeout_ms": 600,
        "reconnect_min_ms": 20, "reconnect_max_ms": 200, "call_timeout_ms": 1000,
        "shutdown_grace_ms": 1000, "secret": "test-secret"}"#;
    let tc = TestCluster::launch(dinx, ROUTE, settings.to_string(), &[1, 2, 3]).await;
    tc.wait_link(1, 2).await;
    tc.wait_link(1, 3).await;
    tc
}

async fn logged_in(tc: &TestCluster, name: &str) -> Client {
    let mut c = tc.client_of(1).await;
    let f = req(&mut c, 1, &format!(r#"{{"name":"{name}"}}"#)).await;
    assert_eq!(s(&f), format!("ok {name}"));
    c
}

/// The code of the error answer to `msg_id` with `data`.
async fn code_of(c: &mut Client, msg_id: u32, data: &str) -> String {
    let e = error_of(&req(c, msg_id, data).await);
    assert_eq!(e["msg_id"], msg_id);
    e["code"].as_str().expect("a code").to_string()
}

// ----------------------------------------------------------------------
// Tests
// ----------------------------------------------------------------------

#[tokio::test]
async fn typed_push_broadcast_call_and_cast() {
    let tc = start().await;
    let mut alice = logged_in(&tc, "alice").await;
    let mut bob = logged_in(&tc, "bob").await;

    // push_to_uid(&Delivery): on Delivery's msg_id, as JSON.
    let f = req(&mut alice, 3, r#"{"to":"bob","text":"hi"}"#).await;
    assert_eq!(s(&f), "sent");
    let got = bob.recv_timeout(T).await.expect("a delivery");
    assert_eq!(
        (got.msg_id, s(&got)),
        (3, r#"{"from":"alice","text":"hi"}"#.to_string())
    );

    // broadcast(&Shouted): everyone, on 4.
    alice.send(4, r#"{"text":"all"}"#).await.unwrap();
    for c in [&mut alice, &mut bob] {
        let got = c.recv_timeout(T).await.expect("a shout");
        assert_eq!(
            (got.msg_id, s(&got)),
            (4, r#"{"from":"alice","text":"all"}"#.to_string())
        );
    }

    // call(&Double) -> Doubled, answered on the request's msg_id.
    let f = req(&mut alice, 40, "21").await;
    assert_eq!(
        (f.msg_id, s(&f)),
        (40, r#"{"n":42,"by":"calc-1"}"#.to_string())
    );

    // cast(&Record); the callee's push(session, &Recorded) comes back raw.
    let f = req(&mut alice, 49, "x").await;
    assert_eq!(s(&f), "cast");
    let got = alice.recv_timeout(T).await.expect("the cast's push");
    assert_eq!((got.msg_id, s(&got)), (49, "recorded x".to_string()));
    tc.shutdown().await;
}

#[tokio::test]
async fn protobuf_round_trip_through_a_gate_and_a_backend() {
    use prost::Message as _;
    let tc = start().await;
    let mut c = tc.client_of(1).await;
    let m = Move {
        x: 1,
        y: 21,
        who: "me".into(),
    };
    let f = c
        .request(30, m.encode_to_vec(), T)
        .await
        .expect("an answer");
    assert_eq!(f.msg_id, 30);
    let back = Move::decode(f.data).expect("the answer is protobuf");
    assert_eq!(
        back,
        Move {
            x: 2,
            y: 42,
            who: "im-1".into()
        }
    );
    // Bytes that are not the message: bad_payload, naming the codec.
    let e = error_of(&req(&mut c, 30, "\u{ff}").await);
    assert_eq!(e["code"], "bad_payload");
    assert!(
        e["error"].as_str().unwrap().contains("protobuf Move"),
        "{e}"
    );
    tc.shutdown().await;
}

#[tokio::test]
async fn a_client_never_reaches_an_internal_handler() {
    let tc = start().await;
    let mut c = tc.client_of(1).await;
    let before = tc
        .running(1)
        .metrics(1)
        .expect("gate metrics")
        .unknown_msg_id;

    // 52 is internal: answered exactly like 59, which does not exist.
    let internal = error_of(&req(&mut c, 52, "null").await);
    let unknown = error_of(&req(&mut c, 59, "null").await);
    assert_eq!(internal["code"], "unknown_msg_id");
    assert_eq!(
        internal["error"].as_str().unwrap().replace("52", "N"),
        unknown["error"].as_str().unwrap().replace("59", "N"),
        "no difference leaks"
    );
    let after = tc
        .running(1)
        .metrics(1)
        .expect("gate metrics")
        .unknown_msg_id;
    assert_eq!(after - before, 2, "both counted as unknown msg_ids");
    assert_eq!(STATS_RUNS.load(Ordering::SeqCst), 0, "no handler ran");

    // Another node may call it.
    let f = req(&mut c, 42, "").await;
    assert_eq!((f.msg_id, s(&f)), (42, r#"{"node":"calc-1"}"#.to_string()));
    assert_eq!(STATS_RUNS.load(Ordering::SeqCst), 1);
    tc.shutdown().await;
}

#[tokio::test]
async fn each_error_code_reaches_the_client() {
    let tc = start().await;
    let mut c = logged_in(&tc, "carol").await;
    let codes = [
        (59, "", "unknown_msg_id"),
        (3, "not json", "bad_payload"),
        (3, r#"{"to":"nobody","text":"hi"}"#, "not_online"),
        (48, "", "quota"),
        (41, "", "quota"),
        (40, "x", "handler_error"),
        (43, "", "no_live_node"),
        (44, "", "timeout"),
        (45, "", "no_reply"),
        (46, "", "bad_answer"),
        (47, "", "unknown_group"),
    ];
    for (msg_id, data, code) in codes {
        assert_eq!(code_of(&mut c, msg_id, data).await, code, "msg_id {msg_id}");
    }
    // The message is for people, and says what happened.
    let e = error_of(&req(&mut c, 41, "").await);
    assert!(
        e["error"].as_str().unwrap().ends_with("too many rooms"),
        "{e}"
    );
    tc.shutdown().await;
}
