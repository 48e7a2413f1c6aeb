//! The admin endpoint of a node (`AdminPort` in `dinx.json`): a small HTTP
//! server on `AdminIP:AdminPort`. `AdminIP` defaults to `127.0.0.1`
//! whatever the node's `IP`, so a node on `0.0.0.0` does not publish its
//! metrics. The operations guide (`docs/admin.md`) shows it in use.
//!
//! | request | answer |
//! |---|---|
//! | `GET /metrics` | the Prometheus text format |
//! | `GET /healthz` | 200 while the process serves |
//! | `GET /readyz` | 200 when the node serves and every group it forwards to has a live node; 503 with the reason otherwise, and while shutting down (so a load balancer drains it) |
//! | `POST /drain` | asks the node to drain: 200 once it drains, 501 from a node that cannot (every node, until the elastic cluster) |
//! | `GET <page>` | static [`Page`]s an application registered (the demo's chat page) |
//!
//! `HEAD` works wherever `GET` does; another method gets 405 with `Allow`.
//! A malformed request head gets 400. One request per connection; a
//! request body is not read.
//!
//! **Access.** With `admin_token` (or `admin_token_env`) in
//! `settings.json`, every path but `/healthz` and `/readyz` needs
//! `Authorization: Bearer <token>`, else 401 with `WWW-Authenticate:
//! Bearer`. The token is compared in constant time (the SHA-256 digests of
//! the expected and the presented token, compared with `subtle`). Health
//! and readiness stay open: probes carry no secrets.
//!
//! **Nobody can starve it.** A probe (`/healthz`, `/readyz`) is answered as
//! soon as its head arrives, however many connections hold the port:
//!
//! - The accept loop waits for nothing but `accept`: every connection is
//!   accepted at once and handed to its own task. The listener's backlog
//!   is 4,096, not tokio's 128 (a SYN dropped from a full backlog costs
//!   the client a second).
//! - Every connection has 1 s to send a whole request head, else it is
//!   reset (`SO_LINGER` 0: the kernel keeps nothing of it). An answer must
//!   be written within 5 s.
//! - Up to 256 connections at once, at most 16 of them from one source
//!   address, are *served*: any path. A connection beyond either cap is
//!   *busy*: `/healthz` and `/readyz` are answered, anything else gets 503
//!   with `Retry-After: 1`. Health is answered outside the caps; the caps
//!   keep one address, or a crowd, from taking the rest of the endpoint
//!   from everybody else.
//! - At 4,096 sockets (served and busy), a new connection resets the
//!   oldest one still waiting for its head (or is closed itself when every
//!   open socket is being answered): a new probe always gets in, and the
//!   descriptors the port takes from the process (and its client port)
//!   stay bounded.
//!
//! Measured with `bench slowloris` (`docs/bench-admin.sh`: 1,000 slowloris
//! connections reconnecting whenever closed, 200 probes a run, a 2-core
//! machine shared at load 10–12): `/healthz` p50 0.3–0.5 ms, p99
//! 9.5–38 ms over six runs (one probe in 1,200 took 196 ms). Before, 64
//! connections were served and the rest waited in the backlog for 5 s
//! each: no probe was answered within 10 s. A variant that gave busy
//! connections 100 ms instead of 1 s did worse (p99 84–148 ms): the
//! attackers reconnected 5,000–9,000 times a second instead of 1,000.
//! hyper was not used: its header-read timeout bounds one connection, not
//! how many may wait, and the policy above is what keeps the probes
//! answered; the endpoint needs one request per connection and no bodies.
//! Request heads are parsed by `httparse`.
//!
//! The endpoint reaches its node through one narrow interface (metrics,
//! readiness, drain) and nothing else.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::http::{self, HttpError};

mod access;
mod reply;

pub(crate) use access::Access;
use reply::{Reply, busy, route};

