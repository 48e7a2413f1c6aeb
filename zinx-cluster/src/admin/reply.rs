//! The answers of the admin endpoint: which path gets what, for a served
//! connection and for a busy one.

use bytes::Bytes;

use super::{DRAIN_NOT_SUPPORTED, Endpoint};
use crate::http::Request;

/// An answer to write.
pub(super) struct Reply<'a> {
    /// The HTTP status.
    pub(super) status: u16,
    /// `Content-Type`: `text/plain`, the metrics' own, or a page's.
    pub(super) content_type: &'a str,
    /// `Cache-Control`, `Allow`, `WWW-Authenticate`, `Retry-After`.
    pub(super) headers: Vec<(&'static str, String)>,
    /// What follows the head (unless `head_only`).
    pub(super) body: Bytes,
    /// A `HEAD` request: the body is not sent.
    pub(super) head_only: bool,
}

impl Reply<'_> {
    /// A `text/plain` answer.
    pub(super) fn text(status: u16, body: impl Into<Bytes>) -> Self {
        Reply {
            status,
            content_type: "text/plain",
            headers: vec![("Cache-Control", "no-store".to_string())],
            body: body.into(),
            head_only: false,
        }
    }

    /// With one more header.
    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// Whether `path` is one of the probes, answered without the token and
/// when busy.
fn is_probe(path: &str) -> bool {
    path == "/healthz" || path == "/readyz"
}

/// A probe's answer.
fn probe(endpoint: &Endpoint, path: &str) -> Reply<'static> {
    if path == "/healthz" {
        return Reply::text(200, "ok\n");
    }
    match endpoint.source.readiness() {
        Ok(()) => Reply::text(200, "ready\n"),
        Err(why) => Reply::text(503, format!("not ready: {why}\n")),
    }
}

/// The answer of a busy connection: probes, or 503.
pub(super) fn busy(endpoint: &Endpoint, req: &Request) -> Reply<'static> {
    if is_probe(&req.path) && (req.method == "GET" || req.method == "HEAD") {
        let mut reply = probe(endpoint, &req.path);
        reply.head_only = req.method == "HEAD";
        return reply;
    }
    Reply::text(503, "busy: too many admin connections, try again\n").with("Retry-After", "1")
}

/// The answer of a served connection.
pub(super) fn route<'a>(endpoint: &'a Endpoint, req: &Request) -> Reply<'a> {
    let path = req.path.as_str();
    if !is_probe(path) {
        if let Err(challenge) = endpoint.access.check(req) {
            return Reply::text(
                401,
                "unauthorized: send Authorization: Bearer <admin_token>\n",
            )
            .with("WWW-Authenticate", challenge);
        }
    }
    if path == "/drain" {
        if req.method != "POST" {
            return Reply::text(405, "POST /drain\n").with("Allow", "POST");
        }
        return match endpoint.source.drain() {
            Ok(()) => Reply::text(200, "draining\n"),
            Err(why) if why == DRAIN_NOT_SUPPORTED => Reply::text(501, format!("{why}\n")),
            Err(why) => Reply::text(503, format!("cannot drain: {why}\n")),
        };
    }
    let head_only = req.method == "HEAD";
    if req.method != "GET" && !head_only {
        return Reply::text(405, "only GET and HEAD\n").with("Allow", "GET, HEAD");
    }
    let mut reply = match path {
        "/metrics" => {
            let mut out = String::with_capacity(16 * 1024);
            endpoint.source.render_metrics(&mut out);
            Reply {
                content_type: crate::metrics::render::CONTENT_TYPE,
                ..Reply::text(200, out)
            }
        }
        "/healthz" | "/readyz" => probe(endpoint, path),
        path => match endpoint.pages.iter().find(|p| p.path == path) {
            Some(page) => Reply {
                content_type: &page.content_type,
                ..Reply::text(200, page.body.clone())
            },
            None => Reply::text(404, "not found\n"),
        },
    };
    reply.head_only = head_only;
    reply
}
