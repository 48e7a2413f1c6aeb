//! `bench idle`: what an idle session costs the server.
//!
//! Opens many connections that send nothing, reads the resident memory of
//! the server process before and after (from `/proc/PID/status`), and checks
//! at the end that every session is still open and that a sample of them
//! still gets an echo.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::net::TcpStream;

use zinx_test_support::rss::RssReader;

use crate::sys::Connector;

/// Connections opened at once.
const CONNECT_CONCURRENCY: usize = 256;

/// What `bench idle` does.
#[derive(Debug, Clone)]
pub(crate) struct IdlePlan {
    /// Server address.
    pub(crate) addr: SocketAddr,
    /// Sessions to open.
    pub(crate) conns: usize,
    /// Process whose RSS is measured (the server), if any.
    pub(crate) pid: Option<u32>,
    /// Wait after the last connection before reading the RSS again.
    pub(crate) settle: Duration,
    /// Sessions to check with an echo at the end.
    pub(crate) sample: usize,
    /// msg_id of that echo (5 is the gate-local echo of the demo).
    pub(crate) echo_msg_id: u32,
    /// First loopback source address (see [`Connector`]).
    pub(crate) source_base: Ipv4Addr,
    /// Show a progress bar.
    pub(crate) progress: bool,
}

impl IdlePlan {
    /// The equivalent command line.
    pub(crate) fn command(&self) -> String {
        let pid = self.pid.map(|p| format!(" --pid {p}")).unwrap_or_default();
        format!(
            "bench idle --addr {} --conns {}{pid} --settle {} --sample {} --echo-msg-id {} --source-base {}",
            self.addr,
            self.conns,
            self.settle.as_secs_f64(),
            self.sample,
            self.echo_msg_id,
            self.source_base
        )
    }
}

/// What `bench idle` found.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct IdleReport {
    /// Server address.
    pub(crate) addr: String,
    /// Sessions asked for.
    pub(crate) requested: usize,
    /// Sessions attempted: fewer than asked when the open-file limit of
    /// this process is lower.
    pub(crate) attempted: usize,
    /// Sessions opened.
    pub(crate) connected: usize,
    /// Connection attempts that failed.
    pub(crate) connect_failures: usize,
    /// Seconds spent connecting.
    pub(crate) connect_s: f64,
    /// The measured process.
    pub(crate) pid: Option<u32>,
    /// Its RSS before connecting, KiB.
    pub(crate) rss_before_kib: Option<u64>,
    /// Its RSS with every session open, after settling, KiB.
    pub(crate) rss_after_kib: Option<u64>,
    /// `(after - before) / connected`, bytes.
    pub(crate) bytes_per_session: Option<f64>,
    /// Sessions the server had closed by the end.
    pub(crate) closed: usize,
    /// Sampled sessions that answered the echo.
    pub(crate) sample_ok: usize,
    /// Sampled sessions that did not.
    pub(crate) sample_failed: usize,
    /// The first failure seen, for diagnosis.
    pub(crate) first_problem: Option<String>,
    /// Why fewer sessions were attempted than asked, if they were.
    pub(crate) note: Option<String>,
}

impl IdleReport {
    /// Every session opened, stayed open and answered.
    pub(crate) fn clean(&self) -> bool {
        self.connect_failures == 0 && self.closed == 0 && self.sample_failed == 0
    }

    /// A short human summary.
    pub(crate) fn human(&self) -> String {
        let mut s = format!(
            "{} of {} sessions open to {} (connected in {:.1} s, {} failures{})",
            self.connected,
            self.attempted,
            self.addr,
            self.connect_s,
            self.connect_failures,
            if self.attempted < self.requested {
                format!("; {} requested, capped by RLIMIT_NOFILE", self.requested)
            } else {
                String::new()
            }
        );
        if let (Some(pid), Some(b), Some(a)) = (self.pid, self.rss_before_kib, self.rss_after_kib) {
            s.push_str(&format!(
                "\nRSS of pid {pid}: {b} KiB before, {a} KiB after = {:.0} bytes per session",
                self.bytes_per_session.unwrap_or(0.0)
            ));
        }
        s.push_str(&format!(
            "\nclosed by the server: {}; echo sample: {} ok, {} failed",
            self.closed, self.sample_ok, self.sample_failed
        ));
        if let Some(p) = &self.first_problem {
            s.push_str(&format!("\nfirst problem: {p}"));
        }
        s
    }
}

