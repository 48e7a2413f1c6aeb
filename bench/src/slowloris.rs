//! `bench slowloris`: how fast a node's admin endpoint answers `/healthz`
//! (or any path) while many slowloris connections hold its port.
//!
//! CONNS attackers each keep one connection open that never completes a
//! request: even-numbered ones send nothing, odd-numbered ones drip a
//! request head one byte every `--drip` seconds. When the server closes an
//! attacker's connection, the attacker reconnects at once, as a real
//! slowloris does, so the port is held for the whole run. Once every
//! attacker has connected and `--settle` has passed, PROBES requests are
//! sent one after another, each on a fresh connection from the kernel's
//! source address (127.0.0.1 for a loopback server), and timed from
//! `connect` to the end of the answer.
//!
//! `--sources N` spreads the attackers over N loopback source addresses
//! from `--source-base` (Linux), to see a server's per-address cap from
//! both sides: with one source the attackers share the probes' address.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::sys::Connector;

/// What a dripping attacker sends, one byte at a time, then `a` forever:
/// a request head that never ends.
const DRIP: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";

/// What `bench slowloris` does.
#[derive(Debug, Clone)]
pub(crate) struct SlowlorisPlan {
    /// The admin endpoint.
    pub(crate) addr: SocketAddr,
    /// Attacking connections held open.
    pub(crate) conns: usize,
    /// Probes, one after another.
    pub(crate) probes: usize,
    /// Pause between two probes.
    pub(crate) interval: Duration,
    /// Pause between two bytes of a dripping attacker.
    pub(crate) drip: Duration,
    /// Wait after every attacker connected, before the first probe.
    pub(crate) settle: Duration,
    /// A probe not answered within this long counts as unanswered.
    pub(crate) probe_timeout: Duration,
    /// The probed path, e.g. `/healthz`.
    pub(crate) path: String,
    /// Attackers spread over this many loopback source addresses (1: the
    /// kernel's choice, the probes' own address).
    pub(crate) sources: usize,
    /// First of those source addresses.
    pub(crate) source_base: Ipv4Addr,
}

impl SlowlorisPlan {
    /// The equivalent command line.
    pub(crate) fn command(&self) -> String {
        format!(
            "bench slowloris --addr {} --conns {} --probes {} --interval {} --drip {} --settle {} \
             --probe-timeout {} --path {} --sources {} --source-base {}",
            self.addr,
            self.conns,
            self.probes,
            self.interval.as_secs_f64(),
            self.drip.as_secs_f64(),
            self.settle.as_secs_f64(),
            self.probe_timeout.as_secs_f64(),
            self.path,
            self.sources,
            self.source_base
        )
    }
}

/// What `bench slowloris` found.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SlowlorisReport {
    /// The command that reproduces it.
    pub(crate) command: String,
    /// Attackers asked for.
    pub(crate) conns: usize,
    /// Attacker connections open when the first probe went out.
    pub(crate) holding_at_first_probe: usize,
    /// Attacker connections open when the last probe was answered.
    pub(crate) holding_at_end: usize,
    /// Attacker connections the server closed during the probes, per second.
    pub(crate) server_closes_per_s: f64,
    /// Attacker connects that failed (refused, reset, out of descriptors).
    pub(crate) attacker_connect_failures: u64,
    /// Probes sent.
    pub(crate) probes: usize,
    /// Probes answered with 200.
    pub(crate) ok: usize,
    /// Probes answered with another status, by status.
    pub(crate) other_status: Vec<(u16, usize)>,
    /// Probes not answered within the probe timeout.
    pub(crate) timed_out: usize,
    /// Probes whose connection failed (refused, reset, closed unanswered).
    pub(crate) failed: usize,
    /// Latency of the answered probes (any status), ms.
    pub(crate) p50_ms: Option<f64>,
    /// 90th percentile, ms.
    pub(crate) p90_ms: Option<f64>,
    /// 99th percentile, ms.
    pub(crate) p99_ms: Option<f64>,
    /// Slowest answered probe, ms.
    pub(crate) max_ms: Option<f64>,
    /// The first failure seen, for diagnosis.
    pub(crate) first_problem: Option<String>,
}

