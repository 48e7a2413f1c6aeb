//! The demo cluster: a gate and two im nodes (`conf/dinx.json`), chat
//! handlers (`conf/route.json`).
//!
//! ```text
//! cargo run -p demo                  # every node in this process
//! cargo run -p demo -- --id 2        # only node 2 (one node per process)
//! cargo run -p demo -- --conf DIR    # another configuration directory
//! ```
//!
//! With `conf/`, the gate also speaks WebSocket on port 9000 and serves a
//! browser chat page at <http://127.0.0.1:9100/chat/>; every node has an
//! admin endpoint (`/metrics`, `/healthz`, `/readyz`) on 9100-9102.
//!
//! Runs until Ctrl-C or SIGTERM, then shuts down gracefully and exits 0.
//! When the configuration or the handlers are wrong it prints every problem
//! and exits 2 before opening any port.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use demo::ImStats;
use tracing_subscriber::EnvFilter;
use zinx_cluster::admin::Page;
use zinx_cluster::config::{NodeConfig, NodeId};
use zinx_cluster::{Cluster, ClusterHandle, Select, SessionClosed};

// The handler modules, one per group. Naming them here is what links them
// into the binary: a `#[handler]` in a module or crate that nothing names
// never registers, and the cluster would refuse to start.
mod gate;
mod im;
mod rooms;

/// Command line of the demo server.
#[derive(Debug, Parser)]
#[command(version, about = "zinx-cluster demo: a gate and two im nodes")]
struct Args {
    /// Run only the node with this ID of dinx.json (default: every node).
    #[arg(long)]
    id: Option<NodeId>,
    /// Directory holding dinx.json, route.json and the optional
    /// settings.json.
    #[arg(long, default_value = "conf")]
    conf: PathBuf,
}

/// A user's session ended: on its gate, and on every im node that served
/// it (also when the gate holding it crashed: the im node notices the link
/// go down). Anonymous sessions pass silently.
async fn session_ended(closed: SessionClosed) {
    if let Some(uid) = closed.uid {
        tracing::info!(%uid, session = %closed.session, node = closed.node, "session ended");
    }
}

/// A gate with a WebSocket port serves the browser chat page on its admin
/// port, pointed at its own WebSocket.
fn chat_pages(node: &NodeConfig) -> Vec<Page> {
    match node.ws_port {
        Some(port) => demo::web::chat_pages(port, &node.ws_path),
        None => Vec::new(),
    }
}

/// Once a minute, when it changed, logs how many messages the im handlers
/// of this process handled (their count lives in the application state).
/// Spawned by the started hook with a handle; ends after shutdown.
async fn log_stats(handle: ClusterHandle) {
    let Some(stats) = handle.state::<Arc<ImStats>>().cloned() else {
        return;
    };
    let mut last = 0;
    let mut every = tokio::time::interval(Duration::from_secs(60));
    every.tick().await;
    while handle.is_running() {
        every.tick().await;
        let handled = stats.handled.load(Ordering::Relaxed);
        if handled != last {
            tracing::info!(handled, "im messages handled");
            last = handled;
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // `info` unless RUST_LOG says otherwise (e.g. RUST_LOG=debug or
    // RUST_LOG=zinx_cluster=debug,info).
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let select = args.id.map_or(Select::All, Select::Id);
    let started = match Cluster::from_dir(&args.conf) {
        Ok(cluster) => {
            for gate in cluster.config().gates() {
                if let (Some(admin), Some(_)) = (gate.admin_addr(), gate.ws_port) {
                    tracing::info!("{}: chat page on http://{admin}/chat/", gate.name);
                }
            }
            cluster
                .with_state(Arc::new(ImStats::default()))
                .on_session_closed(session_ended)
                .with_pages(chat_pages)
                .on_started(|handle| async move {
                    tokio::spawn(log_stats(handle));
                })
                .run(select)
                .await
        }
        Err(e) => Err(e),
    };
    match started {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The error lists every problem, one per line.
            let problems = e.to_string();
            eprintln!(
                "demo: not starting ({}):\n{}",
                args.conf.display(),
                problems.trim_end()
            );
            ExitCode::from(2)
        }
    }
}
