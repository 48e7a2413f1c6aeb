//! `bench suite`: the whole benchmark in one run, written to BENCHMARKS.md
//! and a JSON file.
//!
//! It builds nothing. It starts the baseline (`bench echo-server`, this very
//! executable) and the demo cluster (`demo`, found next to this executable)
//! as child processes on free ports with a generated configuration, waits
//! until they answer, runs the load scenarios interleaved (baseline,
//! subjects, baseline, subjects, ... for several rounds) so that slow drift
//! of the machine hits both alike, then the broadcast and idle-session
//! scenarios, reads the codec microbenchmark results criterion left behind,
//! and stops the children (SIGINT, then SIGKILL after a grace period, and
//! SIGKILL on drop whatever happens).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::broadcast::{BroadcastPlan, BroadcastReport, median};
use crate::idle::{IdlePlan, IdleReport};
use crate::load::{LoadPlan, LoadReport, StopAt};
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
}

/// Connections of the load scenarios.
const LOAD_CONNS: usize = 100;
/// Payload bytes of the load scenarios.
const LOAD_SIZE: usize = 64;

/// Targets from the issue.
const LOCAL_RATIO_MIN: f64 = 0.90;
const FORWARD_RATIO_MIN: f64 = 0.45;
const P99_RATIO_MAX: f64 = 3.0;
const IDLE_BYTES_MAX: f64 = 8.0 * 1024.0;
const BROADCAST_P50_MS_MAX: f64 = 250.0;
const CODEC_NS_MAX: f64 = 50.0;

/// One load run of the interleaved sequence.
struct Shape {
    /// Key in the results.
    key: &'static str,
    /// Against the baseline (true) or the gate.
    baseline: bool,
    msg_id: u32,
    window: usize,
}

const SHAPES: &[Shape] = &[
    Shape {
        key: "baseline_w16",
        baseline: true,
        msg_id: 5,
        window: 16,
    },
    Shape {
        key: "local_echo_w16",
        baseline: false,
        msg_id: 5,
        window: 16,
    },
    Shape {
        key: "forward_echo_w16",
        baseline: false,
        msg_id: 6,
        window: 16,
    },
    Shape {
        key: "baseline_w1",
        baseline: true,
        msg_id: 5,
        window: 1,
    },
    Shape {
        key: "forward_echo_w1",
        baseline: false,
        msg_id: 6,
        window: 1,
    },
];

/// One line of the summary table.
#[derive(Debug, Clone, Serialize)]
struct Row {
    scenario: String,
    measured: String,
    target: String,
    /// `None`: not measured in this run.
    pass: Option<bool>,
    /// The exact command(s) that produced the number.
    command: String,
}

/// A codec microbenchmark figure read from criterion's output.
#[derive(Debug, Clone, Serialize)]
struct CodecFigure {
    name: &'static str,
    ns: Option<f64>,
    source: String,
}

/// Everything the JSON file holds.
#[derive(Serialize)]
struct Results<'a> {
    generated_utc: String,
    command: &'a str,
    machine: &'a Machine,
    quick: bool,
    rounds: usize,
    load_duration_s: f64,
    load_warmup_s: f64,
    servers: &'a BTreeMap<&'static str, String>,
    rows: &'a [Row],
    load: &'a BTreeMap<&'static str, Vec<LoadReport>>,
    broadcast: Option<&'a BroadcastReport>,
    idle_gate: Option<&'a IdleReport>,
    idle_baseline: Option<&'a IdleReport>,
    codec: &'a [CodecFigure],
    notes: &'a [String],
    failures: &'a [String],
    child_exits: &'a [String],
}

