//! A `redis-server` of a test's own: on a free 127.0.0.1 port, without
//! persistence, in a temporary working directory; killed on drop.
//!
//! Without `redis-server` on PATH, [`RedisServer::start`] prints a loud
//! SKIPPED notice and returns `None` (the test passes without running);
//! with `ZINX_REQUIRE_REDIS=1` (as in CI) a missing server is a failure.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ports::free_port;

/// Set to `1` to make a missing `redis-server` a failure, not a skip.
pub const REQUIRE_ENV: &str = "ZINX_REQUIRE_REDIS";

/// A `redis-server` child on 127.0.0.1; killed on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// Its working directory (nothing is written there; just not ours).
    dir: tempfile::TempDir,
}

/// Whether `redis-server --version` runs.
fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl RedisServer {
    /// Starts one, or returns `None` after a loud notice naming `what`
    /// when `redis-server` is not installed and `ZINX_REQUIRE_REDIS` is not
    /// 1. Panics when it is 1 and there is none.
    pub async fn start(what: &str) -> Option<RedisServer> {
        if !installed() {
            crate::skip::skip(
                REQUIRE_ENV,
                "redis-server",
                what,
                "e.g. apt-get install redis-server",
            );
            return None;
        }
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().expect("a temporary directory"),
        };
        server.spawn().await;
        Some(server)
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + crate::T;
        while !self.pong().await {
            assert!(
                Instant::now() < deadline,
                "redis-server did not come up on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether it answers PING.
    async fn pong(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut buf = [0u8; 16];
        let answer = async {
            s.write_all(b"PING\r\n").await?;
            s.read(&mut buf).await
        };
        match tokio::time::timeout(Duration::from_secs(1), answer).await {
            Ok(Ok(n)) => buf[..n].starts_with(b"+PONG"),
            _ => false,
        }
    }

    /// How many of `channels` have at least one subscriber (`PUBSUB
    /// NUMSUB`, spoken in plain RESP); 0 when Redis does not answer.
    pub async fn channels_listened(&self, channels: &[&str]) -> usize {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)).await else {
            return 0;
        };
        let mut cmd = format!(
            "*{}\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n",
            channels.len() + 2
        );
        for c in channels {
            cmd.push_str(&format!("${}\r\n{c}\r\n", c.len()));
        }
        let mut buf = vec![0u8; 4096];
        let answer = async {
            s.write_all(cmd.as_bytes()).await?;
            let mut n = 0;
            // The answer holds one integer line per channel.
            let integers = |b: &[u8]| {
                String::from_utf8_lossy(b)
                    .split("\r\n")
                    .filter(|l| l.starts_with(':'))
                    .count()
            };
            while integers(&buf[..n]) < channels.len() {
                let m = s.read(&mut buf[n..]).await?;
                if m == 0 {
                    break;
                }
                n += m;
            }
            Ok::<_, std::io::Error>(n)
        };
        match tokio::time::timeout(Duration::from_secs(1), answer).await {
            Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n])
                .lines()
                .filter_map(|l| l.strip_prefix(':')?.parse::<i64>().ok())
                .filter(|n| *n > 0)
                .count(),
            _ => 0,
        }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills it (SIGKILL: no goodbye to the clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes it (SIGSTOP) or thaws it (SIGCONT): a Redis that accepts
    /// connections and never answers.
    #[cfg(unix)]
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("running").id();
        let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
        if let Err(e) = crate::process::send_signal(pid, signal) {
            panic!("kill -{signal} {pid} failed: {e}");
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
