//! Turning the suite's runs into figures: medians over rounds, codec
//! figures read from criterion's output, and the summary rows judged
//! against the targets.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};
use serde::Serialize;

use super::report::ms;
use super::{
    BIG_ROOM_RATIO_MAX, BROADCAST_P50_MS_MAX, CODEC_NS_MAX, FORWARD_C10W1_RATIO_MIN,
    FORWARD_RATIO_MIN, IDLE_BYTES_MAX, IDLE_TLS_BYTES_MAX, IDLE_WS_BYTES_MAX,
    IDLE_WS_TCP_RATIO_MAX, LOCAL_RATIO_MIN, P99_RATIO_MAX, SMALL_ROOMS_RATIO_MAX, WS_RATIO_MIN,
};
use crate::broadcast::{BroadcastReport, median};
use crate::idle::IdleReport;
use crate::load::LoadReport;
use crate::rooms::RoomsReport;

/// One line of the summary table.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Row {
    pub(super) scenario: String,
    pub(super) measured: String,
    pub(super) target: String,
    /// `None`: not measured in this run.
    pub(super) pass: Option<bool>,
    /// The exact command(s) that produced the number.
    pub(super) command: String,
}

/// A codec microbenchmark figure read from criterion's output.
#[derive(Debug, Clone, Serialize)]
pub(super) struct CodecFigure {
    pub(super) name: &'static str,
    pub(super) ns: Option<f64>,
    pub(super) source: String,
}

