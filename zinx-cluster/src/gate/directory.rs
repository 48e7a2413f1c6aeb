//! A gate's loops over the shared directory (Redis, with several gates):
//! the subscriber that hands what other gates publish to this gate, and the
//! keep-alive of this gate's bindings (with their removal at shutdown).
//! The directory itself is only a store and a bus; the gate drives it.

use std::sync::Arc;

use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::directory::{RedisDirectory, Subscription};
use crate::metrics::DirOp;
use crate::node::Node;

/// Starts the loops when the node's directory is Redis.
pub(super) fn start(node: &Arc<Node>, tasks: &TaskTracker) {
    let Some(redis) = node.directory().redis().cloned() else {
        return;
    };
    let span = info_span!("directory", node = node.id());
    tasks.spawn(subscriber(node.clone(), redis.subscribe(node.id())).instrument(span.clone()));
    tasks.spawn(keep_alive(node.clone(), redis).instrument(span));
}

/// Hands every envelope other gates publish to this gate to the node.
async fn subscriber(node: Arc<Node>, mut sub: Subscription) {
    let closed = node.closed().clone();
    loop {
        tokio::select! {
            _ = closed.cancelled() => return,
            env = sub.next() => node.dispatch(env.node, env),
        }
    }
}

/// Refreshes this gate's bindings every `ttl / 3` until the node closes,
/// then removes those still there.
async fn keep_alive(node: Arc<Node>, redis: Arc<RedisDirectory>) {
    let mut tick = tokio::time::interval(redis.refresh_period());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let closed = node.closed().clone();
    loop {
        tokio::select! {
            _ = closed.cancelled() => break,
            _ = tick.tick() => refresh(&node, &redis).await,
        }
    }
    match redis.unbind_all(&node.sessions().bindings()).await {
        Ok(removed) => debug!(removed, "bindings removed at shutdown"),
        Err(e) => warn!(error = %e, "bindings left at shutdown expire with their TTL"),
    }
}

/// One keep-alive pass over the gate's bindings.
async fn refresh(node: &Node, redis: &RedisDirectory) {
    let bindings = node.sessions().bindings();
    // A failure was logged as an outage by the directory; the next pass
    // tries again.
    let refreshed = redis.refresh(&bindings).await;
    node.count_directory(DirOp::Refresh, &refreshed);
    let Ok(recreated) = refreshed else {
        return;
    };
    let mut recreated_total = 0usize;
    for (uid, session) in recreated {
        // The session may have closed (and unbound) since the snapshot: do
        // not leave a binding behind it.
        if node.sessions().by_uid(uid).map(|s| s.id) == Some(*session) {
            recreated_total += 1;
        } else if let Err(e) = redis.unbind(uid, *session).await {
            debug!(%uid, error = %e, "stale re-created binding left to its TTL");
        }
    }
    if recreated_total > 0 {
        info!(
            count = recreated_total,
            "re-created directory bindings that Redis had lost (restarted without persistence?)"
        );
    }
}
