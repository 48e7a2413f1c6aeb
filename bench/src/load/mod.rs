//! `bench load`: closed-loop load with a fixed window of requests in flight
//! per connection, checking every reply.
//!
//! Each request's payload starts with `conn u32 | slot u32 | seq u64`
//! (big-endian) and is filled up to `--size` with bytes derived from `seq`,
//! so every request is distinct. A reply must carry the request's msg_id and
//! exactly its bytes; the slot number finds the request it answers, so
//! replies may come back in any order. A frame on msg_id 0 is an error reply
//! (the gate's error frame carries no copy of the request): it answers the
//! oldest request in flight on that connection.
//!
//! One task per connection reads whatever has arrived, handles every whole
//! frame in it, encodes the follow-up requests into one buffer and writes it
//! at once. Because a connection never has more than `window` requests and
//! replies in flight together, reading and writing in one task cannot
//! deadlock as long as `window × frame size` fits in the socket buffers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, stream};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::net::TcpStream;

use crate::sys::Connector;

mod conn;
pub(crate) mod ws;

use conn::{Conn, ConnTotals, Wire};
use ws::WsWire;

/// Bytes of the identifying prefix of every request payload.
pub(crate) const PAYLOAD_HEADER: usize = 16;

/// Connections opened at once while setting up.
const CONNECT_CONCURRENCY: usize = 64;

/// Latency samples a connection keeps before merging them into the shared
/// histogram (one lock per this many replies).
const SAMPLE_BATCH: usize = 1024;

/// Above this many bytes in flight per connection the single-task loop may
/// stall on full socket buffers.
const WINDOW_BYTES_WARN: usize = 1 << 20;

/// When a run stops.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StopAt {
    /// After this long of measurement.
    Duration(Duration),
    /// After this many measured replies, over all connections.
    Requests(u64),
}

/// What `bench load` does.
#[derive(Debug, Clone)]
pub(crate) struct LoadPlan {
    /// Where to connect.
    pub(crate) addr: std::net::SocketAddr,
    /// msg_id of every request; replies must carry the same.
    pub(crate) msg_id: u32,
    /// Connections.
    pub(crate) conns: usize,
    /// Requests in flight per connection.
    pub(crate) window: usize,
    /// Payload bytes per request (at least [`PAYLOAD_HEADER`]).
    pub(crate) size: usize,
    /// When to stop.
    pub(crate) stop: StopAt,
    /// Unmeasured load before measuring starts.
    pub(crate) warmup: Duration,
    /// How long a connection waits for a reply before giving up on the
    /// requests it has in flight.
    pub(crate) reply_timeout: Duration,
    /// Show a progress bar on stderr.
    pub(crate) progress: bool,
    /// Speak WebSocket, upgrading on this path.
    pub(crate) ws: Option<String>,
    /// Speak TLS (WSS with `ws`).
    pub(crate) tls: Option<TlsPlan>,
}

/// TLS for `bench load` and `bench idle`: what to trust, and the name to
/// check.
#[derive(Debug, Clone)]
pub(crate) struct TlsPlan {
    /// The PEM file trusted (for the command line).
    pub(crate) ca: std::path::PathBuf,
    /// The certificates of that file.
    pub(crate) trust: zinx_cluster_client::ClientTls,
    /// The name the gate's certificate must carry.
    pub(crate) server_name: String,
}

