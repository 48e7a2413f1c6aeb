//! Nodes of one configuration running in this process, each a
//! `RunningCluster` of its own so that a test can stop and restart one, and
//! a few helpers for a zinx client that speaks text: expected frames, error
//! answers, closes, and "nothing else came" checks that wait for a probe's
//! answer instead of a quiet period.
//!
//! A test file adds what is particular to it (the configuration it starts,
//! how it logs in) in a trait of its own implemented for [`TestCluster`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zinx_cluster::config::ClusterConfig;
use zinx_cluster::metrics::MetricsSnapshot;
use zinx_cluster::{Cluster, Frame, RunningCluster, Select, SessionClosed, SessionId};
use zinx_cluster_client::{Client, ClientError};

use crate::T;

/// Sessions whose session-closed hook ran, as (node, session).
type Closed = Arc<Mutex<Vec<(u16, SessionId)>>>;

/// Nodes of one configuration running in this process.
pub struct TestCluster {
    /// The loaded configuration every node starts from.
    pub config: ClusterConfig,
    /// The `dinx.json` and `settings.json` texts the config was made of
    /// (for a node started in a child process).
    pub files: (String, String),
    /// The `route.json` text.
    pub route: String,
    nodes: Vec<(u16, RunningCluster)>,
    /// Every session-closed hook run by a node started here.
    closed: Closed,
}

impl TestCluster {
    /// Loads the configuration and starts the nodes `ids`, in that order.
    pub async fn launch(dinx: String, route: &str, settings: String, ids: &[u16]) -> TestCluster {
        let config = ClusterConfig::from_strs("test-conf", &dinx, route, Some(&settings))
            .expect("valid test config");
        let mut tc = TestCluster {
            config,
            files: (dinx, settings),
            route: route.to_string(),
            nodes: Vec::new(),
            closed: Closed::default(),
        };
        for &id in ids {
            tc.restart(id).await;
        }
        tc
    }

    /// Where node `id` listens.
    pub fn addr(&self, id: u16) -> String {
        self.config.node(id).expect("node").addr()
    }

    /// A client of gate `gate`.
    pub async fn client_of(&self, gate: u16) -> Client {
        Client::connect(self.addr(gate))
            .await
            .expect("connect to the gate")
    }

    /// The ids of the running nodes.
    pub fn ids(&self) -> Vec<u16> {
        self.nodes.iter().map(|(id, _)| *id).collect()
    }

    /// The running node `id`.
    pub fn running(&self, id: u16) -> &RunningCluster {
        &self
            .nodes
            .iter()
            .find(|(i, _)| *i == id)
            .expect("running")
            .1
    }

    /// A copy of node `id`'s counters.
    pub fn metrics(&self, id: u16) -> MetricsSnapshot {
        self.running(id).metrics(id).expect("a node of the cluster")
    }

    /// Waits (at most [`T`]) until `check` holds for node `id`'s counters.
    pub async fn wait_metrics(
        &self,
        id: u16,
        what: &str,
        check: impl Fn(&MetricsSnapshot) -> bool,
    ) -> MetricsSnapshot {
        wait_metrics(self.running(id), id, what, check).await
    }

    /// Waits (at most 5 s) until node `from` has a live link to `to`.
    pub async fn wait_link(&self, from: u16, to: u16) {
        let r = self.running(from);
        wait_until(&format!("link {from} -> {to} up"), || r.link_up(from, to)).await;
    }

    /// Waits (at most [`T`]) until node `node` ran its session-closed hook
    /// for `session`: the session's close is complete there (on a gate:
    /// its directory binding removed, its backends told).
    pub async fn wait_closed(&self, node: u16, session: SessionId) {
        wait_until(&format!("node {node} closed session {session:?}"), || {
            self.closed_on(session).contains(&node)
        })
        .await;
    }

