//! `bench broadcast`: fan-out latency of the demo's broadcast (msg 4).
//!
//! Logs in many sessions (msg 1, distinct names), then per round has one of
//! them broadcast a text naming the round and measures, for every session,
//! how long after the send it received it. A round is complete when every
//! session (the sender included) got it; what has not arrived within the
//! timeout is counted missing.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use demo::{Answer, BROADCAST, Delivery, LOGIN, Login, Shout};
use futures::{SinkExt, StreamExt, stream};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use zinx_cluster::Frame;
use zinx_cluster::wire::FrameCodec;

use crate::load::{Latency, latency_histogram};
use crate::sys::Connector;

/// Sessions connected and logged in at once.
pub(crate) const LOGIN_CONCURRENCY: usize = 256;

/// What `bench broadcast` does.
#[derive(Debug, Clone)]
pub(crate) struct BroadcastPlan {
    /// Gate address.
    pub(crate) addr: SocketAddr,
    /// Logged-in sessions.
    pub(crate) sessions: usize,
    /// Broadcasts, one per round.
    pub(crate) rounds: usize,
    /// How long a round waits for every delivery.
    pub(crate) timeout: Duration,
    /// Pause between rounds.
    pub(crate) pause: Duration,
    /// First loopback source address (see [`Connector`]).
    pub(crate) source_base: Ipv4Addr,
    /// Show a progress bar while logging in.
    pub(crate) progress: bool,
}

impl BroadcastPlan {
    /// The equivalent command line.
    pub(crate) fn command(&self) -> String {
        format!(
            "bench broadcast --addr {} --sessions {} --rounds {} --timeout {} --source-base {}",
            self.addr,
            self.sessions,
            self.rounds,
            self.timeout.as_secs_f64(),
            self.source_base
        )
    }
}

/// One round's outcome.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Round {
    /// Time until the last session received it, ms; `None` when some never did.
    pub(crate) all_delivered_ms: Option<f64>,
    /// Median delivery time in this round, ms.
    pub(crate) p50_ms: f64,
    /// Sessions that did not receive it in time.
    pub(crate) missing: usize,
}

/// What `bench broadcast` found.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BroadcastReport {
    /// Gate address.
    pub(crate) addr: String,
    /// Sessions asked for.
    pub(crate) sessions: usize,
    /// Sessions logged in.
    pub(crate) logged_in: usize,
    /// Sessions that failed to connect or log in.
    pub(crate) login_failures: usize,
    /// Each round.
    pub(crate) rounds: Vec<Round>,
    /// Median over rounds of the time until all received, ms (complete
    /// rounds only).
    pub(crate) all_delivered_p50_ms: Option<f64>,
    /// Largest time until all received, ms (complete rounds only).
    pub(crate) all_delivered_max_ms: Option<f64>,
    /// Per-delivery latency over all rounds, microseconds.
    pub(crate) delivery_us: Latency,
    /// Deliveries missing over all rounds.
    pub(crate) missing: usize,
    /// Error frames (msg_id 0) received.
    pub(crate) errors: u64,
    /// Sessions closed by the server during the run.
    pub(crate) closed: u64,
    /// The first failure seen.
    pub(crate) first_problem: Option<String>,
}

impl BroadcastReport {
    /// Everyone logged in and every broadcast reached everyone.
    pub(crate) fn clean(&self) -> bool {
        self.login_failures == 0
            && self.missing == 0
            && self.errors == 0
            && self.closed == 0
            && !self.rounds.is_empty()
    }

    /// A short human summary.
    pub(crate) fn human(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1} ms"));
        let mut s = format!(
            "{} of {} sessions logged in to {}; {} rounds\n\
             time until all received: p50 {} max {}\n\
             per delivery us: p50 {} p99 {} max {}\n\
             missing {} errors {} closed {}",
            self.logged_in,
            self.sessions,
            self.addr,
            self.rounds.len(),
            ms(self.all_delivered_p50_ms),
            ms(self.all_delivered_max_ms),
            self.delivery_us.p50,
            self.delivery_us.p99,
            self.delivery_us.max,
            self.missing,
            self.errors,
            self.closed
        );
        if let Some(p) = &self.first_problem {
            s.push_str(&format!("\nfirst problem: {p}"));
        }
        s
    }
}

