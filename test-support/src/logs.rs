//! Reading tracing log lines.

use std::time::SystemTime;

/// When a log line was written: its leading RFC 3339 UTC timestamp
/// (`2026-01-02T03:04:05.123456Z`, tracing-subscriber's default). Panics
/// when the line has none (a test helper).
pub fn log_time(line: &str) -> SystemTime {
    let stamp = line.split_whitespace().next().unwrap_or("");
    humantime::parse_rfc3339(stamp)
        .unwrap_or_else(|e| panic!("no timestamp at the start of {line:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn tracing_timestamps_are_read_to_the_microsecond() {
        let t = log_time("2026-01-02T03:04:05.123456Z  INFO gate: link up");
        let want = UNIX_EPOCH + Duration::new(1_767_323_045, 123_456_000);
        assert_eq!(t, want);
    }
}
