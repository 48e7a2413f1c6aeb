//! Calls and casts between nodes: answers, failures, per-call timeouts;
//! what a handler's `Ctx` tells (its msg_id, its caller) and its replies
//! on other msg_ids; error answers switched off or on another msg_id.

use std::time::{Duration, Instant};

use bytes::Bytes;
use zinx_cluster::prelude::*;
use zinx_test_support::cluster::{Hold, TestCluster, expect, nothing_before_echo, req, s};

use crate::{FAST, RuntimeCluster};

/// `call_timeout_ms` of the settings of [`slow_calls`]: far beyond what
/// any answer here takes, so a failure before it is not a timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The test settings with calls timing out after [`CALL_TIMEOUT`].
fn slow_calls() -> String {
    FAST.replace(
        r#""call_timeout_ms": 1000"#,
        &format!(r#""call_timeout_ms": {}"#, CALL_TIMEOUT.as_millis()),
    )
}

/// What the handler's context says: a reply on msg_id 29 first, then the
/// answer on the message's own msg_id.
#[handler(msg_id = 19, group = "im")]
async fn ctx_probe(ctx: &mut Ctx) -> Result<String, HandlerError> {
    ctx.reply_with(29, format!("first, for {}", ctx.msg_id()))?;
    Ok(format!(
        "msg_id={} caller={:?} node={}",
        ctx.msg_id(),
        ctx.caller(),
        ctx.node_name()
    ))
}

/// Who called, answered with `reply_with` (in a call, that is the call's
/// answer, whatever the msg_id). In a cast there is nobody to reply to: it
/// pushes what `reply_with` said to the cast's session instead.
#[handler(msg_id = 22, group = "calc")]
async fn caller(ctx: &mut Ctx) -> Result<(), HandlerError> {
    let seen = format!("msg_id={} caller={:?}", ctx.msg_id(), ctx.caller());
    if let Err(e) = ctx.reply_with(99, seen.clone()) {
        let session = ctx.session().ok_or("no session")?;
        ctx.push(
            session,
            Frame::new(22, format!("{seen} reply_with: {}", e.code())),
        )?;
    }
    Ok(())
}

/// `call` or `cast` msg 22 on calc.
#[handler(msg_id = 24, group = "im")]
async fn call_caller(ctx: &mut Ctx, how: String) -> Result<String, HandlerError> {
    if how == "cast" {
        ctx.cast("calc", Frame::new(22, ""))?;
        return Ok("cast sent".into());
    }
    Ok(ctx.call::<String>("calc", Frame::new(22, "")).await?)
}

/// `<ms> <msg_id>`: a raw call of `msg_id` on calc with "21", timing out
/// after `ms`; the answer, or the error's code and when it came.
#[handler(msg_id = 23, group = "im")]
async fn call_raw(ctx: &mut Ctx, spec: String) -> Result<String, HandlerError> {
    let (ms, msg_id) = spec.split_once(' ').ok_or("<ms> <msg_id>")?;
    let ms: u64 = ms.parse().map_err(|_| "ms")?;
    let msg_id: u32 = msg_id.parse().map_err(|_| "msg_id")?;
    let started = Instant::now();
    let call = ctx
        .call::<Bytes>("calc", Frame::new(msg_id, "21"))
        .timeout(Duration::from_millis(ms));
    Ok(match call.await {
        Ok(b) => format!("answer {}", String::from_utf8_lossy(&b)),
        Err(e) => format!("{} after {} ms", e.code(), started.elapsed().as_millis()),
    })
}

/// Held until [`CALC_HOLD`] is released.
#[handler(msg_id = 25, group = "calc")]
async fn calc_hold(_ctx: &mut Ctx) -> &'static str {
    CALC_HOLD.hold().await;
    "released"
}

static CALC_HOLD: Hold = Hold::new();

