//! The suite's scenarios in order: the children started, the load shapes
//! run interleaved for several rounds, then broadcast, rooms and idle
//! sessions (TCP, WebSocket, TLS, WSS, each on a freshly started gate),
//! then the figures handed to the report.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use zinx_test_support::process::Server;

use super::compare;
use super::conf::{
    SETTINGS_JSON, SETTINGS_TCP_LINKS_JSON, SETTINGS_TLS_JSON, write_conf, write_conf_with,
    write_tls_conf,
};
use super::measure::{CodecFigure, criterion_figure, summary_rows};
use super::report::{MarkdownInput, Results, markdown, pass_str, utc_now};
use super::{FEW_CONNS, LOAD_CONNS, LOAD_SIZE, SuiteEnv, SuitePlan};
use crate::broadcast::BroadcastPlan;
use crate::idle::{IdlePlan, IdleReport, Transport};
use crate::load::{LoadPlan, LoadReport, StopAt, TlsPlan};

/// One load run of the interleaved sequence.
pub(super) struct Shape {
    /// Key in the results.
    pub(super) key: &'static str,
    /// Against the baseline (true) or the gate.
    pub(super) baseline: bool,
    pub(super) msg_id: u32,
    /// Connections.
    pub(super) conns: usize,
    /// Requests in flight per connection.
    pub(super) window: usize,
    /// Over WebSocket to the gate's WsPort (path `/`), one zinx frame per
    /// binary message; the baseline speaks TCP only.
    pub(super) ws: bool,
    /// To the gate of a second demo process whose nodes link over TCP
    /// (`local_links: false`), as nodes of separate processes do; the
    /// main demo's nodes link in process.
    pub(super) tcp_links: bool,
}

pub(super) const SHAPES: &[Shape] = &[
    Shape {
        key: "baseline_w16",
        baseline: true,
        msg_id: 5,
        conns: LOAD_CONNS,
        window: 16,
        ws: false,
        tcp_links: false,
    },
    Shape {
        key: "local_echo_w16",
        baseline: false,
        msg_id: 5,
        conns: LOAD_CONNS,
        window: 16,
        ws: false,
        tcp_links: false,
    },
    Shape {
        key: "forward_echo_w16",
        baseline: false,
        msg_id: 6,
        conns: LOAD_CONNS,
        window: 16,
        ws: false,
        tcp_links: false,
    },
    // The same two over WebSocket, right after them so that both see the
    // same machine: the headline is WebSocket / TCP through the gate.
    Shape {
        key: "ws_local_echo_w16",
        baseline: false,
        msg_id: 5,
        conns: LOAD_CONNS,
        window: 16,
        ws: true,
        tcp_links: false,
    },
    Shape {
        key: "ws_forward_echo_w16",
        baseline: false,
        msg_id: 6,
        conns: LOAD_CONNS,
        window: 16,
        ws: true,
        tcp_links: false,
    },
    Shape {
        key: "baseline_w1",
        baseline: true,
        msg_id: 5,
        conns: LOAD_CONNS,
        window: 1,
        ws: false,
        tcp_links: false,
    },
    Shape {
        key: "forward_echo_w1",
        baseline: false,
        msg_id: 6,
        conns: LOAD_CONNS,
        window: 1,
        ws: false,
        tcp_links: false,
    },
    // Few connections, one request each: the forwarding hop's own latency
    // decides throughput (issue 11's "forwarded c10w1" figure).
    Shape {
        key: "baseline_c10w1",
        baseline: true,
        msg_id: 5,
        conns: FEW_CONNS,
        window: 1,
        ws: false,
        tcp_links: false,
    },
    Shape {
        key: "forward_echo_c10w1",
        baseline: false,
        msg_id: 6,
        conns: FEW_CONNS,
        window: 1,
        ws: false,
        tcp_links: false,
    },
    // The same hop between nodes of separate processes: over a TCP link.
    Shape {
        key: "forward_echo_c10w1_tcp_links",
        baseline: false,
        msg_id: 6,
        conns: FEW_CONNS,
        window: 1,
        ws: false,
        tcp_links: true,
    },
];

/// Starts a child server and waits until it answers `msg_ids` on `addr`
/// (the `ready` triple: address, msg_ids, how long at most).
async fn spawn_ready(
    name: &str,
    program: &std::path::Path,
    args: &[String],
    log: std::path::PathBuf,
    ready: (SocketAddr, &[u32], Duration),
) -> Result<Server> {
    let mut server = Server::spawn(name, program, args, log)?;
    let (addr, msg_ids, within) = ready;
    server.wait_ready(addr, msg_ids, within).await?;
    Ok(server)
}

