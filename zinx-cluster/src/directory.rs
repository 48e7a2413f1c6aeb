//! Where a uid is: the user directory shared by the gates.
//!
//! Each gate knows its own sessions' uids exactly (see `session`). The
//! directory answers "which gate holds uid U" for everyone else:
//! - in memory (default): there is one gate, so the answer is that gate, and
//!   the gate itself says whether U is online;
//! - in Redis (several gates): bindings `uid → session id` with a TTL that
//!   the owning gate refreshes, so a crashed gate leaves nothing stale.
//!
//! The directory also carries messages between gates (which have no
//! internal port): encoded envelopes published to the target gate.

use crate::envelope::Envelope;
use crate::error::SendError;
use crate::session::SessionId;

/// The directory a node uses.
#[derive(Debug)]
pub(crate) enum Directory {
    /// One gate in the cluster: its id.
    Memory {
        /// The only gate node.
        gate: u16,
    },
}

impl Directory {
    /// Records `uid → session`; returns the session that held the uid
    /// before, anywhere in the cluster, when the directory knows it.
    pub(crate) async fn bind(
        &self,
        _uid: &str,
        _session: SessionId,
    ) -> Result<Option<SessionId>, SendError> {
        match self {
            // The gate's own table is the whole truth.
            Directory::Memory { .. } => Ok(None),
        }
    }

    /// Removes `uid → session` if it still names that session.
    pub(crate) async fn unbind(&self, _uid: &str, _session: SessionId) -> Result<(), SendError> {
        match self {
            Directory::Memory { .. } => Ok(()),
        }
    }

    /// The gate to ask about `uid`; `None` when the uid is known to be
    /// offline.
    pub(crate) async fn locate(&self, _uid: &str) -> Result<Option<u16>, SendError> {
        match self {
            Directory::Memory { gate } => Ok(Some(*gate)),
        }
    }

    /// Sends an envelope to another gate.
    pub(crate) async fn publish(&self, gate: u16, _env: Envelope) -> Result<(), SendError> {
        match self {
            Directory::Memory { .. } => Err(SendError::Unreachable { node: gate }),
        }
    }
}
