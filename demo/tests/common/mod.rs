//! Harness of the demo's process tests: a temporary configuration on free
//! ports, demo processes that are killed when a test fails, and a client
//! that speaks the demo protocol.
//!
//! The tests run the binaries cargo built for this very test run
//! (`CARGO_BIN_EXE_*`), so they never test a stale build.

// Each test file uses a different part of the harness.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use zinx_cluster::{Client, Frame};

/// The demo server built for this test run.
pub const DEMO: &str = env!("CARGO_BIN_EXE_demo");
/// The chat client built for this test run.
pub const DEMO_CLIENT: &str = env!("CARGO_BIN_EXE_demo-client");

/// How long one expected frame may take.
pub const T: Duration = Duration::from_secs(5);

/// Fast link heartbeats so that a killed node is noticed well within a
/// test's patience; a secret so that startup does not warn.
pub const SETTINGS: &str = r#"{
  "secret": "demo-test-secret",
  "heartbeat_interval_ms": 200,
  "heartbeat_timeout_ms": 1000,
  "reconnect_min_ms": 50,
  "reconnect_max_ms": 300,
  "shutdown_grace_ms": 1000
}"#;

/// The demo's own route.json: the tests check the file that ships.
pub fn shipped_routes() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/route.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A configuration directory: the demo's topology (gate-1, im-1, im-2) on
/// free loopback ports.
pub struct Conf {
    dir: tempfile::TempDir,
    /// Ports of gate-1 (ID 1), im-1 (ID 2), im-2 (ID 3).
    pub ports: [u16; 3],
}

impl Conf {
    /// The shipped routes, test settings.
    pub fn new() -> Conf {
        Conf::with_routes(&shipped_routes())
    }

    /// Another route.json, test settings.
    pub fn with_routes(route_json: &str) -> Conf {
        Conf::with_files(route_json, SETTINGS)
    }

    /// The shipped routes, another settings.json.
    pub fn with_settings(settings_json: &str) -> Conf {
        Conf::with_files(&shipped_routes(), settings_json)
    }

    fn with_files(route_json: &str, settings_json: &str) -> Conf {
        // Hold all three listeners at once so the ports differ.
        let listeners: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let ports = [ports[0], ports[1], ports[2]];
        drop(listeners);
        let dinx = json!({
            "gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": ports[0]}],
            "im": [
                {"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": ports[1]},
                {"ID": 3, "Name": "im-2", "Type": 2, "IP": "127.0.0.1", "Port": ports[2]}
            ]
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dinx.json"), dinx.to_string()).unwrap();
        std::fs::write(dir.path().join("route.json"), route_json).unwrap();
        std::fs::write(dir.path().join("settings.json"), settings_json).unwrap();
        Conf { dir, ports }
    }

    /// The directory to pass as `--conf`.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where clients connect.
    pub fn gate_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ports[0])
    }
}

/// A child process that is killed (SIGKILL) and reaped when dropped, so a
/// failing test leaves nothing running. On a failing test it also prints
/// what the process wrote.
pub struct Proc {
    name: String,
    child: Child,
    /// Where stdout and stderr go (a file: a pipe nobody reads would block
    /// the child once full).
    log: PathBuf,
    /// Kept for the test to write to, when stdin is piped.
    pub stdin: Option<ChildStdin>,
    /// Lines of stdout, when stdout is piped (see [`Proc::piped`]).
    lines: Option<mpsc::Receiver<String>>,
    /// The lines received so far.
    pub seen: Vec<String>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Runs `demo --conf <conf> <args>`, output to a log file beside the
    /// configuration.
    pub fn demo(name: &str, conf: &Conf, args: &[&str]) -> Proc {
        Proc::demo_in(name, conf.path(), args)
    }

