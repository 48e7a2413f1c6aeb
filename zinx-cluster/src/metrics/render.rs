//! The Prometheus text exposition format (version 0.0.4), written by hand
//! from our own atomics: `# HELP`, `# TYPE`, then one sample a line.

use std::fmt::Write;

use super::MetricsSnapshot;
use super::family::{BUCKETS_S, Table};

/// The content type of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label value with `\`, `"` and line breaks escaped.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `# HELP` and `# TYPE` lines of a family.
pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The samples of histogram row `row` of `table` (`_bucket`, `_sum`,
/// `_count`), with `labels` (already escaped, without braces).
pub(crate) fn histogram(out: &mut String, name: &str, labels: &str, table: &Table, row: usize) {
    let (buckets, sum) = table.histogram(row);
    for (i, count) in buckets.iter().enumerate() {
        let le = BUCKETS_S
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {count}");
    }
    let count = buckets.last().copied().unwrap_or(0);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// The node's plain counters as `zinx_<name>_total` (gauges for the two
/// that go down: `zinx_inflight`, `zinx_sessions_open`).
pub(crate) fn snapshot(out: &mut String, node: &str, snap: &MetricsSnapshot) {
    let node = escape(node);
    let mut resumes_header = false;
    for (name, help, value) in snap.named() {
        // `resumes_<outcome>`: one family, `zinx_resumes_total{outcome}`.
        if let Some(outcome) = name.strip_prefix("resumes_") {
            if !resumes_header {
                header(
                    out,
                    "zinx_resumes_total",
                    "counter",
                    "Session resumes by outcome (resumed, or why refused).",
                );
                resumes_header = true;
            }
            let _ = writeln!(
                out,
                "zinx_resumes_total{{node=\"{node}\",outcome=\"{outcome}\"}} {value}"
            );
            continue;
        }
        let (family, kind) = match name {
            "inflight" | "sessions_open" | "sessions_detached" => (format!("zinx_{name}"), "gauge"),
            _ => (format!("zinx_{name}_total"), "counter"),
        };
        header(out, &family, kind, help);
        let _ = writeln!(out, "{family}{{node=\"{node}\"}} {value}");
    }
}

/// `zinx_link_up{node,peer}`: 1 for a live link to `peer`, 0 otherwise;
/// `zinx_link_in_process{node,peer}`: 1 when that link runs in process.
pub(crate) fn links(out: &mut String, node: &str, links: &[(String, bool, bool)]) {
    let node = escape(node);
    let mut per_peer = |name: &str, help: &str, value: fn(&(String, bool, bool)) -> bool| {
        header(out, name, "gauge", help);
        for link in links {
            let _ = writeln!(
                out,
                "{name}{{node=\"{node}\",peer=\"{}\"}} {}",
                escape(&link.0),
                u8::from(value(link))
            );
        }
    };
    per_peer(
        "zinx_link_up",
        "1 while this node's link to the peer is up.",
        |l| l.1,
    );
    per_peer(
        "zinx_link_in_process",
        "1 while the link to the peer runs in this process, without a socket.",
        |l| l.2,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn counters_and_links_render() {
        let m = super::super::Metrics::default();
        m.frames_in.add(3);
        let mut out = String::new();
        snapshot(&mut out, "gate-1", &m.snapshot());
        links(
            &mut out,
            "gate-1",
            &[("im-1".into(), true, true), ("im-2".into(), false, false)],
        );
        assert!(out.contains("# TYPE zinx_frames_in_total counter\n"));
        assert!(out.contains("zinx_frames_in_total{node=\"gate-1\"} 3\n"));
        assert!(out.contains("# TYPE zinx_sessions_open gauge\n"));
        assert!(out.contains("zinx_link_up{node=\"gate-1\",peer=\"im-2\"} 0\n"));
        assert!(out.contains("zinx_link_in_process{node=\"gate-1\",peer=\"im-1\"} 1\n"));
        // Every sample line is `name{labels} value`.
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap();
        }
    }
}
