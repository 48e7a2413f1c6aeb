//! `bench chaos`: the demo as separate processes (gate-1, im-1, im-2) under
//! pipelined load, with its backends killed (`kill -9`), frozen
//! (`SIGSTOP`/`SIGCONT`) and restarted on a schedule. Every request is
//! accounted for (`zinx_test_support::pipeline`): echoed, answered with an
//! error, or never answered; per fault. Anything never answered, or a
//! client connection closed by the gate, fails the run.
//!
//! One round of the schedule, `hold` of load after each step:
//!
//! 1. steady load
//! 2. `kill -9` im-1
//! 3. im-1 restarted (once the gate has linked to it again)
//! 4. `SIGSTOP` im-2 (held at least the heartbeat timeout + 1 s, so the
//!    gate declares it dead)
//! 5. `SIGCONT` im-2 (once linked again)
//! 6. `kill -9` im-2 and an immediate restart (once linked again)

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use zinx_test_support::conf::{DEMO_ROUTES, demo_dinx, write_conf};
use zinx_test_support::pipeline::{PhaseTally, Pipeline};
use zinx_test_support::process::{Server, send_signal};

/// Link timing of the chaos cluster: a silent link is declared dead after
/// `HEARTBEAT_TIMEOUT_MS`.
const HEARTBEAT_TIMEOUT_MS: u64 = 1000;

fn settings_json() -> String {
    serde_json::json!({
        "secret": "bench-chaos-secret",
        "heartbeat_interval_ms": 200,
        "heartbeat_timeout_ms": HEARTBEAT_TIMEOUT_MS,
        "reconnect_min_ms": 50,
        "reconnect_max_ms": 300,
        "idle_timeout_ms": 0,
    })
    .to_string()
}

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct ChaosPlan {
    /// The demo binary.
    pub(crate) demo: PathBuf,
    /// Load connections.
    pub(crate) conns: usize,
    /// Requests in flight per connection.
    pub(crate) window: usize,
    /// Load after each step.
    pub(crate) hold: Duration,
    /// Rounds of the schedule.
    pub(crate) rounds: usize,
    /// Keep the temporary directory (configuration, child logs).
    pub(crate) keep_tmp: bool,
}

/// One step of the schedule and what happened during it.
#[derive(Debug, Serialize)]
pub(crate) struct StepReport {
    /// What was done.
    pub(crate) fault: String,
    /// Requests written during the step.
    pub(crate) sent: u64,
    /// Echoes that arrived during it.
    pub(crate) echoed: u64,
    /// Error answers that arrived during it, by code.
    pub(crate) errors: std::collections::BTreeMap<String, u64>,
    /// Requests written during it that were never answered.
    pub(crate) never_answered: u64,
    /// When its error answers arrived, in ms after the fault.
    pub(crate) errors_after_ms: Option<(u64, u64)>,
    /// Fault → the gate linked to the node again (restarts and SIGCONT).
    pub(crate) relinked_after_ms: Option<u64>,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub(crate) struct ChaosReport {
    pub(crate) conns: usize,
    pub(crate) window: usize,
    pub(crate) heartbeat_timeout_ms: u64,
    pub(crate) seconds: f64,
    pub(crate) steps: Vec<StepReport>,
    pub(crate) sent: u64,
    pub(crate) echoed: u64,
    pub(crate) error_answers: u64,
    pub(crate) never_answered: u64,
    pub(crate) closed_connections: usize,
}

impl ChaosReport {
    /// Nothing never answered, no client connection lost.
    pub(crate) fn clean(&self) -> bool {
        self.never_answered == 0 && self.closed_connections == 0 && self.sent > 0
    }