    /// Runs `demo --conf <dir> <args>`, output to a log file in `dir`.
    pub fn demo_in(name: &str, dir: &Path, args: &[&str]) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let mut cmd = Command::new(DEMO);
        cmd.arg("--conf")
            .arg(dir)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("ZINX_CLUSTER_SECRET")
            .env_remove("ZINX_REDIS_URL")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        Proc::start(name, cmd, log, None)
    }

    /// Runs `demo-client --addr <addr> --name <name>` with stdin and stdout
    /// piped; stderr goes to a log file in `dir`.
    pub fn client(name: &str, addr: &str, dir: &Path) -> Proc {
        let log = dir.join(format!("client-{name}.log"));
        let mut cmd = Command::new(DEMO_CLIENT);
        cmd.args(["--addr", addr, "--name", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap());
        let (tx, rx) = mpsc::channel();
        let mut p = Proc::start(name, cmd, log, Some(rx));
        p.stdin = p.child.stdin.take();
        let stdout = p.child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        p
    }

    fn start(
        name: &str,
        mut cmd: Command,
        log: PathBuf,
        lines: Option<mpsc::Receiver<String>>,
    ) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
            log,
            stdin: None,
            lines,
            seen: Vec::new(),
            status: None,
        }
    }

    /// What the process wrote to its log file so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Writes a line to the process's stdin.
    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is piped");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the process's stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits (at most `timeout`) for a stdout line containing `text`;
    /// returns it. Lines before it are kept in `seen`.
    pub fn wait_line(&mut self, text: &str, timeout: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(text)) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        let rx = self.lines.as_ref().expect("stdout is piped");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no line containing {text:?} within {timeout:?}; got {:#?}",
                    self.name, self.seen
                ),
            }
        }
    }

    /// Every stdout line until the process closes its stdout (bounded).
    pub fn rest_of_output(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let rx = self.lines.as_ref().expect("stdout is piped");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return self.seen.clone(),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("{}: stdout still open after {timeout:?}", self.name)
                }
            }
        }
    }

    /// Waits until the process's log contains every one of `parts` on one
    /// line (bounded).
    pub fn wait_log(&self, parts: &[&str], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self
            .log()
            .lines()
            .any(|l| parts.iter().all(|p| l.contains(p)))
        {
            assert!(
                Instant::now() < deadline,
                "{}: no log line with {parts:?} within {timeout:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGINT (Ctrl-C).
    pub fn interrupt(&self) {
        self.signal(libc::SIGINT);
    }

    /// Sends a signal (SIGTERM, SIGSTOP, SIGCONT, ..) to the process.
    pub fn signal(&self, signal: libc::c_int) {
        assert!(self.status.is_none(), "{} was already reaped", self.name);
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet (the
        // `Child` is still owned here), so it cannot name another process.
        let r = unsafe { libc::kill(pid, signal) };
        assert_eq!(r, 0, "kill -{signal} {}", self.name);
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (not exited).
    pub fn running(&mut self) -> bool {
        self.status.is_none() && matches!(self.child.try_wait(), Ok(None))
    }

    /// The process's resident set size (`VmRSS`) in KiB, or 0 when it
    /// cannot be read.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }

    /// The log lines that contain every one of `parts`, in order.
    pub fn log_lines(&self, parts: &[&str]) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_string)
            .collect()
    }

    /// Waits until the log holds at least `n` lines with every one of
    /// `parts` (bounded); returns the `n`th. Async, so that load driven by
    /// the same test keeps running meanwhile.
    pub async fn wait_log_n(&self, parts: &[&str], n: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.log_lines(parts).into_iter().nth(n - 1) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "{}: fewer than {n} log lines with {parts:?} within {timeout:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits (async, bounded) for the process to exit.
    pub async fn exited(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.status {
                return s;
            }
            if let Some(s) = self.child.try_wait().unwrap() {
                self.status = Some(s);
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {timeout:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Kills the process at once (SIGKILL), like a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
    }

    /// Waits for the process to exit, at most `timeout`; panics after.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                self.status = Some(s);
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {timeout:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("----- {} wrote -----\n{}", self.name, self.log());
        }
    }
}

/// When a log line was written: its leading RFC 3339 UTC timestamp
/// (`2026-01-02T03:04:05.123456Z`, tracing-subscriber's default).
pub fn log_time(line: &str) -> SystemTime {
    let stamp = line.split_whitespace().next().unwrap_or("");
    parse_utc(stamp).unwrap_or_else(|| panic!("no timestamp at the start of {line:?}"))
}

fn parse_utc(s: &str) -> Option<SystemTime> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let nanos: u32 = format!("{frac:0<9}").get(..9)?.parse().ok()?;
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

// ----------------------------------------------------------------------
// Speaking the demo protocol
// ----------------------------------------------------------------------

/// Waits until the gate answers an echo that crosses the cluster (msg 6):
/// the gate, a link and an im node are up. Bounded.
pub async fn wait_ready(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut c) = Client::connect(addr).await {
            if let Ok(f) = c.request(6, "ready?", Duration::from_millis(500)).await {
                if f.msg_id == 6 && &f.data[..] == b"ready?" {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the cluster at {addr} is not ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The JSON of a frame.
pub fn body(f: &Frame) -> Value {
    serde_json::from_slice(&f.data).unwrap_or_else(|e| {
        panic!(
            "msg {}: not JSON ({e}): {:?}",
            f.msg_id,
            String::from_utf8_lossy(&f.data)
        )
    })
}

/// The next frame, which must be `msg_id` with this JSON body.
pub async fn expect(c: &mut Client, msg_id: u32, want: Value) {
    let f = c.recv_timeout(T).await.expect("a frame");
    assert_eq!((f.msg_id, body(&f)), (msg_id, want));
}

/// Sends a JSON request and checks the next frame.
pub async fn ask(c: &mut Client, msg_id: u32, req: Value, want: Value) {
    c.send(msg_id, req.to_string()).await.unwrap();
    expect(c, msg_id, want).await;
}

/// Nothing more arrives for a while.
pub async fn quiet(c: &mut Client, who: &str) {
    if let Ok(f) = c.recv_timeout(Duration::from_millis(200)).await {
        panic!(
            "{who}: unexpected msg {}: {:?}",
            f.msg_id,
            String::from_utf8_lossy(&f.data)
        );
    }
}

/// A client logged in as `name`.
pub async fn login(addr: &str, name: &str) -> Client {
    let mut c = Client::connect(addr).await.unwrap();
    ask(
        &mut c,
        1,
        json!({"name": name}),
        json!({"ok": true, "name": name}),
    )
    .await;
    c
}

/// Echo on `msg_id` returns the very bytes sent, whatever they are.
pub async fn check_echo(c: &mut Client, msg_id: u32) {
    let binary: Vec<u8> = (0..=255).collect();
    let big: Vec<u8> = (0..60 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    for payload in [Vec::new(), b"hi".to_vec(), binary, big] {
        let f = c.request(msg_id, payload.clone(), T).await.unwrap();
        assert_eq!(f.msg_id, msg_id);
        assert!(
            f.data[..] == payload[..],
            "echo {msg_id} of {} bytes came back as {} bytes",
            payload.len(),
            f.data.len()
        );
    }
}

/// alice (logged in as `alice`) and bob (as `bob`) send each other a line:
/// the addressee gets it, the sender an ok.
pub async fn send_both_ways(alice: &mut Client, bob: &mut Client) {
    ask(
        alice,
        3,
        json!({"to": "bob", "text": "hi bob"}),
        json!({"ok": true}),
    )
    .await;
    expect(bob, 3, json!({"from": "alice", "text": "hi bob"})).await;
    ask(
        bob,
        3,
        json!({"to": "alice", "text": "hi alice"}),
        json!({"ok": true}),
    )
    .await;
    expect(alice, 3, json!({"from": "bob", "text": "hi alice"})).await;
}

/// Every flow of the demo protocol against a running cluster.
pub async fn check_chat(addr: &str) {
    let mut alice = login(addr, "alice").await;
    let mut bob = login(addr, "bob").await;

    send_both_ways(&mut alice, &mut bob).await;
    ask(
        &mut alice,
        3,
        json!({"to": "carol", "text": "?"}),
        json!({"ok": false, "error": "carol is not online"}),
    )
    .await;

    // broadcast: each logged-in user once, the sender included; a
    // connection that never logged in gets nothing.
    let mut lurker = Client::connect(addr).await.unwrap();
    check_echo(&mut lurker, 5).await;
    alice
        .send(4, json!({"text": "hello"}).to_string())
        .await
        .unwrap();
    for c in [&mut alice, &mut bob] {
        expect(c, 4, json!({"from": "alice", "text": "hello"})).await;
    }
    quiet(&mut alice, "alice").await;
    quiet(&mut bob, "bob").await;
    quiet(&mut lurker, "an anonymous connection").await;

    // echo by the gate and by an im node: the very bytes.
    check_echo(&mut alice, 5).await;
    check_echo(&mut alice, 6).await;

    // Before login, send and broadcast are refused on their own msg_id.
    let mut anon = Client::connect(addr).await.unwrap();
    let refused = json!({"ok": false, "error": "not logged in"});
    ask(
        &mut anon,
        3,
        json!({"to": "bob", "text": "x"}),
        refused.clone(),
    )
    .await;
    ask(&mut anon, 4, json!({"text": "x"}), refused).await;
    // A body that is not the expected JSON: the framework's error answer.
    anon.send(3, "not json").await.unwrap();
    let f = anon.recv_timeout(T).await.unwrap();
    assert_eq!(f.msg_id, 0);
    let err = body(&f);
    assert_eq!(
        (err["msg_id"].as_u64(), err["code"].as_str()),
        (Some(3), Some("bad_payload"))
    );
    quiet(&mut bob, "bob").await;

    // Logging in as alice again: the older session is told, then closed.
    let mut alice2 = login(addr, "alice").await;
    expect(
        &mut alice,
        1,
        json!({"ok": false, "error": "logged in elsewhere"}),
    )
    .await;
    assert!(
        alice.recv_timeout(T).await.is_err(),
        "the older alice is closed"
    );
    ask(
        &mut bob,
        3,
        json!({"to": "alice", "text": "new?"}),
        json!({"ok": true}),
    )
    .await;
    expect(&mut alice2, 3, json!({"from": "bob", "text": "new?"})).await;

    // Logout unbinds; the connection stays.
    ask(&mut alice2, 2, json!({}), json!({"ok": true})).await;
    ask(
        &mut bob,
        3,
        json!({"to": "alice", "text": "gone?"}),
        json!({"ok": false, "error": "alice is not online"}),
    )
    .await;
    ask(
        &mut alice2,
        3,
        json!({"to": "bob", "text": "x"}),
        json!({"ok": false, "error": "not logged in"}),
    )
    .await;
}
pub mod webdriver;
