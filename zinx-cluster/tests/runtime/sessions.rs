//! Sessions: their ids, kicks by id, rooms joined for a session through
//! a handle, the session limit, and a client's own frame limit.

use zinx_cluster::prelude::*;
use zinx_cluster_client::wire::{FrameCodec, FrameError};
use zinx_cluster_client::{Client, ClientError};
use zinx_test_support::T;
use zinx_test_support::cluster::{TestCluster, assert_closed, expect, nothing_before_echo, req, s};

use crate::{FAST, RuntimeCluster, logged_in};

/// Kicks the session whose id is the payload, from a backend.
#[handler(msg_id = 26, group = "im")]
async fn kick_session(ctx: &mut Ctx, id: String) -> Result<&'static str, HandlerError> {
    let id: u64 = id.parse().map_err(|_| "a session id")?;
    ctx.kick(SessionId(id)).await?;
    Ok("kicked")
}

/// A client's session id (msg 27).
async fn session_of(c: &mut Client) -> SessionId {
    SessionId(s(&req(c, 27, "").await).parse().expect("a session id"))
}

#[tokio::test]
async fn session_ids_are_unique_and_carry_the_gate() {
    let a = zinx_cluster::SessionId::new(1, 1);
    let b = zinx_cluster::SessionId::new(2, 1);
    assert_ne!(a, b);
    assert_eq!(b.gate(), 2);
}

#[tokio::test]
async fn sessions_beyond_the_limit_are_refused_at_once() {
    let settings = r#"{"max_sessions": 2, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2]).await;
    let mut a = tc.client().await;
    let _b = tc.client().await;
    assert_eq!(s(&req(&mut a, 5, "a").await), "a");
    let mut c = tc.client().await;
    let f = c.recv_timeout(T).await.expect("a refusal frame");
    let v: serde_json::Value = serde_json::from_slice(&f.data).unwrap();
    assert_eq!(v["code"], "server_full");
    assert!(c.recv_timeout(T).await.is_err(), "then closed");
    assert_eq!(tc.running(1).metrics(1).unwrap().sessions_refused, 1);
    tc.shutdown().await;
}

/// `kick(SessionId)` closes that live session, from a backend's handler
/// and from a handle, whether or not it is logged in; the others stay.
#[tokio::test]
async fn a_live_session_is_kicked_by_its_id() {
    let tc = TestCluster::start(FAST, &[1, 2, 3]).await;
    tc.wait_link(1, 3).await;
    let mut alice = logged_in(&tc, "alice").await;
    let mut anon = tc.client().await;
    let mut bob = logged_in(&tc, "bob").await;
    let (a, n) = (session_of(&mut alice).await, session_of(&mut anon).await);
    assert_eq!(s(&req(&mut bob, 26, &a.0.to_string()).await), "kicked");
    assert_closed(&mut alice, "alice, kicked by id from a backend").await;
    tc.running(1).handle().kick(n).await.expect("kick by id");
    assert_closed(&mut anon, "an anonymous session, kicked by id").await;
    tc.wait_metrics(1, "two kicks, one session left", |m| {
        m.kicks == 2 && m.sessions_open == 1
    })
    .await;
    // alice's binding went with her session.
    let f = req(&mut bob, 3, r#"{"to":"alice","text":"?"}"#).await;
    assert_eq!(s(&f), "alice is not online");
    tc.shutdown().await;
}

/// `ClusterHandle::for_session(id).join(room)`: a handle acting for a
/// session joins and leaves rooms for it (from the gate, and through a
/// backend's handle); a handle acting for no session cannot.
#[tokio::test]
async fn a_handle_joins_rooms_for_a_session_and_fails_without_one() {
    let tc = TestCluster::start(FAST, &[1, 2]).await;
    let mut c = tc.client().await;
    let id = session_of(&mut c).await;
    let gate = tc.running(1).handle();
    let im = tc.running(2).node_handle(2).expect("im-1");
    assert_eq!(gate.join("r").await, Err(SendError::NoSession));
    assert_eq!(im.leave("r").await, Err(SendError::NoSession));
    assert_eq!(gate.for_session(id).join("r").await, Ok(true));
    assert_eq!(im.for_session(id).join("r").await, Ok(false), "already in");
    assert_eq!(gate.local_members("r"), 1);
    im.publish("r", Frame::new(42, "to r")).unwrap();
    expect(&mut c, 42, "to r").await;
    assert_eq!(im.for_session(id).leave("r").await, Ok(true));
    assert_eq!(gate.local_members("r"), 0);
    gate.publish("r", Frame::new(42, "to nobody")).unwrap();
    nothing_before_echo(&mut c, "a session that left the room", 5).await;
    tc.shutdown().await;
}

/// `Client::connect_with` a codec of a smaller frame limit: frames within
/// it go both ways; it refuses to send a larger one, and refuses one that
/// arrives (a broadcast that a default client gets whole).
#[tokio::test]
async fn a_client_with_a_smaller_frame_limit_refuses_larger_frames() {
    let tc = TestCluster::start(FAST, &[1, 2]).await;
    let small = "x".repeat(1000);
    let big = "x".repeat(2000);
    let too_large = |r: &Result<_, ClientError>| {
        matches!(
            r,
            Err(ClientError::Frame(FrameError::TooLarge {
                len: 2000,
                max: 1024,
                ..
            }))
        )
    };
    let mut c = Client::connect_with(tc.addr(1), FrameCodec::new(1024))
        .await
        .unwrap();
    assert_eq!(s(&req(&mut c, 5, &small).await), small);
    let sent = c.send(5, big.clone()).await;
    assert!(too_large(&sent), "sending 2000 bytes: {sent:?}");

    let mut c = Client::connect_with(tc.addr(1), FrameCodec::new(1024))
        .await
        .unwrap();
    let mut plain = tc.client().await;
    // Both sessions exist before the broadcast (an echo each).
    assert_eq!(s(&req(&mut c, 5, "here").await), "here");
    assert_eq!(s(&req(&mut plain, 5, &big).await), big);
    plain.send(16, big.clone()).await.unwrap();
    expect(&mut plain, 16, &big).await;
    let got = c.recv_timeout(T).await.map(|_| ());
    assert!(too_large(&got), "receiving 2000 bytes: {got:?}");
    tc.shutdown().await;
}