#[tokio::test]
async fn calls_and_casts_between_backends() {
    let tc = TestCluster::start(&slow_calls(), &[1, 2, 3, 4]).await;
    tc.wait_link(2, 4).await;
    tc.wait_link(3, 4).await;
    let mut c = tc.client().await;
    let f = req(&mut c, 11, "21").await;
    assert_eq!(s(&f), "42 by calc-1");
    // A failing callee: the error travels back as the caller's error.
    let f = req(&mut c, 11, "not a number").await;
    let v: serde_json::Value = serde_json::from_slice(&f.data).unwrap();
    assert_eq!(v["code"], "handler_error");
    assert!(v["error"].as_str().unwrap().contains("not a number"), "{v}");
    // A cast runs on calc and pushes back to our session.
    let f = req(&mut c, 12, "7").await;
    assert_eq!(s(&f), "cast sent");
    expect(&mut c, 21, "cast 7 ran on calc-1").await;
    // A call to a group with no live node fails at once: not after the
    // call timeout (10 s here), nor counted as one.
    let started = Instant::now();
    let f = req(&mut c, 13, "").await;
    assert_eq!(s(&f), "call failed: no live node in group \"ghost\"");
    assert!(
        started.elapsed() < CALL_TIMEOUT / 2,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(tc.metrics(2).call_timeouts + tc.metrics(3).call_timeouts, 0);
    tc.shutdown().await;
}

/// `ctx.call::<Bytes>(group, Frame).timeout(d)`: the raw call's answer as
/// bytes, and its own timeout, not `call_timeout_ms`.
#[tokio::test]
async fn a_raw_call_answers_bytes_and_times_out_after_its_own_timeout() {
    let tc = TestCluster::start(&slow_calls(), &[1, 2, 3, 4]).await;
    tc.wait_link(2, 4).await;
    tc.wait_link(3, 4).await;
    let mut c = tc.client().await;
    assert_eq!(s(&req(&mut c, 23, "5000 20").await), "answer 42 by calc-1");
    // A callee that does not answer (held until the test lets it go).
    let f = req(&mut c, 23, "200 25").await;
    CALC_HOLD.wait_held().await;
    let text = s(&f);
    let ms: u64 = text
        .strip_prefix("timeout after ")
        .and_then(|t| t.strip_suffix(" ms"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a timeout: {text}"));
    assert!(
        (200..CALL_TIMEOUT.as_millis() as u64).contains(&ms),
        "timed out after {ms} ms (its timeout 200 ms, the setting's {CALL_TIMEOUT:?})"
    );
    let timeouts = tc.metrics(2).call_timeouts + tc.metrics(3).call_timeouts;
    assert_eq!(timeouts, 1);
    CALC_HOLD.release();
    tc.shutdown().await;
}

/// `Ctx::msg_id`, `Ctx::caller`, `Ctx::node_name`, `Ctx::reply_with`: for
/// a client's message, in a call and in a cast.
#[tokio::test]
async fn a_handler_s_ctx_tells_its_msg_id_and_caller_and_replies_on_other_ids() {
    let tc = TestCluster::start(FAST, &[1, 2, 3, 4]).await;
    tc.wait_link(2, 4).await;
    tc.wait_link(3, 4).await;
    let mut c = tc.client().await;
    c.send(19, "").await.unwrap();
    expect(&mut c, 29, "first, for 19").await;
    let f = c.recv_timeout(zinx_test_support::T).await.unwrap();
    let text = s(&f);
    assert_eq!(f.msg_id, 19);
    let node = text
        .strip_prefix("msg_id=19 caller=None node=")
        .unwrap_or_else(|| panic!("{text}"))
        .to_string();
    // The caller of a call or cast is the im node serving this session.
    let im_id = match node.as_str() {
        "im-1" => 2,
        "im-2" => 3,
        other => panic!("served by {other}"),
    };
    let want = format!("msg_id=22 caller=Some({im_id})");
    assert_eq!(s(&req(&mut c, 24, "call").await), want);
    assert_eq!(s(&req(&mut c, 24, "cast").await), "cast sent");
    expect(&mut c, 22, &format!("{want} reply_with: no_session")).await;
    tc.shutdown().await;
}

/// `error_reply: "none"`: a failing message is counted and answered with
/// nothing; `error_msg_id`: the error answer comes on that msg_id.
#[tokio::test]
async fn error_answers_can_be_switched_off_or_moved_to_another_msg_id() {
    let silent = FAST.replace('}', r#", "error_reply": "none"}"#);
    let tc = TestCluster::start(&silent, &[1, 2, 3, 4]).await;
    tc.wait_link(2, 4).await;
    tc.wait_link(3, 4).await;
    let mut c = tc.client().await;
    c.send(4242, "?").await.unwrap();
    c.send(1, "not json").await.unwrap();
    c.send(11, "not a number").await.unwrap();
    nothing_before_echo(&mut c, "a client of error_reply none", 6).await;
    let m = tc.metrics(1);
    assert_eq!((m.unknown_msg_id, m.bad_payload), (1, 1), "{m:?}");
    assert_eq!(error_answers(&tc), 0);
    assert_eq!(
        tc.metrics(2).handler_errors + tc.metrics(3).handler_errors,
        1
    );
    tc.shutdown().await;

    let moved = FAST.replace('}', r#", "error_msg_id": 77}"#);
    let tc = TestCluster::start(&moved, &[1, 2, 3, 4]).await;
    tc.wait_link(2, 4).await;
    tc.wait_link(3, 4).await;
    let mut c = tc.client().await;
    for (msg_id, data, code) in [
        (4242, "?", "unknown_msg_id"),
        (1, "not json", "bad_payload"),
        (11, "not a number", "handler_error"),
    ] {
        let f = req(&mut c, msg_id, data).await;
        assert_eq!(f.msg_id, 77, "{}", s(&f));
        let v: serde_json::Value = serde_json::from_slice(&f.data).unwrap();
        assert_eq!(
            (v["msg_id"].as_u64(), v["code"].as_str()),
            (Some(u64::from(msg_id)), Some(code))
        );
    }
    assert_eq!(error_answers(&tc), 3);
    tc.shutdown().await;
}

/// Error answers made by every node (the gate's own, and the im node's
/// for a handler that failed there).
fn error_answers(tc: &TestCluster) -> u64 {
    tc.ids()
        .iter()
        .map(|id| tc.metrics(*id).error_answers)
        .sum()
}
