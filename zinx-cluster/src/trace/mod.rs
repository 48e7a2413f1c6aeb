//! One trace per client request across nodes, with W3C Trace Context
//! semantics (`traceparent`: a 16-byte trace id, an 8-byte parent span id,
//! the `sampled` flag).
//!
//! With tracing on (`otlp_endpoint` in `settings.json`, or an exporter given
//! to the cluster), a gate starts a trace for a client message, the envelope
//! that forwards it carries the [`TraceContext`] (a 25-byte extension,
//! flagged in the header, absent otherwise), and the backend's span for the
//! handler is a child of the gate's: both share the trace id, which also
//! appears in their log lines. Finished spans go to a [`SpanExporter`]:
//! OTLP/HTTP ([`OtlpExporter`]) or memory ([`InMemoryExporter`], for tests).
//!
//! Off, the cost on the hot path is one branch ([`Tracer::enabled`]).

use std::cell::Cell;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

mod otlp;

pub use otlp::{OtlpEndpointError, OtlpExporter};

/// Checks an `otlp_endpoint` setting (for the configuration check).
pub(crate) fn check_endpoint(url: &str) -> Result<(), OtlpEndpointError> {
    otlp::Endpoint::parse(url).map(|_| ())
}

/// Bytes of a [`TraceContext`] on the wire: trace id, span id, flags.
pub const TRACE_CONTEXT_LEN: usize = 16 + 8 + 1;

/// The W3C `sampled` trace flag.
pub const SAMPLED: u8 = 0x01;

/// A W3C trace context: which trace a message belongs to and which span
/// caused it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace, shared by every span of one request (never all zero).
    pub trace_id: [u8; 16],
    /// The span that sent the message: the parent of the receiver's span
    /// (never all zero).
    pub span_id: [u8; 8],
    /// W3C trace flags ([`SAMPLED`]).
    pub flags: u8,
}

impl TraceContext {
    /// A new root context (random ids, sampled).
    pub fn new_root() -> TraceContext {
        TraceContext {
            trace_id: nonzero(rand::random()),
            span_id: nonzero(rand::random()),
            flags: SAMPLED,
        }
    }

    /// A child context: the same trace, a new span id.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            span_id: nonzero(rand::random()),
            ..*self
        }
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// The `traceparent` header value: `00-<trace id>-<span id>-<flags>`.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id_hex(),
            self.span_id_hex(),
            self.flags
        )
    }

    /// Parses a `traceparent` value (version 00; all-zero ids are invalid,
    /// as the W3C specification says).
    pub fn from_traceparent(s: &str) -> Option<TraceContext> {
        let mut parts = s.trim().split('-');
        let (Some("00"), Some(t), Some(p), Some(f), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let trace_id: [u8; 16] = unhex(t)?;
        let span_id: [u8; 8] = unhex(p)?;
        let [flags] = unhex::<1>(f)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The wire form inside an envelope.
    pub fn to_bytes(&self) -> [u8; TRACE_CONTEXT_LEN] {
        let mut b = [0u8; TRACE_CONTEXT_LEN];
        b[..16].copy_from_slice(&self.trace_id);
        b[16..24].copy_from_slice(&self.span_id);
        b[24] = self.flags;
        b
    }

    /// Reads the wire form; `None` for all-zero ids.
    pub fn from_bytes(b: &[u8; TRACE_CONTEXT_LEN]) -> Option<TraceContext> {
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        trace_id.copy_from_slice(&b[..16]);
        span_id.copy_from_slice(&b[16..24]);
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            flags: b[24],
        })
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceContext({})", self.traceparent())
    }
}

fn nonzero<const N: usize>(mut b: [u8; N]) -> [u8; N] {
    if b == [0; N] {
        b[N - 1] = 1;
    }
    b
}

fn hex(b: &[u8]) -> String {
    use fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N
        || !s
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What a span stands for, as OpenTelemetry's span kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Work inside a node.
    Internal = 1,
    /// Serving a request (a gate's client message).
    Server = 2,
    /// Sending a message on for another node to handle (gate forward).
    Producer = 4,
    /// Handling a message another node sent (backend handler).
    Consumer = 5,
}