/// A child process that is killed if it is still running when dropped.
struct ChildProc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ChildProc {
    fn spawn(name: &str, program: &Path, args: &[String], log: PathBuf) -> Result<ChildProc> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log handle")?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {} {}", program.display(), args.join(" ")))?;
        Ok(ChildProc {
            name: name.to_string(),
            child,
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Fails with the log's tail when the process has exited.
    fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("polling a child")? {
            bail!(
                "{} exited early ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Waits until `addr` echoes every msg_id of `probe`.
    async fn wait_ready(
        &mut self,
        addr: SocketAddr,
        probe: &[u32],
        within: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            self.check_running()?;
            match crate::wire::probe_echo(addr, probe, Duration::from_secs(2)).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    bail!(
                        "{} did not answer echo {probe:?} on {addr} within {within:?}: {e:#}; \
                         last lines of {}:\n{}",
                        self.name,
                        self.log.display(),
                        self.log_tail()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// SIGINT, then SIGKILL after `grace`; describes how it ended.
    async fn stop(&mut self, grace: Duration) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("{}: had already exited ({status})", self.name);
        }
        if let Ok(pid) = libc::pid_t::try_from(self.pid()) {
            // SAFETY: plain syscall on our own child's pid, which has not
            // been reaped yet (try_wait above returned None), so the pid
            // cannot have been reused.
            unsafe {
                libc::kill(pid, libc::SIGINT);
            }
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!("{}: exited after SIGINT ({status})", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!(
            "{}: did not exit within {grace:?} of SIGINT; killed",
            self.name
        )
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Free TCP ports on 127.0.0.1 (all held at once so they are distinct).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("finding free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect::<std::io::Result<Vec<_>>>()
        .context("finding free ports")
}

const ROUTE_JSON: &str = r#"{"gate":[{"MsgID":1,"Name":"login"},{"MsgID":2,"Name":"logout"},{"MsgID":5,"Name":"echo"}],"im":[{"MsgID":3,"Name":"send"},{"MsgID":4,"Name":"broadcast"},{"MsgID":6,"Name":"echo"}]}"#;

const SETTINGS_JSON: &str =
    r#"{"idle_timeout_ms":0,"max_sessions":200000,"secret":"bench-suite-secret"}"#;

/// Writes a demo configuration: gate-1 and im-1, im-2 on `ports`.
fn write_conf(dir: &Path, ports: &[u16]) -> Result<String> {
    let [gate, im1, im2] = ports else {
        bail!("write_conf needs three ports");
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dinx = format!(
        r#"{{"gate":[{{"ID":1,"Name":"gate-1","Type":1,"IP":"127.0.0.1","Port":{gate}}}],"im":[{{"ID":2,"Name":"im-1","Type":2,"IP":"127.0.0.1","Port":{im1}}},{{"ID":3,"Name":"im-2","Type":2,"IP":"127.0.0.1","Port":{im2}}}]}}"#
    );
    for (name, text) in [
        ("dinx.json", dinx.as_str()),
        ("route.json", ROUTE_JSON),
        ("settings.json", SETTINGS_JSON),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dinx)
}

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

/// `YYYY-MM-DD HH:MM:SS UTC` for now.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Reads criterion's estimate of one benchmark, in ns.
fn criterion_figure(dir: &Path, name: &'static str) -> CodecFigure {
    let path = dir
        .join("codec")
        .join(name)
        .join("new")
        .join("estimates.json");
    let read = || -> Result<(f64, &'static str)> {
        let text = std::fs::read_to_string(&path)?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        // The slope (linear sampling) is the figure criterion prints; flat
        // sampling has only the mean.
        ["slope", "mean"]
            .iter()
            .find_map(|k| {
                let ns = v.get(*k)?.get("point_estimate")?.as_f64()?;
                Some((ns, *k))
            })
            .context("no slope or mean point_estimate")
    };
    match read() {
        Ok((ns, estimate)) => {
            let when = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .map(|age| {
                    format!(
                        ", written {:.0} min before this run",
                        age.as_secs_f64() / 60.0
                    )
                })
                .unwrap_or_default();
            CodecFigure {
                name,
                ns: Some(ns),
                source: format!("{} (criterion {estimate}{when})", path.display()),
            }
        }
        Err(_) => CodecFigure {
            name,
            ns: None,
            source: format!("not found: {}", path.display()),
        },
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1} ms"))
}

fn pass_str(p: Option<bool>) -> &'static str {
    match p {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "n/a",
    }
}

/// Median of one figure over a scenario's rounds.
fn median_of(runs: &[LoadReport], f: impl Fn(&LoadReport) -> f64) -> Option<f64> {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    median(&v)
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
    let demo = plan.demo.clone().unwrap_or_else(|| exe_dir.join("demo"));
    if !demo.is_file() {
        bail!(
            "demo binary not found at {}: build it first with \
             `cargo build --release -p demo --bins` (or pass --demo PATH)",
            demo.display()
        );
    }
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
    };
    // Children are stopped (or killed on drop) inside `run_in`, before the
    // directory holding their logs is removed.
    let outcome = run_in(plan, env).await;
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
}

async fn run_in(plan: &SuitePlan, env: SuiteEnv) -> Result<bool> {
    let SuiteEnv {
        command,
        machine,
        exe,
        demo,
        criterion_dir,
        idle_sessions,
        notes,
        tmp_path,
    } = env;

    let ports = free_ports(8)?;
    let baseline_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], ports[0]));
    let gate_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], ports[1]));
    let idle_gate_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], ports[4]));
    let idle_baseline_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], ports[7]));
    let conf_all = tmp_path.join("conf");
    let conf_idle = tmp_path.join("conf-idle");
    let dinx_all = write_conf(&conf_all, &ports[1..4])?;
    let dinx_idle = write_conf(&conf_idle, &ports[4..7])?;

    let mut servers = BTreeMap::new();
    let baseline_args = vec![
        "echo-server".to_string(),
        "--addr".to_string(),
        baseline_addr.to_string(),
    ];
    servers.insert(
        "baseline",
        format!("{} {}", exe.display(), baseline_args.join(" ")),
    );
    let demo_all_args = vec!["--conf".to_string(), conf_all.display().to_string()];
    servers.insert(
        "demo",
        format!("{} {}", demo.display(), demo_all_args.join(" ")),
    );
    servers.insert("demo_conf_dinx", dinx_all);
    servers.insert("demo_conf_settings", SETTINGS_JSON.to_string());
    servers.insert("demo_conf_route", ROUTE_JSON.to_string());
    let idle_ids = ["1", "2", "3"];
    servers.insert(
        "demo_idle",
        idle_ids
            .iter()
            .map(|id| {
                format!(
                    "{} --conf {} --id {id}",
                    demo.display(),
                    conf_idle.display()
                )
            })
            .collect::<Vec<_>>()
            .join(" & "),
    );
    servers.insert("demo_idle_conf_dinx", dinx_idle);

    let mut child_exits = Vec::new();
    let mut baseline = ChildProc::spawn(
        "baseline echo-server",
        &exe,
        &baseline_args,
        tmp_path.join("echo-server.log"),
    )?;
    baseline
        .wait_ready(baseline_addr, &[5], Duration::from_secs(20))
        .await?;
    let mut cluster = ChildProc::spawn(
        "demo cluster",
        &demo,
        &demo_all_args,
        tmp_path.join("demo.log"),
    )?;
    cluster
        .wait_ready(gate_addr, &[5, 6], Duration::from_secs(60))
        .await?;
    println!(
        "baseline on {baseline_addr} (pid {}), demo gate on {gate_addr} (pid {})",
        baseline.pid(),
        cluster.pid()
    );

    // Interleaved load rounds.
    let mut load: BTreeMap<&'static str, Vec<LoadReport>> = BTreeMap::new();
    let mut commands: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    for round in 1..=plan.rounds {
        for shape in SHAPES {
            let load_plan = LoadPlan {
                addr: if shape.baseline {
                    baseline_addr
                } else {
                    gate_addr
                },
                msg_id: shape.msg_id,
                conns: LOAD_CONNS,
                window: shape.window,
                size: LOAD_SIZE,
                stop: StopAt::Duration(plan.duration),
                warmup: plan.warmup,
                reply_timeout: Duration::from_secs(10),
                progress: true,
            };
            commands.insert(shape.key, load_plan.command());
            let report = crate::load::run(&load_plan)
                .await
                .with_context(|| format!("load run {} round {round}", shape.key))?;
            println!(
                "round {round} {:<17} {:>9.0} msg/s  p50 {:>6} us  p99 {:>6} us  errors {} mismatches {} lost {}",
                shape.key,
                report.msgs_per_s,
                report.latency_us.p50,
                report.latency_us.p99,
                report.errors,
                report.mismatches,
                report.lost
            );
            if !report.clean() {
                failures.push(format!(
                    "{} round {round}: errors {} mismatches {} lost {} ({})",
                    shape.key,
                    report.errors,
                    report.mismatches,
                    report.lost,
                    report.first_problem.clone().unwrap_or_default()
                ));
            }
            load.entry(shape.key).or_default().push(report);
        }
    }

    // Broadcast on the same cluster.
    let broadcast_plan = BroadcastPlan {
        addr: gate_addr,
        sessions: plan.broadcast_sessions,
        rounds: plan.broadcast_rounds,
        timeout: Duration::from_secs(10),
        pause: Duration::from_millis(200),
        source_base: Ipv4Addr::new(127, 0, 3, 2),
        progress: true,
    };
    println!(
        "broadcast: {} sessions x {} rounds",
        plan.broadcast_sessions, plan.broadcast_rounds
    );
    let broadcast = match crate::broadcast::run(&broadcast_plan).await {
        Ok(r) => {
            println!("{}", r.human());
            if !r.clean() {
                failures.push(format!(
                    "broadcast: {}",
                    r.first_problem
                        .clone()
                        .unwrap_or_else(|| "not clean".into())
                ));
            }
            Some(r)
        }
        Err(e) => {
            failures.push(format!("broadcast: {e:#}"));
            println!("broadcast failed: {e:#}");
            None
        }
    };
    child_exits.push(cluster.stop(Duration::from_secs(10)).await);

    child_exits.push(baseline.stop(Duration::from_secs(10)).await);

    // Idle sessions: a fresh baseline as a sanity figure (the load runs grew
    // the first one's heap, which would hide per-session growth), then the
    // gate alone in its own process (im nodes beside it in theirs).
    let idle_baseline_args = vec![
        "echo-server".to_string(),
        "--addr".to_string(),
        idle_baseline_addr.to_string(),
    ];
    let mut fresh_baseline = ChildProc::spawn(
        "fresh baseline echo-server",
        &exe,
        &idle_baseline_args,
        tmp_path.join("echo-server-idle.log"),
    )?;
    fresh_baseline
        .wait_ready(idle_baseline_addr, &[5], Duration::from_secs(20))
        .await?;
    println!("idle: {idle_sessions} sessions on a fresh baseline");
    let idle_baseline_plan = IdlePlan {
        addr: idle_baseline_addr,
        conns: idle_sessions,
        pid: Some(fresh_baseline.pid()),
        settle: Duration::from_secs(2),
        sample: 100,
        echo_msg_id: 5,
        source_base: Ipv4Addr::new(127, 0, 1, 2),
        progress: true,
    };
    let idle_baseline = report_idle(
        crate::idle::run(&idle_baseline_plan).await,
        "idle baseline",
        &mut failures,
    );
    child_exits.push(fresh_baseline.stop(Duration::from_secs(10)).await);

    let mut idle_nodes = Vec::new();
    for id in idle_ids {
        let args = vec![
            "--conf".to_string(),
            conf_idle.display().to_string(),
            "--id".to_string(),
            id.to_string(),
        ];
        idle_nodes.push(ChildProc::spawn(
            &format!("demo --id {id}"),
            &demo,
            &args,
            tmp_path.join(format!("demo-id{id}.log")),
        )?);
    }
    let idle_gate = match idle_nodes.first_mut() {
        Some(gate) => {
            gate.wait_ready(idle_gate_addr, &[5, 6], Duration::from_secs(60))
                .await?;
            println!(
                "idle: {idle_sessions} sessions on the gate alone (pid {})",
                gate.pid()
            );
            let idle_plan = IdlePlan {
                addr: idle_gate_addr,
                pid: Some(gate.pid()),
                source_base: Ipv4Addr::new(127, 0, 2, 2),
                ..idle_baseline_plan.clone()
            };
            commands.insert("idle_gate", idle_plan.command());
            report_idle(
                crate::idle::run(&idle_plan).await,
                "idle gate",
                &mut failures,
            )
        }
        None => None,
    };
    commands.insert("idle_baseline", idle_baseline_plan.command());
    commands.insert("broadcast", broadcast_plan.command());
    for node in &mut idle_nodes {
        child_exits.push(node.stop(Duration::from_secs(10)).await);
    }
    for e in &child_exits {
        println!("{e}");
    }

    let codec: Vec<CodecFigure> = [
        "frame_encode",
        "frame_decode",
        "envelope_encode",
        "envelope_decode",
    ]
    .into_iter()
    .map(|n| criterion_figure(&criterion_dir, n))
    .collect();

    let rows = summary_rows(
        &load,
        &commands,
        broadcast.as_ref(),
        idle_gate.as_ref(),
        idle_baseline.as_ref(),
        &codec,
    );
    let generated = utc_now();
    let md = markdown(&MarkdownInput {
        generated: &generated,
        command: &command,
        machine: &machine,
        plan,
        servers: &servers,
        rows: &rows,
        load: &load,
        commands: &commands,
        broadcast: broadcast.as_ref(),
        idle_gate: idle_gate.as_ref(),
        idle_baseline: idle_baseline.as_ref(),
        codec: &codec,
        failures: &failures,
        notes: &notes,
        child_exits: &child_exits,
    });
    std::fs::write(&plan.out, md).with_context(|| format!("writing {}", plan.out.display()))?;
    let results = Results {
        generated_utc: generated,
        command: &command,
        machine: &machine,
        quick: plan.quick,
        rounds: plan.rounds,
        load_duration_s: plan.duration.as_secs_f64(),
        load_warmup_s: plan.warmup.as_secs_f64(),
        servers: &servers,
        rows: &rows,
        load: &load,
        broadcast: broadcast.as_ref(),
        idle_gate: idle_gate.as_ref(),
        idle_baseline: idle_baseline.as_ref(),
        codec: &codec,
        notes: &notes,
        failures: &failures,
        child_exits: &child_exits,
    };
    let mut f = File::create(&plan.json_out)
        .with_context(|| format!("writing {}", plan.json_out.display()))?;
    serde_json::to_writer_pretty(&mut f, &results).context("serialising results")?;
    writeln!(f).context("writing results")?;

    println!();
    for r in &rows {
        println!(
            "{:<4}  {}: {} (target {})",
            pass_str(r.pass),
            r.scenario,
            r.measured,
            r.target
        );
    }
    println!(
        "wrote {} and {}",
        plan.out.display(),
        plan.json_out.display()
    );
    if !failures.is_empty() {
        println!("failures:");
        for f in &failures {
            println!("  {f}");
        }
        return Ok(false);
    }
    let missed = rows.iter().any(|r| r.pass == Some(false));
    Ok(!(plan.strict && missed))
}