/// Connections served at once (any path); more are busy: health and
/// readiness only.
pub(crate) const MAX_SERVED: usize = 256;
/// Of the served connections, at most this many from one source address.
pub(crate) const MAX_PER_ADDRESS: usize = 16;
/// Admin sockets open at most, served and busy; beyond, the oldest one
/// still waiting for its head is reset.
pub(crate) const MAX_OPEN: usize = 4096;
/// A request head must arrive within this long.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(1);
/// An answer must be written within this long.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The bounds of one endpoint: [`Limits::DEFAULT`] on a node, smaller in
/// the unit tests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// [`MAX_SERVED`].
    pub(crate) served: usize,
    /// [`MAX_PER_ADDRESS`].
    pub(crate) per_address: usize,
    /// [`MAX_OPEN`].
    pub(crate) open: usize,
    /// [`HEAD_TIMEOUT`].
    pub(crate) head_timeout: Duration,
}

impl Limits {
    /// The bounds of a node's admin endpoint.
    pub(crate) const DEFAULT: Limits = Limits {
        served: MAX_SERVED,
        per_address: MAX_PER_ADDRESS,
        open: MAX_OPEN,
        head_timeout: HEAD_TIMEOUT,
    };
}
/// The busy warning is logged at most this often.
const BUSY_WARNING_EVERY: Duration = Duration::from_secs(10);

/// What [`AdminSource::drain`] answers by default: the node cannot drain
/// (the endpoint answers 501).
pub(crate) const DRAIN_NOT_SUPPORTED: &str = "this node does not support draining";

/// What the admin endpoint asks of its node.
pub(crate) trait AdminSource: Send + Sync + 'static {
    /// Appends the node's metrics in the Prometheus text format.
    fn render_metrics(&self, out: &mut String);
    /// `Ok` when the node is ready for traffic, else why not.
    fn readiness(&self) -> Result<(), String>;
    /// Starts draining the node (`POST /drain`): `Ok` once it is marked
    /// draining (200), else why not (503). The default answers
    /// [`DRAIN_NOT_SUPPORTED`] (501).
    fn drain(&self) -> Result<(), String> {
        Err(DRAIN_NOT_SUPPORTED.to_string())
    }
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

/// Everything the connections of one endpoint share.
struct Endpoint {
    /// The node.
    source: Arc<dyn AdminSource>,
    /// Static pages.
    pages: Arc<[Page]>,
    /// Who may use the protected paths.
    access: Access,
    /// Where it listens, for the log.
    addr: Option<SocketAddr>,
    /// Its bounds.
    limits: Limits,
    /// Served connections, in total and by source address.
    served: Mutex<Served>,
    /// Admin sockets open (served and busy), against [`Limits::open`].
    open: AtomicUsize,
    /// Connections still waiting for their head, oldest first: the one
    /// to reset when [`Limits::open`] are open. An entry dies when its
    /// connection has its head (or ends); dead entries are skipped and
    /// swept.
    headless: Mutex<VecDeque<Weak<CancellationToken>>>,
    /// Busy connections since the endpoint started (for the warning).
    busy_total: AtomicU64,
    /// When the busy warning was last logged, and `busy_total` then.
    warned: Mutex<Option<(Instant, u64)>>,
}

/// The served connections (see [`MAX_SERVED`]).
#[derive(Default)]
struct Served {
    /// How many, in total.
    total: usize,
    /// How many from each source address (addresses with none are
    /// removed, so the map gives its memory back).
    by_addr: HashMap<IpAddr, usize>,
}

/// A served connection's place, given back on drop.
struct ServedSlot {
    /// Whose counts to decrement.
    endpoint: Arc<Endpoint>,
    /// Its source address.
    ip: IpAddr,
}

impl Drop for ServedSlot {
    fn drop(&mut self) {
        let mut served = self
            .endpoint
            .served
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        served.total -= 1;
        if let Some(n) = served.by_addr.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                served.by_addr.remove(&self.ip);
            }
        }
    }
}

/// An open admin socket, counted against [`Limits::open`] until dropped.
struct OpenSocket(Arc<Endpoint>);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Endpoint {
    /// Registers a connection waiting for its head; cancelling the token
    /// resets it.
    fn wait_for_head(&self) -> Arc<CancellationToken> {
        let evict = Arc::new(CancellationToken::new());
        let mut headless = self.headless.lock().unwrap_or_else(|e| e.into_inner());
        if headless.len() >= 2 * self.limits.open {
            headless.retain(|w| w.strong_count() > 0);
        }
        headless.push_back(Arc::downgrade(&evict));
        evict
    }

