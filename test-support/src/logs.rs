//! Reading tracing log lines: their timestamps, and a capture of what the
//! nodes of a test log, to wait for a line instead of sleeping.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// When a log line was written: its leading RFC 3339 UTC timestamp
/// (`2026-01-02T03:04:05.123456Z`, tracing-subscriber's default). Panics
/// when the line has none (a test helper).
pub fn log_time(line: &str) -> SystemTime {
    let stamp = line.split_whitespace().next().unwrap_or("");
    humantime::parse_rfc3339(stamp)
        .unwrap_or_else(|e| panic!("no timestamp at the start of {line:?}: {e}"))
}

/// The lines logged on this thread while it lives, at the levels an
/// `EnvFilter` directive gives (e.g. `"zinx_cluster=debug"`).
///
/// It is this thread's default subscriber, so it sees exactly the test
/// that made it when that test runs on a current-thread runtime (the
/// default of `#[tokio::test]`): every task of that runtime, the nodes'
/// included, runs on the test's thread, and other tests running in
/// parallel log elsewhere. A multi-thread runtime's workers are not
/// captured.
pub struct LogCapture {
    lines: Arc<Mutex<Vec<String>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

/// Appends what the formatter writes to the shared lines.
struct Sink {
    lines: Arc<Mutex<Vec<String>>>,
    partial: Vec<u8>,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line[..i]).into_owned();
            lock(&self.lines).push(text);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogCapture {
    /// Starts capturing this thread's events that `filter` enables.
    pub fn this_thread(filter: &str) -> LogCapture {
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let shared = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(false)
            .with_writer(move || Sink {
                lines: shared.clone(),
                partial: Vec::new(),
            })
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        LogCapture {
            lines,
            _guard: guard,
        }
    }

    /// The lines so far that contain every one of `parts`.
    pub fn lines(&self, parts: &[&str]) -> Vec<String> {
        lock(&self.lines)
            .iter()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .cloned()
            .collect()
    }

    /// Waits (async, at most `timeout`) until at least `n` lines contain
    /// every one of `parts`; returns the `n`th.
    pub async fn wait_line(&self, parts: &[&str], n: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.lines(parts).into_iter().nth(n.saturating_sub(1)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {n} log lines with {parts:?} within {timeout:?}; captured:\n{}",
                lock(&self.lines).join("\n")
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
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

    #[tokio::test]
    async fn a_capture_sees_this_thread_only() {
        let logs = LogCapture::this_thread("info");
        tracing::info!(n = 1, "captured here");
        std::thread::spawn(|| tracing::info!("on another thread"))
            .join()
            .unwrap();
        tracing::debug!("below the filter");
        let line = logs
            .wait_line(&["captured here"], 1, Duration::from_secs(1))
            .await;
        assert!(line.contains("n=1"), "{line}");
        assert!(logs.lines(&["another thread"]).is_empty());
        assert!(logs.lines(&["below the filter"]).is_empty());
    }
}