/// Counters the reader tasks share.
#[derive(Default)]
struct Counters {
    errors: AtomicU64,
    closed: AtomicU64,
}

/// The reading half of a bench session.
pub(crate) type Reader = FramedRead<OwnedReadHalf, FrameCodec>;
/// The writing half of a bench session.
pub(crate) type Writer = FramedWrite<OwnedWriteHalf, FrameCodec>;

/// Connects session `i` and logs it in as `name`.
pub(crate) async fn login(
    connector: &Connector,
    i: usize,
    name: String,
    timeout: Duration,
) -> Result<(Reader, Writer)> {
    let stream = connector.connect(i).await?;
    let (r, w) = stream.into_split();
    let mut reader = FramedRead::new(r, FrameCodec::default());
    let mut writer = FramedWrite::new(w, FrameCodec::default());
    let body = serde_json::to_vec(&Login { name })?;
    writer.send(Frame::new(LOGIN, body)).await?;
    let reply = match tokio::time::timeout(timeout, reader.next()).await {
        Err(_) => bail!("no login reply within {timeout:?}"),
        Ok(None) => bail!("connection closed during login"),
        Ok(Some(r)) => r?,
    };
    if reply.msg_id != LOGIN {
        bail!(
            "login answered on msg_id {}: {}",
            reply.msg_id,
            String::from_utf8_lossy(&reply.data)
        );
    }
    match serde_json::from_slice::<Answer>(&reply.data) {
        Ok(Answer { ok: true, .. }) => Ok((reader, writer)),
        _ => bail!("login refused: {}", String::from_utf8_lossy(&reply.data)),
    }
}

