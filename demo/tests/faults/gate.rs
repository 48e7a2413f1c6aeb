//! The gate dies (kill -9) or stops (SIGTERM) under load; clients that
//! never read, against a gate process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zinx_test_support::T;
use zinx_test_support::chat::{check_chat, login, wait_ready};
use zinx_test_support::conf::{Conf, SETTINGS};
use zinx_test_support::logs::log_time;
use zinx_test_support::process::Proc;

use crate::{
    CONNS, DEMO, GATE_ECHO, GRACE, IM_ECHO, Load, SERIAL, Tally, all, figures, in_flight_at,
    link_event, ms, sleep, tag, three_processes,
};
/// kill -9 of the gate under load: its clients lose their connections
/// (and the requests in flight), the im nodes stay up and drop the link,
/// and a restarted gate serves new clients through the same im nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_gate_under_load() {
    let _serial = SERIAL.lock().await;
    let test_started = Instant::now();
    let conf = Conf::new();
    let addr = conf.gate_addr();
    let (mut gate, mut im1, mut im2) = three_processes(&conf).await;
    // Two users whose messages the im nodes serve.
    let mut users = Vec::new();
    for name in ["alice", "bob"] {
        let mut c = login(&addr, name).await;
        let f = c.request(IM_ECHO, "hi", T).await.unwrap();
        assert_eq!(f.msg_id, IM_ECHO);
        users.push(c);
    }
    let load = Load::start(&addr, IM_ECHO, CONNS, 1).await;
    load.each_replied(3, "before the kill").await;

    let killed = SystemTime::now();
    gate.kill();
    let (logs, _) = load.finish().await;
    for l in &logs {
        assert!(l.closed.is_some(), "a client did not see its gate die");
    }
    let mut noticed = Vec::new();
    for im in [&im1, &im2] {
        let down = link_event(im, "gate-1", "down", 1, T).await;
        noticed.push(ms(killed, log_time(&down)));
    }
    // Each im node dropped the sessions it served once no link came back
    // from the same gate process within the heartbeat timeout: the
    // session-closed hook ran there once for each user, on whichever node
    // served them.
    fn ended(ims: [&Proc; 2], what: &str) -> Vec<String> {
        ims.iter()
            .flat_map(|im| im.log_lines(&["session ended", what]))
            .collect()
    }
    let mut sessions = Vec::new();
    for uid in ["uid=alice", "uid=bob"] {
        let deadline = Instant::now() + T;
        while ended([&im1, &im2], uid).is_empty() && Instant::now() < deadline {
            sleep(Duration::from_millis(50)).await;
        }
        let lines = ended([&im1, &im2], uid);
        assert_eq!(lines.len(), 1, "{uid}:\n{}\n{}", im1.log(), im2.log());
        // `session=1:<seq> `: that session's hook, whatever runs later.
        let session = lines[0]
            .split_whitespace()
            .find(|w| w.starts_with("session="))
            .expect("the session in the line")
            .to_string();
        sessions.push(format!("{session} "));
    }
    // They did so a heartbeat timeout after the kill: they outlived the
    // gate.
    assert!(im1.running(), "im-1 died with the gate:\n{}", im1.log());
    assert!(im2.running(), "im-2 died with the gate:\n{}", im2.log());

    let restarted = SystemTime::now();
    let gate2 = Proc::demo(DEMO, "gate-1-restarted", &conf, &["--id", "1"]);
    wait_ready(&addr).await;
    let serving = SystemTime::now();
    for im in ["im-1", "im-2"] {
        link_event(&gate2, im, "up", 1, T).await;
    }
    for im in [&im1, &im2] {
        link_event(im, "gate-1", "up", 2, T).await;
    }
    // Both im nodes serve the new gate's sessions: the whole protocol, and
    // a short load with nothing lost.
    check_chat(&addr).await;
    let load2 = Load::start(&addr, IM_ECHO, CONNS, 1).await;
    load2.each_replied(3, "after the restart").await;
    let (logs2, ran2) = load2.finish().await;
    // The hooks of the old sessions ran once: not again for the new
    // gate's links.
    for session in &sessions {
        let lines = ended([&im1, &im2], session);
        assert_eq!(lines.len(), 1, "{session}: {lines:#?}");
    }
    let after = Tally::of(all(&logs2));
    assert!(after.sent > 0);
    assert_eq!(after.replies, after.sent, "{after:?}");
    figures(
        "kill_9_of_the_gate_under_load",
        test_started,
        json!({
            "conns": CONNS, "window": 1,
            "before_kill": Tally::of(all(&logs)).json(),
            "connections_closed": logs.iter().filter(|l| l.closed.is_some()).count(),
            "im_nodes_noticed_ms": noticed,
            "restart_to_serving_ms": ms(restarted, serving),
            "after_restart": after.json(), "after_restart_seconds": ran2.as_secs_f64(),
        }),
    );
    for im in [&mut im1, &mut im2] {
        im.interrupt();
        assert_eq!(im.exited(T).await.code(), Some(0));
    }
}

