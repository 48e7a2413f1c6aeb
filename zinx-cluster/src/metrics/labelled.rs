//! The labelled metrics of a node: per msg_id, per group, per transport,
//! per close reason, per directory operation. Label values are fixed at
//! start (msg_ids from `route.json`, groups from `dinx.json`); a msg_id no
//! route names counts under `msg_id="other"`, so no client can grow the
//! label set.

use std::time::Duration;

use super::family::{HISTOGRAM_COLS, Table};
use crate::error::ErrorCode;
use crate::session::CloseReason;

/// How a client message ended, the `outcome` label of
/// `zinx_messages_total`: `ok`, `forwarded` (the gate's view of a message a
/// backend runs) or the error code its client was answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handler ran and succeeded.
    Ok,
    /// A gate sent the message on to a backend.
    Forwarded,
    /// `bad_payload`: the payload did not decode.
    BadPayload,
    /// `handler_error`: the handler returned an error.
    HandlerError,
    /// `no_live_node`: no node of the group was reachable.
    NoLiveNode,
    /// `overloaded`: a queue on the way was full.
    Overloaded,
    /// `unknown_msg_id`: no route.
    UnknownMsgId,
    /// `wrong_gate`: a route of another gate group.
    WrongGate,
    /// `node_stopping`: refused during shutdown.
    NodeStopping,
    /// Any other error code.
    Error,
}

impl Outcome {
    /// Every outcome, in column order.
    pub(crate) const ALL: [Outcome; 10] = [
        Outcome::Ok,
        Outcome::Forwarded,
        Outcome::BadPayload,
        Outcome::HandlerError,
        Outcome::NoLiveNode,
        Outcome::Overloaded,
        Outcome::UnknownMsgId,
        Outcome::WrongGate,
        Outcome::NodeStopping,
        Outcome::Error,
    ];

    /// The label value: `ok`, `forwarded`, the error code, or `error`.
    pub(crate) fn label(self) -> &'static str {
        let code = match self {
            Outcome::Ok => return "ok",
            Outcome::Forwarded => return "forwarded",
            Outcome::Error => return "error",
            Outcome::BadPayload => ErrorCode::BadPayload,
            Outcome::HandlerError => ErrorCode::HandlerError,
            Outcome::NoLiveNode => ErrorCode::NoLiveNode,
            Outcome::Overloaded => ErrorCode::Overloaded,
            Outcome::UnknownMsgId => ErrorCode::UnknownMsgId,
            Outcome::WrongGate => ErrorCode::WrongGate,
            Outcome::NodeStopping => ErrorCode::NodeStopping,
        };
        code.wire()
    }

    /// The outcome of a message answered with the error `code`.
    pub(crate) fn of(code: &ErrorCode) -> Outcome {
        match code {
            ErrorCode::BadPayload => Outcome::BadPayload,
            ErrorCode::HandlerError => Outcome::HandlerError,
            ErrorCode::NoLiveNode => Outcome::NoLiveNode,
            ErrorCode::Overloaded => Outcome::Overloaded,
            ErrorCode::UnknownMsgId => Outcome::UnknownMsgId,
            ErrorCode::WrongGate => Outcome::WrongGate,
            ErrorCode::NodeStopping => Outcome::NodeStopping,
            _ => Outcome::Error,
        }
    }
}

/// How a client reached its gate: the `transport` label of `zinx_sessions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// zinx TLV over TCP.
    Tcp = 0,
    /// zinx TLV over TLS.
    Tls = 1,
    /// zinx frames in WebSocket binary messages.
    Ws = 2,
    /// The same over TLS.
    Wss = 3,
}

const TRANSPORTS: [&str; 4] = ["tcp", "tls", "ws", "wss"];

/// `reason` label values of `zinx_session_closes_total`, in column order.
const CLOSE_REASONS: [&str; 10] = [
    "client_closed",
    "idle",
    "oversize",
    "queue_full",
    "kicked",
    "shutdown",
    "io_error",
    "moved",
    "text_message",
    "protocol_error",
];

/// A close reason's column.
fn close_col(reason: CloseReason) -> usize {
    match reason {
        CloseReason::ClientClosed => 0,
        CloseReason::Idle => 1,
        CloseReason::Oversize => 2,
        CloseReason::QueueFull => 3,
        CloseReason::Kicked => 4,
        CloseReason::Shutdown => 5,
        CloseReason::IoError => 6,
        CloseReason::Moved => 7,
    }
}

/// A directory operation: the `op` label of `zinx_directory_ops_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirOp {
    /// Binding a uid to a session.
    Bind = 0,
    /// Removing a binding.
    Unbind = 1,
    /// Finding a uid's session.
    Lookup = 2,
    /// Refreshing a gate's bindings.
    Refresh = 3,
    /// Publishing to another gate.
    Publish = 4,
}