impl SlowlorisReport {
    /// Every probe answered 200.
    pub(crate) fn clean(&self) -> bool {
        self.ok == self.probes
    }

    /// A short human summary.
    pub(crate) fn human(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} ms"));
        let mut s = format!(
            "{} probes under {} slowloris connections ({} held at the first probe, {} at the \
             end; the server closed {:.0} attacker connections/s; {} attacker connects failed)\n\
             answered 200: {}, other status: {:?}, unanswered within the timeout: {}, failed: {}\n\
             latency of answered probes: p50 {}, p90 {}, p99 {}, max {}",
            self.probes,
            self.conns,
            self.holding_at_first_probe,
            self.holding_at_end,
            self.server_closes_per_s,
            self.attacker_connect_failures,
            self.ok,
            self.other_status,
            self.timed_out,
            self.failed,
            ms(self.p50_ms),
            ms(self.p90_ms),
            ms(self.p99_ms),
            ms(self.max_ms),
        );
        if let Some(p) = &self.first_problem {
            s.push_str(&format!("\nfirst problem: {p}"));
        }
        s.push_str(&format!("\nreproduce: {}", self.command));
        s
    }
}

/// Counters the attackers share with the prober.
#[derive(Default)]
struct Attack {
    /// Attackers that connected at least once.
    started: AtomicUsize,
    /// Attacker connections open now.
    holding: AtomicUsize,
    /// Attacker connections the server closed.
    closed_by_server: AtomicU64,
    /// Attacker connects that failed.
    connect_failures: AtomicU64,
}

/// One attacker: holds a connection that never completes a request,
/// reconnecting whenever the server closes it, until `stop`.
async fn attacker(
    index: usize,
    connector: Arc<Connector>,
    src: Option<Ipv4Addr>,
    drip: Duration,
    attack: Arc<Attack>,
    stop: CancellationToken,
) {
    let mut first = true;
    while !stop.is_cancelled() {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            s = connector.connect_from(src) => s,
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(_) => {
                attack.connect_failures.fetch_add(1, Ordering::Relaxed);
                // Out of descriptors or refused: do not spin.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
                }
            }
        };
        if first {
            attack.started.fetch_add(1, Ordering::Relaxed);
            first = false;
        }
        attack.holding.fetch_add(1, Ordering::Relaxed);
        let closed = hold(&mut stream, index % 2 == 1, drip, &stop).await;
        attack.holding.fetch_sub(1, Ordering::Relaxed);
        if closed {
            attack.closed_by_server.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Holds `stream` (dripping a head when `dripping`) until the server closes
/// it (`true`) or `stop` (`false`).
async fn hold(
    stream: &mut TcpStream,
    dripping: bool,
    drip: Duration,
    stop: &CancellationToken,
) -> bool {
    let (mut rd, mut wr) = stream.split();
    let mut sent = 0usize;
    let mut tick = tokio::time::interval(drip);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sink = [0u8; 512];
    loop {
        tokio::select! {
            _ = stop.cancelled() => return false,
            r = rd.read(&mut sink) => match r {
                // An answer (a 400, a 503) or the close itself.
                Ok(n) if n > 0 => continue,
                _ => return true,
            },
            _ = tick.tick(), if dripping => {
                let byte = DRIP.get(sent).copied().unwrap_or(b'a');
                if wr.write_all(&[byte]).await.is_err() {
                    return true;
                }
                sent += 1;
            }
        }
    }
}

/// How one probe ended.
enum Probe {
    /// The status and the time from connect to the end of the answer.
    Answered(u16, Duration),
    TimedOut,
    Failed(String),
}

async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Probe {
    let started = Instant::now();
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: probe\r\n\r\n").as_bytes())
            .await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Probe::TimedOut,
        Ok(Err(e)) => Probe::Failed(e.to_string()),
        Ok(Ok(out)) => {
            let status = out
                .get(9..12)
                .and_then(|s| std::str::from_utf8(s).ok())
                .and_then(|s| s.parse().ok());
            match status {
                Some(status) if out.starts_with(b"HTTP/1.") => {
                    Probe::Answered(status, started.elapsed())
                }
                _ => Probe::Failed(format!(
                    "not an HTTP answer ({} bytes: {:?})",
                    out.len(),
                    String::from_utf8_lossy(&out[..out.len().min(40)])
                )),
            }
        }
    }
}

