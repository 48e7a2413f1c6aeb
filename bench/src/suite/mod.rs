//! `bench suite`: the whole benchmark in one run, written to BENCHMARKS.md
//! and a JSON file.
//!
//! It builds nothing. It starts the baseline (`bench echo-server`, this very
//! executable) and the demo cluster (`demo`, found next to this executable)
//! as child processes on free ports with a generated configuration, waits
//! until they answer, runs the load scenarios interleaved (baseline,
//! subjects, baseline, subjects, ... for several rounds) so that slow drift
//! of the machine hits both alike, then the broadcast and idle-session
//! scenarios (idle sessions over TCP, WebSocket, TLS and WSS, each on a
//! freshly started gate), reads the codec microbenchmark results criterion left behind,
//! and stops the children (SIGINT, then SIGKILL after a grace period, and
//! SIGKILL on drop whatever happens).
//!
//! | piece | owns |
//! |---|---|
//! | `scenario` | the order of the run: children, load shapes, broadcast, rooms, idle |
//! | `conf` | the demo configurations written for the child processes (one with a TLS certificate) |
//! | `measure` | medians, criterion's codec figures, summary rows against the targets |
//! | `report` | BENCHMARKS.md and the JSON file |
//! | `compare` | `--before`: an earlier run's figures beside this run's |

mod compare;
mod conf;
mod measure;
mod report;
mod scenario;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::sys::Machine;

/// How the suite runs; defaults depend on `--quick`.
#[derive(Debug, Clone)]
pub(crate) struct SuitePlan {
    /// Markdown report path.
    pub(crate) out: PathBuf,
    /// JSON results path.
    pub(crate) json_out: PathBuf,
    /// Short smoke run.
    pub(crate) quick: bool,
    /// Rounds of the interleaved load scenarios.
    pub(crate) rounds: usize,
    /// Measured seconds of each load run.
    pub(crate) duration: Duration,
    /// Warmup of each load run.
    pub(crate) warmup: Duration,
    /// Sessions of the idle scenario.
    pub(crate) idle_sessions: usize,
    /// Sessions of the broadcast scenario.
    pub(crate) broadcast_sessions: usize,
    /// Rounds of the broadcast scenario.
    pub(crate) broadcast_rounds: usize,
    /// The `demo` binary; default: next to this executable.
    pub(crate) demo: Option<PathBuf>,
    /// Where criterion wrote its results; default: `target/criterion` for
    /// an executable in `target/release`.
    pub(crate) criterion_dir: Option<PathBuf>,
    /// Keep the temporary directory (configuration and child logs).
    pub(crate) keep_tmp: bool,
    /// Exit non-zero when a target is missed, not only on a failure.
    pub(crate) strict: bool,
    /// The JSON results of an earlier run to compare with.
    pub(crate) before: Option<PathBuf>,
}

/// Connections of the load scenarios.
const LOAD_CONNS: usize = 100;
/// Connections of the few-connections pair (`*_c10w1`).
const FEW_CONNS: usize = 10;
/// Payload bytes of the load scenarios.
const LOAD_SIZE: usize = 64;

/// Targets from the issue.
const LOCAL_RATIO_MIN: f64 = 0.90;
const FORWARD_RATIO_MIN: f64 = 0.45;
/// Forwarded echo at 10 connections x 1 in flight (issue 11).
const FORWARD_C10W1_RATIO_MIN: f64 = 0.50;
/// WebSocket echo through the gate (local and forwarded) against the same
/// shape over TCP, both measured in the same run.
const WS_RATIO_MIN: f64 = 0.70;
const P99_RATIO_MAX: f64 = 3.0;
/// Idle sessions, one echo each, RSS per session of the gate process
/// (issue 21 for the transports beside TCP).
const IDLE_BYTES_MAX: f64 = 3.0 * 1024.0;
const IDLE_WS_BYTES_MAX: f64 = 2.0 * 1024.0;
/// An idle WebSocket session against an idle TCP session, both measured in
/// the same run at the same count.
const IDLE_WS_TCP_RATIO_MAX: f64 = 1.2;
/// TLS and WSS alike.
const IDLE_TLS_BYTES_MAX: f64 = 8.0 * 1024.0;
const BROADCAST_P50_MS_MAX: f64 = 250.0;
/// Issue 13: one room of every session delivers in at most this many times
/// the time of a broadcast to the same sessions.
const BIG_ROOM_RATIO_MAX: f64 = 1.2;
/// Issue 13: small rooms cost no more per delivered frame than a push.
const SMALL_ROOMS_RATIO_MAX: f64 = 1.0;
const CODEC_NS_MAX: f64 = 50.0;

