//! `bench`: load and benchmark tool for zinx-cluster gates.
//!
//! - `echo-server`: the baseline, a plain tokio server echoing every frame.
//! - `load`: closed-loop request load with reply checking and latency
//!   percentiles.
//! - `idle`: RSS cost of idle sessions in a server process, over TCP,
//!   WebSocket, TLS or WSS.
//! - `broadcast`: fan-out latency of the demo's broadcast.
//! - `rooms`: a big room against a broadcast, small rooms against pushes.
//! - `suite`: all of the above against a baseline and the demo cluster,
//!   written to BENCHMARKS.md and a JSON file.
//! - `chaos`: the demo as processes under pipelined load while its
//!   backends are killed, frozen and restarted; fails if any request is
//!   never answered.
//! - `cert`: a self-signed certificate for a TLS gate and `load --tls`.
//! - `slowloris`: `/healthz` latency of an admin endpoint while many
//!   slowloris connections hold its port.
//!
//! Build it beside the demo (`cargo build --release -p demo -p bench`);
//! `suite` starts `target/release/demo` as child processes (or `--demo
//! PATH`). See `docs/bench.md` for examples.

mod broadcast;
mod cert;
#[cfg(unix)]
mod chaos;
mod echo_server;
mod idle;
mod load;
mod rooms;
mod slowloris;
mod suite;
mod sys;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

/// Load and benchmark tool for zinx-cluster gates (zinx TLV frames).
#[derive(Parser, Debug)]
#[command(name = "bench", version)]
struct Cli {
    /// Tokio worker threads (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Baseline server: echoes every frame with the same codec, until
    /// SIGINT/SIGTERM.
    EchoServer(EchoServerArgs),
    /// Keep WINDOW requests in flight on each of CONNS connections and check
    /// every reply.
    Load(LoadArgs),
    /// Open many sessions, one echo each, then idle; report the server's RSS
    /// per session.
    Idle(IdleArgs),
    /// Broadcast (demo msg 4) to many logged-in sessions and time delivery.
    Broadcast(BroadcastArgs),
    /// One room of every session against a broadcast to them, then many
    /// small rooms against pushes to a user (demo msgs 7, 9, 4, 3).
    Rooms(RoomsArgs),
    /// Run every scenario against the baseline and the demo cluster and write
    /// BENCHMARKS.md and a JSON file.
    Suite(SuiteArgs),
    /// Keep pipelined load on the demo (as processes) while its backends
    /// are killed (kill -9), frozen (SIGSTOP) and restarted; report every
    /// request per fault; fail if any was never answered.
    #[cfg(unix)]
    Chaos(ChaosArgs),
    /// Write a self-signed certificate (`gate.pem`) and its key
    /// (`gate.key`) for `localhost` and 127.0.0.1 into DIR: point a gate's
    /// `tls_cert` / `tls_key` at them and `bench load --tls` at `gate.pem`.
    Cert(CertArgs),
    /// Hold CONNS slowloris connections on an admin endpoint (never a whole
    /// request head; reconnecting when closed) and time PROBES requests
    /// to `/healthz` meanwhile.
    Slowloris(SlowlorisArgs),
}

