//! A backend's sessions across a lost link to their gate: they (their
//! queues here, and their session-closed hooks) end only when the gate is
//! really gone.
//!
//! A link can blip (a network hiccup, a stall past the heartbeat timeout)
//! while the gate process and its clients live on. So the backend waits
//! one heartbeat timeout: if a link from the same run of the gate (the run
//! id of its hello) came up meanwhile, the sessions live on; if none came,
//! or one came from a new run (the gate restarted: its old sessions are
//! gone for sure), the sessions known at the loss end and their hooks run.
//! Sessions the gate opened after the loss are never touched.
//!
//! The gate's half — re-sending session-closed notices a lost link missed —
//! is `gate::closes`.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info};

use super::Backend;
use crate::peer::Peer;

impl Backend {
    /// The link from `peer` went down (see the module docs).
    pub(super) fn gate_link_lost(self: &Arc<Self>, peer: &Peer) {
        let sessions = self.queues.sessions_of(peer.id);
        if sessions.is_empty() {
            return;
        }
        let Some(peer) = self.node.links().get(peer.id).cloned() else {
            return;
        };
        let (run, made) = (peer.run(), peer.links_made());
        let me = self.clone();
        let wait = Duration::from_millis(self.node.settings().heartbeat_timeout_ms.max(1));
        let end = move || {
            let mut ended = 0usize;
            for session in sessions {
                if let Some(uid) = me.queues.close_session(session) {
                    me.node.run_hooks(session, uid);
                    ended += 1;
                }
            }
            ended
        };
        // A gate that did not say its run (an earlier version) cannot be
        // told from a restarted one: its sessions end at once, as before.
        if run == 0 {
            end();
            return;
        }
        let stopping = self.node.stopping().clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                // The node stops: nothing more to keep or end.
                _ = stopping.cancelled() => return,
            }
            if peer.links_made() != made && peer.run() == run {
                debug!(gate = %peer.name, "link back from the same run of the gate: its sessions live on");
                return;
            }
            let ended = end();
            info!(
                gate = %peer.name,
                ended,
                restarted = peer.links_made() != made,
                "gate gone: its sessions ended here"
            );
        });
    }
}