/// Opens the sessions, measures, checks, then closes them all.
pub(crate) async fn run(plan: &IdlePlan) -> Result<IdleReport> {
    if plan.conns == 0 {
        bail!("--conns must be at least 1");
    }
    let limit = crate::sys::raise_nofile(plan.conns as u64 + crate::sys::NOFILE_RESERVE)
        .context("raising RLIMIT_NOFILE")?;
    let fit = crate::sys::sessions_within(limit);
    let conns = plan.conns.min(fit);
    let mut first_problem = None;
    let mut note = None;
    if conns < plan.conns {
        let msg = format!(
            "opening {conns} sessions, not {}: RLIMIT_NOFILE of this process is {} (hard {})",
            plan.conns, limit.soft, limit.hard
        );
        eprintln!("warning: {msg}");
        note = Some(msg);
    }
    let mut rss = plan.pid.map(RssReader::open).transpose()?;
    let rss_before = rss.as_mut().map(RssReader::kib).transpose()?;

    let bar = ProgressBar::new(conns as u64);
    if let Ok(style) = ProgressStyle::with_template("{spinner} connecting {wide_bar} {pos}/{len}") {
        bar.set_style(style);
    }
    if !plan.progress || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }

    let connector = Connector::new(plan.addr, plan.source_base);
    let started = Instant::now();
    let results: Vec<io::Result<TcpStream>> = stream::iter(0..conns)
        .map(|i| {
            let connector = &connector;
            let bar = &bar;
            async move {
                let r = connector.connect(i).await;
                bar.inc(1);
                r
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let connect_s = started.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let mut streams = Vec::with_capacity(conns);
    let mut connect_failures = 0;
    for r in results {
        match r {
            Ok(s) => streams.push(s),
            Err(e) => {
                connect_failures += 1;
                first_problem.get_or_insert_with(|| {
                    format!(
                        "connect failed: {e} (server out of file descriptors, or at its session limit?)"
                    )
                });
            }
        }
    }

    tokio::time::sleep(plan.settle).await;
    let rss_after = rss.as_mut().map(RssReader::kib).transpose()?;

    // Liveness: a closed session reads as end of stream.
    let mut closed = 0;
    let mut alive = Vec::with_capacity(streams.len());
    for (i, s) in streams.iter().enumerate() {
        let mut byte = [0u8; 1];
        match s.try_read(&mut byte) {
            Ok(0) => closed += 1,
            // Unexpected data: open, but its stream is not clean to echo on.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => alive.push(i),
            Err(_) => closed += 1,
        }
    }
    if closed > 0 {
        first_problem.get_or_insert_with(|| format!("{closed} sessions were closed by the server"));
    }

    let (mut sample_ok, mut sample_failed) = (0, 0);
    let picks = plan.sample.min(alive.len());
    for k in 0..picks {
        let idx = alive[k * alive.len() / picks];
        let payload = Bytes::from(format!("idle-check-{idx}"));
        match zinx_test_support::wire::echo_check(
            &mut streams[idx],
            plan.echo_msg_id,
            payload,
            Duration::from_secs(5),
        )
        .await
        {
            Ok(()) => sample_ok += 1,
            Err(e) => {
                sample_failed += 1;
                first_problem.get_or_insert_with(|| format!("session {idx}: {e:#}"));
            }
        }
    }
    let connected = streams.len();
    drop(streams);

    let bytes_per_session = match (rss_before, rss_after) {
        (Some(b), Some(a)) if connected > 0 => {
            Some((a as f64 - b as f64) * 1024.0 / connected as f64)
        }
        _ => None,
    };
    Ok(IdleReport {
        addr: plan.addr.to_string(),
        requested: plan.conns,
        attempted: conns,
        connected,
        connect_failures,
        connect_s,
        pid: plan.pid,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        bytes_per_session,
        closed,
        sample_ok,
        sample_failed,
        first_problem,
        note,
    })
}