#[derive(Args, Debug)]
struct SlowlorisArgs {
    /// The admin endpoint (host:port).
    #[arg(long)]
    addr: String,
    /// Slowloris connections held open.
    #[arg(long, default_value_t = 1000)]
    conns: usize,
    /// Probes, one after another, each on a new connection.
    #[arg(long, default_value_t = 100)]
    probes: usize,
    /// Seconds between two probes.
    #[arg(long, default_value_t = 0.05)]
    interval: f64,
    /// Seconds between two bytes of a dripping attacker (every other one
    /// drips; the rest send nothing).
    #[arg(long, default_value_t = 0.2)]
    drip: f64,
    /// Seconds to wait once every attacker connected, before probing.
    #[arg(long, default_value_t = 3.0)]
    settle: f64,
    /// Seconds a probe may take before it counts as unanswered.
    #[arg(long, default_value_t = 10.0)]
    probe_timeout: f64,
    /// The probed path.
    #[arg(long, default_value = "/healthz")]
    path: String,
    /// Spread the attackers over this many loopback source addresses from
    /// --source-base (1: the kernel's choice, the probes' own address).
    #[arg(long, default_value_t = 1)]
    sources: usize,
    /// First attacker source address with --sources above 1.
    #[arg(long, default_value = "127.0.0.2")]
    source_base: Ipv4Addr,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct CertArgs {
    /// Directory to write `gate.pem` and `gate.key` into.
    #[arg(long)]
    dir: PathBuf,
}

#[derive(Args, Debug)]
struct ChaosArgs {
    /// Load connections.
    #[arg(long, default_value_t = 32)]
    conns: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Seconds of load after each step of the schedule.
    #[arg(long, default_value_t = 3.0)]
    hold: f64,
    /// Rounds of the schedule.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// The demo binary [default: `demo` next to this executable].
    #[arg(long)]
    demo: Option<PathBuf>,
    /// Keep the temporary directory (configuration, child logs).
    #[arg(long)]
    keep_tmp: bool,
    /// Print one JSON line instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct EchoServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: String,
    /// Largest frame data accepted, bytes.
    #[arg(long, default_value_t = zinx_cluster::wire::DEFAULT_MAX_FRAME_LEN)]
    max_frame_len: usize,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("stop").required(true).args(["duration", "requests"])))]
struct LoadArgs {
    /// Server address (host:port).
    #[arg(long)]
    addr: String,
    /// msg_id of every request; replies must come back on it.
    #[arg(long, default_value_t = 5)]
    msg_id: u32,
    /// Connections.
    #[arg(long, default_value_t = 100)]
    conns: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Payload bytes per request (at least 16: the request identifier).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Measure for this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Measure this many requests (over all connections).
    #[arg(long)]
    requests: Option<u64>,
    /// Unmeasured load for this many seconds first.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Seconds a connection waits for a reply before counting its requests
    /// in flight as lost.
    #[arg(long, default_value_t = 10.0)]
    reply_timeout: f64,
    /// Print one JSON line instead of text (and no progress bar).
    #[arg(long)]
    json: bool,
    /// Speak WebSocket on this path of ADDR (a gate's WsPort and WsPath,
    /// e.g. `--ws /`): each request frame is one binary message, as zinx's
    /// NewWsClient sends them.
    #[arg(long)]
    ws: Option<String>,
    /// Speak TLS (WSS with --ws), trusting the certificates of this PEM
    /// file (a CA, or the gate's own certificate; `bench cert` makes one).
    #[arg(long, value_name = "PEM")]
    tls: Option<PathBuf>,
    /// The name the gate's certificate must carry, with --tls.
    #[arg(long, default_value = "localhost", requires = "tls")]
    server_name: String,
}