/// Reads pushes on one session and reports each broadcast round it sees.
async fn read_pushes(
    mut reader: Reader,
    deliveries: mpsc::Sender<(u64, Instant)>,
    counters: Arc<Counters>,
) {
    while let Some(next) = reader.next().await {
        let Ok(frame) = next else { break };
        let now = Instant::now();
        match frame.msg_id {
            BROADCAST => {
                let round = serde_json::from_slice::<Delivery>(&frame.data)
                    .ok()
                    .and_then(|p| p.text.strip_prefix("bench-round-")?.parse::<u64>().ok());
                if let Some(round) = round
                    && deliveries.send((round, now)).await.is_err()
                {
                    return;
                }
            }
            0 => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
    counters.closed.fetch_add(1, Ordering::Relaxed);
}

/// Logs the sessions in, runs the rounds, closes everything.
pub(crate) async fn run(plan: &BroadcastPlan) -> Result<BroadcastReport> {
    if plan.sessions == 0 || plan.rounds == 0 {
        bail!("--sessions and --rounds must be at least 1");
    }
    crate::sys::ensure_nofile_for(plan.sessions, "broadcast");
    let connector = Connector::new(plan.addr, plan.source_base);
    // Distinct from any earlier run's names, so an earlier run's sessions
    // can never be confused with this one's.
    let run_tag = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() % 1_000_000)
            .unwrap_or(0)
    );

    let bar = ProgressBar::new(plan.sessions as u64);
    if let Ok(style) = ProgressStyle::with_template("{spinner} logging in {wide_bar} {pos}/{len}") {
        bar.set_style(style);
    }
    if !plan.progress || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let login_timeout = Duration::from_secs(10);
    let results: Vec<Result<(Reader, Writer)>> = stream::iter(0..plan.sessions)
        .map(|i| {
            let (connector, bar) = (&connector, &bar);
            let name = format!("b{run_tag}-{i}");
            async move {
                let r = login(connector, i, name, login_timeout).await;
                bar.inc(1);
                r
            }
        })
        .buffer_unordered(LOGIN_CONCURRENCY)
        .collect()
        .await;
    bar.finish_and_clear();

    let mut first_problem = None;
    let mut login_failures = 0;
    let counters = Arc::new(Counters::default());
    let (tx, mut rx) = mpsc::channel::<(u64, Instant)>(plan.sessions * 2);
    let mut writers = Vec::with_capacity(plan.sessions);
    let mut readers = tokio::task::JoinSet::new();
    for r in results {
        match r {
            Ok((reader, writer)) => {
                writers.push(writer);
                readers.spawn(read_pushes(reader, tx.clone(), counters.clone()));
            }
            Err(e) => {
                login_failures += 1;
                first_problem.get_or_insert_with(|| format!("login: {e:#}"));
            }
        }
    }
    drop(tx);
    let n = writers.len();
    if n == 0 {
        bail!(
            "no session could log in to {}: {}",
            plan.addr,
            first_problem.unwrap_or_default()
        );
    }

    let mut rounds = Vec::with_capacity(plan.rounds);
    let mut all = latency_histogram();
    for round in 0..plan.rounds {
        let sender = &mut writers[round % n];
        let body = serde_json::to_vec(&Shout {
            text: format!("bench-round-{round}"),
        })?;
        let t0 = Instant::now();
        if let Err(e) = sender.send(Frame::new(BROADCAST, Bytes::from(body))).await {
            first_problem.get_or_insert_with(|| format!("round {round}: send failed: {e}"));
            rounds.push(Round {
                all_delivered_ms: None,
                p50_ms: 0.0,
                missing: n,
            });
            continue;
        }
        let deadline = tokio::time::Instant::from_std(t0 + plan.timeout);
        let mut hist = latency_histogram();
        let mut got = 0;
        let mut last = Duration::ZERO;
        while got < n {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((r, at))) if r == round as u64 => {
                    let d = at.saturating_duration_since(t0);
                    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                    hist.saturating_record(us);
                    all.saturating_record(us);
                    last = last.max(d);
                    got += 1;
                }
                // A late copy of an earlier round: already counted missing.
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let missing = n - got;
        if missing > 0 {
            first_problem.get_or_insert_with(|| {
                format!(
                    "round {round}: {missing} of {n} sessions got nothing within {:?}",
                    plan.timeout
                )
            });
        }
        rounds.push(Round {
            all_delivered_ms: (missing == 0).then_some(last.as_secs_f64() * 1000.0),
            p50_ms: hist.value_at_quantile(0.5) as f64 / 1000.0,
            missing,
        });
        tokio::time::sleep(plan.pause).await;
    }
    // Read before closing: our own closing must not count as the server's.
    let errors = counters.errors.load(Ordering::Relaxed);
    let closed = counters.closed.load(Ordering::Relaxed);
    readers.abort_all();
    drop(writers);

    let mut complete: Vec<f64> = rounds.iter().filter_map(|r| r.all_delivered_ms).collect();
    complete.sort_by(f64::total_cmp);
    Ok(BroadcastReport {
        addr: plan.addr.to_string(),
        sessions: plan.sessions,
        logged_in: n,
        login_failures,
        all_delivered_p50_ms: median(&complete),
        all_delivered_max_ms: complete.last().copied(),
        delivery_us: Latency::from_histogram(&all),
        missing: rounds.iter().map(|r| r.missing).sum(),
        rounds,
        errors,
        closed,
        first_problem,
    })
}

/// Median of sorted values (mean of the middle two for an even count).
pub(crate) fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[1.0, 2.0, 9.0]), Some(2.0));
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), Some(3.0));
    }

    #[tokio::test]
    async fn a_server_that_refuses_logins_is_an_error_not_a_hang() {
        // The baseline echo-server echoes the login request instead of
        // answering {"ok":true}.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(crate::echo_server::serve(listener, 1024));
        let plan = BroadcastPlan {
            addr,
            sessions: 3,
            rounds: 1,
            timeout: Duration::from_millis(200),
            pause: Duration::ZERO,
            source_base: Ipv4Addr::new(127, 0, 0, 2),
            progress: false,
        };
        let err = run(&plan).await.unwrap_err();
        assert!(format!("{err:#}").contains("login refused"), "{err:#}");
    }
}