    /// The nodes started here that ran their session-closed hook for
    /// `session`, once per run.
    pub fn closed_on(&self, session: SessionId) -> Vec<u16> {
        lock(&self.closed)
            .iter()
            .filter(|(_, s)| *s == session)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Takes node `id` out of the set, still running (to stop it while
    /// the test does something else).
    pub fn take(&mut self, id: u16) -> RunningCluster {
        let i = self
            .nodes
            .iter()
            .position(|(x, _)| *x == id)
            .expect("running");
        self.nodes.remove(i).1
    }

    /// Stops node `id` gracefully.
    pub async fn stop(&mut self, id: u16) {
        self.take(id).shutdown().await;
    }

    /// Starts node `id` (again), recording its session-closed hooks.
    pub async fn restart(&mut self, id: u16) {
        let r = self
            .cluster()
            .start(Select::Id(id))
            .await
            .expect("node starts");
        self.nodes.push((id, r));
    }

    /// A [`Cluster`] of this configuration whose session-closed hooks are
    /// recorded here (see [`TestCluster::wait_closed`]); add state or
    /// hooks, then start a node of it.
    pub fn cluster(&self) -> Cluster {
        let closed = self.closed.clone();
        Cluster::new(self.config.clone()).on_session_closed(move |c: SessionClosed| {
            let closed = closed.clone();
            async move { lock(&closed).push((c.node, c.session)) }
        })
    }

    /// Stops every node.
    pub async fn shutdown(self) {
        for (_, r) in self.nodes {
            r.shutdown().await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits (polling, at most [`T`]) until `ok` holds; panics naming `what`.
pub async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {T:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (at most [`T`]) until `check` holds for the counters of node `id`
/// of `running`; returns them.
pub async fn wait_metrics(
    running: &RunningCluster,
    id: u16,
    what: &str,
    check: impl Fn(&MetricsSnapshot) -> bool,
) -> MetricsSnapshot {
    let deadline = Instant::now() + T;
    loop {
        let m = running.metrics(id).expect("a node of this process");
        if check(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "node {id}: {what}: not within {T:?}: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The next frame must be `msg_id` with this text.
pub async fn expect(c: &mut Client, msg_id: u32, data: &str) {
    let f = c.recv_timeout(T).await.expect("a frame");
    assert_eq!((f.msg_id, s(&f)), (msg_id, data.to_string()));
}

/// Sends a frame and returns the next one.
pub async fn req(c: &mut Client, msg_id: u32, data: &str) -> Frame {
    c.request(msg_id, data.to_string(), T)
        .await
        .expect("an answer")
}

/// A frame's data as text.
pub fn s(f: &Frame) -> String {
    String::from_utf8_lossy(&f.data).into_owned()
}

/// The JSON of an error answer (a frame on msg_id 0); panics on any other
/// frame.
pub fn error_of(f: &Frame) -> serde_json::Value {
    assert_eq!(f.msg_id, 0, "expected an error answer, got {:?}", s(f));
    serde_json::from_slice(&f.data).expect("an error answer is JSON")
}

/// The connection must be closed by the server (within [`T`]), with no
/// frame before.
pub async fn assert_closed(c: &mut Client, who: &str) {
    match c.recv_timeout(T).await {
        Err(ClientError::Closed) | Err(ClientError::Frame(_)) => {}
        Err(ClientError::WebSocket(_)) => {}
        other => panic!("{who} should have been closed, got {other:?}"),
    }
}

/// Nothing arrived before a probe's answer: sends `probe` on `echo_msg_id`
/// (a route that echoes) and requires the very next frame to be its echo.
/// The echo is written to the client after everything the cluster queued
/// for it before the probe arrived, so a stray frame caused by what the
/// test did earlier (a duplicate, a push that should not have happened)
/// comes first and fails the check; no quiet period is timed.
pub async fn nothing_before_echo(c: &mut Client, who: &str, echo_msg_id: u32) {
    let probe = format!("probe of {who}");
    c.send(echo_msg_id, probe.clone())
        .await
        .expect("sending the probe");
    let f = c.recv_timeout(T).await.expect("the probe's echo");
    assert_eq!(
        (f.msg_id, s(&f)),
        (echo_msg_id, probe),
        "{who}: a frame came before the probe's echo"
    );
}

/// A handler that runs until the test lets it go: the test knows when it
/// is running (no sleep to make sure it started) and decides when it ends
/// (no sleep to keep it busy). A `static` shared by the handler and the
/// test; one test of a binary per `Hold`.
pub struct Hold {
    started: tokio::sync::Semaphore,
    release: tokio::sync::Semaphore,
}

impl Hold {
    /// A hold nobody waits on yet.
    pub const fn new() -> Hold {
        Hold {
            started: tokio::sync::Semaphore::const_new(0),
            release: tokio::sync::Semaphore::const_new(0),
        }
    }

    /// In the handler: says it runs, then waits until released.
    pub async fn hold(&self) {
        self.started.add_permits(1);
        if let Ok(p) = self.release.acquire().await {
            p.forget();
        }
    }

    /// In the test: waits (at most [`T`]) until a handler holds.
    pub async fn wait_held(&self) {
        let held = tokio::time::timeout(T, self.started.acquire())
            .await
            .expect("a handler holds within T");
        if let Ok(p) = held {
            p.forget();
        }
    }

    /// Lets one held handler (or the next one to hold) go on.
    pub fn release(&self) {
        self.release.add_permits(1);
    }
}

impl Default for Hold {
    fn default() -> Hold {
        Hold::new()
    }
}