/// The `q` quantile of sorted `v`, in ms.
fn quantile_ms(v: &[Duration], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    Some(v[i].as_secs_f64() * 1e3)
}

/// Starts the attackers, probes, stops the attackers.
pub(crate) async fn run(plan: &SlowlorisPlan) -> Result<SlowlorisReport> {
    if plan.probes == 0 {
        bail!("--probes must be at least 1");
    }
    crate::sys::ensure_nofile_for(plan.conns + 16, "bench slowloris");
    let connector = Arc::new(Connector::new(plan.addr, plan.source_base));
    let attack = Arc::new(Attack::default());
    let stop = CancellationToken::new();
    let mut tasks = Vec::with_capacity(plan.conns);
    for i in 0..plan.conns {
        let src = (plan.sources > 1)
            .then(|| {
                let offset = u32::try_from(i % plan.sources).ok()?;
                let ip = u32::from(plan.source_base).checked_add(offset)?;
                (ip >> 24 == 127).then_some(Ipv4Addr::from(ip))
            })
            .flatten();
        tasks.push(tokio::spawn(attacker(
            i,
            connector.clone(),
            src,
            plan.drip.max(Duration::from_millis(1)),
            attack.clone(),
            stop.clone(),
        )));
    }
    // Every attacker in (bounded: 30 s), then the settle time.
    let ramp = Instant::now();
    while attack.started.load(Ordering::Relaxed) < plan.conns
        && ramp.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(plan.settle).await;

    let holding_at_first_probe = attack.holding.load(Ordering::Relaxed);
    let closes_before = attack.closed_by_server.load(Ordering::Relaxed);
    let probing = Instant::now();
    let mut latencies = Vec::with_capacity(plan.probes);
    let (mut ok, mut timed_out, mut failed) = (0, 0, 0);
    let mut other: Vec<(u16, usize)> = Vec::new();
    let mut first_problem = None;
    for i in 0..plan.probes {
        if i > 0 {
            tokio::time::sleep(plan.interval).await;
        }
        match probe(plan.addr, &plan.path, plan.probe_timeout).await {
            Probe::Answered(status, took) => {
                latencies.push(took);
                if status == 200 {
                    ok += 1;
                } else {
                    match other.iter_mut().find(|(s, _)| *s == status) {
                        Some((_, n)) => *n += 1,
                        None => other.push((status, 1)),
                    }
                }
            }
            Probe::TimedOut => timed_out += 1,
            Probe::Failed(why) => {
                failed += 1;
                first_problem.get_or_insert(format!("probe {i}: {why}"));
            }
        }
    }
    let probing_s = probing.elapsed().as_secs_f64();
    let closes = attack.closed_by_server.load(Ordering::Relaxed) - closes_before;
    let holding_at_end = attack.holding.load(Ordering::Relaxed);
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    latencies.sort();
    Ok(SlowlorisReport {
        command: plan.command(),
        conns: plan.conns,
        holding_at_first_probe,
        holding_at_end,
        server_closes_per_s: closes as f64 / probing_s.max(1e-9),
        attacker_connect_failures: attack.connect_failures.load(Ordering::Relaxed),
        probes: plan.probes,
        ok,
        other_status: other,
        timed_out,
        failed,
        p50_ms: quantile_ms(&latencies, 0.50),
        p90_ms: quantile_ms(&latencies, 0.90),
        p99_ms: quantile_ms(&latencies, 0.99),
        max_ms: latencies.last().map(|d| d.as_secs_f64() * 1e3),
        first_problem,
    })
}