#[derive(Args, Debug)]
struct IdleArgs {
    /// Server address (host:port).
    #[arg(long)]
    addr: String,
    /// Sessions to open; each sends one echo and reads its answer, then
    /// stays silent.
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
    /// Server process whose RSS is measured.
    #[arg(long)]
    pid: Option<u32>,
    /// Seconds to wait after connecting before reading the RSS.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Sessions checked with an echo at the end.
    #[arg(long, default_value_t = 100)]
    sample: usize,
    /// msg_id of every session's first echo and of the liveness echo (5:
    /// the demo gate's local echo).
    #[arg(long, default_value_t = 5)]
    echo_msg_id: u32,
    /// First loopback source address; sessions spread over it and the
    /// following addresses, 20,000 each, when the server is on loopback.
    #[arg(long, default_value = "127.0.0.2")]
    source_base: Ipv4Addr,
    /// Speak WebSocket on this path of ADDR (a gate's WsPort and WsPath,
    /// e.g. `--ws /`): each echo is one masked binary message.
    #[arg(long)]
    ws: Option<String>,
    /// Speak TLS (WSS with --ws), trusting the certificates of this PEM
    /// file (a CA, or the gate's own certificate; `bench cert` makes one).
    #[arg(long, value_name = "PEM")]
    tls: Option<PathBuf>,
    /// The name the gate's certificate must carry, with --tls.
    #[arg(long, default_value = "localhost", requires = "tls")]
    server_name: String,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

/// The TLS settings of `--tls PEM --server-name NAME`: reads the PEM file.
fn tls_plan(ca: Option<&PathBuf>, server_name: &str) -> Result<Option<load::TlsPlan>> {
    let Some(ca) = ca else {
        return Ok(None);
    };
    Ok(Some(load::TlsPlan {
        trust: zinx_cluster_client::ClientTls::trusting_pem_file(ca)?,
        ca: ca.clone(),
        server_name: server_name.to_string(),
    }))
}

#[derive(Args, Debug)]
struct BroadcastArgs {
    /// Gate address (host:port).
    #[arg(long)]
    addr: String,
    /// Logged-in sessions (all receive every broadcast).
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Broadcasts, one per round.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Seconds a round waits for every delivery.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Seconds between rounds.
    #[arg(long, default_value_t = 0.2)]
    pause: f64,
    /// First loopback source address (see `idle`).
    #[arg(long, default_value = "127.0.0.2")]
    source_base: Ipv4Addr,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct RoomsArgs {
    /// Gate address (host:port).
    #[arg(long)]
    addr: String,
    /// Logged-in sessions, all members of the big room.
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// Rounds of the big room against the broadcast.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Small rooms.
    #[arg(long, default_value_t = 10_000)]
    rooms: usize,
    /// Members of a small room.
    #[arg(long, default_value_t = 10)]
    size: usize,
    /// Seconds a phase waits for its deliveries.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// First loopback source address (see `idle`).
    #[arg(long, default_value = "127.0.0.2")]
    source_base: Ipv4Addr,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct SuiteArgs {
    /// Markdown report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Machine-readable results.
    #[arg(long, default_value = "bench-results.json")]
    json_out: PathBuf,
    /// Short smoke run: 2 rounds of 1 s, small session counts.
    #[arg(long)]
    quick: bool,
    /// Rounds of the interleaved load scenarios [default: 3, quick 2].
    #[arg(long)]
    rounds: Option<usize>,
    /// Measured seconds per load run [default: 10, quick 1].
    #[arg(long)]
    duration: Option<f64>,
    /// Warmup seconds per load run [default: 2, quick 0.3].
    #[arg(long)]
    warmup: Option<f64>,
    /// Idle sessions [default: 50000, quick 2000].
    #[arg(long)]
    idle_sessions: Option<usize>,
    /// Broadcast sessions [default: 10000, quick 500].
    #[arg(long)]
    broadcast_sessions: Option<usize>,
    /// Broadcast rounds [default: 10, quick 3].
    #[arg(long)]
    broadcast_rounds: Option<usize>,
    /// The demo binary [default: `demo` next to this executable].
    #[arg(long)]
    demo: Option<PathBuf>,
    /// Criterion's output directory [default: ../criterion from this
    /// executable's directory, i.e. target/criterion].
    #[arg(long)]
    criterion_dir: Option<PathBuf>,
    /// Keep the temporary directory (generated configuration, child logs).
    #[arg(long)]
    keep_tmp: bool,
    /// Exit non-zero when a target is missed (always on a failure).
    #[arg(long)]
    strict: bool,
    /// The JSON results (`--json-out`) of an earlier run: the report gets a
    /// "Before and after" section comparing the headline figures.
    #[arg(long)]
    before: Option<PathBuf>,
}

fn secs(v: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(v)
        .with_context(|| format!("{flag} must be a non-negative number of seconds"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let result = rt
        .build()
        .context("starting the tokio runtime")
        .and_then(|rt| rt.block_on(run(cli.cmd)));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs a subcommand; `Ok(false)` when it ran but found failures.
async fn run(cmd: Cmd) -> Result<bool> {
    match cmd {
        Cmd::Cert(a) => {
            let files = cert::write_self_signed(&a.dir)?;
            println!("{}", files.cert.display());
            println!("{}", files.key.display());
            Ok(true)
        }
        Cmd::Slowloris(a) => {
            let plan = slowloris::SlowlorisPlan {
                addr: sys::resolve(&a.addr).await?,
                conns: a.conns,
                probes: a.probes,
                interval: secs(a.interval, "--interval")?,
                drip: secs(a.drip, "--drip")?,
                settle: secs(a.settle, "--settle")?,
                probe_timeout: secs(a.probe_timeout, "--probe-timeout")?,
                path: a.path,
                sources: a.sources.max(1),
                source_base: a.source_base,
            };
            let report = slowloris::run(&plan).await?;
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", report.human());
            }
            Ok(report.clean())
        }
        Cmd::EchoServer(a) => {
            echo_server::run(&a.addr, a.max_frame_len).await?;
            Ok(true)
        }
        Cmd::Load(a) => {
            let stop = match (a.duration, a.requests) {
                (Some(d), None) => load::StopAt::Duration(secs(d, "--duration")?),
                (None, Some(r)) => load::StopAt::Requests(r),
                _ => bail!("give exactly one of --duration and --requests"),
            };
            let plan = load::LoadPlan {
                addr: sys::resolve(&a.addr).await?,
                msg_id: a.msg_id,
                conns: a.conns,
                window: a.window,
                size: a.size,
                stop,
                warmup: secs(a.warmup, "--warmup")?,
                reply_timeout: secs(a.reply_timeout, "--reply-timeout")?,
                progress: !a.json,
                ws: a.ws.clone(),
                tls: tls_plan(a.tls.as_ref(), &a.server_name)?,
            };
            let report = load::run(&plan).await?;
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", report.human());
            }
            if !report.clean() {
                eprintln!("bench load: FAILED (errors, mismatches, lost requests or no replies)");
            }
            Ok(report.clean())
        }
        Cmd::Idle(a) => {
            let plan = idle::IdlePlan {
                addr: sys::resolve(&a.addr).await?,
                conns: a.conns,
                pid: a.pid,
                settle: secs(a.settle, "--settle")?,
                sample: a.sample,
                echo_msg_id: a.echo_msg_id,
                source_base: a.source_base,
                transport: idle::Transport {
                    ws: a.ws.clone(),
                    tls: tls_plan(a.tls.as_ref(), &a.server_name)?,
                },
                progress: !a.json,
            };
            let report = idle::run(&plan).await?;
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", report.human());
            }
            if !report.clean() {
                eprintln!(
                    "bench idle: FAILED (sessions that did not open, were closed, were sent \
                     something while idle, or did not echo)"
                );
            }
            Ok(report.clean())
        }
        Cmd::Broadcast(a) => {
            let plan = broadcast::BroadcastPlan {
                addr: sys::resolve(&a.addr).await?,
                sessions: a.sessions,
                rounds: a.rounds,
                timeout: secs(a.timeout, "--timeout")?,
                pause: secs(a.pause, "--pause")?,
                source_base: a.source_base,
                progress: !a.json,
            };
            let report = broadcast::run(&plan).await?;
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", report.human());
            }
            Ok(report.clean())
        }
        Cmd::Rooms(a) => {
            let plan = rooms::RoomsPlan {
                addr: sys::resolve(&a.addr).await?,
                sessions: a.sessions,
                rounds: a.rounds,
                rooms: a.rooms,
                size: a.size,
                timeout: secs(a.timeout, "--timeout")?,
                source_base: a.source_base,
            };
            let report = rooms::run(&plan).await?;
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", report.human());
            }
            Ok(report.clean())
        }
        Cmd::Suite(a) => {
            let q = a.quick;
            let plan = suite::SuitePlan {
                out: a.out,
                json_out: a.json_out,
                quick: q,
                rounds: a.rounds.unwrap_or(if q { 2 } else { 3 }).max(1),
                duration: secs(
                    a.duration.unwrap_or(if q { 1.0 } else { 10.0 }),
                    "--duration",
                )?,
                warmup: secs(a.warmup.unwrap_or(if q { 0.3 } else { 2.0 }), "--warmup")?,
                idle_sessions: a.idle_sessions.unwrap_or(if q { 2_000 } else { 50_000 }),
                broadcast_sessions: a.broadcast_sessions.unwrap_or(if q { 500 } else { 10_000 }),
                broadcast_rounds: a.broadcast_rounds.unwrap_or(if q { 3 } else { 10 }),
                demo: a.demo,
                criterion_dir: a.criterion_dir,
                keep_tmp: a.keep_tmp,
                strict: a.strict,
                before: a.before,
            };
            suite::run(&plan).await
        }
        #[cfg(unix)]
        Cmd::Chaos(a) => {
            let plan = chaos::ChaosPlan {
                demo: demo_binary(a.demo)?,
                conns: a.conns.max(1),
                window: a.window.max(1),
                hold: secs(a.hold, "--hold")?,
                rounds: a.rounds.max(1),
                keep_tmp: a.keep_tmp,
            };
            let report = chaos::run(&plan).await?;
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", report.human());
            }
            if !report.clean() {
                eprintln!(
                    "bench chaos: FAILED ({} requests never answered, {} client connections closed)",
                    report.never_answered, report.closed_connections
                );
            }
            Ok(report.clean())
        }
    }
}