impl LoadPlan {
    /// The equivalent command line (without the binary name).
    pub(crate) fn command(&self) -> String {
        let stop = match self.stop {
            StopAt::Duration(d) => format!("--duration {}", d.as_secs_f64()),
            StopAt::Requests(r) => format!("--requests {r}"),
        };
        let mut transport = match &self.ws {
            Some(path) => format!(" --ws {path}"),
            None => String::new(),
        };
        if let Some(tls) = &self.tls {
            transport.push_str(&format!(
                " --tls {} --server-name {}",
                tls.ca.display(),
                tls.server_name
            ));
        }
        format!(
            "bench load --addr {} --msg-id {} --conns {} --window {} --size {} {stop} --warmup {}{transport}",
            self.addr,
            self.msg_id,
            self.conns,
            self.window,
            self.size,
            self.warmup.as_secs_f64()
        )
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Latency {
    /// Median.
    pub(crate) p50: u64,
    /// 90th percentile.
    pub(crate) p90: u64,
    /// 99th percentile.
    pub(crate) p99: u64,
    /// 99.9th percentile.
    pub(crate) p999: u64,
    /// Largest sample.
    pub(crate) max: u64,
    /// Mean.
    pub(crate) mean: f64,
}

impl Latency {
    pub(crate) fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoadReport {
    /// Server address.
    pub(crate) addr: String,
    /// Request msg_id.
    pub(crate) msg_id: u32,
    /// Connections.
    pub(crate) conns: usize,
    /// Requests in flight per connection.
    pub(crate) window: usize,
    /// Payload bytes.
    pub(crate) size: usize,
    /// Measured replies (correct ones, inside the measurement window).
    pub(crate) messages: u64,
    /// Length of the measurement window in seconds.
    pub(crate) elapsed_s: f64,
    /// `messages / elapsed_s`.
    pub(crate) msgs_per_s: f64,
    /// Latency of the measured replies, microseconds.
    pub(crate) latency_us: Latency,
    /// Error frames (msg_id 0) received.
    pub(crate) errors: u64,
    /// Replies that did not match a request in flight (wrong msg_id,
    /// altered bytes, unknown slot).
    pub(crate) mismatches: u64,
    /// Requests that never got a reply (reply timeout, connection closed,
    /// undecodable stream).
    pub(crate) lost: u64,
    /// The first error frame's text and the first connection failure, for
    /// diagnosis.
    pub(crate) first_problem: Option<String>,
}

impl LoadReport {
    /// True when every request got its exact reply.
    pub(crate) fn clean(&self) -> bool {
        self.errors == 0 && self.mismatches == 0 && self.lost == 0 && self.messages > 0
    }

    /// A short human summary, several lines.
    pub(crate) fn human(&self) -> String {
        let l = &self.latency_us;
        format!(
            "{} msgs in {:.2} s = {:.0} msg/s ({} conns x window {}, {} B, msg_id {})\n\
             latency us: p50 {} p90 {} p99 {} p99.9 {} max {} (mean {:.1})\n\
             errors {} mismatches {} lost {}{}",
            self.messages,
            self.elapsed_s,
            self.msgs_per_s,
            self.conns,
            self.window,
            self.size,
            self.msg_id,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            l.mean,
            self.errors,
            self.mismatches,
            self.lost,
            match &self.first_problem {
                Some(p) => format!("\nfirst problem: {p}"),
                None => String::new(),
            }
        )
    }
}

/// State every connection task shares with the coordinator.
struct Shared {
    /// Set when warmup ends: requests sent from now on are measured.
    measuring: AtomicBool,
    /// Set when a duration run ends: send nothing more, drain, stop.
    stop: AtomicBool,
    /// Measured requests still to send (requests mode).
    remaining: AtomicU64,
    /// Measured replies so far, for the progress bar.
    done: AtomicU64,
    /// Latency of measured replies, microseconds.
    hist: Mutex<Histogram<u64>>,
    /// The first problem any connection saw.
    first_problem: Mutex<Option<String>>,
    /// Requests mode or duration mode.
    stop_at: StopAt,
}

impl Shared {
    fn note_problem(&self, problem: impl FnOnce() -> String) {
        if let Ok(mut p) = self.first_problem.lock()
            && p.is_none()
        {
            *p = Some(problem());
        }
    }
}

/// A new histogram for microsecond latencies up to one hour.
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

/// The TLS handshake of one load (or idle) connection.
pub(crate) async fn handshake(
    tls: &TlsPlan,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    tls.trust
        .wrap(stream, &tls.server_name)
        .await
        .with_context(|| format!("TLS handshake (server name {:?})", tls.server_name))
}

/// Runs a load test.
pub(crate) async fn run(plan: &LoadPlan) -> Result<LoadReport> {
    if plan.size < PAYLOAD_HEADER {
        bail!("--size must be at least {PAYLOAD_HEADER} bytes (the request identifier)");
    }
    if plan.conns == 0 || plan.window == 0 {
        bail!("--conns and --window must be at least 1");
    }
    if plan.window * (plan.size + zinx_cluster::wire::HEADER_LEN) > WINDOW_BYTES_WARN {
        eprintln!(
            "warning: window x frame size is over {WINDOW_BYTES_WARN} bytes per connection; \
             the client may stall on full socket buffers"
        );
    }
    if let StopAt::Requests(0) = plan.stop {
        bail!("--requests must be at least 1");
    }
    // Connection ids travel in the payload as u32.
    u32::try_from(plan.conns).context("--conns is too large")?;
    crate::sys::ensure_nofile_for(plan.conns, "load");
    let connector = if plan.conns > 10_000 {
        Connector::new(plan.addr, std::net::Ipv4Addr::new(127, 0, 0, 2))
    } else {
        Connector::plain(plan.addr)
    };

    let mut streams: Vec<(usize, TcpStream)> = stream::iter(0..plan.conns)
        .map(|i| {
            let connector = &connector;
            async move { connector.connect(i).await.map(|s| (i, s)) }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("connecting to {}", plan.addr))?;
    streams.sort_by_key(|(i, _)| *i);
    let mut wires = Vec::with_capacity(streams.len());
    for (i, stream) in streams {
        let wire = match (&plan.ws, &plan.tls) {
            (None, None) => Wire::Tcp(stream),
            (None, Some(tls)) => Wire::Tls(Box::new(handshake(tls, stream).await?)),
            (Some(path), None) => {
                let url = format!("ws://{}{path}", plan.addr);
                Wire::Ws(Box::new(WsWire::upgrade(stream, &url, i as u64).await?))
            }
            (Some(path), Some(tls)) => {
                let stream = handshake(tls, stream).await?;
                let url = format!("wss://{}:{}{path}", tls.server_name, plan.addr.port());
                Wire::Wss(Box::new(WsWire::upgrade(stream, &url, i as u64).await?))
            }
        };
        wires.push((i, wire));
    }

    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(plan.warmup.is_zero()),
        stop: AtomicBool::new(false),
        remaining: AtomicU64::new(match plan.stop {
            StopAt::Requests(r) => r,
            StopAt::Duration(_) => u64::MAX,
        }),
        done: AtomicU64::new(0),
        hist: Mutex::new(latency_histogram()),
        first_problem: Mutex::new(None),
        stop_at: plan.stop,
    });

    let bar = progress_bar(plan);
    let mut tasks = tokio::task::JoinSet::new();
    let mut start = Instant::now();
    for (i, wire) in wires {
        let conn = Conn::new(i as u32, plan, shared.clone());
        tasks.spawn(conn.run(wire));
    }

    if !plan.warmup.is_zero() {
        bar.set_message("warming up");
        tokio::time::sleep(plan.warmup).await;
        start = Instant::now();
        shared.measuring.store(true, Ordering::Release);
    }
    bar.set_message("measuring");

    let ticker = {
        let shared = shared.clone();
        let bar = bar.clone();
        let stop_at = plan.stop;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let done = shared.done.load(Ordering::Relaxed);
                let secs = start.elapsed().as_secs_f64().max(1e-9);
                match stop_at {
                    StopAt::Duration(_) => bar.set_position(start.elapsed().as_millis() as u64),
                    StopAt::Requests(_) => bar.set_position(done),
                }
                bar.set_message(format!("{done} msgs, {:.0} msg/s", done as f64 / secs));
            }
        })
    };

    let mut end = None;
    if let StopAt::Duration(d) = plan.stop {
        tokio::time::sleep(d).await;
        shared.stop.store(true, Ordering::Release);
        end = Some(Instant::now());
    }

    let mut totals = ConnTotals::default();
    let mut last_reply = start;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(t) => {
                if let Some(at) = t.last_measured {
                    last_reply = last_reply.max(at);
                }
                totals.add(&t);
            }
            Err(e) => {
                shared.note_problem(|| format!("connection task failed: {e}"));
                totals.lost += plan.window as u64;
            }
        }
    }
    ticker.abort();
    bar.finish_and_clear();

    let end = end.unwrap_or(last_reply);
    let elapsed_s = end.saturating_duration_since(start).as_secs_f64();
    let hist = shared
        .hist
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    let first_problem = shared
        .first_problem
        .lock()
        .map(|p| p.clone())
        .unwrap_or(None);
    Ok(LoadReport {
        addr: plan.addr.to_string(),
        msg_id: plan.msg_id,
        conns: plan.conns,
        window: plan.window,
        size: plan.size,
        messages: totals.measured,
        elapsed_s,
        msgs_per_s: if elapsed_s > 0.0 {
            totals.measured as f64 / elapsed_s
        } else {
            0.0
        },
        latency_us: Latency::from_histogram(&hist),
        errors: totals.errors,
        mismatches: totals.mismatches,
        lost: totals.lost,
        first_problem,
    })
}

