//! `Cluster`: load the configuration, check the handlers, start the selected
//! nodes, run until a signal, shut down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{ClusterConfig, ConfigErrors, NodeConfig, NodeId, NodeType};
use crate::directory::Directory;
use crate::metrics::MetricsSnapshot;
use crate::node::{Node, SessionClosed, SessionHook};
use crate::redis_directory::RedisDirectory;
use crate::registry::{self, RegistryErrors};

/// Which nodes of `dinx.json` this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// Every node, in one process.
    All,
    /// Exactly the node with this `ID`.
    Id(NodeId),
}

/// Why a cluster did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration files are invalid.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// The handlers compiled into this binary disagree with `route.json`.
    #[error("{0}")]
    Handlers(#[from] RegistryErrors),
    /// `--id` names no node.
    #[error("no node with ID {0} in dinx.json")]
    UnknownNode(NodeId),
    /// Several gates need a shared directory.
    #[error(
        "dinx.json has {0} gate nodes: several gates need a shared user directory; set \"redis_url\" in settings.json or ZINX_REDIS_URL"
    )]
    ManyGatesWithoutRedis(usize),
    /// The shared directory could not be set up.
    #[error("user directory: {0}")]
    Directory(String),
    /// A node could not bind its address.
    #[error("node {name} (ID {id}) cannot listen on {addr}: {source}")]
    Bind {
        /// The node.
        id: NodeId,
        /// Its name.
        name: String,
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A cluster ready to start: configuration loaded, hooks registered.
///
/// ```rust,no_run
/// use zinx_cluster::{Cluster, Select};
///
/// # async fn run() -> Result<(), zinx_cluster::StartError> {
/// // Every node of conf/dinx.json in this process, until Ctrl-C or SIGTERM:
/// Cluster::from_dir("conf")?.run(Select::All).await?;
/// // Or only node 2 (one node per process or per machine):
/// Cluster::from_dir("conf")?.run(Select::Id(2)).await?;
/// # Ok(()) }
/// ```
///
/// Before it binds any port, `start` checks that the `#[handler]`s linked
/// into the binary serve exactly the routes of the selected nodes' groups,
/// and refuses to start naming every mismatch.
pub struct Cluster {
    config: ClusterConfig,
    hooks: Vec<SessionHook>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("config", &self.config)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

impl Cluster {
    /// Loads `dinx.json`, `route.json` and the optional `settings.json`
    /// from `dir`.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Cluster, StartError> {
        Ok(Cluster::new(ClusterConfig::load(dir)?))
    }

    /// A cluster of an already loaded configuration.
    pub fn new(config: ClusterConfig) -> Cluster {
        Cluster {
            config,
            hooks: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Runs `hook` whenever a client session closes: on its gate and on
    /// every node that served one of its messages.
    pub fn on_session_closed<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(SessionClosed) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.push(Arc::new(move |s| Box::pin(hook(s))));
        self
    }

    /// Starts the selected nodes and returns at once; see
    /// [`RunningCluster::shutdown`].
    pub async fn start(self, select: Select) -> Result<RunningCluster, StartError> {
        let config = self.config;
        let selected: Vec<NodeConfig> = match select {
            Select::All => config.nodes.clone(),
            Select::Id(id) => vec![
                config
                    .node(id)
                    .cloned()
                    .ok_or(StartError::UnknownNode(id))?,
            ],
        };
        let mut served: Vec<&str> = selected.iter().map(|n| n.group.as_str()).collect();
        served.sort_unstable();
        served.dedup();
        let table = Arc::new(registry::validate_handlers(
            registry::registered(),
            &config.routes,
            &served,
        )?);

        let gates: Vec<u16> = config.gates().map(|g| g.id).collect();
        let redis_url = config.settings.effective_redis_url();
        let directory_for = |_: &NodeConfig| -> Result<Directory, StartError> {
            match (gates.as_slice(), redis_url.as_deref()) {
                (_, Some(url)) => RedisDirectory::open(url, &config.settings)
                    .map(|d| Directory::Redis(Arc::new(d)))
                    .map_err(StartError::Directory),
                ([only], None) => Ok(Directory::Memory { gate: *only }),
                // Config validation refuses a cluster without a gate; a
                // backend-only selection still needs no directory.
                ([], None) => Ok(Directory::Memory { gate: 0 }),
                (many, None) => Err(StartError::ManyGatesWithoutRedis(many.len())),
            }
        };

        let (secret, default_secret) = config.settings.effective_secret();
        if default_secret {
            warn!(
                "!!! no cluster secret configured: using the well-known default. Anyone who can reach a backend port can join the cluster. Set \"secret\" in settings.json or {} !!!",
                crate::settings::SECRET_ENV
            );
        }

        // Every fallible step before any port is bound or any node runs.
        let mut directories = Vec::new();
        for n in &selected {
            directories.push(directory_for(n)?);
        }

        // Bind everything before anything runs: a taken port fails the
        // start cleanly.
        let mut listeners = Vec::new();
        for n in &selected {
            let l = TcpListener::bind(n.addr())
                .await
                .map_err(|source| StartError::Bind {
                    id: n.id,
                    name: n.name.clone(),
                    addr: n.addr(),
                    source,
                })?;
            listeners.push(l);
        }

        let root = CancellationToken::new();
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        for ((n, listener), directory) in selected.iter().zip(listeners).zip(directories) {
            let node = Arc::new(Node::new(
                n,
                &config,
                table.clone(),
                directory,
                secret.as_bytes().to_vec(),
                self.hooks.clone(),
                &root,
            ));
            addrs.push(listener.local_addr().ok());
            let mut ids: Vec<u32> = table
                .iter()
                .filter(|r| r.group == n.group)
                .map(|r| r.msg_id)
                .collect();
            ids.sort_unstable();
            info!(
                "node {} (ID {}, {} group {:?}) on {}: handlers {:?}",
                n.name,
                n.id,
                match n.node_type {
                    NodeType::Gate => "gate",
                    NodeType::Backend => "backend",
                },
                n.group,
                n.addr(),
                ids
            );
            match n.node_type {
                NodeType::Gate => {
                    tokio::spawn(crate::gate::accept_clients(node.clone(), listener));
                }
                NodeType::Backend => {
                    tokio::spawn(crate::peer::accept_links(node.clone(), listener));
                }
            }
            Directory::start(&node);
            for peer in node.peers.values().filter(|p| p.we_dial) {
                tokio::spawn(crate::peer::dial_loop(node.clone(), peer.clone()));
            }
            nodes.push(node);
        }
        Ok(RunningCluster {
            nodes,
            addrs,
            root,
            grace: Duration::from_millis(config.settings.shutdown_grace_ms),
        })
    }

    /// Starts the selected nodes and runs them until SIGINT or SIGTERM, then
    /// shuts down gracefully.
    pub async fn run(self, select: Select) -> Result<(), StartError> {
        let running = self.start(select).await?;
        wait_for_signal().await;
        running.shutdown().await;
        Ok(())
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
                    _ = term.recv() => info!("SIGTERM: shutting down"),
                }
            }
            Err(e) => {
                error!(error = %e, "cannot watch SIGTERM; waiting for SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        info!("interrupted: shutting down");
    }
}

/// The nodes started by [`Cluster::start`].
#[derive(Debug)]
pub struct RunningCluster {
    nodes: Vec<Arc<Node>>,
    addrs: Vec<Option<SocketAddr>>,
    root: CancellationToken,
    grace: Duration,
}

impl RunningCluster {
    /// The ids of the nodes running here.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// The address a node of this process listens on.
    pub fn local_addr(&self, id: NodeId) -> Option<SocketAddr> {
        let i = self.nodes.iter().position(|n| n.id == id)?;
        self.addrs.get(i).copied().flatten()
    }

    /// A copy of a node's counters.
    pub fn metrics(&self, id: NodeId) -> Option<MetricsSnapshot> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.metrics.snapshot())
    }

    /// Whether every link of every node here is up (all peers reachable).
    pub fn all_links_up(&self) -> bool {
        self.nodes
            .iter()
            .all(|n| n.peers.values().all(|p| p.is_live()))
    }

    /// Whether node `from` (running here) has a live link to node `to`.
    pub fn link_up(&self, from: NodeId, to: NodeId) -> bool {
        self.nodes
            .iter()
            .find(|n| n.id == from)
            .and_then(|n| n.peers.get(&to))
            .is_some_and(|p| p.is_live())
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
    /// handlers finish and their answers reach clients (bounded by
    /// `shutdown_grace_ms`), then close sessions and links.
    pub async fn shutdown(self) {
        let deadline = Instant::now() + self.grace;
        self.root.cancel();
        for n in &self.nodes {
            n.announce_stopping();
        }
        for n in &self.nodes {
            n.tasks.close();
        }
        let drained = tokio::time::timeout_at(deadline.into(), async {
            for n in &self.nodes {
                n.tasks.wait().await;
                // Handlers running in place on a gate (not tasks).
                while n.metrics.inflight.load(Ordering::Relaxed) != 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
        .await;
        if drained.is_err() {
            warn!(grace = ?self.grace, "handlers still running at the end of the grace period");
        }
        // Answers may still be crossing links from other processes: wait
        // until the traffic settles (or the grace period ends).
        let activity = |nodes: &[Arc<Node>]| -> u64 {
            nodes
                .iter()
                .map(|n| {
                    n.metrics.frames_out.load(Ordering::Relaxed)
                        + n.metrics.handled.load(Ordering::Relaxed)
                })
                .sum()
        };
        loop {
            let before = activity(&self.nodes);
            tokio::time::sleep(Duration::from_millis(50)).await;
            if activity(&self.nodes) == before || Instant::now() >= deadline {
                break;
            }
        }
        for n in &self.nodes {
            n.closed.cancel();
            for p in n.peers.values() {
                p.close();
            }
        }
        // A gate's last removal of the directory bindings it still holds.
        for n in &self.nodes {
            n.directory.close().await;
        }
        // Let writers flush what was queued.
        tokio::time::sleep(Duration::from_millis(50)).await;
        info!("shutdown complete");
    }
}