/// Reads criterion's estimate of one benchmark, in ns.
pub(super) fn criterion_figure(dir: &Path, name: &'static str) -> CodecFigure {
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

/// Median of one figure over a scenario's rounds.
pub(super) fn median_of(runs: &[LoadReport], f: impl Fn(&LoadReport) -> f64) -> Option<f64> {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    median(&v)
}

pub(super) fn summary_rows(
    load: &BTreeMap<&'static str, Vec<LoadReport>>,
    commands: &BTreeMap<&'static str, String>,
    broadcast: Option<&BroadcastReport>,
    rooms: Option<&RoomsReport>,
    idle: &BTreeMap<&'static str, IdleReport>,
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

    // `against`: what the baseline run is called in the row ("baseline",
    // or "TCP" for WebSocket against the same shape over TCP).
    let mut throughput = |title: &str, subject: &str, baseline: &str, min: f64, against: &str| {
        let s = median_of(runs(subject), |r| r.msgs_per_s);
        let b = median_of(runs(baseline), |r| r.msgs_per_s);
        let (measured, pass) = match (s, b) {
            (Some(s), Some(b)) if b > 0.0 => {
                let ratio = s / b;
                let mut m =
                    format!("{s:.0} msg/s vs {against} {b:.0} msg/s = **{ratio:.2} x {against}**");
                if !clean(subject) {
                    m.push_str(" (errors/mismatches: see details)");
                }
                (m, Some(ratio >= min && clean(subject) && clean(baseline)))
            }
            _ => ("not measured".to_string(), None),
        };
        rows.push(Row {
            scenario: title.to_string(),
            measured,
            target: format!(">= {min:.2} x {against} msg/s"),
            pass,
            command: cmd(&[baseline, subject]),
        });
    };
    throughput(
        "Gate-local echo (msg 5), 100 conns x window 16, 64 B",
        "local_echo_w16",
        "baseline_w16",
        LOCAL_RATIO_MIN,
        "baseline",
    );
    throughput(
        "Forwarded echo (msg 6, gate -> im -> gate), 100 conns x window 16, 64 B",
        "forward_echo_w16",
        "baseline_w16",
        FORWARD_RATIO_MIN,
        "baseline",
    );
    throughput(
        "Forwarded echo (msg 6), 10 conns x window 1, 64 B (nodes in one process: in-process links)",
        "forward_echo_c10w1",
        "baseline_c10w1",
        FORWARD_C10W1_RATIO_MIN,
        "baseline",
    );
    throughput(
        "Forwarded echo (msg 6), 10 conns x window 1, 64 B, over TCP links (local_links false, as between processes)",
        "forward_echo_c10w1_tcp_links",
        "baseline_c10w1",
        FORWARD_C10W1_RATIO_MIN,
        "baseline",
    );
    throughput(
        "WebSocket gate-local echo vs TCP gate-local echo (msg 5), 100 conns x window 16, 64 B",
        "ws_local_echo_w16",
        "local_echo_w16",
        WS_RATIO_MIN,
        "TCP",
    );
    throughput(
        "WebSocket forwarded echo vs TCP forwarded echo (msg 6), 100 conns x window 16, 64 B",
        "ws_forward_echo_w16",
        "forward_echo_w16",
        WS_RATIO_MIN,
        "TCP",
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

    idle_rows(idle, &cmd, &mut rows);
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

    rooms_rows(rooms, &mut rows, cmd(&["rooms"]));

    for c in codec {
        rows.push(Row {
            scenario: format!("Codec {} (64 B payload)", c.name.replace('_', " ")),
            measured: c.ns.map_or_else(
                || "not measured in this run".into(),
                |ns| format!("{ns:.1} ns/op"),
            ),
            target: format!("<= {CODEC_NS_MAX:.0} ns/op"),
            pass: c.ns.map(|ns| ns <= CODEC_NS_MAX),
            command: "`cargo bench -p zinx-cluster --features internals --bench codec`".into(),
        });
    }
    rows
}

/// The idle transports of the suite: results key, name, most bytes per
/// session, most bytes per session against TCP's in the same run.
pub(super) const IDLE_TRANSPORTS: &[(&str, &str, f64, Option<f64>)] = &[
    ("idle_gate", "TCP", IDLE_BYTES_MAX, None),
    (
        "idle_gate_ws",
        "WebSocket",
        IDLE_WS_BYTES_MAX,
        Some(IDLE_WS_TCP_RATIO_MAX),
    ),
    ("idle_gate_tls", "TLS", IDLE_TLS_BYTES_MAX, None),
    ("idle_gate_wss", "WSS", IDLE_TLS_BYTES_MAX, None),
];

/// One row per idle transport on the gate: RSS per session against its
/// target (and WebSocket's against TCP's of the same run).
fn idle_rows(
    idle: &BTreeMap<&'static str, IdleReport>,
    cmd: &dyn Fn(&[&str]) -> String,
    rows: &mut Vec<Row>,
) {
    let tcp = idle.get("idle_gate").and_then(|r| r.bytes_per_session);
    for &(key, name, max, vs_tcp) in IDLE_TRANSPORTS {
        let r = idle.get(key);
        let ratio = match (r.and_then(|r| r.bytes_per_session), tcp) {
            (Some(b), Some(t)) if t > 0.0 => Some(b / t),
            _ => None,
        };
        let (measured, pass) = match r {
            Some(r) => match (r.bytes_per_session, r.rss_before_kib, r.rss_after_kib) {
                (Some(b), Some(before), Some(after)) => {
                    let against = match (vs_tcp, ratio) {
                        (None, _) => String::new(),
                        (Some(_), Some(x)) => format!(" = **{x:.2} x TCP**"),
                        (Some(_), None) => " (TCP not measured: no ratio)".to_string(),
                    };
                    let ratio_ok = vs_tcp.is_none_or(|m| ratio.is_some_and(|x| x <= m));
                    (
                        format!(
                            "**{b:.0} B/session** ({:.2} KiB){against}: gate RSS {:.1} -> {:.1} MiB with {} sessions{}",
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
                        Some(b <= max && ratio_ok && r.clean()),
                    )
                }
                _ => ("not measured".into(), None),
            },
            None => ("not measured (failed: see details)".into(), Some(false)),
        };
        let sessions = match r {
            Some(r) if r.attempted < r.requested => format!(
                "{} sessions ({} asked: capped by RLIMIT_NOFILE, see notes)",
                r.attempted, r.requested
            ),
            r => format!("{} sessions", r.map_or(0, |r| r.attempted)),
        };
        let target = match vs_tcp {
            Some(m) => format!(
                "<= {:.0} KiB RSS per session and <= {m:.1} x TCP",
                max / 1024.0
            ),
            None => format!("<= {:.0} KiB RSS per session", max / 1024.0),
        };
        rows.push(Row {
            scenario: format!(
                "Idle {name} sessions on one gate (gate process alone), one echo each, {sessions}"
            ),
            measured,
            target,
            pass,
            command: cmd(&[key]),
        });
    }
}

/// The two rows of `bench rooms`: a big room against a broadcast, small
/// rooms against pushes.
fn rooms_rows(rooms: Option<&RoomsReport>, rows: &mut Vec<Row>, command: String) {
    let Some(r) = rooms else {
        rows.push(Row {
            scenario: "Rooms".into(),
            measured: "failed: see details".into(),
            target: "ran".into(),
            pass: Some(false),
            command,
        });
        return;
    };
    let x = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
    let us = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1} us"));
    rows.push(Row {
        scenario: format!(
            "One room of {} sessions vs a broadcast to the same sessions",
            r.sessions
        ),
        measured: format!(
            "all received p50 {} vs {} = **{} x broadcast**; {} missing",
            ms(r.room_all_ms),
            ms(r.broadcast_all_ms),
            x(r.big_room_ratio),
            r.missing
        ),
        target: format!("<= {BIG_ROOM_RATIO_MAX:.1} x broadcast"),
        pass: Some(r.clean() && r.big_room_ratio.is_some_and(|v| v <= BIG_ROOM_RATIO_MAX)),
        command: command.clone(),
    });
    rows.push(Row {
        scenario: format!(
            "{} rooms of {} published to in turn vs pushes to a user",
            r.small_rooms, r.room_size
        ),
        measured: format!(
            "{} vs {} per delivered frame = **{} x push**; join {} each",
            us(r.small_room_us_per_frame),
            us(r.push_us_per_frame),
            x(r.small_rooms_ratio),
            us(r.join_us)
        ),
        target: format!("<= {SMALL_ROOMS_RATIO_MAX:.1} x push per frame"),
        pass: Some(
            r.clean()
                && r.small_rooms_ratio
                    .is_some_and(|v| v <= SMALL_ROOMS_RATIO_MAX),
        ),
        command,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

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