fn report_idle(
    r: Result<IdleReport>,
    what: &str,
    failures: &mut Vec<String>,
) -> Option<IdleReport> {
    match r {
        Ok(r) => {
            println!("{}", r.human());
            if !r.clean() {
                failures.push(format!(
                    "{what}: {}",
                    r.first_problem
                        .clone()
                        .unwrap_or_else(|| "not clean".into())
                ));
            }
            Some(r)
        }
        Err(e) => {
            println!("{what} failed: {e:#}");
            failures.push(format!("{what}: {e:#}"));
            None
        }
    }
}

fn summary_rows(
    load: &BTreeMap<&'static str, Vec<LoadReport>>,
    commands: &BTreeMap<&'static str, String>,
    broadcast: Option<&BroadcastReport>,
    idle_gate: Option<&IdleReport>,
    idle_baseline: Option<&IdleReport>,
    codec: &[CodecFigure],
) -> Vec<Row> {
    let runs = |k: &str| load.get(k).map(Vec::as_slice).unwrap_or(&[]);
    let clean = |k: &str| runs(k).iter().all(LoadReport::clean);
    let cmd = |keys: &[&str]| {
        keys.iter()
            .filter_map(|k| commands.get(k).map(|c| format!("`{c}`")))
            .collect::<Vec<_>>()
            .join(" vs ")
    };
    let mut rows = Vec::new();

    let mut throughput = |title: &str, subject: &str, min: f64| {
        let s = median_of(runs(subject), |r| r.msgs_per_s);
        let b = median_of(runs("baseline_w16"), |r| r.msgs_per_s);
        let (measured, pass) = match (s, b) {
            (Some(s), Some(b)) if b > 0.0 => {
                let ratio = s / b;
                let mut m =
                    format!("{s:.0} msg/s vs baseline {b:.0} msg/s = **{ratio:.2} x baseline**");
                if !clean(subject) {
                    m.push_str(" (errors/mismatches: see details)");
                }
                (
                    m,
                    Some(ratio >= min && clean(subject) && clean("baseline_w16")),
                )
            }
            _ => ("not measured".to_string(), None),
        };
        rows.push(Row {
            scenario: title.to_string(),
            measured,
            target: format!(">= {min:.2} x baseline msg/s"),
            pass,
            command: cmd(&["baseline_w16", subject]),
        });
    };
    throughput(
        "Gate-local echo (msg 5), 100 conns x window 16, 64 B",
        "local_echo_w16",
        LOCAL_RATIO_MIN,
    );
    throughput(
        "Forwarded echo (msg 6, gate -> im -> gate), 100 conns x window 16, 64 B",
        "forward_echo_w16",
        FORWARD_RATIO_MIN,
    );

    {
        let s = median_of(runs("forward_echo_w1"), |r| r.latency_us.p99 as f64);
        let b = median_of(runs("baseline_w1"), |r| r.latency_us.p99 as f64);
        let (measured, pass) = match (s, b) {
            (Some(s), Some(b)) if b > 0.0 => {
                let ratio = s / b;
                (
                    format!("p99 {s:.0} us vs baseline p99 {b:.0} us = **{ratio:.2} x baseline**"),
                    Some(
                        ratio <= P99_RATIO_MAX && clean("forward_echo_w1") && clean("baseline_w1"),
                    ),
                )
            }
            _ => ("not measured".to_string(), None),
        };
        rows.push(Row {
            scenario: "Forwarded echo p99 latency, 100 conns x window 1, 64 B".into(),
            measured,
            target: format!("<= {P99_RATIO_MAX:.0} x baseline p99"),
            pass,
            command: cmd(&["baseline_w1", "forward_echo_w1"]),
        });
    }

    {
        let (measured, pass) = match idle_gate {
            Some(r) => match (r.bytes_per_session, r.rss_before_kib, r.rss_after_kib) {
                (Some(b), Some(before), Some(after)) => (
                    format!(
                        "**{:.0} B/session** ({:.2} KiB): gate RSS {:.1} -> {:.1} MiB with {} sessions{}",
                        b,
                        b / 1024.0,
                        before as f64 / 1024.0,
                        after as f64 / 1024.0,
                        r.connected,
                        if r.clean() {
                            ""
                        } else {
                            " (not clean: see details)"
                        }
                    ),
                    Some(b <= IDLE_BYTES_MAX && r.clean()),
                ),
                _ => ("not measured".into(), None),
            },
            None => ("not measured (failed: see details)".into(), Some(false)),
        };
        rows.push(Row {
            scenario: match idle_gate {
                Some(r) if r.attempted < r.requested => format!(
                    "Idle sessions on one gate (gate process alone), {} sessions \
                     ({} asked: capped by RLIMIT_NOFILE, see notes)",
                    r.attempted, r.requested
                ),
                r => format!(
                    "Idle sessions on one gate (gate process alone), {} sessions",
                    r.map_or(0, |r| r.attempted)
                ),
            },
            measured,
            target: "<= 8 KiB RSS per session".into(),
            pass,
            command: cmd(&["idle_gate"]),
        });
    }
    if let Some(r) = idle_baseline {
        rows.push(Row {
            scenario: format!(
                "Idle sessions on the baseline echo-server (sanity figure), {} sessions",
                r.requested
            ),
            measured: format!("{:.0} B/session", r.bytes_per_session.unwrap_or(0.0)),
            target: "none (reference)".into(),
            pass: None,
            command: cmd(&["idle_baseline"]),
        });
    }

    {
        let (measured, pass) = match broadcast {
            Some(r) => (
                format!(
                    "all received in p50 **{}**, max {} over {} rounds; {} missing",
                    ms(r.all_delivered_p50_ms),
                    ms(r.all_delivered_max_ms),
                    r.rounds.len(),
                    r.missing
                ),
                Some(
                    r.clean()
                        && r.all_delivered_p50_ms
                            .is_some_and(|p| p <= BROADCAST_P50_MS_MAX),
                ),
            ),
            None => ("failed: see details".into(), Some(false)),
        };
        rows.push(Row {
            scenario: format!(
                "Broadcast to {} sessions on one gate",
                broadcast.map_or(0, |r| r.sessions)
            ),
            measured,
            target: format!("all delivered, p50 <= {BROADCAST_P50_MS_MAX:.0} ms"),
            pass,
            command: cmd(&["broadcast"]),
        });
    }

    for c in codec {
        rows.push(Row {
            scenario: format!("Codec {} (64 B payload)", c.name.replace('_', " ")),
            measured: c.ns.map_or_else(
                || "not measured in this run".into(),
                |ns| format!("{ns:.1} ns/op"),
            ),
            target: format!("<= {CODEC_NS_MAX:.0} ns/op"),
            pass: c.ns.map(|ns| ns <= CODEC_NS_MAX),
            command: "`cargo bench -p zinx-cluster --bench codec`".into(),
        });
    }
    rows
}