pub(super) async fn run_in(plan: &SuitePlan, env: SuiteEnv) -> Result<bool> {
    let SuiteEnv {
        command,
        machine,
        exe,
        demo,
        criterion_dir,
        idle_sessions,
        notes,
        tmp_path,
        before,
    } = env;

    let ports = zinx_test_support::free_ports(17).context("finding free ports")?;
    let baseline_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], ports[0]));
    let gate_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], ports[1]));
    let idle_gate_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], ports[4]));
    let idle_baseline_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], ports[7]));
    let gate_ws_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], ports[8]));
    let conf_all = tmp_path.join("conf");
    let conf_idle = tmp_path.join("conf-idle");
    let dinx_all = write_conf(&conf_all, &ports[1..4], Some(gate_ws_addr.port()))?;
    // The idle gates: one speaking TCP and WebSocket, one TLS and WSS.
    let idle_ws_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], ports[12]));
    let dinx_idle = write_conf(&conf_idle, &ports[4..7], Some(idle_ws_addr.port()))?;
    let idle_tls_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], ports[13]));
    let idle_wss_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], ports[16]));
    let conf_idle_tls = tmp_path.join("conf-idle-tls");
    let (dinx_idle_tls, cert) =
        write_tls_conf(&conf_idle_tls, &ports[13..16], Some(idle_wss_addr.port()))?;
    let trust = TlsPlan {
        trust: zinx_cluster_client::ClientTls::trusting_pem_file(&cert.cert)?,
        ca: cert.cert.clone(),
        server_name: "localhost".to_string(),
    };
    let tcp_gate_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], ports[9]));
    let conf_tcp = tmp_path.join("conf-tcp-links");
    write_conf_with(&conf_tcp, &ports[9..12], None, SETTINGS_TCP_LINKS_JSON)?;

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
    servers.insert(
        "demo_conf_route",
        serde_json::from_str::<serde_json::Value>(zinx_test_support::conf::DEMO_ROUTES)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| zinx_test_support::conf::DEMO_ROUTES.to_string()),
    );
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
    servers.insert(
        "demo_idle_tls",
        idle_ids
            .iter()
            .map(|id| {
                format!(
                    "{} --conf {} --id {id}",
                    demo.display(),
                    conf_idle_tls.display()
                )
            })
            .collect::<Vec<_>>()
            .join(" & "),
    );
    servers.insert("demo_idle_tls_conf_dinx", dinx_idle_tls);
    servers.insert("demo_idle_tls_conf_settings", SETTINGS_TLS_JSON.to_string());

    let mut child_exits = Vec::new();
    let mut baseline = spawn_ready(
        "baseline echo-server",
        &exe,
        &baseline_args,
        tmp_path.join("echo-server.log"),
        (baseline_addr, &[5], Duration::from_secs(20)),
    )
    .await?;
    let mut cluster = spawn_ready(
        "demo cluster",
        &demo,
        &demo_all_args,
        tmp_path.join("demo.log"),
        (gate_addr, &[5, 6], Duration::from_secs(60)),
    )
    .await?;
    let tcp_links_args = vec!["--conf".to_string(), conf_tcp.display().to_string()];
    servers.insert(
        "demo_tcp_links",
        format!("{} {}", demo.display(), tcp_links_args.join(" ")),
    );
    let mut tcp_cluster = spawn_ready(
        "demo cluster (TCP links)",
        &demo,
        &tcp_links_args,
        tmp_path.join("demo-tcp-links.log"),
        (tcp_gate_addr, &[5, 6], Duration::from_secs(60)),
    )
    .await?;
    println!(
        "baseline on {baseline_addr} (pid {}), demo gate on {gate_addr} and ws://{gate_ws_addr}/ (pid {})",
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
                addr: match (shape.baseline, shape.ws, shape.tcp_links) {
                    (true, _, _) => baseline_addr,
                    (false, true, _) => gate_ws_addr,
                    (false, false, true) => tcp_gate_addr,
                    (false, false, false) => gate_addr,
                },
                msg_id: shape.msg_id,
                conns: shape.conns,
                window: shape.window,
                size: LOAD_SIZE,
                stop: StopAt::Duration(plan.duration),
                warmup: plan.warmup,
                reply_timeout: Duration::from_secs(10),
                progress: true,
                ws: shape.ws.then(|| "/".to_string()),
                tls: None,
            };
            commands.insert(shape.key, load_plan.command());
            let report = crate::load::run(&load_plan)
                .await
                .with_context(|| format!("load run {} round {round}", shape.key))?;
            println!(
                "round {round} {:<19} {:>9.0} msg/s  p50 {:>6} us  p99 {:>6} us  errors {} mismatches {} lost {}",
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
    // Rooms on the same cluster: as many sessions, rooms of 10.
    let rooms_plan = crate::rooms::RoomsPlan {
        addr: gate_addr,
        sessions: plan.broadcast_sessions,
        rounds: plan.broadcast_rounds,
        rooms: plan.broadcast_sessions,
        size: 10.min(plan.broadcast_sessions.max(1)),
        timeout: Duration::from_secs(60),
        source_base: Ipv4Addr::new(127, 0, 4, 2),
    };
    println!("rooms: {} sessions", plan.broadcast_sessions);
    let rooms = match crate::rooms::run(&rooms_plan).await {
        Ok(r) => {
            println!("{}", r.human());
            if !r.clean() {
                failures.push(format!("rooms: {} deliveries missing", r.missing));
            }
            Some(r)
        }
        Err(e) => {
            failures.push(format!("rooms: {e:#}"));
            println!("rooms failed: {e:#}");
            None
        }
    };
    child_exits.push(cluster.stop(Duration::from_secs(10)).await);
    child_exits.push(tcp_cluster.stop(Duration::from_secs(10)).await);

    child_exits.push(baseline.stop(Duration::from_secs(10)).await);

    // Idle sessions: a fresh baseline as a sanity figure (the load runs grew
    // the first one's heap, which would hide per-session growth), then the
    // gate alone in its own process (im nodes beside it in theirs).
    let idle_baseline_args = vec![
        "echo-server".to_string(),
        "--addr".to_string(),
        idle_baseline_addr.to_string(),
    ];
    let mut fresh_baseline = spawn_ready(
        "fresh baseline echo-server",
        &exe,
        &idle_baseline_args,
        tmp_path.join("echo-server-idle.log"),
        (idle_baseline_addr, &[5], Duration::from_secs(20)),
    )
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
        transport: Transport::tcp(),
        progress: true,
    };
    let idle_baseline = report_idle(
        crate::idle::run(&idle_baseline_plan).await,
        "idle baseline",
        &mut failures,
    );
    child_exits.push(fresh_baseline.stop(Duration::from_secs(10)).await);

    // The gate alone in its own process (im nodes beside it in theirs),
    // started afresh for each transport: what one run's sessions freed
    // stays in the gate's allocator and would hide the next run's growth.
    let idle_cases = [
        IdleCase {
            key: "idle_gate",
            conf: conf_idle.clone(),
            addr: idle_gate_addr,
            transport: Transport::tcp(),
            source_base: Ipv4Addr::new(127, 0, 2, 2),
        },
        IdleCase {
            key: "idle_gate_ws",
            conf: conf_idle.clone(),
            addr: idle_ws_addr,
            transport: Transport::ws("/"),
            source_base: Ipv4Addr::new(127, 0, 5, 2),
        },
        IdleCase {
            key: "idle_gate_tls",
            conf: conf_idle_tls.clone(),
            addr: idle_tls_addr,
            transport: Transport {
                ws: None,
                tls: Some(trust.clone()),
            },
            source_base: Ipv4Addr::new(127, 0, 6, 2),
        },
        IdleCase {
            key: "idle_gate_wss",
            conf: conf_idle_tls.clone(),
            addr: idle_wss_addr,
            transport: Transport {
                ws: Some("/".to_string()),
                tls: Some(trust),
            },
            source_base: Ipv4Addr::new(127, 0, 7, 2),
        },
    ];
    let mut idle: BTreeMap<&'static str, IdleReport> = BTreeMap::new();
    for case in &idle_cases {
        let template = IdlePlan {
            addr: case.addr,
            source_base: case.source_base,
            transport: case.transport.clone(),
            ..idle_baseline_plan.clone()
        };
        let outcome = idle_on_fresh_gate(&demo, &tmp_path, case, template, &mut child_exits).await;
        let outcome = match outcome {
            Ok((command, report)) => {
                commands.insert(case.key, command);
                report
            }
            Err(e) => Err(e),
        };
        let what = format!("idle gate {}", case.transport.name());
        if let Some(r) = report_idle(outcome, &what, &mut failures) {
            idle.insert(case.key, r);
        }
    }
    commands.insert("idle_baseline", idle_baseline_plan.command());
    commands.insert("broadcast", broadcast_plan.command());
    commands.insert("rooms", rooms_plan.command());
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
        rooms.as_ref(),
        &idle,
        idle_baseline.as_ref(),
        &codec,
    );
    let generated = utc_now();
    let results = Results {
        generated_utc: generated.clone(),
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
        rooms: rooms.as_ref(),
        idle_gate: idle.get("idle_gate"),
        idle_gate_ws: idle.get("idle_gate_ws"),
        idle_gate_tls: idle.get("idle_gate_tls"),
        idle_gate_wss: idle.get("idle_gate_wss"),
        idle_baseline: idle_baseline.as_ref(),
        codec: &codec,
        notes: &notes,
        failures: &failures,
        child_exits: &child_exits,
        before: plan.before.as_ref().map(|p| p.display().to_string()),
    };
    let before_after = match &before {
        Some(before) => {
            let after = serde_json::to_value(&results).context("serialising results")?;
            let path = plan.before.as_deref().map(|p| p.display().to_string());
            Some(compare::markdown(
                before,
                &after,
                path.as_deref().unwrap_or("an earlier run"),
            ))
        }
        None => None,
    };
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
        idle: &idle,
        idle_baseline: idle_baseline.as_ref(),
        codec: &codec,
        failures: &failures,
        notes: &notes,
        child_exits: &child_exits,
        before_after: before_after.as_deref(),
    });
    std::fs::write(&plan.out, md).with_context(|| format!("writing {}", plan.out.display()))?;
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

