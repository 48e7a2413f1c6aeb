//! A gate's loops over the shared directory (Redis, with several gates):
//! the subscriber that hands what other gates publish to this gate (and
//! counts what it refuses), the keep-alive of this gate's bindings (with
//! their removal at shutdown), and the gate's liveness: its run key,
//! refreshed every heartbeat interval, without which its bindings are
//! stale to everyone else.
//! The directory itself is only a store and a bus; the gate drives it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use super::Gate;
use crate::directory::{RedisDirectory, Refused, Subscription};
use crate::metrics::DirOp;

/// Starts the loops when the node's directory is Redis.
pub(super) fn start(gate: &Arc<Gate>, tasks: &TaskTracker) {
    let Some(redis) = gate.node().directory().redis().cloned() else {
        return;
    };
    let span = info_span!("directory", node = gate.node().id());
    tasks.spawn(subscriber(gate.clone(), redis.subscribe()).instrument(span.clone()));
    tasks.spawn(liveness(gate.clone(), redis.clone()).instrument(span.clone()));
    tasks.spawn(keep_alive(gate.clone(), redis).instrument(span));
}

/// Refused messages are logged at most this often (a flood of forgeries
/// must not flood the log); every one is counted.
const REFUSED_LOG_EVERY: Duration = Duration::from_secs(5);

/// Hands every authentic envelope other gates publish to this gate to the
/// node; counts the refused ones.
async fn subscriber(gate: Arc<Gate>, mut sub: Subscription) {
    let node = gate.node();
    let closed = node.closed().clone();
    let mut logged: Option<Instant> = None;
    loop {
        let next = tokio::select! {
            _ = closed.cancelled() => return,
            next = sub.next() => next,
        };
        let refused = match next {
            Ok(env) => {
                gate.dispatch(env.node, env);
                continue;
            }
            Err(r) => r,
        };
        match &refused {
            Refused::Forged => node.metrics().bus_forged.add(1),
            _ => node.metrics().bus_replayed.add(1),
        }
        if logged.is_none_or(|t| t.elapsed() >= REFUSED_LOG_EVERY) {
            logged = Some(Instant::now());
            let m = node.metrics();
            warn!(
                ?refused,
                forged_total = m.bus_forged.get(),
                replayed_total = m.bus_replayed.get(),
                "message on the gate channel refused: not signed with the cluster secret for this gate, or a replay"
            );
        }
    }
}

/// Keeps this gate's run key alive every heartbeat interval until the node
/// closes, then removes it (its bindings are stale at once).
async fn liveness(gate: Arc<Gate>, redis: Arc<RedisDirectory>) {
    let mut tick = tokio::time::interval(redis.run_period());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let closed = gate.node().closed().clone();
    loop {
        tokio::select! {
            _ = closed.cancelled() => break,
            // A failure was logged as an outage by the directory.
            _ = tick.tick() => { let _ = redis.keep_run_alive().await; }
        }
    }
    if let Err(e) = redis.end_run().await {
        debug!(error = %e, "run key left to its TTL");
    }
}

/// Refreshes this gate's bindings every `ttl / 3` until the node closes,
/// then removes those still there.
async fn keep_alive(gate: Arc<Gate>, redis: Arc<RedisDirectory>) {
    let mut tick = tokio::time::interval(redis.refresh_period());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let closed = gate.node().closed().clone();
    loop {
        tokio::select! {
            _ = closed.cancelled() => break,
            _ = tick.tick() => refresh(&gate, &redis).await,
        }
    }
    match redis.unbind_all(&gate.sessions().bindings()).await {
        Ok(removed) => debug!(removed, "bindings removed at shutdown"),
        Err(e) => warn!(error = %e, "bindings left at shutdown expire with their TTL"),
    }
}

/// One keep-alive pass over the gate's bindings.
async fn refresh(gate: &Gate, redis: &RedisDirectory) {
    let node = gate.node();
    let bindings = gate.sessions().bindings();
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
        if gate.sessions().by_uid(uid).map(|s| s.id) == Some(*session) {
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