const DIR_OPS: [&str; 5] = ["bind", "unbind", "lookup", "refresh", "publish"];

/// The labelled metrics of one node.
#[derive(Debug)]
pub(crate) struct Labelled {
    /// Off: every record method returns at its first branch.
    enabled: bool,
    /// The msg_ids of `route.json`, sorted: row `i` is `msg_ids[i]`, row
    /// `msg_ids.len()` is every other msg_id.
    msg_ids: Box<[u32]>,
    /// The groups a gate forwards to, as (routing index, name): row `i` of
    /// `forward` is `groups[i]`.
    groups: Box<[(usize, String)]>,
    /// `zinx_messages_total`: rows msg_ids + other, columns [`Outcome::ALL`].
    messages: Table,
    /// `zinx_handler_duration_seconds`: rows msg_ids + other.
    handler: Table,
    /// `zinx_forward_duration_seconds`: rows groups.
    forward: Table,
    /// `zinx_sessions` gauge: one row, a column per transport.
    sessions: Table,
    /// `zinx_session_closes_total`: one row, a column per reason.
    closes: Table,
    /// `zinx_directory_ops_total`: rows ops, columns ok / error.
    directory: Table,
}

/// One handler run in this many (per thread) is timed for
/// `zinx_handler_duration_seconds`, its observation weighted by it: reading
/// the clock twice for every message cost about a tenth of a gate's local
/// echo throughput; counts of messages stay exact.
pub(crate) const HANDLER_SAMPLE: u64 = 8;

/// One forward in this many (per thread) is timed for
/// `zinx_forward_duration_seconds`, weighted likewise.
pub(crate) const FORWARD_SAMPLE: u64 = 8;

