//! Nodes of one configuration running in this process, each a
//! `RunningCluster` of its own so that a test can stop and restart one, and
//! a few helpers for a zinx client that speaks text.
//!
//! A test file adds what is particular to it (the configuration it starts,
//! how it logs in) in a trait of its own implemented for [`TestCluster`].

use std::time::Duration;

use zinx_cluster::config::ClusterConfig;
use zinx_cluster::{Cluster, Frame, RunningCluster, Select};
use zinx_cluster_client::Client;

use crate::T;

/// Nodes of one configuration running in this process.
pub struct TestCluster {
    /// The loaded configuration every node starts from.
    pub config: ClusterConfig,
    /// The `dinx.json` and `settings.json` texts the config was made of
    /// (for a node started in a child process).
    pub files: (String, String),
    nodes: Vec<(u16, RunningCluster)>,
}

impl TestCluster {
    /// Loads the configuration and starts the nodes `ids`, in that order.
    pub async fn launch(dinx: String, route: &str, settings: String, ids: &[u16]) -> TestCluster {
        let config = ClusterConfig::from_strs("test-conf", &dinx, route, Some(&settings))
            .expect("valid test config");
        let mut tc = TestCluster {
            config,
            files: (dinx, settings),
            nodes: Vec::new(),
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

    /// Waits (at most 5 s) until node `from` has a live link to `to`.
    pub async fn wait_link(&self, from: u16, to: u16) {
        let r = self.running(from);
        for _ in 0..500 {
            if r.link_up(from, to) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("link {from} -> {to} did not come up");
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

    /// Starts node `id` (again).
    pub async fn restart(&mut self, id: u16) {
        let r = Cluster::new(self.config.clone())
            .start(Select::Id(id))
            .await
            .expect("node starts");
        self.nodes.push((id, r));
    }

    /// Stops every node.
    pub async fn shutdown(self) {
        for (_, r) in self.nodes {
            r.shutdown().await;
        }
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
