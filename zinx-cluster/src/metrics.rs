//! Counters of a node, readable through [`crate::RunningCluster::metrics`].
//!
//! Plain relaxed atomics: a counter increment is one instruction on the hot
//! path, and a snapshot is a consistent-enough read for monitoring.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Live counters of one node.
        #[derive(Debug, Default)]
        pub(crate) struct Metrics {
            $( $(#[$doc])* pub(crate) $name: AtomicU64, )*
        }

        /// A copy of a node's counters at one moment.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct MetricsSnapshot {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl Metrics {
            pub(crate) fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot {
                    $( $name: self.$name.load(Ordering::Relaxed), )*
                }
            }
        }
    };
}

counters! {
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
}