thread_local! {
    static HANDLER_RUNS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    static FORWARDS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts an event on this thread's `counter`; true for one in `every`.
/// (Separate counters per kind of event: one shared counter fed by two
/// alternating kinds would always pick the same kind.)
#[inline]
fn one_in(counter: &'static std::thread::LocalKey<std::cell::Cell<u64>>, every: u64) -> bool {
    counter.with(|n| {
        let v = n.get().wrapping_add(1);
        n.set(v);
        v % every == 0
    })
}

/// Whether this handler run is the one in [`HANDLER_SAMPLE`] to time.
#[inline]
pub(crate) fn sample_handler() -> bool {
    one_in(&HANDLER_RUNS, HANDLER_SAMPLE)
}

/// Whether this forward is the one in [`FORWARD_SAMPLE`] to time.
#[inline]
pub(crate) fn sample_forward() -> bool {
    one_in(&FORWARDS, FORWARD_SAMPLE)
}

impl Labelled {
    /// Metrics for these msg_ids and groups; `enabled` false records
    /// nothing (the `metrics` setting).
    pub(crate) fn new(
        enabled: bool,
        msg_ids: impl IntoIterator<Item = u32>,
        groups: impl IntoIterator<Item = (usize, String)>,
    ) -> Labelled {
        let mut ids: Vec<u32> = msg_ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        let groups: Box<[(usize, String)]> = groups.into_iter().collect();
        let rows = ids.len() + 1;
        Labelled {
            enabled,
            messages: Table::new(rows, Outcome::ALL.len()),
            handler: Table::new(rows, HISTOGRAM_COLS),
            forward: Table::new(groups.len(), HISTOGRAM_COLS),
            sessions: Table::new(1, TRANSPORTS.len()),
            closes: Table::new(1, CLOSE_REASONS.len()),
            directory: Table::new(DIR_OPS.len(), 2),
            msg_ids: ids.into(),
            groups,
        }
    }

    /// Whether anything is recorded.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// The row of a msg_id (a binary search over the routes; unknown ids
    /// share the last row).
    #[inline]
    pub(crate) fn row(&self, msg_id: u32) -> usize {
        self.msg_ids
            .binary_search(&msg_id)
            .unwrap_or(self.msg_ids.len())
    }

    /// Counts a client message's outcome.
    #[inline]
    pub(crate) fn message(&self, msg_id: u32, outcome: Outcome) {
        if !self.enabled {
            return;
        }
        self.messages.add(self.row(msg_id), outcome as usize, 1);
    }

    /// Counts a handler run: its outcome and how long it took (every run
    /// timed; the runtime times a sample, see [`Labelled::handled_sample`]).
    #[cfg(test)]
    pub(crate) fn handled(&self, msg_id: u32, outcome: Outcome, took: Duration) {
        if !self.enabled {
            return;
        }
        let row = self.row(msg_id);
        self.messages.add(row, outcome as usize, 1);
        self.handler.observe(row, took);
    }

    /// Counts a handler run that was timed as a sample (see
    /// [`sample_handler`]): its outcome, and its duration standing for
    /// [`HANDLER_SAMPLE`] runs.
    #[inline]
    pub(crate) fn handled_sample(&self, msg_id: u32, outcome: Outcome, took: Duration) {
        if !self.enabled {
            return;
        }
        let row = self.row(msg_id);
        self.messages.add(row, outcome as usize, 1);
        self.handler.observe_weighted(row, took, HANDLER_SAMPLE);
    }

    /// Records a forwarded message's time from the gate to its final
    /// answer, for the group of routing index `group`: a sample standing
    /// for [`FORWARD_SAMPLE`] forwards (see [`sample_forward`]).
    #[inline]
    pub(crate) fn forward_answered(&self, group: usize, took: Duration) {
        if !self.enabled {
            return;
        }
        if let Some(row) = self.groups.iter().position(|(g, _)| *g == group) {
            self.forward.observe_weighted(row, took, FORWARD_SAMPLE);
        }
    }

    /// A session opened on `transport` (always counted: it is a gauge).
    pub(crate) fn session_opened(&self, transport: Transport) {
        self.sessions.add(0, transport as usize, 1);
    }

    /// A session on `transport` closed, for `reason` (`text_message` and
    /// `protocol_error` are WebSocket's own, see [`Labelled::ws_closed`]).
    pub(crate) fn session_closed(&self, transport: Transport, reason: CloseReason) {
        self.sessions.sub(0, transport as usize, 1);
        self.closes.add(0, close_col(reason), 1);
    }

    /// A WebSocket session closed for a text message (`text == true`) or a
    /// protocol error.
    pub(crate) fn ws_closed(&self, transport: Transport, text: bool) {
        self.sessions.sub(0, transport as usize, 1);
        // The two columns after the session's own reasons.
        let col = CloseReason::ALL.len() + usize::from(!text);
        self.closes.add(0, col, 1);
    }

    /// Counts a directory operation and whether it failed.
    pub(crate) fn directory(&self, op: DirOp, ok: bool) {
        self.directory.add(op as usize, usize::from(!ok), 1);
    }

    /// Sessions open on a transport.
    #[cfg(test)]
    pub(crate) fn sessions(&self, transport: Transport) -> u64 {
        self.sessions.get(0, transport as usize)
    }

    /// Messages of `msg_id` counted with `outcome`.
    #[cfg(test)]
    pub(crate) fn messages(&self, msg_id: u32, outcome: Outcome) -> u64 {
        self.messages.get(self.row(msg_id), outcome as usize)
    }

    /// Appends the labelled families in the Prometheus text format, each
    /// sample labelled `node="<node>"`.
    pub(crate) fn render(&self, node: &str, out: &mut String) {
        use std::fmt::Write;
        let node = super::render::escape(node);
        let label_of = |row: usize| match self.msg_ids.get(row) {
            Some(id) => id.to_string(),
            None => "other".to_string(),
        };

        super::render::header(
            out,
            "zinx_messages_total",
            "counter",
            "Client messages by msg_id and outcome (ok, forwarded, or the error code answered).",
        );
        for row in 0..self.messages.rows() {
            for outcome in Outcome::ALL {
                let v = self.messages.get(row, outcome as usize);
                // ok is always shown for the routes; the rest once seen.
                let always = outcome == Outcome::Ok && row < self.msg_ids.len();
                if v != 0 || always {
                    let _ = writeln!(
                        out,
                        "zinx_messages_total{{node=\"{node}\",msg_id=\"{}\",outcome=\"{}\"}} {v}",
                        label_of(row),
                        outcome.label()
                    );
                }
            }
        }

        super::render::header(
            out,
            "zinx_handler_duration_seconds",
            "histogram",
            "Time a handler took on this node, by msg_id.",
        );
        for row in 0..self.handler.rows() {
            let labels = format!("node=\"{node}\",msg_id=\"{}\"", label_of(row));
            super::render::histogram(
                out,
                "zinx_handler_duration_seconds",
                &labels,
                &self.handler,
                row,
            );
        }

        super::render::header(
            out,
            "zinx_forward_duration_seconds",
            "histogram",
            "Gate: time from forwarding a client message to its answer, by group.",
        );
        for (row, (_, group)) in self.groups.iter().enumerate() {
            let labels = format!("node=\"{node}\",group=\"{}\"", super::render::escape(group));
            super::render::histogram(
                out,
                "zinx_forward_duration_seconds",
                &labels,
                &self.forward,
                row,
            );
        }

        super::render::header(
            out,
            "zinx_sessions",
            "gauge",
            "Client sessions open on this gate, by transport.",
        );
        for (col, transport) in TRANSPORTS.iter().enumerate() {
            let _ = writeln!(
                out,
                "zinx_sessions{{node=\"{node}\",transport=\"{transport}\"}} {}",
                self.sessions.get(0, col) as i64
            );
        }

        super::render::header(
            out,
            "zinx_session_closes_total",
            "counter",
            "Client sessions closed, by reason.",
        );
        for (col, reason) in CLOSE_REASONS.iter().enumerate() {
            let _ = writeln!(
                out,
                "zinx_session_closes_total{{node=\"{node}\",reason=\"{reason}\"}} {}",
                self.closes.get(0, col)
            );
        }

        super::render::header(
            out,
            "zinx_directory_ops_total",
            "counter",
            "User directory operations, by operation and result.",
        );
        for (row, op) in DIR_OPS.iter().enumerate() {
            for (col, result) in ["ok", "error"].iter().enumerate() {
                let _ = writeln!(
                    out,
                    "zinx_directory_ops_total{{node=\"{node}\",op=\"{op}\",result=\"{result}\"}} {}",
                    self.directory.get(row, col)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_msg_ids_share_one_label() {
        let m = Labelled::new(true, [3, 1, 6], [(1, "im".to_string())]);
        m.forward_answered(1, Duration::from_millis(2));
        m.forward_answered(0, Duration::from_millis(2));
        m.message(3, Outcome::Forwarded);
        m.message(77, Outcome::UnknownMsgId);
        m.message(1_000_000, Outcome::UnknownMsgId);
        m.handled(1, Outcome::Ok, Duration::from_micros(80));
        assert_eq!(m.messages(77, Outcome::UnknownMsgId), 2);
        let mut out = String::new();
        m.render("gate-1", &mut out);
        assert!(out.contains(
            "zinx_messages_total{node=\"gate-1\",msg_id=\"other\",outcome=\"unknown_msg_id\"} 2"
        ));
        assert!(
            out.contains(
                "zinx_messages_total{node=\"gate-1\",msg_id=\"3\",outcome=\"forwarded\"} 1"
            )
        );
        assert!(out.contains("zinx_messages_total{node=\"gate-1\",msg_id=\"6\",outcome=\"ok\"} 0"));
        assert!(out.contains(
            "zinx_handler_duration_seconds_bucket{node=\"gate-1\",msg_id=\"1\",le=\"0.0001\"} 1"
        ));
        assert!(!out.contains("msg_id=\"77\""));
        assert!(
            out.contains("zinx_forward_duration_seconds_count{node=\"gate-1\",group=\"im\"} 8")
        );
    }

    #[test]
    fn a_timed_sample_stands_for_its_weight() {
        let m = Labelled::new(true, [1], []);
        m.handled_sample(1, Outcome::Ok, Duration::from_micros(80));
        assert_eq!(m.messages(1, Outcome::Ok), 1);
        let mut out = String::new();
        m.render("gate-1", &mut out);
        let count = format!(
            "zinx_handler_duration_seconds_count{{node=\"gate-1\",msg_id=\"1\"}} {HANDLER_SAMPLE}"
        );
        assert!(out.contains(&count), "{out}");
        let sampled = (0..HANDLER_SAMPLE * 4).filter(|_| sample_handler()).count();
        assert_eq!(sampled, 4);
    }

    #[test]
    fn off_records_nothing() {
        let m = Labelled::new(false, [3], []);
        m.message(3, Outcome::Ok);
        m.handled(3, Outcome::Ok, Duration::from_millis(1));
        assert_eq!(m.messages(3, Outcome::Ok), 0);
    }

    #[test]
    fn sessions_gauge_and_closes() {
        let m = Labelled::new(true, [], []);
        m.session_opened(Transport::Ws);
        m.session_opened(Transport::Ws);
        m.session_opened(Transport::Tcp);
        m.session_closed(Transport::Ws, CloseReason::Idle);
        m.ws_closed(Transport::Ws, true);
        assert_eq!(m.sessions(Transport::Ws), 0);
        assert_eq!(m.sessions(Transport::Tcp), 1);
        let mut out = String::new();
        m.render("g", &mut out);
        assert!(out.contains("zinx_session_closes_total{node=\"g\",reason=\"text_message\"} 1"));
        assert!(out.contains("zinx_sessions{node=\"g\",transport=\"tcp\"} 1"));
        assert_eq!(Outcome::of(&ErrorCode::NoLiveNode), Outcome::NoLiveNode);
        assert_eq!(
            Outcome::of(&ErrorCode::from("something_new")),
            Outcome::Error
        );
        // Every error outcome is its code's, and back.
        for o in Outcome::ALL {
            if !matches!(o, Outcome::Ok | Outcome::Forwarded | Outcome::Error) {
                assert_eq!(Outcome::of(&ErrorCode::parse(o.label())), o);
            }
        }
    }
}
