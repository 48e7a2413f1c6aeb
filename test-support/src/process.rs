//! Child processes of the demo binaries, killed and reaped when dropped so
//! that a failing test leaves nothing running, and signals to a child.
//!
//! The binaries are passed in: tests in `demo/tests` give
//! `env!("CARGO_BIN_EXE_demo")` (the build of this very test run, never a
//! stale one) and `env!("CARGO_BIN_EXE_demo-client")`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::conf::Conf;

/// A signal number (`libc::SIGINT`, ..).
#[cfg(unix)]
pub type Signal = libc::c_int;

/// Sends `signal` to process `pid`.
///
/// Only for a child of this process that has not been reaped yet: then the
/// pid cannot name another process.
#[cfg(unix)]
pub fn send_signal(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill(2) takes plain integers; the caller names an unreaped
    // child of ours.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The last `n` lines of a log file ("" when it cannot be read).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A child process that is killed (SIGKILL) and reaped when dropped. On a
/// failing test it also prints what the process wrote.
pub struct Proc {
    name: String,
    child: Child,
    /// Where stdout and stderr go (a file: a pipe nobody reads would block
    /// the child once full).
    log: PathBuf,
    /// Kept for the test to write to, when stdin is piped.
    pub stdin: Option<ChildStdin>,
    /// Lines of stdout, when stdout is piped (see [`Proc::client`]).
    lines: Option<mpsc::Receiver<String>>,
    /// The lines received so far.
    pub seen: Vec<String>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Runs `<demo> --conf <conf> <args>`, output to a log file beside the
    /// configuration.
    pub fn demo(demo: &str, name: &str, conf: &Conf, args: &[&str]) -> Proc {
        Proc::demo_in(demo, name, conf.path(), args)
    }

    /// Runs `<demo> --conf <dir> <args>`, output to a log file in `dir`.
    pub fn demo_in(demo: &str, name: &str, dir: &Path, args: &[&str]) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("creating the log file");
        let mut cmd = Command::new(demo);
        cmd.arg("--conf")
            .arg(dir)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("ZINX_CLUSTER_SECRET")
            .env_remove("ZINX_REDIS_URL")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("duplicating the log handle"))
            .stderr(out);
        Proc::start(name, cmd, log, None)
    }

    /// Runs `<client> --addr <addr> --name <name>` with stdin and stdout
    /// piped; stderr goes to a log file in `dir`.
    pub fn client(client: &str, name: &str, addr: &str, dir: &Path) -> Proc {
        Proc::client_with(client, name, addr, dir, &[])
    }

    /// [`Proc::client`] with more flags (`--ws`, `--tls`, ..).
    pub fn client_with(client: &str, name: &str, addr: &str, dir: &Path, flags: &[&str]) -> Proc {
        let log = dir.join(format!("client-{name}.log"));
        let mut cmd = Command::new(client);
        cmd.args(["--addr", addr, "--name", name])
            .args(flags)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("creating the log file"));
        let (tx, rx) = mpsc::channel();
        let mut p = Proc::start(name, cmd, log, Some(rx));
        p.stdin = p.child.stdin.take();
        let stdout = p.child.stdout.take().expect("stdout is piped");
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
        writeln!(stdin, "{line}").expect("writing to the child's stdin");
        stdin.flush().expect("flushing the child's stdin");
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
    #[cfg(unix)]
    pub fn interrupt(&self) {
        self.signal(libc::SIGINT);
    }

    /// Sends a signal (SIGTERM, SIGSTOP, SIGCONT, ..) to the process.
    #[cfg(unix)]
    pub fn signal(&self, signal: Signal) {
        assert!(self.status.is_none(), "{} was already reaped", self.name);
        // The `Child` is still owned here and not reaped, so the pid is ours.
        if let Err(e) = send_signal(self.child.id(), signal) {
            panic!("kill -{signal} {}: {e}", self.name);
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (not exited).
    pub fn running(&mut self) -> bool {
        self.status.is_none() && matches!(self.child.try_wait(), Ok(None))
    }

    /// The process's resident set size (`VmRSS`) in KiB. Panics when it
    /// cannot be read (a check of it would otherwise pass untested).
    pub fn rss_kib(&self) -> u64 {
        crate::rss::rss_kib(self.pid())
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

    /// Waits (async, at most `timeout`) for the `n`th time this node
    /// logged that its link to node `peer` went `what` (`up` or `down`);
    /// returns that log line.
    pub async fn link_event(&self, peer: &str, what: &str, n: usize, timeout: Duration) -> String {
        // `peer{peer=im-1 id=2 group=im}: zinx_cluster::peer: link down reason=..`,
        // not the dialer's `link down; retrying` before a link ever came up.
        let span = format!("{{peer={peer} ");
        let event = format!("link {what} ");
        self.wait_log_n(&[&span, &event], n, timeout).await
    }

    /// Waits (async, bounded) for the process to exit.
    pub async fn exited(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.status {
                return s;
            }
            if let Some(s) = self.child.try_wait().expect("polling the child") {
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
            if let Some(s) = self.child.try_wait().expect("polling the child") {
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

/// The demo's three nodes of `conf` as processes of `demo`: gate-1, im-1
/// and im-2 (in the order returned), once the gate answers a forwarded
/// echo and has logged its links to both im nodes up.
pub async fn three_demo_processes(demo: &str, conf: &Conf) -> (Proc, Proc, Proc) {
    let im1 = Proc::demo(demo, "im-1", conf, &["--id", "2"]);
    let im2 = Proc::demo(demo, "im-2", conf, &["--id", "3"]);
    let gate = Proc::demo(demo, "gate-1", conf, &["--id", "1"]);
    crate::chat::wait_ready(&conf.gate_addr()).await;
    for im in ["im-1", "im-2"] {
        gate.link_event(im, "up", 1, crate::T).await;
    }
    (gate, im1, im2)
}

/// A server child process for tools (the bench suite's baseline and demo):
/// output to a log file, failures as errors that carry the log's tail,
/// stopped with SIGINT and then SIGKILL, and killed on drop whatever
/// happens. Unlike [`Proc`] it never panics.
pub struct Server {
    name: String,
    child: Child,
    /// Where stdout and stderr go.
    log: PathBuf,
}

impl Server {
    /// Starts `program args`, stdout and stderr to `log`.
    pub fn spawn(name: &str, program: &Path, args: &[String], log: PathBuf) -> io::Result<Server> {
        let context =
            |what: String| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
        let out = File::create(&log).map_err(context(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(context("duplicating the log handle".into()))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(context(format!(
                "starting {} {}",
                program.display(),
                args.join(" ")
            )))?;
        Ok(Server {
            name: name.to_string(),
            child,
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// "last lines of LOG:\n..." for error messages.
    fn tail(&self) -> String {
        format!(
            "last lines of {}:\n{}",
            self.log.display(),
            log_tail(&self.log, 20)
        )
    }

    /// Fails with the log's tail when the process has exited.
    pub fn check_running(&mut self) -> io::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            return Err(io::Error::other(format!(
                "{} exited early ({status}); {}",
                self.name,
                self.tail()
            )));
        }
        Ok(())
    }

    /// Waits (at most `within`) until `addr` echoes every msg_id of
    /// `probe` (see [`crate::wire::probe_echo`]).
    pub async fn wait_ready(
        &mut self,
        addr: std::net::SocketAddr,
        probe: &[u32],
        within: Duration,
    ) -> io::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            self.check_running()?;
            match crate::wire::probe_echo(addr, probe, Duration::from_secs(2)).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "{} did not answer echo {probe:?} on {addr} within {within:?}: {e}; {}",
                            self.name,
                            self.tail()
                        ),
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// SIGINT (where there are signals), then SIGKILL after `grace`;
    /// describes how it ended.
    pub async fn stop(&mut self, grace: Duration) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("{}: had already exited ({status})", self.name);
        }
        // Not reaped yet (try_wait returned None): the pid is still ours.
        #[cfg(unix)]
        let _ = send_signal(self.pid(), libc::SIGINT);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!("{}: exited after SIGINT ({status})", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!(
            "{}: did not exit within {grace:?} of SIGINT; killed",
            self.name
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_that_exits_is_an_error_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let args = ["-c".to_string(), "echo bad config; exit 3".to_string()];
        let mut s = Server::spawn("sh", Path::new("sh"), &args, dir.path().join("sh.log")).unwrap();
        let addr = "127.0.0.1:1".parse().unwrap();
        let err = s
            .wait_ready(addr, &[5], Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("exited early"), "{err}");
        assert!(err.contains("bad config"), "{err}");
        assert!(
            s.stop(Duration::from_millis(100))
                .await
                .contains("already exited")
        );
    }

    #[tokio::test]
    async fn a_server_is_stopped_with_sigint() {
        let dir = tempfile::tempdir().unwrap();
        let args = ["30".to_string()];
        let mut s =
            Server::spawn("sleep", Path::new("sleep"), &args, dir.path().join("s.log")).unwrap();
        s.check_running().unwrap();
        let how = s.stop(Duration::from_secs(5)).await;
        assert!(how.contains("exited after SIGINT"), "{how}");
    }
}
