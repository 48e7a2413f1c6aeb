//! The suite's child processes (the baseline and the demo) and the
//! configuration it writes for the demo.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use zinx_test_support::conf::{DEMO_ROUTES, demo_dinx, write_conf as write_files};
use zinx_test_support::process::log_tail;

/// A child process that is killed if it is still running when dropped.
pub(super) struct ChildProc {
    pub(super) name: String,
    pub(super) child: Child,
    pub(super) log: PathBuf,
}

impl ChildProc {
    pub(super) fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: PathBuf,
    ) -> Result<ChildProc> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log handle")?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {} {}", program.display(), args.join(" ")))?;
        Ok(ChildProc {
            name: name.to_string(),
            child,
            log,
        })
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log, 20)
    }

    /// Fails with the log's tail when the process has exited.
    pub(super) fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("polling a child")? {
            bail!(
                "{} exited early ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Waits until `addr` echoes every msg_id of `probe`.
    pub(super) async fn wait_ready(
        &mut self,
        addr: SocketAddr,
        probe: &[u32],
        within: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            self.check_running()?;
            match zinx_test_support::wire::probe_echo(addr, probe, Duration::from_secs(2)).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    bail!(
                        "{} did not answer echo {probe:?} on {addr} within {within:?}: {e:#}; \
                         last lines of {}:\n{}",
                        self.name,
                        self.log.display(),
                        self.log_tail()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// SIGINT, then SIGKILL after `grace`; describes how it ended.
    pub(super) async fn stop(&mut self, grace: Duration) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("{}: had already exited ({status})", self.name);
        }
        // The child has not been reaped yet (try_wait above returned
        // None), so its pid cannot have been reused.
        #[cfg(unix)]
        let _ = zinx_test_support::process::send_signal(self.pid(), libc::SIGINT);
        // No SIGINT elsewhere: the grace period passes and it is killed.
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

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(super) const SETTINGS_JSON: &str =
    r#"{"idle_timeout_ms":0,"max_sessions":200000,"secret":"bench-suite-secret"}"#;

/// Writes a demo configuration: gate-1 and im-1, im-2 on `ports`, the
/// demo's own `conf/route.json`, and [`SETTINGS_JSON`]. Returns the
/// `dinx.json` text.
pub(super) fn write_conf(dir: &Path, ports: &[u16]) -> Result<String> {
    let &[gate, im1, im2] = ports else {
        bail!("write_conf needs three ports");
    };
    let dinx = demo_dinx([gate, im1, im2]);
    write_files(dir, &dinx, DEMO_ROUTES, SETTINGS_JSON)
        .with_context(|| format!("writing the configuration in {}", dir.display()))?;
    Ok(dinx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_conf_matches_the_demo_contract() {
        let dir = tempfile::tempdir().unwrap();
        write_conf(dir.path(), &[4001, 4002, 4003]).unwrap();
        let read = |name: &str| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(name)).unwrap()).unwrap()
        };
        let dinx = read("dinx.json");
        assert_eq!(dinx["gate"][0]["ID"], 1);
        assert_eq!(dinx["gate"][0]["Type"], 1);
        assert_eq!(dinx["gate"][0]["Port"], 4001);
        assert_eq!(dinx["im"][1]["Name"], "im-2");
        assert_eq!(dinx["im"][1]["Port"], 4003);
        let route = read("route.json");
        assert_eq!(route["gate"][2]["MsgID"], 5);
        assert_eq!(route["im"][2]["MsgID"], 6);
        let settings = read("settings.json");
        assert_eq!(settings["idle_timeout_ms"], 0);
        assert_eq!(settings["max_sessions"], 200000);
        assert!(write_conf(dir.path(), &[1, 2]).is_err());
    }
}
