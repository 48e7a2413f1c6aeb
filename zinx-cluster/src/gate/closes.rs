//! A gate's session-closed notices, kept for a link that comes back.
//!
//! A session that closes while a link to a backend that served it is down,
//! or on a link that is dying unnoticed (the notice is queued and lost with
//! it), would leave that backend holding the session once the link comes
//! back from the same run. So the gate remembers each notice for
//! [`KEEP_FOR`] heartbeat timeouts (at most [`KEEP_MAX`]), and every
//! heartbeat interval sends again, on a newer link, those it sent on an
//! older one or could not send. A backend ignores a notice for a session
//! it does not hold, so a repeated one costs nothing. (The backend's half:
//! `backend::gate_loss`.)

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::envelope::Envelope;
use crate::peer::Links;

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
pub(super) struct PendingCloses(Mutex<VecDeque<Notice>>);

impl PendingCloses {
    /// Tells backend `to` that a session closed (a `SessionClosed` notice),
    /// and remembers it for a link that comes back.
    pub(super) fn announce(&self, links: &Links, to: u16, env: Envelope) {
        let Some(peer) = links.get(to) else {
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
        let mut notices = self.lock();
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
    pub(super) fn flush(&self, links: &Links, heartbeat_timeout: Duration) {
        let keep_for = heartbeat_timeout * KEEP_FOR;
        let mut notices = self.lock();
        while notices.front().is_some_and(|n| n.at.elapsed() > keep_for) {
            notices.pop_front();
        }
        for n in notices.iter_mut() {
            let Some(peer) = links.get(n.to) else {
                continue;
            };
            let made = peer.links_made();
            if n.sent_on != made && peer.is_up() && peer.send(n.env.clone()).is_ok() {
                n.sent_on = made;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Notice>> {
        // Nothing panics while holding it; recover the data if it ever did.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