/// The command line this process was started with, shell-quoted enough to
/// paste back.
pub(crate) fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the suite. Returns whether it should exit successfully.
pub(crate) async fn run(plan: &SuitePlan) -> Result<bool> {
    let command = command_line();
    let machine = Machine::detect();
    println!("command: {command}");
    println!("machine: {}", machine.describe());
    println!(
        "note: the load client, the baseline and the demo cluster share these {} cores",
        machine.cores
    );

    let exe = std::env::current_exe().context("locating this executable")?;
    let exe_dir = exe
        .parent()
        .context("this executable has no parent directory")?
        .to_path_buf();
    let demo = plan
        .demo
        .clone()
        .unwrap_or_else(|| exe_dir.join(format!("demo{}", std::env::consts::EXE_SUFFIX)));
    if !demo.is_file() {
        bail!(
            "demo binary not found at {}: build both with \
             `cargo build --release -p demo -p bench` (or pass --demo PATH)",
            demo.display()
        );
    }
    // Read now: a bad file should not cost a whole run.
    let before = match &plan.before {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --before {}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("--before {} is not JSON", path.display()))?;
            Some(v)
        }
        None => None,
    };
    let criterion_dir = plan.criterion_dir.clone().unwrap_or_else(|| {
        exe_dir
            .parent()
            .map(|t| t.join("criterion"))
            .unwrap_or_else(|| PathBuf::from("target/criterion"))
    });

    // Children inherit this: the gate needs a descriptor per idle session,
    // and so does this process.
    let nofile =
        crate::sys::raise_nofile(plan.idle_sessions as u64 + 4 * crate::sys::NOFILE_RESERVE)
            .context("raising RLIMIT_NOFILE")?;
    let idle_sessions = plan.idle_sessions.min(
        crate::sys::sessions_within(nofile).saturating_sub(2 * crate::sys::NOFILE_RESERVE as usize),
    );
    println!("RLIMIT_NOFILE: soft {} hard {}", nofile.soft, nofile.hard);
    let idle_note = (idle_sessions < plan.idle_sessions).then(|| {
        format!(
            "idle sessions reduced from {} to {idle_sessions}: RLIMIT_NOFILE is {} (hard {}) for \
             this process and the gate, and this process may not raise the hard limit \
             (no CAP_SYS_RESOURCE); one process cannot hold more sessions here",
            plan.idle_sessions, nofile.soft, nofile.hard
        )
    });
    let mut notes: Vec<String> = Vec::new();
    if let Some(n) = idle_note {
        println!("note: {n}");
        notes.push(n);
    }

    let tmp = tempfile::Builder::new()
        .prefix("zinx-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    let tmp_path = tmp.path().to_path_buf();
    println!(
        "work dir (configuration, child logs): {}",
        tmp_path.display()
    );
    let env = SuiteEnv {
        command,
        machine,
        exe,
        demo,
        criterion_dir,
        idle_sessions,
        notes,
        tmp_path,
        before,
    };
    // Children are stopped (or killed on drop) inside `run_in`, before the
    // directory holding their logs is removed.
    let outcome = scenario::run_in(plan, env).await;
    if plan.keep_tmp || outcome.is_err() {
        let kept = tmp.keep();
        println!("kept {} (configuration and child logs)", kept.display());
    }
    outcome
}

/// What `run` found out before starting anything.
struct SuiteEnv {
    command: String,
    machine: Machine,
    /// This executable (the baseline is `exe echo-server`).
    exe: PathBuf,
    demo: PathBuf,
    criterion_dir: PathBuf,
    /// Idle sessions, after the open-file limit.
    idle_sessions: usize,
    /// Notes for the report so far.
    notes: Vec<String>,
    /// Generated configuration and child logs.
    tmp_path: PathBuf,
    /// The earlier run's results (`--before`), read before anything runs.
    before: Option<serde_json::Value>,
}
