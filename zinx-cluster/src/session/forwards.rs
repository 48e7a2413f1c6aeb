//! A session's forwarded messages that their node has not finished: the
//! numbers the gate gives them (so a lost link answers each `node_lost`,
//! and a late answer after that is dropped), and, with metrics on, their
//! send times (the forward-duration histogram).

use std::collections::VecDeque;
use std::time::Instant;

use super::Session;

/// A session's forwarded messages that their node has not finished.
#[derive(Debug, Default)]
pub(super) struct Forwards {
    /// Oldest first: (node, forward number, msg_id). Allocates on the
    /// first forward and keeps its (small) capacity.
    open: VecDeque<(u16, u32, u32)>,
    /// The last forward number given (never 0: 0 means "unnumbered").
    last: u32,
    /// With metrics on: forwards waiting for their final answer, oldest
    /// first, as (node, group, sent at), for the forward-duration
    /// histogram. Empty (no allocation) while nothing is forwarded.
    timed: VecDeque<(u16, usize, Instant)>,
}

impl Session {
    /// Notes message `msg_id` forwarded to `node`, unfinished; returns its
    /// number, which the node returns with its completion.
    pub(crate) fn track_forward(&self, node: u16, msg_id: u32) -> u32 {
        let Ok(mut f) = self.forwards.lock() else {
            return 0;
        };
        f.last = f.last.wrapping_add(1).max(1);
        let number = f.last;
        f.open.push_back((node, number, msg_id));
        number
    }

    /// Takes back forward `number` when its send failed; false when it is
    /// gone already (the link died meanwhile and it was answered
    /// `node_lost`).
    pub(crate) fn untrack_forward(&self, number: u32) -> bool {
        let Ok(mut f) = self.forwards.lock() else {
            return false;
        };
        match f.open.iter().rposition(|e| e.1 == number) {
            Some(i) => f.open.remove(i).is_some(),
            None => false,
        }
    }

    /// Node `node` finished forward `number` (0 from a node that does not
    /// number them: its oldest). False when that forward is not open: it
    /// was answered `node_lost` already, and this answer comes too late.
    pub(crate) fn finish_forward(&self, node: u16, number: u32) -> bool {
        let Ok(mut f) = self.forwards.lock() else {
            return false;
        };
        let hit = |e: &(u16, u32, u32)| e.0 == node && (number == 0 || e.1 == number);
        // A node finishes one session's messages in order: the oldest
        // entry, almost always.
        let found = match f.open.front() {
            Some(e) if hit(e) => f.open.pop_front().is_some(),
            _ => match f.open.iter().position(hit) {
                Some(i) => f.open.remove(i).is_some(),
                None => false,
            },
        };
        if f.open.is_empty() && f.open.capacity() > 64 {
            f.open = VecDeque::new();
        }
        found
    }

    /// Whether a message forwarded from this session is unfinished.
    pub(crate) fn has_open_forwards(&self) -> bool {
        self.forwards.lock().is_ok_and(|f| !f.open.is_empty())
    }

    /// Removes and returns the msg_ids of the unfinished messages forwarded
    /// to `node` (its link died), oldest first.
    pub(crate) fn take_forwards_to(&self, node: u16) -> Vec<u32> {
        let Ok(mut f) = self.forwards.lock() else {
            return Vec::new();
        };
        if !f.open.iter().any(|e| e.0 == node) {
            return Vec::new();
        }
        let mut lost = Vec::new();
        f.open.retain(|&(n, _, msg_id)| {
            if n == node {
                lost.push(msg_id);
                false
            } else {
                true
            }
        });
        lost
    }

    /// Notes a message forwarded to `node` of group `group` now (metrics).
    /// Past [`MAX_TIMED_FORWARDS`] waiting, the record starts over: timing
    /// is for monitoring and must not grow a session's memory.
    pub(crate) fn forward_sent(&self, node: u16, group: usize) {
        if let Ok(mut f) = self.forwards.lock() {
            if f.timed.len() >= MAX_TIMED_FORWARDS {
                f.timed.clear();
            }
            f.timed.push_back((node, group, Instant::now()));
        }
    }

    /// The group and send time of the oldest forward to `node` (whose final
    /// answer just arrived: a node answers one session's messages in
    /// order), removed.
    pub(crate) fn forward_finished(&self, node: u16) -> Option<(usize, Instant)> {
        let mut f = self.forwards.lock().ok()?;
        let i = f.timed.iter().position(|(n, _, _)| *n == node)?;
        let (_, group, sent) = f.timed.remove(i)?;
        if f.timed.is_empty() && f.timed.capacity() > 16 {
            f.timed = VecDeque::new();
        }
        Some((group, sent))
    }
}

impl Session {
    /// Forgets the newest forward to `node` (it could not be sent).
    pub(crate) fn forward_unsent(&self, node: u16) {
        if let Ok(mut f) = self.forwards.lock() {
            if let Some(i) = f.timed.iter().rposition(|(n, _, _)| *n == node) {
                f.timed.remove(i);
            }
        }
    }
}

/// Forwards of one session timed at once at most (see
/// [`Session::forward_sent`]).
const MAX_TIMED_FORWARDS: usize = 1024;
