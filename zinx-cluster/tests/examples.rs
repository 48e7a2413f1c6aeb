//! The runnable examples (`examples/*.rs`) run: each is started as its own
//! process on free ports, serves what its doc comment promises to a
//! `zinx_cluster_client::Client`, and exits 0 on Ctrl-C (SIGINT).
//!
//! `cargo test` builds the examples beside the tests (`target/<profile>/
//! examples/`). When a run builds only this test (`cargo test -p
//! zinx-cluster --test examples`), or an example is older than the sources,
//! the test builds them first with `cargo build -p zinx-cluster --examples`.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use zinx_cluster_client::{Client, Frame};
use zinx_test_support::T;
use zinx_test_support::free_ports;
use zinx_test_support::process::send_signal;

/// How long an example may take to start, and to exit after SIGINT.
const START: Duration = Duration::from_secs(20);

/// `target/<profile>` of this test binary (`target/<profile>/deps/examples-..`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The newest modification time of the files under `dir`.
fn newest(dir: &Path) -> SystemTime {
    let mut latest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).expect("a readable source folder") {
        let path = entry.expect("a folder entry").path();
        let t = if path.is_dir() {
            newest(&path)
        } else {
            std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        latest = latest.max(t);
    }
    latest
}

/// The example binary `name`, built if it is missing or older than the
/// crate's sources (once per test run).
fn example(name: &str) -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let profile = profile_dir();
    let bin = profile
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = newest(&crate_dir.join("src")).max(newest(&crate_dir.join("examples")));
    let fresh = |bin: &Path| {
        std::fs::metadata(bin)
            .and_then(|m| m.modified())
            .is_ok_and(|built| built >= sources)
    };
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !fresh(&bin) && !*built {
        *built = true;
        let profile_name = match profile.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_string(),
            Some(other) => other.to_string(),
        };
        let target_dir = profile.parent().expect("target/ above the profile folder");
        eprintln!("building the examples (profile {profile_name})");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "-q",
                "-p",
                "zinx-cluster",
                "--examples",
                "--profile",
            ])
            .arg(&profile_name)
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .expect("running cargo build");
        assert!(status.success(), "cargo build --examples failed: {status}");
    }
    assert!(
        fresh(&bin),
        "{} is missing or stale after the build",
        bin.display()
    );
    bin
}