/// SIGTERM of the gate under load (gate-local and forwarded echoes, four
/// in flight per connection): every request written before the signal is
/// answered (its echo, or an error answer), then the connection closes,
/// and the gate exits 0 within the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_of_the_gate_under_load() {
    let _serial = SERIAL.lock().await;
    let test_started = Instant::now();
    let conf = Conf::new();
    let addr = conf.gate_addr();
    let (mut gate, _im1, _im2) = three_processes(&conf).await;
    let local = Load::start(&addr, GATE_ECHO, CONNS / 2, 4).await;
    let forwarded = Load::start(&addr, IM_ECHO, CONNS / 2, 4).await;
    local.each_replied(3, "gate echoes before SIGTERM").await;
    forwarded.each_replied(3, "im echoes before SIGTERM").await;

    let termed = SystemTime::now();
    gate.signal(libc::SIGTERM);
    let status = gate.exited(GRACE + T).await;
    let exited = SystemTime::now();
    assert_eq!(status.code(), Some(0), "{}", gate.log());
    let (mut logs, ran) = local.finish().await;
    logs.extend(forwarded.finish().await.0);

    let mut closed_after = Vec::new();
    for l in &logs {
        let closed = l.closed.expect("the gate closed the connection");
        closed_after.push(ms(termed, closed));
    }
    let before = Tally::of(all(&logs).filter(|r| r.sent < termed));
    let after = Tally::of(all(&logs).filter(|r| r.sent >= termed));
    figures(
        "sigterm_of_the_gate_under_load",
        test_started,
        json!({
            "conns": CONNS, "window": 4, "seconds": ran.as_secs_f64(),
            "sent_before_sigterm": before.json(),
            "sent_before_sigterm_gate_echo": Tally::of(all(&logs).filter(|r| r.sent < termed && r.msg_id == GATE_ECHO)).json(),
            "sent_after_sigterm": after.json(),
            "in_flight_at_sigterm": Tally::of(in_flight_at(&logs, termed)).json(),
            "sigterm_to_exit_ms": ms(termed, exited),
            "connections_closed_ms_after_sigterm": [closed_after.iter().min(), closed_after.iter().max()],
        }),
    );
    assert_eq!(before.lost, 0, "{before:?}");
    for code in before.codes.keys().chain(after.codes.keys()) {
        assert_eq!(code, "node_stopping", "{before:?} {after:?}");
    }
    assert!(
        closed_after
            .iter()
            .all(|c| *c < (GRACE + T).as_millis() as i64),
        "{closed_after:?}"
    );
}