    /// Resets the oldest connection still waiting for its head, to make
    /// room; `false` when there is none (every open socket is being
    /// answered).
    fn evict_oldest(&self) -> bool {
        let mut headless = self.headless.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(w) = headless.pop_front() {
            if let Some(evict) = w.upgrade() {
                evict.cancel();
                return true;
            }
        }
        false
    }

    /// A served slot for a connection from `ip`, or `None` when it is
    /// busy (a cap is reached).
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ServedSlot> {
        let mut served = self.served.lock().unwrap_or_else(|e| e.into_inner());
        if served.total >= self.limits.served {
            return None;
        }
        let from_ip = served.by_addr.entry(ip).or_insert(0);
        if *from_ip >= self.limits.per_address {
            if *from_ip == 0 {
                served.by_addr.remove(&ip);
            }
            return None;
        }
        *from_ip += 1;
        served.total += 1;
        Some(ServedSlot {
            endpoint: self.clone(),
            ip,
        })
    }

    /// Counts a busy connection; logs now and then that the endpoint is
    /// busy.
    fn note_busy(&self, peer: SocketAddr) {
        let total = self.busy_total.fetch_add(1, Ordering::Relaxed) + 1;
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        let since = match *warned {
            Some((at, _)) if at.elapsed() < BUSY_WARNING_EVERY => return,
            Some((_, then)) => total - then,
            None => total,
        };
        *warned = Some((Instant::now(), total));
        drop(warned);
        let addr = self.addr.map(|a| a.to_string()).unwrap_or_default();
        warn!(
            "admin endpoint {addr} is busy: {since} connection(s) found {} served already, or \
             {} from their address (the latest from {}); they get /healthz and /readyz only, \
             503 otherwise (reported every {}s at most)",
            self.limits.served,
            self.limits.per_address,
            peer.ip(),
            BUSY_WARNING_EVERY.as_secs()
        );
    }
}

/// Binds the admin endpoint's listener on `addr` (`AdminIP:AdminPort`)
/// with an accept backlog of [`MAX_OPEN`] (the kernel caps it at
/// `net.core.somaxconn`). tokio's `TcpListener::bind` asks for 128: a
/// burst of connects beyond that is dropped by the kernel, and a probe
/// whose SYN is dropped retries only a second later.
pub(crate) fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let addr: SocketAddr = addr.parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} is not an IP address and port"),
        )
    })?;
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As tokio's bind does: a restarted node rebinds at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(MAX_OPEN as u32)
}

/// Serves the admin endpoint on `listener` until `stop` is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    source: Arc<dyn AdminSource>,
    pages: Arc<[Page]>,
    access: Access,
    stop: CancellationToken,
) {
    serve_with(listener, source, pages, access, Limits::DEFAULT, stop).await;
}

/// [`serve`] within `limits`.
pub(crate) async fn serve_with(
    listener: TcpListener,
    source: Arc<dyn AdminSource>,
    pages: Arc<[Page]>,
    access: Access,
    limits: Limits,
    stop: CancellationToken,
) {
    let addr = listener.local_addr().ok();
    if let (Some(addr), Access::Open) = (addr, &access) {
        if !addr.ip().is_loopback() {
            warn!(
                "admin endpoint on {addr} without admin_token: anybody who reaches it reads \
                 /metrics; set admin_token (or admin_token_env) in settings.json"
            );
        }
    }
    let endpoint = Arc::new(Endpoint {
        source,
        pages,
        access,
        addr,
        limits,
        served: Mutex::new(Served::default()),
        open: AtomicUsize::new(0),
        headless: Mutex::new(VecDeque::new()),
        busy_total: AtomicU64::new(0),
        warned: Mutex::new(None),
    });
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, most likely: let some close.
                warn!(error = %e, "admin endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        // Only this loop adds to `open`: the check and the add agree.
        if endpoint.open.load(Ordering::Relaxed) >= limits.open && !endpoint.evict_oldest() {
            endpoint.note_busy(peer);
            reset(&stream);
            continue;
        }
        endpoint.open.fetch_add(1, Ordering::Relaxed);
        let open = OpenSocket(endpoint.clone());
        let evict = endpoint.wait_for_head();
        // Decided here, in accept order, not in the task.
        let slot = endpoint.admit(peer.ip());
        if slot.is_none() {
            endpoint.note_busy(peer);
        }
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &endpoint, slot.is_some(), evict).await {
                debug!(%peer, error = %e, "admin request failed");
            }
            drop(slot);
            drop(open);
        });
    }
}

