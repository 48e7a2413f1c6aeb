//! One node of a test's cluster in a child process: to kill it with
//! SIGKILL (no cleanup at all), to freeze it with SIGSTOP, or to run it
//! with environment variables of its own (the environment is global to a
//! process, so a test must not set it in its own).
//!
//! The child is the test binary itself, running one `#[ignore]`d helper
//! alone: a test binary's handlers exist only in that binary. The helper
//! is not a test; it is ignored so that a test run does not count it, and
//! the parent runs it explicitly (`--ignored --exact NAME`):
//!
//! ```ignore
//! #[tokio::test]
//! #[ignore = "not a test: runs a node for ChildNode::start (a parent test starts it)"]
//! async fn child_node() {
//!     zinx_test_support::child::serve_from_env().await;
//! }
//! ```

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use zinx_cluster::config::{ClusterConfig, REDIS_URL_ENV, SECRET_ENV};
use zinx_cluster::{Cluster, Select};

use crate::T;
use crate::cluster::TestCluster;

/// The node to run (its id); the child's other variables follow.
const NODE: &str = "ZINX_TEST_CHILD_NODE";
const DINX: &str = "ZINX_TEST_CHILD_DINX";
const ROUTE: &str = "ZINX_TEST_CHILD_ROUTE";
const SETTINGS: &str = "ZINX_TEST_CHILD_SETTINGS";
/// `1`: ready once every link of the node is up; else once it started.
const WAIT_LINKS: &str = "ZINX_TEST_CHILD_WAIT_LINKS";
/// The line the child prints when ready.
const READY: &str = "ZINX-TEST-CHILD-NODE-READY";

/// What a [`ChildNode`] runs.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// The `#[ignore]`d helper test of this binary that calls
    /// [`serve_from_env`] (its full path, e.g. `child_node`).
    pub helper: String,
    /// `dinx.json`, `route.json`, `settings.json` texts.
    pub files: (String, String, String),
    /// The node to run.
    pub id: u16,
    /// Ready once all its links are up (else once started).
    pub wait_links: bool,
    /// Environment variables added to the child's (where
    /// `ZINX_CLUSTER_SECRET` and `ZINX_REDIS_URL` are always removed first).
    pub env: Vec<(String, String)>,
}

impl ChildSpec {
    /// Node `id` of `tc`'s configuration, ready once its links are up.
    pub fn of(tc: &TestCluster, helper: &str, id: u16) -> ChildSpec {
        ChildSpec {
            helper: helper.to_string(),
            files: (tc.files.0.clone(), tc.route.clone(), tc.files.1.clone()),
            id,
            wait_links: true,
            env: Vec::new(),
        }
    }
}

/// A node in a child process; killed on drop (its output is printed if
/// the test is failing).
pub struct ChildNode {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ChildNode {
    /// Starts the child and waits (at most [`T`]) until it is ready.
    pub async fn start(spec: ChildSpec) -> ChildNode {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("child.log");
        let err = std::fs::File::create(&log).expect("the child's log file");
        let (dinx, route, settings) = &spec.files;
        let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
        cmd.args(["--ignored", "--exact", &spec.helper, "--nocapture"])
            .args(["--test-threads", "1"])
            .env_remove(SECRET_ENV)
            .env_remove(REDIS_URL_ENV)
            .env(NODE, spec.id.to_string())
            .env(DINX, dinx)
            .env(ROUTE, route)
            .env(SETTINGS, settings)
            .env(WAIT_LINKS, if spec.wait_links { "1" } else { "0" })
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err);
        let mut child = cmd.spawn().expect("the child node starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let node = ChildNode {
            child,
            log,
            _dir: dir,
        };
        // Read its output to the end (a closed pipe would fail its writes),
        // telling us when it is ready.
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(READY) {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        assert!(
            matches!(tokio::time::timeout(T, ready).await, Ok(Ok(()))),
            "child node {} did not become ready; it wrote:\n{}",
            spec.id,
            node.output()
        );
        node
    }

    /// What the child wrote to stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGSTOP (`true`) or SIGCONT: the node freezes or goes on.
    #[cfg(unix)]
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
        // Not reaped yet (only `kill` reaps it), so the pid is ours.
        if let Err(e) = crate::process::send_signal(self.child.id(), signal) {
            panic!("kill -{signal} of the child node: {e}");
        }
    }

    /// SIGKILL: no cleanup at all.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("----- the child node wrote -----\n{}", self.output());
        }
    }
}

/// The child's side: runs the node its parent named and never returns.
/// Panics when started otherwise (it is not a test of its own).
pub async fn serve_from_env() {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "not a test: this helper runs a node for ChildNode::start, \
                 which sets {name}; run the tests that use it instead"
            )
        })
    };
    let id: u16 = var(NODE).parse().expect("a node id");
    let config =
        ClusterConfig::from_strs("child-conf", &var(DINX), &var(ROUTE), Some(&var(SETTINGS)))
            .expect("valid config");
    let running = Cluster::new(config)
        .start(Select::Id(id))
        .await
        .expect("the child node starts");
    if var(WAIT_LINKS) == "1" {
        assert!(
            running.wait_links(T).await,
            "the child node's links did not come up"
        );
    }
    println!("{READY}");
    std::future::pending::<()>().await;
}