/// `--demo`, else `demo` next to this executable; an error naming the
/// build command when it is missing.
#[cfg(unix)]
fn demo_binary(given: Option<PathBuf>) -> Result<PathBuf> {
    let demo = match given {
        Some(d) => d,
        None => std::env::current_exe()
            .context("locating this executable")?
            .with_file_name(format!("demo{}", std::env::consts::EXE_SUFFIX)),
    };
    if !demo.is_file() {
        bail!(
            "demo binary not found at {}: build both with \
             `cargo build --release -p demo -p bench` (or pass --demo PATH)",
            demo.display()
        );
    }
    Ok(demo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle_args(args: &[&str]) -> Result<IdleArgs, clap::Error> {
        let argv = ["bench", "idle", "--addr", "127.0.0.1:9000"]
            .iter()
            .chain(args)
            .copied();
        match Cli::try_parse_from(argv)?.cmd {
            Cmd::Idle(a) => Ok(a),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn idle_speaks_tcp_unless_told_otherwise() {
        let a = idle_args(&[]).unwrap();
        assert_eq!((a.ws, a.tls), (None, None));
        assert_eq!(a.echo_msg_id, 5);
        assert_eq!(a.conns, 10_000);
    }

    #[test]
    fn idle_takes_the_transports_of_load() {
        let a = idle_args(&["--ws", "/game", "--tls", "conf-tls/gate.pem"]).unwrap();
        assert_eq!(a.ws.as_deref(), Some("/game"));
        assert_eq!(a.tls, Some(PathBuf::from("conf-tls/gate.pem")));
        assert_eq!(a.server_name, "localhost");
        let a = idle_args(&["--tls", "ca.pem", "--server-name", "gate.example"]).unwrap();
        assert_eq!(a.server_name, "gate.example");
        // A server name means nothing without TLS.
        let e = idle_args(&["--server-name", "gate.example"]).unwrap_err();
        assert!(e.to_string().contains("--tls"), "{e}");
    }

    #[test]
    fn tls_flags_read_the_trusted_certificate() {
        assert!(tls_plan(None, "localhost").unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let files = cert::write_self_signed(dir.path()).unwrap();
        let plan = tls_plan(Some(&files.cert), "localhost").unwrap().unwrap();
        assert_eq!(plan.ca, files.cert);
        assert_eq!(plan.server_name, "localhost");
        let missing = dir.path().join("missing.pem");
        let e = tls_plan(Some(&missing), "localhost").unwrap_err();
        assert!(format!("{e:#}").contains("missing.pem"), "{e:#}");
        // The key is not a certificate to trust.
        assert!(tls_plan(Some(&files.key), "localhost").is_err());
    }
}