/// A running example: killed when dropped (a failing test leaves nothing).
struct Example {
    name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Example {
    /// Starts example `name` with `args` and waits for its "serving on" line.
    fn start(name: &'static str, args: &[String]) -> Example {
        let mut child = Command::new(example(name))
            .args(args)
            .env_remove("ZINX_CLUSTER_SECRET")
            .env_remove("ZINX_REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ex = Example { name, child, lines };
        let deadline = Instant::now() + START;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match ex.lines.recv_timeout(left) {
                Ok(line) if line.contains("serving on") => return ex,
                Ok(_) => {}
                Err(e) => panic!("example {name} did not say it serves within {START:?}: {e}"),
            }
        }
    }

    /// Ctrl-C, and the exit status (it must exit by itself).
    fn interrupt(mut self) -> ExitStatus {
        self.wait_catches_sigint();
        send_signal(self.child.id(), libc::SIGINT).expect("SIGINT to the example");
        let deadline = Instant::now() + START;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the example") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "example {} still runs {START:?} after SIGINT",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Example {
    /// Waits until the example catches SIGINT. `Cluster::run` listens for
    /// it only once the nodes have started, a moment after the "serving
    /// on" line of the started hook; a SIGINT before that would end the
    /// process the default way (no graceful shutdown, no exit 0). Linux
    /// shows the caught signals in `/proc/PID/status` (`SigCgt`); elsewhere
    /// this returns at once.
    fn wait_catches_sigint(&self) {
        let status = format!("/proc/{}/status", self.child.id());
        let deadline = Instant::now() + START;
        let sigint_bit = 1u64 << (libc::SIGINT - 1);
        loop {
            let Ok(text) = std::fs::read_to_string(&status) else {
                return; // no /proc: not Linux
            };
            let caught = text
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
                .unwrap_or(0);
            if caught & sigint_bit != 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "example {} does not catch SIGINT {START:?} after it started",
                self.name
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json_of(f: &Frame) -> Value {
    serde_json::from_slice(&f.data)
        .unwrap_or_else(|e| panic!("not JSON on {}: {e}: {:?}", f.msg_id, f.data))
}

/// The next frame on `msg_id`, skipping others (pushes).
async fn next_on(c: &mut Client, msg_id: u32) -> Frame {
    let deadline = Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = c.recv_timeout(left).await.expect("a frame");
        if f.msg_id == msg_id {
            return f;
        }
    }
}

#[tokio::test]
async fn echo_answers_with_the_same_bytes_and_exits_on_ctrl_c() {
    let port = free_ports(1).expect("a free port")[0];
    let ex = Example::start("echo", &["--port".into(), port.to_string()]);
    let mut c = Client::connect(("127.0.0.1", port)).await.expect("connect");
    for data in [&b"hello"[..], b"", &[0u8, 255, 1, 2][..]] {
        let f = c.request(1, data.to_vec(), T).await.expect("an answer");
        assert_eq!((f.msg_id, &f.data[..]), (1, data));
    }
    // no route: the framework's error answer on 0, and the session stays up
    let f = c.request(7, "?", T).await.expect("an error answer");
    assert_eq!(f.msg_id, 0);
    assert_eq!(json_of(&f)["code"], "unknown_msg_id");
    let f = c.request(1, "still here", T).await.expect("an answer");
    assert_eq!(&f.data[..], b"still here");
    let status = ex.interrupt();
    assert!(status.success(), "exit after Ctrl-C: {status}");
}

#[tokio::test]
async fn chat_forwards_to_the_backend_which_pushes_to_the_other_user() {
    let ports = free_ports(2).expect("free ports");
    let ex = Example::start(
        "chat",
        &[
            "--port".into(),
            ports[0].to_string(),
            "--backend-port".into(),
            ports[1].to_string(),
        ],
    );
    let addr = ("127.0.0.1", ports[0]);
    let mut alice = Client::connect(addr).await.expect("connect");
    let mut bob = Client::connect(addr).await.expect("connect");

    // not logged in: the handler's error code
    let f = alice
        .request(2, r#"{"to":"bob","text":"hi"}"#, T)
        .await
        .expect("an answer");
    assert_eq!(
        (f.msg_id, json_of(&f)["code"].clone()),
        (0, json!("not_logged_in"))
    );

    for (c, name) in [(&mut alice, "alice"), (&mut bob, "bob")] {
        let f = c
            .request(1, format!(r#"{{"name":"{name}"}}"#), T)
            .await
            .expect("login");
        assert_eq!((f.msg_id, json_of(&f)), (1, json!({ "name": name })));
    }
    let f = alice
        .request(2, r#"{"to":"bob","text":"hi bob"}"#, T)
        .await
        .expect("an answer");
    assert_eq!((f.msg_id, json_of(&f)), (2, json!({ "delivered": true })));
    let f = next_on(&mut bob, 3).await;
    assert_eq!(json_of(&f), json!({ "from": "alice", "text": "hi bob" }));

    let f = bob
        .request(2, r#"{"to":"carol","text":"?"}"#, T)
        .await
        .expect("an answer");
    assert_eq!((f.msg_id, json_of(&f)), (2, json!({ "delivered": false })));
    // a body that is not the message: `bad_payload`, the handler does not run
    let f = bob.request(2, "not json", T).await.expect("an answer");
    assert_eq!(
        (f.msg_id, json_of(&f)["code"].clone()),
        (0, json!("bad_payload"))
    );
    let status = ex.interrupt();
    assert!(status.success(), "exit after Ctrl-C: {status}");
}

#[tokio::test]
async fn ticker_publishes_from_its_timer_and_reads_the_state() {
    let port = free_ports(1).expect("a free port")[0];
    let ex = Example::start(
        "ticker",
        &[
            "--port".into(),
            port.to_string(),
            "--every-ms".into(),
            "50".into(),
        ],
    );
    let mut c = Client::connect(("127.0.0.1", port)).await.expect("connect");
    let f = c.request(1, "", T).await.expect("subscribed");
    assert_eq!(f.msg_id, 1);
    let joined_at = json_of(&f)["tick"].as_u64().expect("a tick");
    // three ticks, pushed by the timer, in order
    let mut last = joined_at;
    for _ in 0..3 {
        let tick = json_of(&next_on(&mut c, 3).await)["tick"]
            .as_u64()
            .expect("a tick");
        assert!(tick > last, "tick {tick} after {last}");
        last = tick;
    }
    // the handler reads the same state the timer writes
    c.send(2, "").await.expect("send");
    let now = json_of(&next_on(&mut c, 2).await)["tick"]
        .as_u64()
        .expect("a tick");
    assert!(now >= last, "the clock says {now} after tick {last}");
    let status = ex.interrupt();
    assert!(status.success(), "exit after Ctrl-C: {status}");
}