/// A value of a span attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// An integer.
    Int(i64),
    /// Text.
    Str(String),
}

/// A finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanData {
    /// This span's context (its `span_id` is the span's id).
    pub context: TraceContext,
    /// The parent span's id, `None` for a root.
    pub parent_span_id: Option<[u8; 8]>,
    /// e.g. `zinx.message`, `zinx.handler`.
    pub name: &'static str,
    /// The kind.
    pub kind: SpanKind,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Attributes (`zinx.msg_id`, `zinx.node`, ..).
    pub attributes: Vec<(&'static str, AttrValue)>,
    /// The error, when the span failed.
    pub error: Option<String>,
}

/// Where finished spans go. `export` must not block: an exporter that
/// cannot keep up drops spans (and says so), it never slows a handler.
pub trait SpanExporter: Send + Sync + 'static {
    /// Takes one finished span.
    fn export(&self, span: SpanData);
}

/// Keeps every span in memory: for tests.
#[derive(Debug, Default)]
pub struct InMemoryExporter {
    /// The spans, in the order they ended.
    spans: Mutex<Vec<SpanData>>,
}

impl InMemoryExporter {
    /// An empty exporter.
    pub fn new() -> Arc<InMemoryExporter> {
        Arc::new(InMemoryExporter::default())
    }

    /// A copy of the spans exported so far.
    pub fn spans(&self) -> Vec<SpanData> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl SpanExporter for InMemoryExporter {
    fn export(&self, span: SpanData) {
        if let Ok(mut s) = self.spans.lock() {
            s.push(span);
        }
    }
}

/// A node's tracer: whether to trace, how often, and where spans go.
#[derive(Clone)]
pub struct Tracer {
    /// `None`: tracing is off.
    inner: Option<Arc<TracerInner>>,
}

struct TracerInner {
    exporter: Arc<dyn SpanExporter>,
    /// Trace one root in this many.
    every: u32,
    /// The node's name, an attribute of every span.
    node: String,
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer")
            .field("enabled", &self.enabled())
            .finish()
    }
}

impl Tracer {
    /// Tracing off.
    pub fn off() -> Tracer {
        Tracer { inner: None }
    }

    /// Tracing on for node `node`: one root in `every` (at least 1) is
    /// traced, spans go to `exporter`.
    pub fn new(node: impl Into<String>, exporter: Arc<dyn SpanExporter>, every: u32) -> Tracer {
        Tracer {
            inner: Some(Arc::new(TracerInner {
                exporter,
                every: every.max(1),
                node: node.into(),
            })),
        }
    }

    /// Whether tracing is on: the only cost on the hot path when it is off.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Starts a root span (a client message on a gate), subject to sampling;
    /// `None` when off or not sampled.
    pub fn start_root(&self, name: &'static str, kind: SpanKind) -> Option<ActiveSpan> {
        let inner = self.inner.as_ref()?;
        if inner.every > 1 {
            thread_local! { static N: Cell<u32> = const { Cell::new(0) }; }
            let n = N.with(|n| {
                let v = n.get().wrapping_add(1);
                n.set(v);
                v
            });
            if n % inner.every != 0 {
                return None;
            }
        }
        Some(ActiveSpan::new(
            inner.clone(),
            TraceContext::new_root(),
            None,
            name,
            kind,
        ))
    }

    /// Starts a child of a context received from another node; `None` when
    /// tracing is off here or the sender did not sample it.
    pub fn start_child(
        &self,
        parent: &TraceContext,
        name: &'static str,
        kind: SpanKind,
    ) -> Option<ActiveSpan> {
        let inner = self.inner.as_ref()?;
        if parent.flags & SAMPLED == 0 {
            return None;
        }
        Some(ActiveSpan::new(
            inner.clone(),
            parent.child(),
            Some(parent.span_id),
            name,
            kind,
        ))
    }
}

