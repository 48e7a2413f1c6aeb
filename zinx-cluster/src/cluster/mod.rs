//! `Cluster`: load the configuration, check the handlers, start the selected
//! nodes, run until a signal, shut down gracefully ([`RunningCluster`],
//! `running`).

mod running;

pub use running::RunningCluster;
use running::{Role, Running};

use std::future::Future;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::admin::Page;
use crate::api::ClusterHandle;
use crate::backend::Backend;
use crate::config::{ClusterConfig, ConfigErrors, NodeConfig, NodeId, NodeType};
use crate::directory::{Directory, Identity, RedisDirectory};
use crate::gate::{ClientPorts, Gate};
use crate::handler::BoxFuture;
use crate::metrics::Metrics;
use crate::node::{Node, NodeParts, SessionClosed, SessionHook};
use crate::peer::LinkKey;
use crate::registry::{self, RegistryErrors};
use crate::state::{self, MissingState, States};
use crate::trace::{OtlpEndpointError, OtlpExporter, SpanExporter, Tracer};
use crate::transport::tls::TlsConfigError;

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
    /// The TLS certificate or key of `settings.json` cannot be used (the
    /// message names the file).
    #[error("TLS: {0}")]
    Tls(#[from] TlsConfigError),
    /// The OTLP span exporter could not be started.
    #[error("tracing: {0}")]
    Tracing(#[from] OtlpEndpointError),
    /// The cluster secret could not be turned into a link key.
    #[error("cluster secret: {0}")]
    Secret(String),
    /// Handlers take `State<S>` of types the cluster was not given.
    #[error("{}", list(.0))]
    MissingState(Vec<MissingState>),
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

/// One line per handler whose state is missing.
fn list(items: &[MissingState]) -> String {
    items
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A hook run once the nodes of this process have started.
type StartedHook = Box<dyn FnOnce(ClusterHandle) -> BoxFuture<'static, ()> + Send>;

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
    /// dinx.json, route.json, settings.json.
    config: ClusterConfig,
    /// Run when a session closes.
    hooks: Vec<SessionHook>,
    /// Where spans go (else OTLP when `otlp_endpoint` is set, else off).
    exporter: Option<Arc<dyn SpanExporter>>,
    /// Which static pages each node's admin port serves.
    pages: Option<PagesFn>,
    /// Application state, handed to every node.
    states: States,
    /// Run once the nodes have started.
    started: Vec<StartedHook>,
}

/// Which static pages a node's admin port serves.
type PagesFn = Box<dyn Fn(&NodeConfig) -> Vec<Page> + Send + Sync>;

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("config", &self.config)
            .field("hooks", &self.hooks.len())
            .field("span_exporter", &self.exporter.is_some())
            .field("pages", &self.pages.is_some())
            .field("states", &self.states)
            .field("started", &self.started.len())
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
            exporter: None,
            pages: None,
            states: States::default(),
            started: Vec::new(),
        }
    }

    /// Turns tracing on with this exporter (e.g. an
    /// [`InMemoryExporter`](crate::trace::InMemoryExporter) in tests),
    /// whatever `otlp_endpoint` says.
    pub fn with_span_exporter(mut self, exporter: Arc<dyn SpanExporter>) -> Self {
        self.exporter = Some(exporter);
        self
    }

    /// Serves static pages on each node's admin port (beside `/metrics`,
    /// `/healthz`, `/readyz`), e.g. a browser client: `pages` says which
    /// for a node, so a gate's page can name its own WebSocket port.
    pub fn with_pages<F>(mut self, pages: F) -> Self
    where
        F: Fn(&NodeConfig) -> Vec<Page> + Send + Sync + 'static,
    {
        self.pages = Some(Box::new(pages));
        self
    }

    /// Gives handlers a value of type `S` — a database pool, a game world,
    /// counters — reached through a [`State<S>`](crate::State) argument,
    /// [`Ctx`](crate::Ctx) (which dereferences to its handle) or
    /// [`ClusterHandle::state`]. Call it once per type (several types are
    /// fine; a second value of one type replaces the first). Every node of
    /// the process shares the value: wrap what must change in an `Arc` with
    /// atomics or a lock.
    pub fn with_state<S: Send + Sync + 'static>(mut self, value: S) -> Self {
        self.states.insert(value);
        self
    }

    /// Runs `hook` once the nodes of this process have started (before
    /// [`Cluster::start`] returns), with a handle on one of them (a gate if
    /// one runs here): the place to spawn game loops, timers, matchmakers.
    /// `start` waits for the hook itself, so spawn what runs long.
    pub fn on_started<F, Fut>(mut self, hook: F) -> Self
    where
        F: FnOnce(ClusterHandle) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.started.push(Box::new(move |h| {
            Box::pin(hook(h)) as BoxFuture<'static, ()>
        }));
        self
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
        registry::validate_messages(crate::message::registered_messages(), &config)?;
        let table = Arc::new(registry::validate_handlers(
            registry::registered(),
            &config.routes,
            &served,
        )?);
        let missing = self.states.missing(state::registered_uses(), &served);
        if !missing.is_empty() {
            return Err(StartError::MissingState(missing));
        }
        let states = Arc::new(self.states);

        let gates: Vec<u16> = config.gates().map(|g| g.id).collect();
        let redis_url = config.settings.effective_redis_url();
        let directory_for = |me: Identity| -> Result<Directory, StartError> {
            match (gates.as_slice(), redis_url.as_deref()) {
                (_, Some(url)) => RedisDirectory::open(url, &config.settings, me)
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
        let key = LinkKey::new(secret.as_bytes()).map_err(StartError::Secret)?;
        // Each node's run: a random id naming this process of it, so the
        // others tell a restarted node from a link that blipped.
        let mut directories = Vec::new();
        for n in &selected {
            let me = Identity {
                node: n.id,
                run: rand::random::<u64>().max(1),
                key: key.clone(),
                metrics: Arc::new(Metrics::default()),
            };
            directories.push((directory_for(me.clone())?, me));
        }

        let serves_clients = selected.iter().any(|n| n.node_type == NodeType::Gate);
        let tls = match config.settings.tls_files(&config.dir) {
            Some((cert, key)) if serves_clients => {
                Some(crate::transport::tls::load_server_config(&cert, &key)?)
            }
            _ => None,
        };
        let exporter: Option<Arc<dyn SpanExporter>> =
            match (self.exporter, &config.settings.otlp_endpoint) {
                (Some(e), _) => Some(e),
                (None, Some(url)) => Some(OtlpExporter::start(url, "zinx-cluster")?),
                (None, None) => None,
            };

        // Bind everything before anything runs: a taken port fails the
        // start cleanly.
        let mut listeners = Vec::new();
        let mut extra = Vec::new();
        // Once a backend's port is bound, nodes of this process wait for its
        // in-process link instead of dialing it.
        let mut slots = Vec::new();
        for n in &selected {
            let listener = bind(n, n.addr()).await?;
            let local = n.node_type == NodeType::Backend && config.settings.local_links;
            slots.push(crate::peer::reserve_local(&listener, local));
            listeners.push(listener);
            let ws = match (n.node_type, n.ws_addr()) {
                (NodeType::Gate, Some(addr)) => Some(bind(n, addr).await?),
                _ => None,
            };
            // The admin port binds with a deeper backlog (see admin::bind).
            let admin = match n.admin_addr() {
                Some(addr) => {
                    let bound = crate::admin::bind(&addr);
                    Some(bound.map_err(|source| StartError::Bind {
                        id: n.id,
                        name: n.name.clone(),
                        addr,
                        source,
                    })?)
                }
                None => None,
            };
            extra.push((ws, admin));
        }

        let root = CancellationToken::new();
        let mut nodes = Vec::new();
        let mut to_link = Vec::new();
        let nodes_and_ports = selected
            .iter()
            .zip(listeners)
            .zip(directories)
            .zip(extra)
            .zip(slots);
        for ((((n, listener), (directory, me)), (ws, admin)), slot) in nodes_and_ports {
            let tracer = match &exporter {
                Some(e) => Tracer::new(n.name.clone(), e.clone(), config.settings.trace_every),
                None => Tracer::off(),
            };
            let node = Node::new(
                n,
                &config,
                NodeParts {
                    handlers: table.clone(),
                    directory,
                    key: key.clone(),
                    run: me.run,
                    metrics: me.metrics,
                    hooks: self.hooks.clone(),
                    root: root.clone(),
                    tracer,
                    states: states.clone(),
                },
            );
            let addr = listener.local_addr().ok();
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
            node.directory().start(n.id, node.closed().clone());
            let closed = node.closed().clone();
            let role = match n.node_type {
                NodeType::Gate => {
                    let gate = Gate::new(node);
                    to_link.push((Role::Gate(gate.clone()), None));
                    if let Some(addr) = n.ws_addr().filter(|_| ws.is_some()) {
                        let scheme = if tls.is_some() { "wss" } else { "ws" };
                        info!(
                            "node {}: WebSocket clients on {scheme}://{addr}{}",
                            n.name, n.ws_path
                        );
                    }
                    let ports = ClientPorts {
                        ws: ws.map(|l| (l, n.ws_path.clone())),
                        tls: tls.clone(),
                    };
                    gate.start(listener, ports);
                    Role::Gate(gate)
                }
                NodeType::Backend => {
                    let backend = Backend::new(node);
                    if let Some(slot) = slot {
                        backend.node().links().offer_local(&backend, slot);
                    }
                    to_link.push((Role::Backend(backend.clone()), Some(listener)));
                    Role::Backend(backend)
                }
            };
            if let Some(admin) = admin {
                info!(
                    "node {}: admin endpoint on http://{} (/metrics, /healthz, /readyz)",
                    n.name,
                    n.admin_addr().unwrap_or_default()
                );
                let pages: Arc<[Page]> =
                    self.pages.as_ref().map(|f| f(n)).unwrap_or_default().into();
                let access = crate::admin::Access::from_settings(&config.settings);
                tokio::spawn(crate::admin::serve(
                    admin,
                    role.admin(),
                    pages,
                    access,
                    closed,
                ));
            }
            nodes.push(Running { role, addr });
        }
        // Links start once every node here is known (see `reserve_local`).
        for (role, listener) in to_link {
            match role {
                Role::Gate(g) => g.node().links().start(g.clone(), listener),
                Role::Backend(b) => b.node().links().start(b.clone(), listener),
            }
        }
        let running = RunningCluster {
            nodes,
            root,
            grace: Duration::from_millis(config.settings.shutdown_grace_ms),
        };
        for hook in self.started {
            hook(running.handle()).await;
        }
        Ok(running)
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

/// Binds one of node `n`'s addresses; a taken port names the node.
async fn bind(n: &NodeConfig, addr: String) -> Result<TcpListener, StartError> {
    TcpListener::bind(&addr)
        .await
        .map_err(|source| StartError::Bind {
            id: n.id,
            name: n.name.clone(),
            addr,
            source,
        })
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
