//! Where a uid is: the user directory shared by the gates.
//!
//! Each gate knows its own sessions' uids exactly (see `session`). The
//! directory answers "which gate holds uid U" for everyone else:
//! - in memory (default): there is one gate, so the answer is that gate, and
//!   the gate itself says whether U is online;
//! - in Redis (several gates, see `redis`): bindings
//!   `uid → session id` with a TTL that the owning gate refreshes, so a
//!   crashed gate leaves nothing stale.
//!
//! The directory also carries messages between gates (which have no
//! internal port): encoded envelopes published to the target gate, read by
//! that gate from its [`Subscription`].
//!
//! The directory is a store and a bus: it never calls into the node. The
//! gate runs the loops that use it (`gate::directory`).

mod redis;
mod subscription;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::envelope::Envelope;
use crate::error::SendError;
use crate::session::SessionId;

pub(crate) use redis::{RedisDirectory, redact};
pub(crate) use subscription::Subscription;

/// The directory a node uses.
#[derive(Debug)]
pub(crate) enum Directory {
    /// One gate in the cluster: its id.
    Memory {
        /// The only gate node.
        gate: u16,
    },
    /// Bindings and gate-to-gate messages in Redis.
    Redis(Arc<RedisDirectory>),
}

impl Directory {
    /// Records `uid → session`; returns the session that held the uid
    /// before, anywhere in the cluster, when the directory knows it.
    pub(crate) async fn bind(
        &self,
        uid: &str,
        session: SessionId,
    ) -> Result<Option<SessionId>, SendError> {
        match self {
            // The gate's own table is the whole truth.
            Directory::Memory { .. } => Ok(None),
            Directory::Redis(r) => r.bind(uid, session).await,
        }
    }

    /// Removes `uid → session` if it still names that session.
    pub(crate) async fn unbind(&self, uid: &str, session: SessionId) -> Result<(), SendError> {
        match self {
            Directory::Memory { .. } => Ok(()),
            Directory::Redis(r) => r.unbind(uid, session).await,
        }
    }

    /// The gate to ask about `uid`; `None` when the uid is known to be
    /// offline.
    pub(crate) async fn locate(&self, uid: &str) -> Result<Option<u16>, SendError> {
        match self {
            Directory::Memory { gate } => Ok(Some(*gate)),
            Directory::Redis(r) => r.locate(uid).await,
        }
    }

    /// Sends an envelope to another gate.
    pub(crate) async fn publish(&self, gate: u16, env: Envelope) -> Result<(), SendError> {
        match self {
            Directory::Memory { .. } => Err(SendError::Unreachable { node: gate }),
            Directory::Redis(r) => r.publish(gate, env).await,
        }
    }

    /// Starts the directory's own work beside a started node (Redis: a
    /// reachability check that ends when `closed` is cancelled).
    pub(crate) fn start(&self, node: u16, closed: CancellationToken) {
        if let Directory::Redis(r) = self {
            r.start_check(node, closed);
        }
    }

    /// The Redis directory, when there is one (a gate subscribes to it and
    /// keeps its bindings alive there).
    pub(crate) fn redis(&self) -> Option<&Arc<RedisDirectory>> {
        match self {
            Directory::Memory { .. } => None,
            Directory::Redis(r) => Some(r),
        }
    }

    /// After the node is closed: waits (bounded) for the directory's own
    /// work to end.
    pub(crate) async fn close(&self) {
        match self {
            Directory::Memory { .. } => {}
            Directory::Redis(r) => r.close().await,
        }
    }
}
