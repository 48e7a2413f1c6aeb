//! The chat client, scripted through its stdin, against a running demo.

use std::time::Duration;

use zinx_test_support::T;
use zinx_test_support::chat::wait_ready;
use zinx_test_support::conf::Conf;
use zinx_test_support::process::Proc;

/// The demo server built for this test run.
const DEMO: &str = env!("CARGO_BIN_EXE_demo");
/// The chat client built for this test run.
const DEMO_CLIENT: &str = env!("CARGO_BIN_EXE_demo-client");

#[tokio::test]
async fn two_chat_clients_talk_through_the_cluster() {
    let conf = Conf::new();
    let mut demo = Proc::demo(DEMO, "demo", &conf, &[]);
    let addr = conf.gate_addr();
    wait_ready(&addr).await;

    let mut bob = Proc::client(DEMO_CLIENT, "bob", &addr, conf.path());
    bob.wait_line("* logged in as bob", T);

    // alice's whole session is piped in; at the end of input she waits for
    // her answers and exits 0.
    let mut alice = Proc::client(DEMO_CLIENT, "alice", &addr, conf.path());
    for line in [
        "/to bob hi bob",
        "/all hello everyone",
        "just typing broadcasts too",
        "/echo across the cluster",
        "/gecho from the gate",
        "/to carol are you there?",
        "/nonsense",
    ] {
        alice.say(line);
    }
    alice.close_stdin();
    let status = alice.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", alice.log());
    let out = alice.rest_of_output(T);
    for line in [
        "* logged in as alice",
        "[all] alice: hello everyone",
        "[all] alice: just typing broadcasts too",
        "echo: across the cluster",
        "gate echo: from the gate",
        "! carol is not online",
        "! unknown command /nonsense (try /help)",
    ] {
        assert!(out.iter().any(|l| l == line), "{line:?} not in {out:#?}");
    }

    bob.wait_line("[alice] hi bob", T);
    bob.wait_line("[all] alice: hello everyone", T);
    bob.wait_line("[all] alice: just typing broadcasts too", T);
    // alice has left.
    bob.say("/to alice still there?");
    bob.wait_line("! alice is not online", T);
    bob.say("/quit");
    let status = bob.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", bob.log());

    demo.interrupt();
    assert_eq!(demo.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[tokio::test]
async fn a_websocket_chat_client_talks_to_a_tcp_one() {
    let conf = Conf::with_web();
    let mut demo = Proc::demo(DEMO, "demo", &conf, &[]);
    let addr = conf.gate_addr();
    wait_ready(&addr).await;
    let ws_addr = format!("127.0.0.1:{}", conf.ws_port);
    let mut wendy = Proc::client_with(DEMO_CLIENT, "wendy", &ws_addr, conf.path(), &["--ws"]);
    wendy.wait_line("* logged in as wendy", T);
    let mut tom = Proc::client(DEMO_CLIENT, "tom", &addr, conf.path());
    tom.wait_line("* logged in as tom", T);
    wendy.say("/to tom hi from a websocket");
    tom.wait_line("[wendy] hi from a websocket", T);
    tom.say("/all hello both");
    wendy.wait_line("[all] tom: hello both", T);
    let long = "w".repeat(60 * 1024);
    wendy.say(&format!("/echo {long}"));
    wendy.wait_line(&format!("echo: {long}"), T);
    demo.interrupt();
    assert_eq!(demo.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