/// One idle run on a gate: the transport, the gate's address, where its
/// sessions come from.
struct IdleCase {
    /// Key in the results and commands.
    key: &'static str,
    /// The configuration of the three demo nodes (gate-1 is node 1).
    conf: PathBuf,
    /// The gate's port for `transport`.
    addr: SocketAddr,
    /// What the sessions speak.
    transport: Transport,
    /// First loopback source address, apart from the other runs' (their
    /// sockets may linger in TIME_WAIT).
    source_base: Ipv4Addr,
}

/// Starts the demo nodes of `case.conf` one per process, waits until the
/// gate answers echo 5 and 6 over the case's transport, runs `plan` on the
/// gate (its pid filled in), and stops the nodes (their exits appended to
/// `exits`). Returns the idle command run and its outcome; an error when
/// the nodes did not come up.
async fn idle_on_fresh_gate(
    demo: &Path,
    logs: &Path,
    case: &IdleCase,
    mut plan: IdlePlan,
    exits: &mut Vec<String>,
) -> Result<(String, Result<IdleReport>)> {
    let name = case.transport.name();
    let mut nodes = Vec::new();
    let outcome = async {
        for id in ["1", "2", "3"] {
            let args = vec![
                "--conf".to_string(),
                case.conf.display().to_string(),
                "--id".to_string(),
                id.to_string(),
            ];
            let log = logs.join(format!("demo-{}-id{id}.log", case.key));
            let title = format!("demo --id {id} ({name} idle)");
            nodes.push(Server::spawn(&title, demo, &args, log)?);
        }
        wait_ready_over(&mut nodes, case.addr, &case.transport).await?;
        let gate = nodes.first().context("no gate node started")?;
        plan.pid = Some(gate.pid());
        println!(
            "idle: {} {name} sessions on the gate alone (pid {})",
            plan.conns,
            gate.pid()
        );
        anyhow::Ok((plan.command(), crate::idle::run(&plan).await))
    }
    .await;
    for node in &mut nodes {
        exits.push(node.stop(Duration::from_secs(10)).await);
    }
    outcome
}