    pub(crate) fn human(&self) -> String {
        let mut out = format!(
            "chaos: {} connections x {} in flight, heartbeat timeout {} ms, {:.1} s\n\n",
            self.conns, self.window, self.heartbeat_timeout_ms, self.seconds
        );
        out.push_str(&format!(
            "{:<34} {:>9} {:>9} {:>24} {:>6} {:>14} {:>9}\n",
            "step", "sent", "echoed", "error answers", "never", "errors at ms", "relinked"
        ));
        for s in &self.steps {
            let errors = if s.errors.is_empty() {
                "0".to_string()
            } else {
                s.errors
                    .iter()
                    .map(|(c, n)| format!("{n} {c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let at = s
                .errors_after_ms
                .map(|(a, b)| format!("{a}..{b}"))
                .unwrap_or_else(|| "-".into());
            let relinked = s
                .relinked_after_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_else(|| "-".into());
            out.push_str(&format!(
                "{:<34} {:>9} {:>9} {:>24} {:>6} {:>14} {:>9}\n",
                s.fault, s.sent, s.echoed, errors, s.never_answered, at, relinked
            ));
        }
        out.push_str(&format!(
            "\ntotal: sent {}, echoed {}, error answers {}, never answered {}, \
             client connections closed {}",
            self.sent,
            self.echoed,
            self.error_answers,
            self.never_answered,
            self.closed_connections
        ));
        out
    }
}

/// One demo node process.
struct Node {
    id: u16,
    name: &'static str,
    server: Server,
    /// Restarts so far (each one logs to a file of its own).
    runs: usize,
}

/// The cluster's processes and where they log.
struct Demo {
    demo: PathBuf,
    dir: PathBuf,
    gate: Server,
    gate_log: PathBuf,
    ims: Vec<Node>,
}

impl Demo {
    fn spawn(demo: &Path, dir: &Path, id: u16, log: &str) -> Result<Server> {
        let args = vec![
            "--conf".to_string(),
            dir.display().to_string(),
            "--id".to_string(),
            id.to_string(),
        ];
        Ok(Server::spawn(
            &format!("demo --id {id}"),
            demo,
            &args,
            dir.join(log),
        )?)
    }

    async fn start(demo: &Path, dir: &Path, gate_addr: SocketAddr) -> Result<Demo> {
        let mut ims = Vec::new();
        for (id, name) in [(2, "im-1"), (3, "im-2")] {
            ims.push(Node {
                id,
                name,
                server: Demo::spawn(demo, dir, id, &format!("{name}.log"))?,
                runs: 1,
            });
        }
        let mut gate = Demo::spawn(demo, dir, 1, "gate-1.log")?;
        gate.wait_ready(gate_addr, &[5, 6], Duration::from_secs(60))
            .await?;
        let mut d = Demo {
            demo: demo.to_path_buf(),
            dir: dir.to_path_buf(),
            gate,
            gate_log: dir.join("gate-1.log"),
            ims,
        };
        for i in 0..d.ims.len() {
            d.wait_links_up(i, 1).await?;
        }
        Ok(d)
    }

    /// Lines of the gate's log saying its link to im `i` came up.
    fn links_up(&self, i: usize) -> usize {
        let span = format!("{{peer={} ", self.ims[i].name);
        std::fs::read_to_string(&self.gate_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&span) && l.contains("link up"))
            .count()
    }

    /// Waits until the gate has logged `n` links up to im `i`.
    async fn wait_links_up(&mut self, i: usize, n: usize) -> Result<Duration> {
        let started = Instant::now();
        while self.links_up(i) < n {
            self.gate.check_running()?;
            if started.elapsed() > Duration::from_secs(20) {
                bail!(
                    "the gate did not link to {} again within 20 s (see {})",
                    self.ims[i].name,
                    self.gate_log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(started.elapsed())
    }

    fn signal(&self, i: usize, signal: libc::c_int) -> Result<()> {
        let im = &self.ims[i];
        send_signal(im.server.pid(), signal)
            .with_context(|| format!("signal {signal} to {}", im.name))
    }

    /// kill -9, and reap.
    async fn kill(&mut self, i: usize) -> Result<()> {
        self.signal(i, libc::SIGKILL)?;
        self.ims[i].server.stop(Duration::from_secs(5)).await;
        Ok(())
    }

    /// Starts im `i` again (after a kill) and waits for the gate's link.
    async fn restart(&mut self, i: usize) -> Result<Duration> {
        let im = &mut self.ims[i];
        im.runs += 1;
        let log = format!("{}-run{}.log", im.name, im.runs);
        im.server = Demo::spawn(&self.demo, &self.dir, im.id, &log)?;
        let n = self.links_up(i) + 1;
        self.wait_links_up(i, n).await
    }
}

/// Runs the schedule; the report says whether anything was never answered.
pub(crate) async fn run(plan: &ChaosPlan) -> Result<ChaosReport> {
    let tmp = tempfile::Builder::new()
        .prefix("bench-chaos-")
        .tempdir()
        .context("creating a temporary directory")?;
    let dir = tmp.path().to_path_buf();
    let ports = zinx_test_support::free_ports(3).context("finding free ports")?;
    let [gate_port, im1, im2] = ports[..] else {
        bail!("three free ports needed");
    };
    write_conf(
        &dir,
        &demo_dinx([gate_port, im1, im2]),
        DEMO_ROUTES,
        &settings_json(),
    )?;
    let gate_addr: SocketAddr = format!("127.0.0.1:{gate_port}").parse()?;
    println!("chaos: demo {} in {}", plan.demo.display(), dir.display());
    let mut demo = Demo::start(&plan.demo, &dir, gate_addr).await?;
    let load = Pipeline::start(gate_addr, demo::IM_ECHO, plan.conns, plan.window).await?;

    let heartbeat = Duration::from_millis(HEARTBEAT_TIMEOUT_MS);
    let mut steps: Vec<(String, Instant, Option<Duration>)> = Vec::new();
    // Each step is a phase of the load, from the moment of its fault.
    let step = |name: String, steps: &mut Vec<_>, at: Instant| {
        steps.push((name, at, None));
        load.set_phase(steps.len() - 1);
    };
    let result: Result<()> = async {
        step("steady load".into(), &mut steps, Instant::now());
        tokio::time::sleep(plan.hold).await;
        for round in 1..=plan.rounds {
            let r = if plan.rounds > 1 {
                format!(" (round {round})")
            } else {
                String::new()
            };
            let at = Instant::now();
            step(format!("kill -9 im-1{r}"), &mut steps, at);
            demo.kill(0).await?;
            println!("{:.1} s: kill -9 im-1", load_secs(&steps));
            tokio::time::sleep(plan.hold).await;

            let at = Instant::now();
            step(format!("restart im-1{r}"), &mut steps, at);
            let relinked = demo.restart(0).await?;
            if let Some(s) = steps.last_mut() {
                s.2 = Some(relinked);
            }
            println!(
                "{:.1} s: im-1 restarted, linked after {relinked:?}",
                load_secs(&steps)
            );
            tokio::time::sleep(plan.hold).await;

            let at = Instant::now();
            step(format!("SIGSTOP im-2{r}"), &mut steps, at);
            demo.signal(1, libc::SIGSTOP)?;
            println!("{:.1} s: SIGSTOP im-2", load_secs(&steps));
            tokio::time::sleep(plan.hold.max(heartbeat + Duration::from_secs(1))).await;

            let at = Instant::now();
            step(format!("SIGCONT im-2{r}"), &mut steps, at);
            let n = demo.links_up(1) + 1;
            demo.signal(1, libc::SIGCONT)?;
            let relinked = demo.wait_links_up(1, n).await?;
            if let Some(s) = steps.last_mut() {
                s.2 = Some(relinked);
            }
            println!(
                "{:.1} s: SIGCONT im-2, linked after {relinked:?}",
                load_secs(&steps)
            );
            tokio::time::sleep(plan.hold).await;

            let at = Instant::now();
            step(format!("kill -9 + restart im-2{r}"), &mut steps, at);
            demo.kill(1).await?;
            let relinked = demo.restart(1).await?;
            if let Some(s) = steps.last_mut() {
                s.2 = Some(relinked);
            }
            println!(
                "{:.1} s: kill -9 im-2 and restart, linked after {relinked:?}",
                load_secs(&steps)
            );
            tokio::time::sleep(plan.hold).await;
        }
        demo.gate.check_running()?;
        Ok(())
    }
    .await;
    // Answers still due get twice the heartbeat timeout.
    let report = load.finish(2 * heartbeat + Duration::from_secs(1)).await;
    let gate_alive = demo.gate.check_running();
    for im in &mut demo.ims {
        // A node left frozen by a failed step must not outlive the run.
        let _ = send_signal(im.server.pid(), libc::SIGCONT);
        im.server.stop(Duration::from_secs(5)).await;
    }
    demo.gate.stop(Duration::from_secs(5)).await;
    if plan.keep_tmp {
        let kept = tmp.keep();
        println!("chaos: kept {}", kept.display());
    }
    result?;
    gate_alive?;

    let total = report.total();
    let steps = steps
        .iter()
        .enumerate()
        .map(|(i, (fault, at, relinked))| {
            let t = report.phases.get(i).cloned().unwrap_or_default();
            step_report(fault, *at, *relinked, &t)
        })
        .collect();
    Ok(ChaosReport {
        conns: plan.conns,
        window: plan.window,
        heartbeat_timeout_ms: HEARTBEAT_TIMEOUT_MS,
        seconds: report.ran.as_secs_f64(),
        steps,
        sent: total.sent,
        echoed: total.echoed,
        error_answers: total.error_answers(),
        never_answered: total.never_answered,
        closed_connections: report.closed_connections,
    })
}

fn load_secs(steps: &[(String, Instant, Option<Duration>)]) -> f64 {
    match (steps.first(), steps.last()) {
        (Some(a), Some(b)) => (b.1 - a.1).as_secs_f64(),
        _ => 0.0,
    }
}

fn step_report(fault: &str, at: Instant, relinked: Option<Duration>, t: &PhaseTally) -> StepReport {
    let ms =
        |i: Instant| u64::try_from(i.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX);
    StepReport {
        fault: fault.to_string(),
        sent: t.sent,
        echoed: t.echoed,
        errors: t.errors.clone(),
        never_answered: t.never_answered,
        errors_after_ms: t.error_window.map(|(a, b)| (ms(a), ms(b))),
        relinked_after_ms: relinked.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    }
}
