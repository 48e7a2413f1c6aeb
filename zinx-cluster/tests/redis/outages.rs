//! Redis down, hung or absent at start: what needs no directory keeps
//! working, directory operations fail within the operation timeout with an
//! error naming the directory, and everything recovers when Redis is back;
//! the Redis URL from the settings and from `ZINX_REDIS_URL`.
//!
//! Bounds: every directory operation is bounded by one second (the
//! runtime's operation timeout, which its error answers name: "no answer
//! within 1s"), plus [`MARGIN`] for a loaded machine.

use std::time::{Duration, Instant};

use zinx_cluster::config::{ClusterConfig, REDIS_URL_ENV};
use zinx_cluster::{Cluster, Select, StartError};
use zinx_test_support::T;
use zinx_test_support::child::{ChildNode, ChildSpec};
use zinx_test_support::cluster::{TestCluster, error_of, expect, req, s};

use crate::{
    MARGIN, ROUTE, RedisCluster, RedisQueries, TTL, assert_no_panics, chat, check_environment,
    dinx, settings, test_redis, wait_subscribed,
};

/// The runtime's bound on one directory operation.
const OP_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::test]
async fn redis_down_fails_directory_operations_clearly_then_recovers() {
    let Some(mut redis) = test_redis().await else {
        return;
    };
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
        took < OP_TIMEOUT + MARGIN,
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
        assert!(
            back.elapsed() < TTL + MARGIN,
            "bindings were not re-created"
        );
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
    let Some(redis) = test_redis().await else {
        return;
    };
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
        text.contains("user directory") && text.contains("no answer within 1s"),
        "{text}"
    );
    assert!(
        took < OP_TIMEOUT + MARGIN,
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
    let Some(mut redis) = test_redis().await else {
        return;
    };
    redis.stop();
    let started = Instant::now();
    let tc = TestCluster::start(&redis.url(), &[3, 4, 1, 2]).await;
    // Nothing connects at start: no node waits even one operation's
    // timeout, and the gate serves before Redis is back.
    assert!(
        started.elapsed() < OP_TIMEOUT + MARGIN,
        "start waited for Redis: {:?}",
        started.elapsed()
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

/// `ZINX_REDIS_URL` overrides the `redis_url` setting: gate-2 in a child
/// process (the environment is the process's) whose settings name no
/// Redis at all starts anyway (two gates without Redis refuse to, see
/// above), listens on its channel in the test's Redis, and binds its
/// users there.
#[tokio::test]
async fn the_redis_url_from_the_environment_overrides_the_setting() {
    let Some(redis) = test_redis().await else {
        return;
    };
    let tc = TestCluster::start(&redis.url(), &[3, 4, 1]).await;
    let mut spec = ChildSpec::of(&tc, "child_node", 2);
    spec.files.2 = settings(None);
    spec.env = vec![(REDIS_URL_ENV.to_string(), redis.url())];
    let _child = ChildNode::start(spec).await;
    tc.wait_ready(&redis).await;
    wait_subscribed(&redis, 2).await;
    let mut bob = tc.login(2, "bob").await;
    let bob_id = s(&req(&mut bob, 7, "").await);
    let bound = redis
        .binding("bob")
        .await
        .expect("bob is bound in the test's Redis");
    assert!(
        bob_id.ends_with(&format!(" {bound}")),
        "{bob_id} vs {bound}"
    );
    let mut alice = tc.login(1, "alice").await;
    assert_eq!(s(&req(&mut alice, 8, "bob").await), "pushed");
    expect(&mut bob, 8, "from gate-1 to bob").await;
    tc.shutdown().await;
    assert_no_panics();
}
