//! Clients that break the rules: never reading (closed at their queue's
//! bound), oversize and huge frame headers, silence and trickling (closed
//! at the idle timeout), thousands of connections of garbage.
//!
//! Bounds come from the settings each test sets: an idle client is closed
//! between `idle_timeout_ms` and an eighth of it later (the gate's idle
//! sweep), plus [`MARGIN`] for a loaded machine. The garbage test floods
//! the process with connections: it runs alone ([`HEAVY`]), the tests of
//! this file that time something take a read lock.

use std::time::{Duration, Instant};

use zinx_cluster_client::Client;
use zinx_test_support::T;
use zinx_test_support::cluster::{TestCluster, req, s};

use crate::{FAST, RuntimeCluster};

/// What a machine running ten jobs on two cores may add to a timer or a
/// close that is due.
const MARGIN: Duration = Duration::from_secs(2);

/// Taken for writing by the garbage test (5,000 connections), for reading
/// by the tests that time a close: they never run beside it.
static HEAVY: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The earliest an idle client is closed, measured from before it
/// connected: `idle_timeout_ms`, less the millisecond the gate's clock
/// (whole milliseconds) may round off.
fn idle_floor(idle_ms: u64) -> Duration {
    Duration::from_millis(idle_ms - 1)
}

/// The latest an idle client is closed: `idle_timeout_ms`, the sweep's
/// period (an eighth of it, at most a second), and [`MARGIN`].
fn idle_bound(idle_ms: u64) -> Duration {
    Duration::from_millis(idle_ms + (idle_ms / 8).clamp(10, 1000)) + MARGIN
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_at_its_queue_bound() {
    let settings = r#"{"heartbeat_interval_ms": 100, "heartbeat_timeout_ms": 600,
        "session_queue": 64, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2, 3]).await;
    let mut lazy = tc.client().await;
    // 2,000 pushes of 16 KiB: far beyond the socket buffers and the queue.
    lazy.send(15, "2000 16384").await.unwrap();
    let mut ok = tc.client().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while tc.running(1).metrics(1).unwrap().queue_full_closes == 0 {
        assert!(Instant::now() < deadline, "the lazy client was not closed");
        // Others keep being served meanwhile.
        let f = req(&mut ok, 5, "alive").await;
        assert_eq!(s(&f), "alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let f = req(&mut ok, 6, "still alive").await;
    assert_eq!(s(&f), "still alive");
    tc.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_reads_broadcasts_is_closed_and_counted() {
    let settings = r#"{"session_queue": 16, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2]).await;
    let mut lazy = tc.client().await;
    let mut sender = tc.client().await;
    // Broadcasts of 32 KiB, one at a time (the sender reads its own copy):
    // the lazy client's socket buffers fill, then its queue of 16.
    let text = "x".repeat(32 * 1024);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tc.running(1).metrics(1).unwrap().queue_full_closes == 0 {
        assert!(Instant::now() < deadline, "the lazy client was not closed");
        sender.send(16, text.clone()).await.unwrap();
        let f = sender.recv_timeout(T).await.expect("the sender's own copy");
        assert_eq!(f.msg_id, 16);
    }
    let m = tc.running(1).metrics(1).unwrap();
    assert_eq!(m.queue_full_closes, 1);
    assert_eq!(m.sessions_open, 1, "only the sender remains");
    // The lazy client finds its connection closed after what was buffered.
    let closed = tokio::time::timeout(T, async { while lazy.recv().await.is_ok() {} }).await;
    assert!(closed.is_ok(), "the lazy client is still open");
    tc.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_reset_within_2s_of_filling_its_bound() {
    use tokio::io::AsyncReadExt;
    let _alone = HEAVY.read().await;
    // A bound in bytes far below the frame bound: 8 broadcasts of 32 KiB.
    let settings = r#"{"session_queue_bytes": 262144, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2]).await;
    // A client with a 4 KiB receive window that never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut lazy = socket.connect(tc.addr(1).parse().unwrap()).await.unwrap();
    let mut sender = tc.client().await;
    let text = "x".repeat(32 * 1024);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(20);
    let mut sent = 0;
    while tc.running(1).metrics(1).unwrap().queue_full_closes == 0 {
        assert!(Instant::now() < deadline, "the lazy client was not closed");
        sender.send(16, text.clone()).await.unwrap();
        sender.recv_timeout(T).await.expect("the sender's own copy");
        sent += 1;
    }
    let full = Instant::now();
    // Now it reads: what its own receive buffer held, then the reset.
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match lazy.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => got += n,
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("the lazy client's connection ended");
    let gone = full.elapsed();
    eprintln!(
        "FIGURES slow_reader_reset: bound filled after {sent} broadcasts of 32 KiB \
         ({:?}); connection reset {gone:?} later, after {got} bytes still in flight",
        full - started
    );
    let e = end.expect_err("a reset, not an orderly close");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    assert!(gone < Duration::from_secs(2), "gone after {gone:?}");
    // A reset drops the socket's backlog (megabytes written towards the
    // client): at most its own receive buffer (4 KiB, doubled by the
    // kernel) and a window in flight arrive.
    assert!(got < 256 * 1024, "{got} bytes after the close");
    let m = tc.running(1).metrics(1).unwrap();
    assert_eq!(m.queue_full_closes, 1);
    assert_eq!(m.sessions_open, 1, "only the sender remains");
    tc.shutdown().await;
}

#[tokio::test]
async fn oversize_frames_and_idle_clients_are_closed() {
    let _alone = HEAVY.read().await;
    let settings = r#"{"max_frame_len": 1024, "idle_timeout_ms": 300, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2]).await;
    let mut big = tc.client().await;
    use tokio::io::AsyncWriteExt;
    big.get_mut()
        .write_all(&[0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    assert!(big.recv_timeout(T).await.is_err());
    // Before the connection: a session's idle clock starts when it opens,
    // and only a complete frame restarts it.
    let started = Instant::now();
    let mut idle = tc.client().await;
    idle.get_mut().write_all(&[0, 0, 0, 5, 0, 0]).await.unwrap(); // half a header
    assert!(idle.recv_timeout(T).await.is_err());
    let closed = started.elapsed();
    assert!(
        closed >= idle_floor(300) && closed < idle_bound(300),
        "idle_timeout_ms 300, closed after {closed:?}"
    );
    let m = tc.running(1).metrics(1).unwrap();
    assert_eq!(m.oversize_closes, 1);
    assert_eq!(m.idle_closes, 1);
    tc.shutdown().await;
}

#[tokio::test]
async fn half_a_frame_then_silence_is_closed_at_the_idle_timeout() {
    let _alone = HEAVY.read().await;
    let settings = r#"{"idle_timeout_ms": 400, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2]).await;
    use tokio::io::AsyncWriteExt;
    // A whole header announcing 100 bytes, then nothing; and the header
    // with 50 of its 100 bytes.
    // Before the connections: a session's idle clock starts when it opens,
    // and only a complete frame restarts it.
    let started = Instant::now();
    let mut header_only = tc.client().await;
    let mut half_data = tc.client().await;
    let header = [0, 0, 0, 6, 0, 0, 0, 100];
    let mut half = header.to_vec();
    half.extend([7u8; 50]);
    header_only.get_mut().write_all(&header).await.unwrap();
    half_data.get_mut().write_all(&half).await.unwrap();
    // Meanwhile a client that talks every 100 ms is never idle.
    let mut talker = tc.client().await;
    let closed_after = |mut c: Client| async move {
        assert!(c.recv_timeout(T).await.is_err(), "closed");
        started.elapsed()
    };
    let talk = async {
        for i in 0..10 {
            assert_eq!(s(&req(&mut talker, 5, &i.to_string()).await), i.to_string());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (a, b, ()) = tokio::join!(closed_after(header_only), closed_after(half_data), talk);
    eprintln!(
        "FIGURES half_a_frame: closed after {a:?} (header only) and {b:?} (half the data), idle_timeout_ms 400"
    );
    for elapsed in [a, b] {
        // Not before the timeout, and not long after it.
        assert!(elapsed >= idle_floor(400), "closed after {elapsed:?}");
        assert!(elapsed < idle_bound(400), "closed after {elapsed:?}");
    }
    assert_eq!(s(&req(&mut talker, 5, "still open").await), "still open");
    let m = tc.running(1).metrics(1).unwrap();
    assert_eq!(m.idle_closes, 2);
    // Only the talker's eleven frames were ever decoded.
    assert_eq!(m.frames_in, 11);
    tc.shutdown().await;
}

#[tokio::test]
async fn a_trickler_is_closed_at_the_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _alone = HEAVY.read().await;
    // One byte a second, idle timeout 2.5 s: every byte arrives well within
    // the timeout, but no frame is ever completed.
    let settings = r#"{"idle_timeout_ms": 2500, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2]).await;
    // Before the connection: its idle clock starts when it opens.
    let started = Instant::now();
    let mut trickler = tc.client().await;
    // A client completing a frame (a zinx heartbeat) every second stays.
    let mut steady = tc.client().await;
    let trickle = async {
        // The header of a 100-byte frame, then its data, byte by byte.
        let mut wire = vec![0, 0, 0, 6, 0, 0, 0, 100];
        wire.extend([7u8; 100]);
        let stream = trickler.get_mut();
        let mut written = 0;
        for b in wire {
            if stream.write_all(&[b]).await.is_err() {
                break;
            }
            written += 1;
            // A second until the next byte, watching for the close.
            let mut probe = [0u8; 64];
            match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut probe)).await {
                Err(_) => {}
                Ok(Ok(n)) if n > 0 => panic!("the trickler got {n} bytes"),
                Ok(_) => break,
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the trickler is still open after {written} bytes"
            );
        }
        (written, started.elapsed())
    };
    let keep = async {
        for _ in 0..4 {
            steady.send(99999, "").await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let ((written, elapsed), ()) = tokio::join!(trickle, keep);
    eprintln!(
        "FIGURES trickler: closed after {elapsed:?} and {written} bytes at one a second, idle_timeout_ms 2500"
    );
    assert!(written >= 2, "{written} bytes");
    assert!(elapsed >= idle_floor(2500), "closed after {elapsed:?}");
    assert!(elapsed < idle_bound(2500), "closed after {elapsed:?}");
    assert_eq!(s(&req(&mut steady, 5, "still open").await), "still open");
    let m = tc.running(1).metrics(1).unwrap();
    assert_eq!(m.idle_closes, 1);
    tc.shutdown().await;
}

/// This process's VmRSS in KiB (a failure when it cannot be read).
fn rss_kib() -> u64 {
    zinx_test_support::rss::rss_kib(std::process::id())
}

#[tokio::test]
async fn huge_length_headers_are_refused_promptly_without_allocating() {
    let _alone = HEAVY.read().await;
    let tc = TestCluster::start(FAST, &[1, 2]).await;
    let before = rss_kib();
    use tokio::io::AsyncWriteExt;
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let mut c = tc.client().await;
        c.get_mut()
            .write_all(&[0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3])
            .await
            .unwrap();
        let started = Instant::now();
        assert!(c.recv_timeout(T).await.is_err(), "closed");
        slowest = slowest.max(started.elapsed());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "closed promptly"
        );
    }
    let after = rss_kib();
    eprintln!(
        "FIGURES huge_length_headers: 50 closed, slowest after {slowest:?}; test process RSS {before} -> {after} KiB"
    );
    // 50 x 4 GiB announced; growth stays within noise (a few MiB).
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert_eq!(tc.running(1).metrics(1).unwrap().oversize_closes, 50);
    tc.shutdown().await;
}

#[tokio::test]
async fn garbage_connections_are_closed_while_clients_are_served() {
    let _alone = HEAVY.write().await;
    let settings = r#"{"idle_timeout_ms": 500, "secret": "test-secret"}"#;
    let tc = TestCluster::start(settings, &[1, 2]).await;
    let addr = tc.addr(1);
    // A legitimate client keeps talking throughout, every 50 ms.
    let mut legit = tc.client().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let legit_task = tokio::spawn(async move {
        let mut served = 0u32;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let f = req(&mut legit, 6, &format!("legit {served}")).await;
            assert_eq!(s(&f), format!("legit {served}"));
            served += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        served
    });
    let started = Instant::now();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    // 5,000 garbage connections, 250 at a time (the test process holds both
    // ends of each socket).
    for _batch in 0..20 {
        let mut tasks = Vec::new();
        for _ in 0..250 {
            let mut garbage = vec![0u8; 64];
            for b in garbage.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            let addr = addr.clone();
            tasks.push(tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let _ = s.write_all(&garbage).await;
                // Read until the gate closes us (error frames may come first).
                let mut sink = [0u8; 4096];
                let closed = tokio::time::timeout(Duration::from_secs(5), async {
                    loop {
                        match s.read(&mut sink).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                closed.is_ok()
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap(), "a garbage connection was not closed");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let served = legit_task
        .await
        .expect("the legitimate client was served throughout");
    assert!(served >= 10, "only {served} legitimate requests");
    let m = tc.running(1).metrics(1).unwrap();
    eprintln!(
        "FIGURES garbage_connections: 5000 closed in {:?}; legitimate requests served meanwhile {served}; closes: oversize {} idle {}; error answers {}",
        started.elapsed(),
        m.oversize_closes,
        m.idle_closes,
        m.error_answers
    );
    assert_eq!(m.sessions_accepted, 5001);
    assert_eq!(m.sessions_open, 1, "only the legitimate session remains");
    tc.shutdown().await;
}
