//! Counters of a node, readable through [`crate::RunningCluster::metrics`].
//!
//! Each counter is sharded over cache-line-sized slots, one per worker thread
//! (round-robin), so that two cores counting the same event never fight over
//! one cache line: on the per-message path a contended atomic costs more than
//! the message itself. A snapshot sums the slots (relaxed: consistent enough
//! for monitoring).
//!
//! Beside these plain counters, `Labelled` holds the per-msg_id, per-group
//! and per-transport families, and `render` writes everything in the
//! Prometheus text format for the admin endpoint's `/metrics`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

mod family;
mod labelled;
pub(crate) mod render;

pub(crate) use labelled::{DirOp, Labelled, Outcome, Transport, sample_forward, sample_handler};

const SHARDS: usize = 8;

#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot(AtomicU64);

/// A counter sharded per thread. Always relaxed: a monitoring counter
/// orders nothing.
#[derive(Debug, Default)]
pub(crate) struct Counter([Slot; SHARDS]);

fn slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SLOT.with(|s| *s)
}

impl Counter {
    /// Adds `n`.
    pub(crate) fn add(&self, n: u64) {
        self.0[slot()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n`; a slot may wrap, the sum does not.
    pub(crate) fn sub(&self, n: u64) {
        self.0[slot()].0.fetch_sub(n, Ordering::Relaxed);
    }

    /// The sum of the slots.
    pub(crate) fn get(&self) -> u64 {
        self.0
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(s.0.load(Ordering::Relaxed)))
    }
}

macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $name:ident ),* $(,)?) => {
        /// Live counters of one node.
        #[derive(Debug, Default)]
        pub(crate) struct Metrics {
            $( $(#[doc = $doc])* pub(crate) $name: Counter, )*
        }

        /// A copy of a node's counters at one moment.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct MetricsSnapshot {
            $( $(#[doc = $doc])* pub $name: u64, )*
        }

        impl Metrics {
            pub(crate) fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot {
                    $( $name: self.$name.get(), )*
                }
            }
        }

        impl MetricsSnapshot {
            /// Every counter as (name, its doc comment, value).
            pub(crate) fn named(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![ $( (stringify!($name), concat!($( $doc, )* "").trim_start(), self.$name), )* ]
            }
        }
    };
}

counters! {
    /// Client messages being handled on this gate right now: running in
    /// place, or on their way to a link (shutdown waits for them).
    inflight,
    /// Client sessions currently open on this gate.
    sessions_open,
    /// Client sessions accepted since start.
    sessions_accepted,
    /// Connections refused because the gate held `max_sessions`.
    sessions_refused,
    /// Sessions closed because their outbound queue was full (a client that
    /// does not read).
    queue_full_closes,
    /// Sessions closed for silence past `idle_timeout_ms`.
    idle_closes,
    /// Sessions closed for a frame over `max_frame_len`.
    oversize_closes,
    /// Sessions closed by `kick` (including duplicate logins).
    kicks,
    /// Frames received from clients (heartbeats included).
    frames_in,
    /// Frames queued to clients.
    frames_out,
    /// zinx heartbeats (msg_id 99999) received.
    heartbeats_in,
    /// Client messages forwarded to another node.
    forwards,
    /// Messages handled by a handler on this node.
    handled,
    /// Messages with a msg_id no route names.
    unknown_msg_id,
    /// Payloads that failed to decode for their handler.
    bad_payload,
    /// Handlers that returned an error.
    handler_errors,
    /// Messages that found no live node of their group.
    no_live_node,
    /// Messages refused because a link's queue was full.
    link_queue_full,
    /// Forwards whose chosen link failed at the send and that were sent to
    /// another live node instead.
    forward_retries,
    /// Forwarded messages answered `node_lost`: their node's link died
    /// before the node reported them finished.
    node_lost,
    /// Final answers of forwards already answered `node_lost` (their node
    /// came back and answered after all): dropped.
    late_answers,
    /// Frames for sessions that had already closed (dropped, logged at debug).
    to_gone_session,
    /// Error answers sent to clients.
    error_answers,
    /// Calls made by handlers on this node.
    calls,
    /// Calls that timed out.
    call_timeouts,
    /// Broadcasts delivered by this gate (one per broadcast, not per session).
    broadcasts,
    /// Links that came up (initial and reconnects).
    links_up,
    /// Links that went down.
    links_down,
    /// Incoming links refused in the hello (bad secret, version, or node).
    link_auth_failures,
    /// Messages on this gate's Redis channel dropped as unsigned or
    /// forged (no valid proof of the cluster secret).
    bus_forged,
    /// Signed messages on this gate's Redis channel dropped as replays
    /// (seen before, or stamped outside the accepted time).
    bus_replayed,
    /// Messages to other gates refused at once: their gate was known
    /// unreachable through the bus.
    bus_unreachable,
    /// Messages to other gates refused because the gate's bus queue was
    /// full.
    bus_queue_full,
    /// Messages to other gates that Redis failed to publish or that no
    /// gate received.
    bus_publish_failures,
    /// Uid bindings found on a dead or restarted gate and removed.
    stale_bindings,
    /// Resumable sessions whose socket is lost, kept for their resume
    /// window (a gauge).
    sessions_detached,
    /// Resumes that took their session back.
    resumes_resumed,
    /// Resumes refused: the session's window had ended.
    resumes_expired,
    /// Resumes refused: no such session (forged, foreign, used token, or a
    /// gate that is gone).
    resumes_unknown,
    /// Resumes refused: the session kept more unacknowledged frames than
    /// `resume_buffer_bytes`.
    resumes_overflow,
    /// HELLOs answered `disabled` (`resume_window_ms` is 0).
    resumes_disabled,
    /// Frames sent again (or first) to clients that resumed.
    replayed_frames,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharded_counters_sum_across_threads() {
        let c = std::sync::Arc::new(Counter::default());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.add(2);
                    }
                    for _ in 0..500 {
                        c.sub(1);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(c.get(), 4 * (2000 - 500));
        // A slot may go below zero; the sum stays right.
        let d = Counter::default();
        d.sub(1);
        d.add(1);
        assert_eq!(d.get(), 0);
    }
}
