//! Export of finished spans over OTLP/HTTP with the JSON encoding (the
//! OpenTelemetry protocol every collector accepts on port 4318,
//! `POST /v1/traces`, `Content-Type: application/json`).
//!
//! Spans wait in a bounded queue ([`QUEUE`]); a background task posts them
//! in batches of up to [`BATCH`] at least every second. When the queue is
//! full (collector down or slow) new spans are dropped and counted: tracing
//! never slows or grows a node. Only plain `http://` endpoints are
//! supported (a collector beside the node, or a local agent).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{AttrValue, SpanData, SpanExporter, hex};

/// Spans waiting for export at most.
pub(crate) const QUEUE: usize = 4096;
/// Spans per request at most.
pub(crate) const BATCH: usize = 512;
/// A batch waits at most this long for more spans.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Connecting and posting one batch must take less than this.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an OTLP endpoint cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("otlp_endpoint {endpoint:?}: {why}")]
pub struct OtlpEndpointError {
    /// The configured endpoint.
    pub endpoint: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// An `http://host:port/path` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `host:port`, as given (brackets kept for IPv6).
    pub(crate) authority: String,
    /// The path, `/v1/traces` when none is given.
    pub(crate) path: String,
}

impl Endpoint {
    /// Parses an endpoint URL.
    pub(crate) fn parse(url: &str) -> Result<Endpoint, OtlpEndpointError> {
        let fail = |why| OtlpEndpointError {
            endpoint: url.to_string(),
            why,
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| fail("only http:// endpoints are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/v1/traces"),
        };
        if authority.is_empty() || authority.contains(char::is_whitespace) {
            return Err(fail("no host"));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !authority.ends_with(']')
        {
            authority.to_string()
        } else {
            format!("{authority}:4318")
        };
        Ok(Endpoint {
            authority,
            path: path.to_string(),
        })
    }
}

/// Sends spans to an OTLP/HTTP collector (see the module docs).
#[derive(Debug)]
pub struct OtlpExporter {
    tx: mpsc::Sender<SpanData>,
    /// Spans dropped because the queue was full.
    dropped: AtomicU64,
}

impl OtlpExporter {
    /// Starts exporting to `endpoint` (e.g. `http://127.0.0.1:4318/v1/traces`)
    /// as service `service`; the posting task runs on the current Tokio
    /// runtime until the exporter is dropped.
    pub fn start(endpoint: &str, service: &str) -> Result<Arc<OtlpExporter>, OtlpEndpointError> {
        let endpoint = Endpoint::parse(endpoint)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(post_batches(endpoint, service.to_string(), rx));
        Ok(Arc::new(OtlpExporter {
            tx,
            dropped: AtomicU64::new(0),
        }))
    }

    /// Spans dropped so far because the collector could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl SpanExporter for OtlpExporter {
    fn export(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() && self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            warn!("OTLP export queue full: dropping spans (is the collector up?)");
        }
    }
}

async fn post_batches(endpoint: Endpoint, service: String, mut rx: mpsc::Receiver<SpanData>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let body = to_json(&service, &batch).to_string();
        let n = batch.len();
        batch.clear();
        match tokio::time::timeout(POST_TIMEOUT, post(&endpoint, body.as_bytes())).await {
            Ok(Ok(200..=299)) => debug!(spans = n, "spans exported"),
            Ok(Ok(status)) => warn!(status, spans = n, "OTLP collector refused spans"),
            Ok(Err(e)) => warn!(error = %e, spans = n, "OTLP export failed"),
            Err(_) => warn!(spans = n, "OTLP export timed out"),
        }
    }
}

/// Posts one body; the response status.
async fn post(endpoint: &Endpoint, body: &[u8]) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(&endpoint.authority).await?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        endpoint.path,
        endpoint.authority,
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut status_line = [0u8; 12];
    stream.read_exact(&mut status_line).await?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&status_line[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

/// The OTLP JSON body of a batch (ids as hex, 64-bit integers as strings,
/// as the OTLP JSON mapping says).
pub(crate) fn to_json(service: &str, spans: &[SpanData]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let attributes: Vec<Value> = s
                .attributes
                .iter()
                .map(|(k, v)| {
                    let value = match v {
                        AttrValue::Int(i) => json!({ "intValue": i.to_string() }),
                        AttrValue::Str(t) => json!({ "stringValue": t }),
                    };
                    json!({ "key": k, "value": value })
                })
                .collect();
            let mut span = json!({
                "traceId": hex(&s.context.trace_id),
                "spanId": hex(&s.context.span_id),
                "name": s.name,
                "kind": s.kind as u8,
                "startTimeUnixNano": nanos(s.start),
                "endTimeUnixNano": nanos(s.end),
                "attributes": attributes,
                "flags": u32::from(s.context.flags),
            });
            if let Some(parent) = s.parent_span_id {
                span["parentSpanId"] = json!(hex(&parent));
            }
            span["status"] = match &s.error {
                Some(why) => json!({ "code": 2, "message": why }),
                None => json!({ "code": 1 }),
            };
            span
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": service } }
            ]},
            "scopeSpans": [{
                "scope": { "name": "zinx-cluster", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{SpanKind, Tracer};
    use tokio::net::TcpListener;

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("http://127.0.0.1:4318/v1/traces").unwrap();
        assert_eq!(e.authority, "127.0.0.1:4318");
        assert_eq!(e.path, "/v1/traces");
        let e = Endpoint::parse("http://collector").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("collector:4318", "/v1/traces")
        );
        let e = Endpoint::parse("http://[::1]:9999/x").unwrap();
        assert_eq!(e.authority, "[::1]:9999");
        assert_eq!(
            Endpoint::parse("http://[::1]/").unwrap().authority,
            "[::1]:4318"
        );
        assert!(Endpoint::parse("https://x/").is_err());
        assert!(Endpoint::parse("http:///v1").is_err());
    }

    #[tokio::test]
    async fn spans_reach_a_collector_as_otlp_json() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let exporter = OtlpExporter::start(&url, "zinx-test").unwrap();
        let tracer = Tracer::new("gate-1", exporter.clone(), 1);
        let mut span = tracer.start_root("zinx.message", SpanKind::Server).unwrap();
        span.set("zinx.msg_id", AttrValue::Int(3));
        span.fail("no_live_node");
        let ctx = span.context();
        span.end();

        let (mut conn, _) = listener.accept().await.unwrap();
        let (req, rest) = crate::http::read_request(&mut conn, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("POST", "/v1/traces")
        );
        assert_eq!(req.header("content-type"), Some("application/json"));
        let len: usize = req.header("content-length").unwrap().parse().unwrap();
        let mut body = rest.to_vec();
        while body.len() < len {
            let mut more = vec![0u8; len - body.len()];
            let n = conn.read(&mut more).await.unwrap();
            body.extend_from_slice(&more[..n]);
        }
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        let rs = &v["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0]["value"]["stringValue"],
            "zinx-test"
        );
        let s = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], ctx.trace_id_hex());
        assert_eq!(s["spanId"], ctx.span_id_hex());
        assert_eq!(s["name"], "zinx.message");
        assert_eq!(s["kind"], 2);
        assert_eq!(s["status"]["code"], 2);
        assert!(s.get("parentSpanId").is_none());
        let attrs = s["attributes"].as_array().unwrap();
        assert!(attrs.contains(&json!({"key": "zinx.msg_id", "value": {"intValue": "3"}})));
        assert_eq!(exporter.dropped(), 0);
    }
}
