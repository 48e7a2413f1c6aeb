//! No request left unanswered: under pipelined load (32 connections × 16
//! requests in flight, forwarded to the im nodes), an im node is killed
//! (`kill -9`) or frozen (`SIGSTOP`). Every request must end with its echo
//! or an error answer — the requests in flight on the lost node with
//! `node_lost`, as soon as the gate knows the link is dead (at once for a
//! kill, after `heartbeat_timeout_ms` for a freeze).
//!
//! Three demo processes (gate-1, im-1, im-2) with the harness settings
//! (heartbeat every 200 ms, a link silent for 1000 ms declared dead). The
//! load is `zinx_test_support::pipeline`; each test prints a `FIGURES`
//! line (`cargo test -p demo --test node_lost -- --nocapture`).

use std::time::{Duration, Instant};

use zinx_test_support::T;
use zinx_test_support::conf::Conf;
use zinx_test_support::pipeline::{Pipeline, Report};
use zinx_test_support::process::{Proc, three_demo_processes};

/// The demo server built for this test run.
const DEMO: &str = env!("CARGO_BIN_EXE_demo");

/// One test of this file at a time: each runs three processes and load.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `heartbeat_timeout_ms` of the harness settings.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(1000);
/// A generous bound on "at once" for a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(2);
const CONNS: usize = 32;
const WINDOW: usize = 16;

/// Runs the load; once it flows (a window's worth of echoes per
/// connection), applies `fault` to im-1 (phase 1 from there); once the
/// gate has declared im-1's link down and the load flows again through
/// im-2 (as many echoes more), stops and reports. Returns the report and
/// the instant of the fault, with the gate and its configuration (which
/// holds the logs).
async fn load_across(fault: impl FnOnce(&mut Proc)) -> (Report, Instant, Proc, Conf) {
    let conf = Conf::new();
    let (gate, mut im1, _im2) = three_demo_processes(DEMO, &conf).await;
    let addr = conf.gate_addr().parse().unwrap();
    let load = Pipeline::start(addr, demo::IM_ECHO, CONNS, WINDOW)
        .await
        .expect("the load connects");
    let flowing = (CONNS * WINDOW) as u64;
    assert!(load.wait_echoes(flowing, T).await, "the load does not flow");
    load.set_phase(1);
    let at = Instant::now();
    fault(&mut im1);
    gate.link_event("im-1", "down", 1, HEARTBEAT_TIMEOUT + T)
        .await;
    assert!(
        load.wait_echoes(flowing, T).await,
        "the load does not flow through im-2"
    );
    let report = load.finish(Duration::from_secs(5)).await;
    // Frozen processes are killed on drop, with the others.
    drop(im1);
    (report, at, gate, conf)
}

fn check(test: &str, report: &Report, at: Instant, bound: Duration) {
    let total = report.total();
    // Error answers are charged to the requests they answer, which were
    // sent before the fault: the window of all of them is the one to time.
    let last_error_ms = total
        .error_window
        .map(|(_, last)| last.saturating_duration_since(at).as_millis());
    let first_error_ms = total
        .error_window
        .map(|(first, _)| first.saturating_duration_since(at).as_millis());
    eprintln!(
        "FIGURES {test}: {} s, sent {}, echoed {}, errors {:?}, never answered {}; \
         error answers {first_error_ms:?}..{last_error_ms:?} ms after the fault \
         (bound {} ms); closed connections {}",
        report.ran.as_secs_f64(),
        total.sent,
        total.echoed,
        total.errors,
        total.never_answered,
        bound.as_millis(),
        report.closed_connections,
    );
    assert_eq!(report.closed_connections, 0, "{report:?}");
    assert_eq!(total.never_answered, 0, "{total:?}");
    assert!(total.sent > (CONNS * WINDOW) as u64, "{total:?}");
    // The node held about half the sessions, 16 requests in flight each.
    let lost = total.errors.get("node_lost").copied().unwrap_or(0);
    assert!(lost > 0, "nothing answered node_lost: {total:?}");
    for code in total.errors.keys() {
        assert_eq!(code, "node_lost", "{total:?}");
    }
    let (first, last) = total.error_window.expect("error answers after the fault");
    assert!(first >= at, "an error answer came before the fault");
    assert!(
        last.saturating_duration_since(at) < bound,
        "the last error answer came {:?} after the fault",
        last.saturating_duration_since(at)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_backend_leaves_no_request_unanswered() {
    let _serial = SERIAL.lock().await;
    // Frozen for 50 ms first, then killed: a backend answers a batch within
    // microseconds while requests wait mostly in the gate, so a kill at a
    // random instant may find nothing open on it (correct, and it proves
    // nothing; one run in four or five did). Requests forwarded during the
    // freeze are surely open at the kill. 50 ms is far below the heartbeat
    // timeout: the gate learns of the loss from the closed socket.
    let (report, at, mut gate, _conf) = load_across(|im1| {
        im1.signal(libc::SIGSTOP);
        std::thread::sleep(Duration::from_millis(50));
        im1.kill();
    })
    .await;
    assert!(gate.running(), "the gate died:\n{}", gate.log());
    // A kill closes the socket: the gate knows at once.
    check("kill_9_pipelined", &report, at, SLACK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_of_a_backend_leaves_no_request_unanswered() {
    let _serial = SERIAL.lock().await;
    let (report, at, mut gate, _conf) = load_across(|im1| im1.signal(libc::SIGSTOP)).await;
    assert!(gate.running(), "the gate died:\n{}", gate.log());
    gate.wait_log_n(&["{peer=im-1 ", "declared dead"], 1, T)
        .await;
    // A frozen node is found by the heartbeat timeout.
    check("sigstop_pipelined", &report, at, HEARTBEAT_TIMEOUT + SLACK);
}
