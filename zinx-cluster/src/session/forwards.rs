//! A session's forwarded messages that their node has not finished: the
//! numbers the gate gives them (so a lost link answers each `node_lost`,
//! and a late answer after that is dropped), for the forwards sampled
//! for the forward-duration histogram their group and send time, and the
//! gate's own answers held behind them.
//!
//! Answers reach a client in the order of its requests, as a pipelining
//! zinx client expects (it matches them by order): a refusal the gate
//! makes itself while the session still waits for earlier forwarded
//! messages (`node_stopping` during a shutdown) is held until those are
//! answered. The final answer of a forward and the held answers are queued
//! under this lock, so nothing passes them.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Offer, Session};
use crate::frame::Frame;

/// Answers held behind a session's open forwards at most; past that they
/// go out at once (order is then the lesser loss than memory).
const HELD_MAX: usize = 64;

/// What finishing a forward did (see [`Session::finish_forward`]).
#[derive(Debug, PartialEq)]
pub(crate) struct Finished {
    /// Its group and send time, if it was timed for the metrics.
    pub(crate) timed: Option<(usize, Instant)>,
    /// How its final answer was queued, if it had one.
    pub(crate) offer: Option<Offer>,
}

/// One forwarded message its node has not finished.
#[derive(Debug)]
struct Open {
    node: u16,
    /// The gate's number for it.
    number: u32,
    msg_id: u32,
    /// Sampled for the forward-duration histogram: its group's routing
    /// index and when it was sent.
    timed: Option<(usize, Instant)>,
}

/// A session's forwarded messages that their node has not finished.
#[derive(Debug, Default)]
pub(super) struct Forwards {
    /// Oldest first. Allocates on the first forward and keeps its (small)
    /// capacity.
    open: VecDeque<Open>,
    /// The last forward number given (never 0: 0 means "unnumbered").
    last: u32,
    /// The gate's answers to later messages, waiting for `open` to empty.
    held: Vec<Frame>,
}

impl Session {
    /// Notes message `msg_id` forwarded to `node`, unfinished; returns its
    /// number, which the node returns with its completion. `timed` is the
    /// group's routing index when this forward is timed for the metrics
    /// (the clock is read here, under the lock taken anyway).
    pub(crate) fn track_forward(&self, node: u16, msg_id: u32, timed: Option<usize>) -> u32 {
        let Ok(mut f) = self.forwards.lock() else {
            return 0;
        };
        f.last = f.last.wrapping_add(1).max(1);
        let number = f.last;
        f.open.push_back(Open {
            node,
            number,
            msg_id,
            timed: timed.map(|g| (g, Instant::now())),
        });
        number
    }

    /// Takes back forward `number` when its send failed; false when it is
    /// gone already (the link died meanwhile and it was answered
    /// `node_lost`).
    pub(crate) fn untrack_forward(&self, number: u32) -> bool {
        let Ok(mut f) = self.forwards.lock() else {
            return false;
        };
        match f.open.iter().rposition(|e| e.number == number) {
            Some(i) => f.open.remove(i).is_some(),
            None => false,
        }
    }

    /// Node `node` finished forward `number` (0 from a node that does not
    /// number them: its oldest): its final `answer`, if any, is queued for
    /// the client, then the held answers if no forward is open any more.
    /// `None` (and the answer dropped) when that forward is not open: it
    /// was answered `node_lost` already, and this answer comes too late.
    pub(crate) fn finish_forward(
        &self,
        node: u16,
        number: u32,
        answer: Option<Frame>,
    ) -> Option<Finished> {
        let mut f = self.forwards.lock().ok()?;
        let hit = |e: &Open| e.node == node && (number == 0 || e.number == number);
        // A node finishes one session's messages in order: the oldest
        // entry, almost always.
        let found = match f.open.front() {
            Some(e) if hit(e) => f.open.pop_front(),
            _ => match f.open.iter().position(hit) {
                Some(i) => f.open.remove(i),
                None => None,
            },
        }?;
        if f.open.is_empty() && f.open.capacity() > 64 {
            f.open = VecDeque::new();
        }
        let offer = answer.map(|frame| self.offer(frame));
        self.release_held(&mut f);
        Some(Finished {
            timed: found.timed,
            offer,
        })
    }

    /// Queues `frame`, an answer of the gate itself, behind the answers of
    /// the session's open forwards (at once if none is open).
    pub(crate) fn offer_in_order(&self, frame: Frame) -> Offer {
        if let Ok(mut f) = self.forwards.lock() {
            if !f.open.is_empty() && f.held.len() < HELD_MAX {
                f.held.push(frame);
                return Offer::Queued;
            }
        }
        self.offer(frame)
    }

    /// Queues the held answers once no forward is open.
    fn release_held(&self, f: &mut Forwards) {
        if f.open.is_empty() && !f.held.is_empty() {
            for frame in std::mem::take(&mut f.held) {
                if self.offer(frame) != Offer::Queued {
                    break;
                }
            }
        }
    }

    /// The unfinished forwards, as (node, number, msg_id), oldest first,
    /// and the last number given: for a session moving to another gate.
    pub(crate) fn export_forwards(&self) -> (Vec<(u16, u32, u32)>, u32) {
        match self.forwards.lock() {
            Ok(f) => (
                f.open
                    .iter()
                    .map(|e| (e.node, e.number, e.msg_id))
                    .collect(),
                f.last,
            ),
            Err(_) => (Vec::new(), 0),
        }
    }

    /// Takes over the unfinished forwards of a session that moved here:
    /// their final answers, relayed by the old gate, finish them here.
    pub(crate) fn import_forwards(&self, open: &[(u16, u32, u32)], last: u32) {
        if let Ok(mut f) = self.forwards.lock() {
            for &(node, number, msg_id) in open {
                f.open.push_back(Open {
                    node,
                    number,
                    msg_id,
                    timed: None,
                });
            }
            f.last = f.last.max(last);
        }
    }

    /// Whether a message forwarded from this session is unfinished.
    pub(crate) fn has_open_forwards(&self) -> bool {
        self.forwards.lock().is_ok_and(|f| !f.open.is_empty())
    }

    /// Removes the unfinished messages forwarded to `node` (its link died)
    /// and queues, oldest first, `answer(msg_id)` for each (then the held
    /// answers, if nothing is open any more); returns how many were lost
    /// and how many answers were queued.
    pub(crate) fn fail_forwards_to(
        &self,
        node: u16,
        mut answer: impl FnMut(u32) -> Option<Frame>,
    ) -> (u64, u64) {
        let Ok(mut f) = self.forwards.lock() else {
            return (0, 0);
        };
        if !f.open.iter().any(|e| e.node == node) {
            return (0, 0);
        }
        let mut lost = Vec::new();
        f.open.retain(|e| {
            if e.node == node {
                lost.push(e.msg_id);
                false
            } else {
                true
            }
        });
        let mut queued = 0;
        for msg_id in &lost {
            if let Some(frame) = answer(*msg_id) {
                if self.offer(frame) == Offer::Queued {
                    queued += 1;
                }
            }
        }
        self.release_held(&mut f);
        (lost.len() as u64, queued)
    }
}
