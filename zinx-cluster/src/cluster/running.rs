//! [`RunningCluster`]: the nodes of this process once started — their
//! handles, metrics and links for the application and its tests, and the
//! graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::AdminSource;
use crate::api::{ClusterHandle, NodeApi};
use crate::backend::Backend;
use crate::config::NodeId;
use crate::gate::Gate;
use crate::metrics::MetricsSnapshot;
use crate::node::Node;

/// A node of this process in its role.
#[derive(Debug, Clone)]
pub(super) enum Role {
    /// A gate: client sessions.
    Gate(Arc<Gate>),
    /// A backend: forwarded messages, calls.
    Backend(Arc<Backend>),
}

impl Role {
    /// What every node has.
    pub(super) fn node(&self) -> &Node {
        match self {
            Role::Gate(g) => g.node(),
            Role::Backend(b) => b.node(),
        }
    }

    /// The outbound API of the node.
    fn api(&self) -> Arc<dyn NodeApi> {
        match self {
            Role::Gate(g) => g.clone(),
            Role::Backend(b) => b.clone(),
        }
    }

    /// What the admin endpoint reads.
    pub(super) fn admin(&self) -> Arc<dyn AdminSource> {
        match self {
            Role::Gate(g) => g.clone(),
            Role::Backend(b) => b.clone(),
        }
    }

    /// Whether nothing is in flight (see `Node::drained`).
    fn idle(&self) -> bool {
        match self {
            Role::Gate(g) => g.idle(),
            Role::Backend(b) => b.idle(),
        }
    }
}

/// One node running in this process.
#[derive(Debug)]
pub(super) struct Running {
    /// The node, in its role.
    pub(super) role: Role,
    /// The address it listens on.
    pub(super) addr: Option<SocketAddr>,
}

/// The nodes started by [`Cluster::start`](crate::Cluster::start).
#[derive(Debug)]
pub struct RunningCluster {
    /// The nodes, in the order they were started.
    pub(super) nodes: Vec<Running>,
    /// Cancelled at shutdown: every node stops taking new work.
    pub(super) root: CancellationToken,
    /// `shutdown_grace_ms`.
    pub(super) grace: Duration,
}

/// Links get this long after the grace period to flush what was queued.
const LINK_FLUSH: Duration = Duration::from_secs(1);

impl RunningCluster {
    fn node(&self, id: NodeId) -> Option<&Running> {
        self.nodes.iter().find(|r| r.role.node().id() == id)
    }

    /// The ids of the nodes running here.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|r| r.role.node().id()).collect()
    }

    /// The address a node of this process listens on.
    pub fn local_addr(&self, id: NodeId) -> Option<SocketAddr> {
        self.node(id).and_then(|r| r.addr)
    }

    /// A copy of a node's counters.
    pub fn metrics(&self, id: NodeId) -> Option<MetricsSnapshot> {
        self.node(id).map(|r| r.role.node().metrics().snapshot())
    }

    /// A [`ClusterHandle`] on a node of this process: a gate if one runs
    /// here (its pushes to local sessions skip every link), else the first
    /// node.
    pub fn handle(&self) -> ClusterHandle {
        self.nodes
            .iter()
            .find(|r| matches!(r.role, Role::Gate(_)))
            .or(self.nodes.first())
            .map_or_else(ClusterHandle::detached, |r| {
                ClusterHandle::weak(&r.role.api())
            })
    }

    /// A [`ClusterHandle`] on node `id`, if it runs in this process.
    pub fn node_handle(&self, id: NodeId) -> Option<ClusterHandle> {
        self.node(id).map(|r| ClusterHandle::weak(&r.role.api()))
    }

    /// Whether every link of every node here is up (all peers reachable).
    pub fn all_links_up(&self) -> bool {
        self.nodes
            .iter()
            .all(|r| r.role.node().links().iter().all(|p| p.is_live()))
    }

    /// Whether node `from` (running here) has a live link to node `to`.
    pub fn link_up(&self, from: NodeId, to: NodeId) -> bool {
        self.node(from)
            .is_some_and(|r| r.role.node().links().is_live(to))
    }

    /// Whether node `from`'s live link to `to` runs in process (`local_links`).
    pub fn link_in_process(&self, from: NodeId, to: NodeId) -> bool {
        let peer = self
            .node(from)
            .and_then(|r| r.role.node().links().get(to).cloned());
        peer.is_some_and(|p| p.is_live() && p.is_in_process())
    }

    /// Waits until every link is up, at most `timeout`; true when they are.
    pub async fn wait_links(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.all_links_up() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.all_links_up()
    }

    /// Graceful shutdown: stop accepting and reading new work, let in-flight
    /// work finish — handlers here, and messages forwarded to other nodes
    /// until those report them finished — bounded by `shutdown_grace_ms`;
    /// then close sessions (each flushes what is queued for it) and links
    /// (each flushes what is queued on it), and wait for both.
    pub async fn shutdown(self) {
        // Gates first move their resumable clients to other gates.
        for r in &self.nodes {
            if let Role::Gate(gate) = &r.role {
                gate.drain(self.grace).await;
            }
        }
        let deadline = Instant::now() + self.grace;
        self.root.cancel();
        for r in &self.nodes {
            r.role.node().begin_stop();
        }
        let drained = tokio::time::timeout_at(deadline.into(), async {
            for r in &self.nodes {
                r.role.node().drained(|| r.role.idle()).await;
            }
        })
        .await;
        if drained.is_err() {
            warn!(grace = ?self.grace, "work still in flight at the end of the grace period");
        }
        for r in &self.nodes {
            r.role.node().close(LINK_FLUSH).await;
        }
        for r in &self.nodes {
            if let Role::Gate(gate) = &r.role {
                gate.closed().await;
            }
            r.role.node().directory().close().await;
        }
        info!("shutdown complete");
    }
}