/// Waits until every node of `nodes` runs and the gate (the first) answers
/// echo 5 (gate-local) and 6 (forwarded to an im node) on `addr` over
/// `transport`: a TLS gate's port answers no plain TCP probe.
async fn wait_ready_over(
    nodes: &mut [Server],
    addr: SocketAddr,
    transport: &Transport,
) -> Result<()> {
    let within = Duration::from_secs(60);
    let deadline = Instant::now() + within;
    loop {
        for node in nodes.iter_mut() {
            node.check_running()?;
        }
        match crate::idle::probe(addr, transport, &[5, 6], Duration::from_secs(2)).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!(
                    "the demo gate did not answer over {} on {addr} within {within:?}",
                    transport.name()
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_websocket_shape_has_its_tcp_twin() {
        let ws: Vec<&Shape> = SHAPES.iter().filter(|s| s.ws).collect();
        assert_eq!(ws.len(), 2);
        for s in ws {
            assert!(!s.baseline, "{}: the baseline speaks TCP only", s.key);
            let tcp_key = s.key.strip_prefix("ws_").unwrap();
            let tcp = SHAPES.iter().find(|t| t.key == tcp_key).unwrap();
            assert!(!tcp.ws && !tcp.baseline, "{tcp_key}");
            assert_eq!(
                (tcp.msg_id, tcp.conns, tcp.window),
                (s.msg_id, s.conns, s.window),
                "{}",
                s.key
            );
        }
        let mut keys: Vec<&str> = SHAPES.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SHAPES.len(), "keys are unique");
    }
}