/// Closes `stream` with a reset: nothing of it stays in the kernel.
fn reset(stream: &TcpStream) {
    if let Err(e) = stream.set_zero_linger() {
        debug!(error = %e, "admin endpoint: abortive close not set");
    }
}

/// Reads one request and answers it; `served` tells a served connection
/// from a busy one. Cancelling `evict` before the head is read resets the
/// connection.
async fn connection(
    mut stream: TcpStream,
    endpoint: &Endpoint,
    served: bool,
    evict: Arc<CancellationToken>,
) -> Result<(), HttpError> {
    let read = tokio::select! {
        r = http::read_request(&mut stream, endpoint.limits.head_timeout) => r,
        _ = evict.cancelled() => {
            reset(&stream);
            return Err(HttpError::Evicted);
        }
    };
    // No longer the oldest waiting for a head, whatever happens next.
    drop(evict);
    let reply = match read {
        Ok((req, _)) if served => route(endpoint, &req),
        Ok((req, _)) => busy(endpoint, &req),
        Err(e @ (HttpError::Malformed(_) | HttpError::TooLarge)) => {
            Reply::text(400, format!("{e}\n"))
        }
        Err(e) => {
            if matches!(e, HttpError::Timeout(_)) {
                reset(&stream);
            }
            return Err(e);
        }
    };
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(n, v)| (*n, v.as_str()))
        .collect();
    let body = if reply.head_only {
        &b""[..]
    } else {
        &reply.body[..]
    };
    let write = http::respond(
        &mut stream,
        reply.status,
        reply.content_type,
        &headers,
        body,
    );
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(r) => Ok(r?),
        Err(_) => {
            reset(&stream);
            Err(HttpError::Timeout(WRITE_TIMEOUT))
        }
    }
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
        let server = tokio::spawn(serve(
            listener,
            fake.clone(),
            pages,
            Access::Open,
            stop.clone(),
        ));

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

    #[tokio::test]
    async fn at_the_socket_cap_a_new_probe_resets_the_oldest_silent_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Arc::new(Fake(Mutex::new(Ok(()))));
        let limits = Limits {
            served: 2,
            per_address: 2,
            open: 4,
            // Long: only the cap closes anything here.
            head_timeout: Duration::from_secs(60),
        };
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve_with(
            listener,
            fake,
            Arc::from(Vec::new()),
            Access::Open,
            limits,
            stop.clone(),
        ));
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(TcpStream::connect(addr).await.unwrap());
        }
        // Accepted in order: the probe comes fifth, at the cap.
        let r = get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("ok\n"), "{r}");
        let mut byte = [0u8; 1];
        let oldest = tokio::time::timeout(Duration::from_secs(5), held[0].read(&mut byte))
            .await
            .expect("the oldest connection is closed");
        assert!(matches!(oldest, Ok(0) | Err(_)), "{oldest:?}");
        for s in &held[1..] {
            assert!(
                matches!(s.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
                "a newer connection was closed"
            );
        }
        // At the cap again: the next probe resets the next oldest.
        held.push(TcpStream::connect(addr).await.unwrap());
        let r = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        let next = tokio::time::timeout(Duration::from_secs(5), held[1].read(&mut byte))
            .await
            .expect("the next oldest connection is closed");
        assert!(matches!(next, Ok(0) | Err(_)), "{next:?}");
        stop.cancel();
        server.await.unwrap();
    }
}
