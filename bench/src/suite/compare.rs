//! `--before`: the headline figures of an earlier run (its JSON results)
//! beside this run's, for a "Before and after" section of the report.
//!
//! Both sides are read from the JSON form of the results, so a file written
//! by an older `bench` compares as long as the fields it has keep their
//! names; a figure missing on one side shows as "n/a".

use std::fmt::Write as _;

use serde_json::Value;

use super::scenario::SHAPES;

/// Subject / baseline ratios of msg/s compared. (Every load run of
/// [`SHAPES`] is compared too, msg/s and p99.)
const RATIOS: &[(&str, &str, &str)] = &[
    (
        "gate-local echo w16 / baseline",
        "local_echo_w16",
        "baseline_w16",
    ),
    (
        "forwarded echo w16 / baseline",
        "forward_echo_w16",
        "baseline_w16",
    ),
    (
        "forwarded echo c10w1 / baseline",
        "forward_echo_c10w1",
        "baseline_c10w1",
    ),
    (
        "forwarded echo c10w1 over TCP links / baseline",
        "forward_echo_c10w1_tcp_links",
        "baseline_c10w1",
    ),
    (
        "WebSocket gate-local echo w16 / TCP",
        "ws_local_echo_w16",
        "local_echo_w16",
    ),
    (
        "WebSocket forwarded echo w16 / TCP",
        "ws_forward_echo_w16",
        "forward_echo_w16",
    ),
];

/// Median of one numeric field over a load run's rounds.
fn median_of(results: &Value, key: &str, field: &[&str]) -> Option<f64> {
    let mut v: Vec<f64> = results
        .get("load")?
        .get(key)?
        .as_array()?
        .iter()
        .filter_map(|run| field.iter().try_fold(run, |v, f| v.get(f))?.as_f64())
        .collect();
    v.sort_by(f64::total_cmp);
    crate::broadcast::median(&v)
}

fn at(results: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(results, |v, f| v.get(f))?.as_f64()
}

fn ratio(results: &Value, subject: &str, baseline: &str) -> Option<f64> {
    let s = median_of(results, subject, &["msgs_per_s"])?;
    let b = median_of(results, baseline, &["msgs_per_s"])?;
    (b > 0.0).then(|| s / b)
}

/// Every compared figure: name, before, after, how many decimals.
fn figures(before: &Value, after: &Value) -> Vec<(String, Option<f64>, Option<f64>, usize)> {
    let mut rows = Vec::new();
    for (name, subject, baseline) in RATIOS {
        rows.push((
            format!("**{name}** (x)"),
            ratio(before, subject, baseline),
            ratio(after, subject, baseline),
            2,
        ));
    }
    for key in SHAPES.iter().map(|s| s.key) {
        let msgs = ["msgs_per_s"];
        let p99 = ["latency_us", "p99"];
        rows.push((
            format!("{key} msg/s"),
            median_of(before, key, &msgs),
            median_of(after, key, &msgs),
            0,
        ));
        rows.push((
            format!("{key} p99 us"),
            median_of(before, key, &p99),
            median_of(after, key, &p99),
            0,
        ));
    }
    // TCP keeps its old name, so that it compares with older files.
    for (key, name) in [
        ("idle_gate", "idle gate bytes/session"),
        ("idle_gate_ws", "idle gate WebSocket bytes/session"),
        ("idle_gate_tls", "idle gate TLS bytes/session"),
        ("idle_gate_wss", "idle gate WSS bytes/session"),
    ] {
        let path = [key, "bytes_per_session"];
        rows.push((name.into(), at(before, &path), at(after, &path), 0));
    }
    let bcast = ["broadcast", "all_delivered_p50_ms"];
    rows.push((
        "broadcast all-delivered p50 ms".into(),
        at(before, &bcast),
        at(after, &bcast),
        1,
    ));
    rows
}

/// The "Before and after" section: `before` (from `source`) against this
/// run's `after`. Medians over each run's rounds.
pub(super) fn markdown(before: &Value, after: &Value, source: &str) -> String {
    let mut s = String::new();
    let when = |v: &Value| {
        v.get("generated_utc")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string()
    };
    let _ = writeln!(s, "## Before and after\n");
    let _ = writeln!(
        s,
        "Before: `{source}` (generated {}); after: this run (generated {}). Medians over \
         each run's rounds; absolute figures depend on what else the machine did, the \
         ratios less so.\n",
        when(before),
        when(after)
    );
    let _ = writeln!(s, "| Figure | Before | After | After / before |");
    let _ = writeln!(s, "|---|---|---|---|");
    let num = |v: Option<f64>, d: usize| v.map_or("n/a".to_string(), |v| format!("{v:.d$}"));
    for (name, b, a, d) in figures(before, after) {
        let change = match (b, a) {
            (Some(b), Some(a)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "n/a".to_string(),
        };
        let _ = writeln!(s, "| {name} | {} | {} | {change} |", num(b, d), num(a, d));
    }
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(base: f64, fwd: f64, idle: f64) -> Value {
        let load = |m: f64, p99: u64| json!([{"msgs_per_s": m, "latency_us": {"p99": p99}}]);
        json!({
            "generated_utc": "2026-01-01 00:00:00 UTC",
            "load": {
                "baseline_c10w1": load(base, 100),
                "forward_echo_c10w1": load(fwd, 300),
            },
            "idle_gate": {"bytes_per_session": idle},
        })
    }

    #[test]
    fn headline_ratios_and_figures_are_compared() {
        let md = markdown(
            &run(1000.0, 450.0, 6300.0),
            &run(1000.0, 520.0, 2900.0),
            "b.json",
        );
        assert!(md.contains("Before: `b.json`"), "{md}");
        assert!(
            md.contains("| **forwarded echo c10w1 / baseline** (x) | 0.45 | 0.52 | 1.16 |"),
            "{md}"
        );
        assert!(
            md.contains("| idle gate bytes/session | 6300 | 2900 | 0.46 |"),
            "{md}"
        );
        // Transports the earlier run did not measure are n/a.
        assert!(
            md.contains("| idle gate WSS bytes/session | n/a | n/a | n/a |"),
            "{md}"
        );
        // Figures neither run has are n/a, not zero.
        assert!(
            md.contains("| baseline_w16 msg/s | n/a | n/a | n/a |"),
            "{md}"
        );
    }

    #[test]
    fn websocket_ratios_compare_with_a_run_that_had_none() {
        let load = |m: f64| json!([{"msgs_per_s": m, "latency_us": {"p99": 100}}]);
        let before = json!({"load": {"local_echo_w16": load(1000.0)}});
        let after = json!({"load": {
            "local_echo_w16": load(1000.0),
            "ws_local_echo_w16": load(800.0),
        }});
        let md = markdown(&before, &after, "old.json");
        assert!(
            md.contains("| **WebSocket gate-local echo w16 / TCP** (x) | n/a | 0.80 | n/a |"),
            "{md}"
        );
        assert!(
            md.contains("| ws_local_echo_w16 msg/s | n/a | 800 | n/a |"),
            "{md}"
        );
        assert!(
            md.contains("| ws_forward_echo_w16 msg/s | n/a | n/a | n/a |"),
            "{md}"
        );
    }
}