/// Clients that never read while broadcasts are pushed to them are closed
/// at their queue bound (`session_queue` 64 here); the gate's RSS stays
/// within that bound, far below what the pushes add up to; a client that
/// reads is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_are_closed_and_the_gate_stays_small() {
    let _serial = SERIAL.lock().await;
    let test_started = Instant::now();
    const LAZY: usize = 8;
    const PUSHES: usize = 1000;
    const SIZE: usize = 32 * 1024;
    let mut settings: Value = serde_json::from_str(SETTINGS).unwrap();
    settings["session_queue"] = json!(64);
    let conf = Conf::with_settings(&settings.to_string());
    let addr = conf.gate_addr();
    let (gate, _im1, _im2) = three_processes(&conf).await;
    let mut pusher = login(&addr, "pusher").await;
    let mut reader = login(&addr, "reader").await;
    let rss_before = gate.rss_kib();

    // Clients that log in (the demo broadcasts to logged-in users) and then
    // never read anything, not even the login answer.
    let mut lazy = Vec::new();
    for i in 0..LAZY {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let login = zinx_cluster::Frame::new(1, json!({"name": format!("lazy-{i}")}).to_string());
        s.write_all(&login.to_bytes().unwrap()).await.unwrap();
        lazy.push(s);
    }
    // The gate's RSS, sampled while the broadcasts flow.
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampling = Arc::new(AtomicBool::new(true));
    let gate_pid_rss = {
        let peak = peak.clone();
        let sampling = sampling.clone();
        // A failure when the reading fails: a peak of 0 would pass the
        // bound below untested.
        let mut rss = zinx_test_support::rss::RssReader::open(gate.pid())
            .expect("the gate's /proc/PID/status");
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                let kib = rss.kib().expect("the gate's RSS");
                peak.fetch_max(kib, Ordering::Relaxed);
                sleep(Duration::from_millis(10)).await;
            }
        })
    };
    // A reading client keeps asking for echoes meanwhile (and reads the
    // broadcasts it gets too).
    let stop = Arc::new(AtomicBool::new(false));
    let served = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut served = 0u64;
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let want = tag(7, served);
                reader.send(IM_ECHO, want.clone()).await.unwrap();
                loop {
                    let f = reader.recv_timeout(T).await.expect("the reader is served");
                    if f.msg_id == IM_ECHO {
                        assert_eq!(f.data, want);
                        break;
                    }
                }
                worst = worst.max(t.elapsed());
                served += 1;
            }
            (served, worst)
        })
    };
    let text = "x".repeat(SIZE);
    let started = Instant::now();
    for _ in 0..PUSHES {
        pusher
            .send(demo::BROADCAST, json!({ "text": text }).to_string())
            .await
            .unwrap();
        // Its own copy: one broadcast in flight at a time.
        loop {
            let f = pusher.recv_timeout(T).await.expect("the pusher's copy");
            if f.msg_id == demo::BROADCAST {
                break;
            }
        }
    }
    let pushed_in = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (served, worst) = served.await.unwrap();
    sampling.store(false, Ordering::Relaxed);
    gate_pid_rss.await.unwrap();
    let peak = peak.load(Ordering::Relaxed);

    // Each lazy client finds its connection closed once it reads what the
    // kernel buffered.
    let mut received = Vec::new();
    for mut s in lazy {
        let mut n = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        let closed = tokio::time::timeout(T, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => n += k,
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a client that never read is still open");
        received.push(n);
        let _ = s.shutdown().await;
    }
    let closes = gate
        .log_lines(&["session closed", "reason=QueueFull"])
        .len();
    let pushed_bytes = PUSHES * (SIZE + 40);
    figures(
        "clients_that_never_read_are_closed_and_the_gate_stays_small",
        test_started,
        json!({
            "lazy_clients": LAZY, "broadcasts": PUSHES, "broadcast_bytes": SIZE,
            "session_queue": 64,
            "pushes_seconds": pushed_in.as_secs_f64(),
            "bytes_pushed_per_client_unbounded": pushed_bytes,
            "lazy_bytes_received_before_close": [received.iter().min(), received.iter().max()],
            "queue_full_closes": closes,
            "gate_rss_kib": {"before": rss_before, "peak": peak, "growth": peak.saturating_sub(rss_before)},
            "reader": {"echoes": served, "worst_ms": worst.as_millis() as u64},
        }),
    );
    assert_eq!(closes, LAZY, "{}", gate.log());
    assert!(served > 0);
    // Unbounded, the gate would hold LAZY x 32 MiB = 256 MiB of pushes; the
    // queue bound is LAZY x 64 x 32 KiB = 16 MiB.
    let growth_mib = peak.saturating_sub(rss_before) / 1024;
    assert!(growth_mib < 96, "gate RSS grew by {growth_mib} MiB");
}
