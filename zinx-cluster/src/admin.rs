//! The admin endpoint of a node (`AdminPort` in `dinx.json`): a small HTTP
//! server on the node's `IP`.
//!
//! | path | answer |
//! |---|---|
//! | `GET /metrics` | the Prometheus text format |
//! | `GET /healthz` | 200 while the process serves |
//! | `GET /readyz` | 200 when the node serves and every group it forwards to has a live node; 503 with the reason otherwise, and while shutting down (so a load balancer drains it) |
//! | `GET <page>` | static pages an application registered (the demo's chat page) |
//!
//! It never calls into the node beyond the `AdminSource` it is given.
//! Requests are bounded like a client's: an 8 KiB head read within 5 s, at
//! most `MAX_CONNECTIONS` served at once (more wait in the kernel's
//! backlog), one request per connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::http;

/// Admin requests served at once.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// A request head must arrive within this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin endpoint asks of its node.
pub(crate) trait AdminSource: Send + Sync + 'static {
    /// Appends the node's metrics in the Prometheus text format.
    fn render_metrics(&self, out: &mut String);
    /// `Ok` when the node is ready for traffic, else why not.
    fn readiness(&self) -> Result<(), String>;
}

/// A static file served on the admin port.
#[derive(Debug, Clone)]
pub struct Page {
    /// The path, e.g. `/chat/` or `/chat/chat.js`.
    pub path: String,
    /// Its `Content-Type`, e.g. `text/html; charset=utf-8`.
    pub content_type: String,
    /// The file's bytes.
    pub body: Bytes,
}

impl Page {
    /// A page at `path` with a content type and body.
    pub fn new(
        path: impl Into<String>,
        content_type: impl Into<String>,
        body: impl Into<Bytes>,
    ) -> Page {
        Page {
            path: path.into(),
            content_type: content_type.into(),
            body: body.into(),
        }
    }
}

/// Serves the admin endpoint on `listener` until `stop` is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    source: Arc<dyn AdminSource>,
    pages: Arc<[Page]>,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "admin endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let source = source.clone();
        let pages = pages.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &*source, &pages).await {
                debug!(%addr, error = %e, "admin request failed");
            }
            drop(permit);
        });
    }
}

/// Reads one request and answers it.
async fn answer(
    mut stream: TcpStream,
    source: &dyn AdminSource,
    pages: &[Page],
) -> Result<(), http::HttpError> {
    let (req, _) = match http::read_request(&mut stream, REQUEST_TIMEOUT).await {
        Ok(r) => r,
        Err(e @ (http::HttpError::Malformed(_) | http::HttpError::TooLarge)) => {
            http::respond(
                &mut stream,
                400,
                "text/plain",
                &[],
                e.to_string().as_bytes(),
            )
            .await?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let head_only = req.method == "HEAD";
    if req.method != "GET" && !head_only {
        let body = b"only GET and HEAD\n";
        http::respond(
            &mut stream,
            405,
            "text/plain",
            &[("Allow", "GET, HEAD")],
            body,
        )
        .await?;
        return Ok(());
    }
    let (status, content_type, body): (u16, &str, Bytes) = match req.path.as_str() {
        "/metrics" => {
            let mut out = String::with_capacity(16 * 1024);
            source.render_metrics(&mut out);
            (200, crate::metrics::render::CONTENT_TYPE, out.into())
        }
        "/healthz" => (200, "text/plain", Bytes::from_static(b"ok\n")),
        "/readyz" => match source.readiness() {
            Ok(()) => (200, "text/plain", Bytes::from_static(b"ready\n")),
            Err(why) => (503, "text/plain", format!("not ready: {why}\n").into()),
        },
        path => match pages.iter().find(|p| p.path == path) {
            Some(page) => (200, page.content_type.as_str(), page.body.clone()),
            None => (404, "text/plain", Bytes::from_static(b"not found\n")),
        },
    };
    let body = if head_only { &b""[..] } else { &body[..] };
    http::respond(
        &mut stream,
        status,
        content_type,
        &[("Cache-Control", "no-store")],
        body,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Fake(Mutex<Result<(), String>>);

    impl AdminSource for Fake {
        fn render_metrics(&self, out: &mut String) {
            out.push_str("zinx_frames_in_total{node=\"g\"} 3\n");
        }
        fn readiness(&self) -> Result<(), String> {
            self.0.lock().unwrap().clone()
        }
    }

    async fn get(addr: std::net::SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn health_readiness_metrics_and_pages() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Arc::new(Fake(Mutex::new(Ok(()))));
        let pages: Arc<[Page]> = vec![Page::new("/chat/", "text/html", "<p>hi</p>")].into();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, fake.clone(), pages, stop.clone()));

        let r = get(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\nok\n"),
            "{r}"
        );
        let r = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        *fake.0.lock().unwrap() = Err("no live node in group \"im\"".into());
        let r = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(
            r.ends_with("not ready: no live node in group \"im\"\n"),
            "{r}"
        );
        let r = get(addr, "GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(r.contains("Content-Type: text/plain; version=0.0.4"), "{r}");
        assert!(r.ends_with("zinx_frames_in_total{node=\"g\"} 3\n"), "{r}");
        let r = get(addr, "GET /chat/?x=1 HTTP/1.1\r\n\r\n").await;
        assert!(
            r.contains("Content-Type: text/html") && r.ends_with("<p>hi</p>"),
            "{r}"
        );
        let r = get(addr, "HEAD /chat/ HTTP/1.1\r\n\r\n").await;
        assert!(
            r.contains("Content-Length: 0") && r.ends_with("\r\n\r\n"),
            "{r}"
        );
        let r = get(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
        let r = get(addr, "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
        let r = get(addr, "garbage\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 400"), "{r}");

        stop.cancel();
        server.await.unwrap();
    }
}
