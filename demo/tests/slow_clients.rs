//! Clients that stop reading under a broadcast flood, against a gate
//! process: each is reset (not closed gracefully) once its outbound queue
//! fills — its bound in bytes, `session_queue_bytes`, at the default
//! 1 MiB — so neither the gate nor the kernel keeps its backlog; the gate's
//! RSS stays bounded meanwhile.
//!
//! `LAZY_CLIENTS` (default 200) sets how many. Each lazy client has a 4 KiB
//! receive buffer, but the gate's send buffer towards it still grows to
//! about 3 MB on loopback before its queue starts to fill: 1,000 of them
//! make the kernel hold about 3 GB at the peak, past the default `tcp_mem`
//! limit that every process of the machine shares, so the default stays
//! well below. RELIABILITY.md reports a run with `LAZY_CLIENTS=1000`:
//! `LAZY_CLIENTS=1000 cargo test -p demo --test slow_clients -- --nocapture`.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zinx_test_support::T;
use zinx_test_support::chat::{login, wait_ready};
use zinx_test_support::conf::Conf;
use zinx_test_support::process::Proc;

/// The demo server built for this test run.
const DEMO: &str = env!("CARGO_BIN_EXE_demo");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_are_reset_and_the_gate_stays_small() {
    let lazy_clients: usize = std::env::var("LAZY_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    const SIZE: usize = 32 * 1024;
    // The harness settings: the queue bounds are the defaults (1024
    // frames, 1 MiB).
    let conf = Conf::new();
    let addr = conf.gate_addr();
    let _im1 = Proc::demo(DEMO, "im-1", &conf, &["--id", "2"]);
    let _im2 = Proc::demo(DEMO, "im-2", &conf, &["--id", "3"]);
    let gate = Proc::demo(DEMO, "gate-1", &conf, &["--id", "1"]);
    wait_ready(&addr).await;
    let mut pusher = login(&addr, "pusher").await;
    let rss_before = gate.rss_kib();

    // Clients that log in (the demo broadcasts to logged-in users) and then
    // never read anything, not even the login answer.
    let mut lazy = Vec::new();
    for i in 0..lazy_clients {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut s = socket.connect(addr.parse().unwrap()).await.unwrap();
        let login = zinx_cluster::Frame::new(
            demo::LOGIN,
            json!({"name": format!("lazy-{i}")}).to_string(),
        );
        s.write_all(&login.to_bytes().unwrap()).await.unwrap();
        lazy.push(s);
    }
    // Connected and logged in, every one (the gate logs each login).
    gate.wait_log_n(&["logged in", "uid=lazy-"], lazy_clients, T)
        .await;
    let rss_connected = gate.rss_kib();

    // Broadcasts, one at a time (the pusher reads its own copy), until the
    // gate has closed every lazy client for its full queue.
    let text = "x".repeat(SIZE);
    let started = Instant::now();
    let mut peak = rss_connected;
    let mut broadcasts = 0;
    let closed = |gate: &Proc| {
        gate.log_lines(&["session closed", "reason=QueueFull"])
            .len()
    };
    while closed(&gate) < lazy_clients {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{} of {lazy_clients} lazy clients closed after {broadcasts} broadcasts",
            closed(&gate)
        );
        pusher
            .send(demo::BROADCAST, json!({ "text": text }).to_string())
            .await
            .unwrap();
        loop {
            let f = pusher.recv_timeout(T).await.expect("the pusher's copy");
            if f.msg_id == demo::BROADCAST {
                break;
            }
        }
        broadcasts += 1;
        if broadcasts % 8 == 0 {
            peak = peak.max(gate.rss_kib());
        }
    }
    let flood = started.elapsed();
    peak = peak.max(gate.rss_kib());
    let all_closed = Instant::now();

    // Every lazy client finds a reset after the little its own receive
    // buffer held: nothing of the megabytes the gate had written to its
    // socket trickles in.
    let mut resets = 0;
    let mut most_bytes = 0;
    let mut slowest = Duration::ZERO;
    for mut s in lazy {
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        let t = Instant::now();
        let end = tokio::time::timeout(T, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) => return Ok(()),
                    Ok(n) => got += n,
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .expect("a lazy client's connection ended");
        slowest = slowest.max(t.elapsed());
        most_bytes = most_bytes.max(got);
        if matches!(&end, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset) {
            resets += 1;
        }
    }
    let rss_after = gate.rss_kib();
    eprintln!(
        "FIGURES slow_clients: {lazy_clients} lazy clients, {broadcasts} broadcasts of 32 KiB in \
         {flood:?} until all were closed for a full queue; {resets} reset; the most one still \
         read after it was closed {most_bytes} bytes, its slowest end {slowest:?} (read {:?} \
         after the last close); gate RSS {rss_before} KiB before, {rss_connected} KiB \
         connected, peak {peak} KiB, {rss_after} KiB after",
        all_closed.elapsed()
    );
    assert_eq!(resets, lazy_clients, "{}", gate.log());
    // A reset drops the socket's backlog: at most the client's own receive
    // buffer (4 KiB, doubled by the kernel, and a window in flight) arrives.
    assert!(
        most_bytes < 256 * 1024,
        "{most_bytes} bytes after the close"
    );
    // The queues hold shared broadcast payloads: the gate's growth stays
    // below the lazy clients x 1 MiB bound (`session_queue_bytes`; the
    // flood's total is far beyond it).
    let growth_mib = peak.saturating_sub(rss_connected) / 1024;
    let bound_mib = lazy_clients as u64;
    assert!(
        growth_mib < bound_mib,
        "gate RSS grew by {growth_mib} MiB, over {lazy_clients} clients x 1 MiB"
    );
    // Others are still served.
    let mut c = login(&addr, "after").await;
    let f = c.request(demo::IM_ECHO, "still here", T).await.unwrap();
    assert_eq!(&f.data[..], b"still here");
}