fn progress_bar(plan: &LoadPlan) -> ProgressBar {
    use std::io::IsTerminal;
    let (len, template) = match plan.stop {
        StopAt::Duration(d) => (
            d.as_millis() as u64,
            "{spinner} [{elapsed_precise}] {wide_bar} {msg}",
        ),
        StopAt::Requests(r) => (
            r,
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
        ),
    };
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    if !plan.progress || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::SinkExt;
    use std::net::SocketAddr;
    use tokio::net::TcpListener;
    use tokio_util::codec::Framed;
    use zinx_cluster::Frame;
    use zinx_cluster::wire::FrameCodec;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(crate::echo_server::serve(
            listener,
            zinx_cluster::wire::DEFAULT_MAX_FRAME_LEN,
        ));
        addr
    }

    /// Echoes, but every `every`-th frame of a connection goes through `f`.
    async fn faulty_server(every: u64, f: fn(Frame) -> Frame) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut framed = Framed::new(stream, FrameCodec::default());
                    let mut n = 0u64;
                    while let Some(Ok(frame)) = framed.next().await {
                        n += 1;
                        let out = if n % every == 0 { f(frame) } else { frame };
                        if framed.send(out).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn plan(addr: SocketAddr, requests: u64) -> LoadPlan {
        LoadPlan {
            addr,
            msg_id: 5,
            conns: 4,
            window: 4,
            size: 64,
            stop: StopAt::Requests(requests),
            warmup: Duration::ZERO,
            reply_timeout: Duration::from_secs(2),
            progress: false,
            ws: None,
            tls: None,
        }
    }

    /// A WebSocket echo: every binary message back as it came.
    async fn ws_echo_server() -> SocketAddr {
        use futures::SinkExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_binary() && ws.send(msg).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn websocket_requests_get_their_exact_replies() {
        let mut p = plan(ws_echo_server().await, 2000);
        p.ws = Some("/".into());
        assert!(p.command().ends_with(" --ws /"), "{}", p.command());
        let report = run(&p).await.unwrap();
        assert!(report.clean(), "{}", report.human());
        assert_eq!(report.messages, 2000);
    }

    /// A TLS echo server with a certificate made now; the plan's TLS
    /// settings trusting it.
    async fn tls_echo_server() -> (SocketAddr, TlsPlan, tempfile::TempDir) {
        use tokio_rustls::rustls;
        let dir = tempfile::tempdir().unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ca = dir.path().join("gate.pem");
        std::fs::write(&ca, certified.cert.pem()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der())
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let (mut rd, mut wr) = tokio::io::split(tls);
                    let _ = tokio::io::copy(&mut rd, &mut wr).await;
                });
            }
        });
        let tls = TlsPlan {
            trust: zinx_cluster_client::ClientTls::trusting_pem_file(&ca).unwrap(),
            ca,
            server_name: "localhost".into(),
        };
        (addr, tls, dir)
    }

    #[tokio::test]
    async fn tls_requests_get_their_exact_replies() {
        let (addr, tls, _dir) = tls_echo_server().await;
        let mut p = plan(addr, 2000);
        p.tls = Some(tls);
        assert!(
            p.command().ends_with(" --server-name localhost"),
            "{}",
            p.command()
        );
        let report = run(&p).await.unwrap();
        assert!(report.clean(), "{}", report.human());
        assert_eq!(report.messages, 2000);
        // A wrong name is refused by the handshake: no load runs.
        p.tls.as_mut().unwrap().server_name = "other.example".into();
        let e = run(&p).await.unwrap_err();
        assert!(format!("{e:#}").contains("TLS handshake"), "{e:#}");
    }

    #[tokio::test]
    async fn every_request_gets_its_exact_reply() {
        let report = run(&plan(echo_server().await, 2000)).await.unwrap();
        assert!(report.clean(), "{}", report.human());
        assert_eq!(report.messages, 2000);
        assert!(report.msgs_per_s > 0.0);
        assert!(report.latency_us.max >= report.latency_us.p50);
    }

    #[tokio::test]
    async fn duration_runs_stop_by_themselves() {
        let mut p = plan(echo_server().await, 0);
        p.stop = StopAt::Duration(Duration::from_millis(300));
        p.warmup = Duration::from_millis(100);
        let report = run(&p).await.unwrap();
        assert!(report.clean(), "{}", report.human());
        assert!(
            (0.25..1.0).contains(&report.elapsed_s),
            "{}",
            report.elapsed_s
        );
    }

    #[tokio::test]
    async fn altered_replies_are_mismatches() {
        let addr = faulty_server(10, |mut f| {
            let mut data = f.data.to_vec();
            if let Some(last) = data.last_mut() {
                *last ^= 1;
            }
            f.data = data.into();
            f
        })
        .await;
        let report = run(&plan(addr, 1000)).await.unwrap();
        assert!(!report.clean());
        assert!(report.mismatches > 0, "{}", report.human());
        assert_eq!(report.lost, 0, "{}", report.human());
    }

    #[tokio::test]
    async fn replies_on_another_msg_id_are_mismatches() {
        let addr = faulty_server(10, |f| Frame::new(f.msg_id + 1, f.data)).await;
        let report = run(&plan(addr, 1000)).await.unwrap();
        assert!(report.mismatches > 0, "{}", report.human());
    }

    #[tokio::test]
    async fn error_frames_are_counted_and_free_the_window() {
        let addr = faulty_server(5, |_| {
            Frame::new(0, r#"{"msg_id":5,"code":"x","error":"no"}"#)
        })
        .await;
        let report = run(&plan(addr, 1000)).await.unwrap();
        assert!(report.errors >= 150, "{}", report.human());
        assert_eq!(report.lost, 0, "{}", report.human());
        assert_eq!(report.messages + report.errors, 1000);
        assert!(report.first_problem.unwrap().contains("error frame"));
    }

    #[tokio::test]
    async fn unanswered_requests_are_lost_not_hung() {
        // Swallows every 10th request: its window slot never comes back.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut framed = Framed::new(stream, FrameCodec::default());
                    let mut n = 0u64;
                    while let Some(Ok(frame)) = framed.next().await {
                        n += 1;
                        if n % 10 != 0 && framed.send(frame).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let mut p = plan(addr, 1000);
        p.reply_timeout = Duration::from_millis(300);
        let report = run(&p).await.unwrap();
        assert!(report.lost > 0, "{}", report.human());
        assert!(!report.clean());
    }

    #[tokio::test]
    async fn too_small_payloads_are_refused() {
        let mut p = plan(echo_server().await, 10);
        p.size = 8;
        assert!(run(&p).await.is_err());
    }
}
