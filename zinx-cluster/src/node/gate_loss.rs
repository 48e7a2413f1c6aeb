//! Sessions across a lost link between a gate and a backend.
//!
//! On a backend, the gate's sessions (their queues here, and their
//! session-closed hooks) end only when the gate is really gone.
//!
//! A link can blip (a network hiccup, a stall past the heartbeat timeout)
//! while the gate process and its clients live on. So the backend waits
//! one heartbeat timeout: if a link from the same run of the gate (the run
//! id of its hello) came up meanwhile, the sessions live on; if none came,
//! or one came from a new run (the gate restarted: its old sessions are
//! gone for sure), the sessions known at the loss end and their hooks run.
//! Sessions the gate opened after the loss are never touched.
//!
//! On a gate, a session that closes while a link to a backend that served
//! it is down, or on a link that is dying unnoticed (the notice is queued
//! and lost with it), would leave that backend holding the session once
//! the link comes back from the same run. So the gate remembers each
//! notice for [`KEEP_FOR`] heartbeat timeouts (at most [`KEEP_MAX`]), and
//! every heartbeat interval sends again, on a newer link, those it sent on
//! an older one or could not send. A backend ignores a notice for a
//! session it does not hold, so a repeated one costs nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::Node;
use crate::envelope::Envelope;
use crate::peer::Peer;

/// Most session-closed notices a gate remembers (the oldest go first).
const KEEP_MAX: usize = 65_536;

/// How long a gate remembers a notice, in heartbeat timeouts: longer than
/// a backend keeps a session whose gate's link is down.
const KEEP_FOR: u32 = 3;

/// A session-closed notice a gate remembers.
#[derive(Debug)]
struct Notice {
    /// When the session closed.
    at: Instant,
    /// The backend told.
    to: u16,
    /// The notice.
    env: Envelope,
    /// `links_made` of the backend's peer when the notice was queued on
    /// its link (0: not queued).
    sent_on: u64,
}

/// The session-closed notices of the last few heartbeat timeouts.
#[derive(Debug, Default)]
pub(crate) struct PendingCloses(Mutex<VecDeque<Notice>>);

impl Node {
    /// The link from `peer` went down (see the module docs).
    pub(crate) fn gate_link_lost(self: &Arc<Self>, peer: &Peer) {
        let sessions = self.exec.sessions_of(peer.id);
        if sessions.is_empty() {
            return;
        }
        let Some(peer) = self.links.get(peer.id).cloned() else {
            return;
        };
        let (run, made) = (peer.run(), peer.links_made());
        let node = self.clone();
        let wait = Duration::from_millis(self.settings.heartbeat_timeout_ms.max(1));
        let end = move || {
            let mut ended = 0usize;
            for session in sessions {
                if let Some(uid) = node.exec.close_session(session) {
                    node.run_hooks(session, uid);
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
        let stopping = self.stopping.clone();
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

impl Node {
    /// Tells backend `to` that a session closed (a `SessionClosed`
    /// notice), and remembers it for a link that comes back (see the
    /// module docs).
    pub(crate) fn announce_close(&self, to: u16, env: Envelope) {
        let Some(peer) = self.links.get(to) else {
            return;
        };
        let made = peer.links_made();
        let sent_on = match peer.send(env.clone()) {
            Ok(()) => made,
            Err(e) => {
                debug!(
                    node = to,
                    ?e,
                    "session close announced when the link is back"
                );
                0
            }
        };
        let mut notices = self.pending_closes.lock();
        if notices.len() >= KEEP_MAX {
            notices.pop_front();
        }
        notices.push_back(Notice {
            at: Instant::now(),
            to,
            env,
            sent_on,
        });
    }

    /// Forgets old notices; sends again, on a newer link that is up, those
    /// that went out on an older one or not at all.
    pub(crate) fn flush_pending_closes(&self) {
        let keep_for = Duration::from_millis(self.settings.heartbeat_timeout_ms) * KEEP_FOR;
        let mut notices = self.pending_closes.lock();
        while notices.front().is_some_and(|n| n.at.elapsed() > keep_for) {
            notices.pop_front();
        }
        for n in notices.iter_mut() {
            let Some(peer) = self.links.get(n.to) else {
                continue;
            };
            let made = peer.links_made();
            if n.sent_on != made && peer.is_up() && peer.send(n.env.clone()).is_ok() {
                n.sent_on = made;
            }
        }
    }
}

impl PendingCloses {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Notice>> {
        // Nothing panics while holding it; recover the data if it ever did.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