/// A span in progress; exported when [`ActiveSpan::end`] is called (or
/// when dropped, as if ended then).
pub struct ActiveSpan {
    inner: Arc<TracerInner>,
    data: Option<SpanData>,
}

impl fmt::Debug for ActiveSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveSpan")
            .field("context", &self.context())
            .finish()
    }
}

impl ActiveSpan {
    fn new(
        inner: Arc<TracerInner>,
        context: TraceContext,
        parent_span_id: Option<[u8; 8]>,
        name: &'static str,
        kind: SpanKind,
    ) -> ActiveSpan {
        let now = SystemTime::now();
        let attributes = vec![("zinx.node", AttrValue::Str(inner.node.clone()))];
        ActiveSpan {
            inner,
            data: Some(SpanData {
                context,
                parent_span_id,
                name,
                kind,
                start: now,
                end: now,
                attributes,
                error: None,
            }),
        }
    }

    /// This span's context: what a message it sends carries.
    pub fn context(&self) -> TraceContext {
        self.data
            .as_ref()
            .map(|d| d.context)
            .unwrap_or_else(TraceContext::new_root)
    }

    /// Adds an attribute.
    pub fn set(&mut self, key: &'static str, value: AttrValue) {
        if let Some(d) = self.data.as_mut() {
            d.attributes.push((key, value));
        }
    }

    /// Marks the span failed.
    pub fn fail(&mut self, why: impl Into<String>) {
        if let Some(d) = self.data.as_mut() {
            d.error = Some(why.into());
        }
    }

    /// Ends the span now and exports it.
    pub fn end(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(mut d) = self.data.take() {
            d.end = SystemTime::now();
            self.inner.exporter.export(d);
        }
    }
}

impl Drop for ActiveSpan {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_like_the_w3c_example() {
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceContext::from_traceparent(s).unwrap();
        assert_eq!(t.traceparent(), s);
        assert_eq!(t.flags, SAMPLED);
        assert_eq!(TraceContext::from_bytes(&t.to_bytes()), Some(t));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "",
        ] {
            assert_eq!(TraceContext::from_traceparent(bad), None, "{bad}");
        }
        assert_eq!(TraceContext::from_bytes(&[0; TRACE_CONTEXT_LEN]), None);
    }

    #[test]
    fn a_child_shares_the_trace_and_names_its_parent() {
        let mem = InMemoryExporter::new();
        let tracer = Tracer::new("gate-1", mem.clone(), 1);
        let mut root = tracer
            .start_root("zinx.message", SpanKind::Producer)
            .unwrap();
        root.set("zinx.msg_id", AttrValue::Int(3));
        let sent = root.context();
        root.end();
        let backend = Tracer::new("im-1", mem.clone(), 1);
        let child = backend
            .start_child(&sent, "zinx.handler", SpanKind::Consumer)
            .unwrap();
        drop(child);
        let spans = mem.spans();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].context.trace_id, spans[1].context.trace_id);
        assert_eq!(spans[1].parent_span_id, Some(spans[0].context.span_id));
        assert_ne!(spans[1].context.span_id, spans[0].context.span_id);
        assert!(
            spans[1]
                .attributes
                .contains(&("zinx.node", AttrValue::Str("im-1".into())))
        );
        // Not sampled upstream: no child.
        let unsampled = TraceContext { flags: 0, ..sent };
        assert!(
            backend
                .start_child(&unsampled, "x", SpanKind::Consumer)
                .is_none()
        );
    }

    #[test]
    fn off_and_sampling() {
        assert!(!Tracer::off().enabled());
        assert!(Tracer::off().start_root("x", SpanKind::Server).is_none());
        let mem = InMemoryExporter::new();
        let tracer = Tracer::new("g", mem.clone(), 4);
        let traced = (0..8)
            .filter_map(|_| tracer.start_root("x", SpanKind::Server))
            .count();
        assert_eq!(traced, 2);
    }
}