struct MarkdownInput<'a> {
    generated: &'a str,
    command: &'a str,
    machine: &'a Machine,
    plan: &'a SuitePlan,
    servers: &'a BTreeMap<&'static str, String>,
    rows: &'a [Row],
    load: &'a BTreeMap<&'static str, Vec<LoadReport>>,
    commands: &'a BTreeMap<&'static str, String>,
    broadcast: Option<&'a BroadcastReport>,
    idle_gate: Option<&'a IdleReport>,
    idle_baseline: Option<&'a IdleReport>,
    codec: &'a [CodecFigure],
    failures: &'a [String],
    notes: &'a [String],
    child_exits: &'a [String],
}

fn markdown(m: &MarkdownInput<'_>) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let p = m.plan;
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Generated by `bench suite` on {}{}.\n",
        m.generated,
        if p.quick {
            " (**--quick smoke run: short durations, small counts; not representative**)"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "- Command: `{}`", m.command);
    let _ = writeln!(
        s,
        "- `bench` below is this same executable (`cargo run -p demo --release --bin bench -- ...`); \
         the servers it ran against are listed under Servers."
    );
    let _ = writeln!(s, "- Machine: {}", m.machine.describe());
    let _ = writeln!(
        s,
        "- Build: release profile (`cargo build --release -p demo --bins`).\n\
         - **Client and servers share the same {} cores.** The load generator, the baseline \
         echo-server and the demo cluster all run on this one machine at once, so absolute \
         numbers are what is left after the client takes its share. The headline is the \
         *ratio* of subject to baseline measured in this one run, interleaved \
         (baseline, subjects, baseline, subjects, ... for {} rounds; medians reported), \
         so both saw the same machine.",
        m.machine.cores, p.rounds
    );
    let _ = writeln!(
        s,
        "- Load runs: {} connections, {} B payload, {} s measured after {} s warmup each; \
         every reply checked for msg_id and identical bytes.\n",
        LOAD_CONNS,
        LOAD_SIZE,
        p.duration.as_secs_f64(),
        p.warmup.as_secs_f64()
    );

    let _ = writeln!(s, "## Summary\n");
    let _ = writeln!(s, "| Scenario | Measured | Target | Result | Command |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for r in m.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.scenario,
            r.measured,
            r.target,
            pass_str(r.pass),
            r.command
        );
    }
    if !m.notes.is_empty() {
        let _ = writeln!(s, "\n**Notes:**\n");
        for n in m.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    if !m.failures.is_empty() {
        let _ = writeln!(s, "\n**Failures in this run:**\n");
        for f in m.failures {
            let _ = writeln!(s, "- {f}");
        }
    }

    let _ = writeln!(s, "\n## Servers\n");
    let _ = writeln!(
        s,
        "- Baseline: `{}`",
        m.servers.get("baseline").map_or("", String::as_str)
    );
    let _ = writeln!(
        s,
        "- Demo cluster (one process): `{}`",
        m.servers.get("demo").map_or("", String::as_str)
    );
    let _ = writeln!(
        s,
        "- Demo for the idle scenario (three processes, the gate's RSS measured): `{}`",
        m.servers.get("demo_idle").map_or("", String::as_str)
    );
    let _ = writeln!(s, "- Generated configuration (free ports picked per run):");
    for k in [
        "demo_conf_dinx",
        "demo_idle_conf_dinx",
        "demo_conf_route",
        "demo_conf_settings",
    ] {
        if let Some(v) = m.servers.get(k) {
            let _ = writeln!(s, "  - {k}: `{v}`");
        }
    }
    for e in m.child_exits {
        let _ = writeln!(s, "- Stop: {e}");
    }

    let _ = writeln!(s, "\n## Load scenarios, each round\n");
    let _ = writeln!(
        s,
        "| Run | Round | msg/s | p50 us | p90 us | p99 us | p99.9 us | max us | errors | mismatches | lost |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    for shape in SHAPES {
        for (i, r) in m
            .load
            .get(shape.key)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let l = &r.latency_us;
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
                shape.key,
                i + 1,
                r.msgs_per_s,
                l.p50,
                l.p90,
                l.p99,
                l.p999,
                l.max,
                r.errors,
                r.mismatches,
                r.lost
            );
        }
    }
    let _ = writeln!(
        s,
        "\nPer-round ratios (subject / baseline of the same round):\n"
    );
    let rounds = m.load.get("baseline_w16").map_or(0, Vec::len);
    for i in 0..rounds {
        let get = |k: &str| m.load.get(k).and_then(|v| v.get(i));
        let ratio = |a: Option<&LoadReport>, b: Option<&LoadReport>, f: fn(&LoadReport) -> f64| {
            match (a, b) {
                (Some(a), Some(b)) if f(b) > 0.0 => format!("{:.2}", f(a) / f(b)),
                _ => "n/a".into(),
            }
        };
        let _ = writeln!(
            s,
            "- round {}: local echo {} x, forwarded echo {} x (msg/s); forwarded p99 {} x",
            i + 1,
            ratio(get("local_echo_w16"), get("baseline_w16"), |r| r.msgs_per_s),
            ratio(get("forward_echo_w16"), get("baseline_w16"), |r| r
                .msgs_per_s),
            ratio(
                get("forward_echo_w1"),
                get("baseline_w1"),
                |r| r.latency_us.p99 as f64
            ),
        );
    }
    let _ = writeln!(s, "\nCommands (against the servers above):\n");
    for shape in SHAPES {
        if let Some(c) = m.commands.get(shape.key) {
            let _ = writeln!(s, "- {}: `{c}`", shape.key);
        }
    }

    let _ = writeln!(s, "\n## Broadcast\n");
    match m.broadcast {
        Some(b) => {
            let _ = writeln!(
                s,
                "`{}`\n",
                m.commands.get("broadcast").map_or("", String::as_str)
            );
            let _ = writeln!(s, "```text\n{}\n```\n", b.human());
            let _ = writeln!(s, "| Round | all received | p50 delivery | missing |");
            let _ = writeln!(s, "|---|---|---|---|");
            for (i, r) in b.rounds.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.1} ms | {} |",
                    i + 1,
                    ms(r.all_delivered_ms),
                    r.p50_ms,
                    r.missing
                );
            }
        }
        None => {
            let _ = writeln!(s, "Not measured (failed: see failures above).");
        }
    }

    let _ = writeln!(s, "\n## Idle sessions\n");
    for (title, key, r) in [
        ("Gate alone (`demo --id 1`)", "idle_gate", m.idle_gate),
        (
            "Baseline echo-server (sanity figure)",
            "idle_baseline",
            m.idle_baseline,
        ),
    ] {
        let _ = writeln!(
            s,
            "{title}: `{}`\n",
            m.commands.get(key).map_or("", String::as_str)
        );
        match r {
            Some(r) => {
                let _ = writeln!(s, "```text\n{}\n```\n", r.human());
            }
            None => {
                let _ = writeln!(s, "Not measured.\n");
            }
        }
    }
    let _ = writeln!(
        s,
        "RSS is the process's VmRSS from /proc; kernel socket buffers are not part of it. \
         Bytes per session = (RSS after - RSS before) / sessions, read after a 2 s settle."
    );

    let _ = writeln!(s, "\n## Codec microbenchmarks\n");
    let _ = writeln!(
        s,
        "From criterion (`cargo bench -p zinx-cluster --bench codec`), read by the suite from \
         criterion's output directory; the suite does not run them itself. A row that says \
         \"not measured\" is filled by running that command before the suite.\n"
    );
    for c in m.codec {
        let _ = writeln!(
            s,
            "- {}: {} ({})",
            c.name,
            c.ns.map_or("n/a".into(), |ns| format!("{ns:.1} ns")),
            c.source
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_conf_matches_the_demo_contract() {
        let dir = tempfile::tempdir().unwrap();
        write_conf(dir.path(), &[4001, 4002, 4003]).unwrap();
        let read = |name: &str| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(name)).unwrap()).unwrap()
        };
        let dinx = read("dinx.json");
        assert_eq!(dinx["gate"][0]["ID"], 1);
        assert_eq!(dinx["gate"][0]["Type"], 1);
        assert_eq!(dinx["gate"][0]["Port"], 4001);
        assert_eq!(dinx["im"][1]["Name"], "im-2");
        assert_eq!(dinx["im"][1]["Port"], 4003);
        let route = read("route.json");
        assert_eq!(route["gate"][2]["MsgID"], 5);
        assert_eq!(route["im"][2]["MsgID"], 6);
        let settings = read("settings.json");
        assert_eq!(settings["idle_timeout_ms"], 0);
        assert_eq!(settings["max_sessions"], 200000);
        assert!(write_conf(dir.path(), &[1, 2]).is_err());
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        let t = utc_now();
        assert_eq!(t.len(), "2026-01-01 00:00:00 UTC".len(), "{t}");
        assert!(t.starts_with("20") && t.ends_with(" UTC"), "{t}");
    }

    #[test]
    fn missing_criterion_results_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let fig = criterion_figure(dir.path(), "frame_encode");
        assert_eq!(fig.ns, None);
        assert!(fig.source.starts_with("not found"));
        let est = dir.path().join("codec/frame_encode/new");
        std::fs::create_dir_all(&est).unwrap();
        std::fs::write(
            est.join("estimates.json"),
            r#"{"mean":{"point_estimate":12.5}}"#,
        )
        .unwrap();
        assert_eq!(criterion_figure(dir.path(), "frame_encode").ns, Some(12.5));
        std::fs::write(
            est.join("estimates.json"),
            r#"{"mean":{"point_estimate":12.5},"slope":{"point_estimate":11.0}}"#,
        )
        .unwrap();
        assert_eq!(criterion_figure(dir.path(), "frame_encode").ns, Some(11.0));
    }
}
