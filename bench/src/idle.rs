//! `bench idle`: what an idle session costs the server.
//!
//! Opens many sessions over TCP, WebSocket, TLS or WSS. Each sends one echo
//! and reads its answer (so the server has handled a whole message on every
//! session, as it has for a real client), then stays silent. The resident
//! memory of the server process is read before and after (from
//! `/proc/PID/status`), and so is this process's own, to show what the
//! clients cost here. At the end every session is checked still open and a
//! sample of them echoes again.
//!
//! A client session here keeps its socket and nothing else of its own:
//! the WebSocket upgrade and every echo use buffers that are dropped as soon
//! as they are done (a TLS session keeps rustls' connection state, which
//! cannot be let go without closing it). So 10,000 WSS sessions fit in this
//! process beside the server it measures.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{BufMut, BytesMut};
use futures::{FutureExt, StreamExt, stream};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Decoder;
use zinx_cluster::wire::{FrameCodec, HEADER_LEN};

use zinx_test_support::rss::RssReader;

use crate::load::TlsPlan;
use crate::load::ws::WsWire;
use crate::sys::Connector;

/// Sessions opened at once.
const CONNECT_CONCURRENCY: usize = 256;

/// How long one session may take to connect, shake hands, upgrade and get
/// its first echo back.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an echo of the final sample may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Read buffer of an echo (and its growth step): an echo reply is a few
/// dozen bytes.
const ECHO_BUF: usize = 256;

/// How the sessions speak to the server: TCP unless told otherwise.
#[derive(Debug, Clone, Default)]
pub(crate) struct Transport {
    /// Speak WebSocket, upgrading on this path (one zinx frame per binary
    /// message, masked, as a browser sends them).
    pub(crate) ws: Option<String>,
    /// Speak TLS (WSS with `ws`).
    pub(crate) tls: Option<TlsPlan>,
}

impl Transport {
    /// Plain zinx frames on TCP.
    pub(crate) fn tcp() -> Transport {
        Transport::default()
    }

    /// WebSocket on `path`.
    pub(crate) fn ws(path: &str) -> Transport {
        Transport {
            ws: Some(path.to_string()),
            tls: None,
        }
    }

    /// `TCP`, `WebSocket`, `TLS` or `WSS`.
    pub(crate) fn name(&self) -> &'static str {
        match (&self.ws, &self.tls) {
            (None, None) => "TCP",
            (Some(_), None) => "WebSocket",
            (None, Some(_)) => "TLS",
            (Some(_), Some(_)) => "WSS",
        }
    }

    /// The command-line flags that select this transport (empty for TCP),
    /// each with a leading space.
    pub(crate) fn flags(&self) -> String {
        let mut s = String::new();
        if let Some(path) = &self.ws {
            s.push_str(&format!(" --ws {path}"));
        }
        if let Some(tls) = &self.tls {
            s.push_str(&format!(
                " --tls {} --server-name {}",
                tls.ca.display(),
                tls.server_name
            ));
        }
        s
    }

    /// The URL of the WebSocket upgrade to `addr`, with `ws`.
    fn url(&self, addr: SocketAddr) -> Option<String> {
        let path = self.ws.as_ref()?;
        Some(match &self.tls {
            // The Host header carries the name the certificate was checked
            // for, as a browser's would.
            Some(tls) => format!("wss://{}:{}{path}", tls.server_name, addr.port()),
            None => format!("ws://{addr}{path}"),
        })
    }
}

/// What `bench idle` does.
#[derive(Debug, Clone)]
pub(crate) struct IdlePlan {
    /// Server address.
    pub(crate) addr: SocketAddr,
    /// Sessions to open.
    pub(crate) conns: usize,
    /// Process whose RSS is measured (the server), if any.
    pub(crate) pid: Option<u32>,
    /// Wait after the last connection before reading the RSS again.
    pub(crate) settle: Duration,
    /// Sessions to check with an echo at the end.
    pub(crate) sample: usize,
    /// msg_id of the echoes (5 is the gate-local echo of the demo).
    pub(crate) echo_msg_id: u32,
    /// First loopback source address (see [`Connector`]).
    pub(crate) source_base: Ipv4Addr,
    /// TCP, WebSocket, TLS or WSS.
    pub(crate) transport: Transport,
    /// Show a progress bar.
    pub(crate) progress: bool,
}

impl IdlePlan {
    /// The equivalent command line.
    pub(crate) fn command(&self) -> String {
        let pid = self.pid.map(|p| format!(" --pid {p}")).unwrap_or_default();
        format!(
            "bench idle --addr {} --conns {}{pid} --settle {} --sample {} --echo-msg-id {} --source-base {}{}",
            self.addr,
            self.conns,
            self.settle.as_secs_f64(),
            self.sample,
            self.echo_msg_id,
            self.source_base,
            self.transport.flags()
        )
    }
}

/// What `bench idle` found.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct IdleReport {
    /// Server address.
    pub(crate) addr: String,
    /// `TCP`, `WebSocket`, `TLS` or `WSS`.
    pub(crate) transport: String,
    /// Sessions asked for.
    pub(crate) requested: usize,
    /// Sessions attempted: fewer than asked when the open-file limit of
    /// this process is lower.
    pub(crate) attempted: usize,
    /// Sessions opened (connected, set up, and their first echo answered).
    pub(crate) connected: usize,
    /// Sessions that failed to open: the connect, the TLS handshake, the
    /// WebSocket upgrade or the first echo.
    pub(crate) connect_failures: usize,
    /// Seconds spent opening the sessions.
    pub(crate) connect_s: f64,
    /// The measured process.
    pub(crate) pid: Option<u32>,
    /// Its RSS before connecting, KiB.
    pub(crate) rss_before_kib: Option<u64>,
    /// Its RSS with every session open, after settling, KiB.
    pub(crate) rss_after_kib: Option<u64>,
    /// `(after - before) / connected`, bytes.
    pub(crate) bytes_per_session: Option<f64>,
    /// The same for this process (the clients), bytes: what one client
    /// session costs here.
    pub(crate) client_bytes_per_session: Option<f64>,
    /// Sessions the server had closed by the end.
    pub(crate) closed: usize,
    /// Sessions the server sent something to while they were idle (their
    /// stream is not clean to echo on).
    pub(crate) unexpected: usize,
    /// Sampled sessions that answered the echo.
    pub(crate) sample_ok: usize,
    /// Sampled sessions that did not.
    pub(crate) sample_failed: usize,
    /// The first failure seen, for diagnosis.
    pub(crate) first_problem: Option<String>,
    /// Why fewer sessions were attempted than asked, if they were.
    pub(crate) note: Option<String>,
}

impl IdleReport {
    /// Every session opened, stayed open and quiet, and answered.
    pub(crate) fn clean(&self) -> bool {
        self.connect_failures == 0
            && self.closed == 0
            && self.unexpected == 0
            && self.sample_failed == 0
    }

    /// A short human summary.
    pub(crate) fn human(&self) -> String {
        let mut s = format!(
            "{} of {} {} sessions open to {}, one echo each (opened in {:.1} s, {} failures{})",
            self.connected,
            self.attempted,
            self.transport,
            self.addr,
            self.connect_s,
            self.connect_failures,
            if self.attempted < self.requested {
                format!("; {} requested, capped by RLIMIT_NOFILE", self.requested)
            } else {
                String::new()
            }
        );
        if let (Some(pid), Some(b), Some(a)) = (self.pid, self.rss_before_kib, self.rss_after_kib) {
            s.push_str(&format!(
                "\nRSS of pid {pid}: {b} KiB before, {a} KiB after = {:.0} bytes per session",
                self.bytes_per_session.unwrap_or(0.0)
            ));
        }
        if let Some(c) = self.client_bytes_per_session {
            s.push_str(&format!(
                "\nclient side (this process): {c:.0} bytes per session"
            ));
        }
        s.push_str(&format!(
            "\nclosed by the server: {}; sent something while idle: {}; echo sample: {} ok, {} failed",
            self.closed, self.unexpected, self.sample_ok, self.sample_failed
        ));
        if let Some(p) = &self.first_problem {
            s.push_str(&format!("\nfirst problem: {p}"));
        }
        s
    }
}

/// One session's stream: TCP, or TLS over TCP. A WebSocket session is one
/// of these after its upgrade; its framing is applied per echo.
enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS; boxed, as rustls' state is large next to a socket.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Sets up `transport` on a connected socket: the TLS handshake, the
/// WebSocket upgrade. What tungstenite allocated for the upgrade is
/// dropped with it (the server says nothing before our first message, so
/// it holds no byte of the stream).
async fn set_up(tcp: TcpStream, addr: SocketAddr, transport: &Transport) -> Result<Stream> {
    let mut stream = match &transport.tls {
        Some(tls) => Stream::Tls(Box::new(crate::load::handshake(tls, tcp).await?)),
        None => Stream::Tcp(tcp),
    };
    if let Some(url) = transport.url(addr) {
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(ECHO_BUF)
            .write_buffer_size(0);
        tokio_tungstenite::client_async_with_config(url.as_str(), &mut stream, Some(config))
            .await
            .with_context(|| format!("WebSocket upgrade at {url}"))?;
    }
    Ok(stream)
}

/// Sends `data` on `msg_id` (one masked binary message when `ws`) and
/// checks that the reply is the same msg_id and bytes and that nothing
/// else came with it.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    ws: bool,
    msg_id: u32,
    data: &[u8],
    seed: u64,
) -> Result<()> {
    let len = u32::try_from(data.len()).context("echo payload over 4 GiB")?;
    let mut out = BytesMut::with_capacity(HEADER_LEN + data.len());
    out.put_u32(msg_id);
    out.put_u32(len);
    out.extend_from_slice(data);
    let mut rbuf = BytesMut::with_capacity(ECHO_BUF);
    let mut codec = FrameCodec::default();
    let reply = if ws {
        let mut wire = WsWire::with_chunk(&mut *io, seed, ECHO_BUF);
        wire.write(&mut out).await.context("sending")?;
        let reply = loop {
            if let Some(frame) = codec.decode(&mut rbuf).context("undecodable reply")? {
                break frame;
            }
            if wire.read(&mut rbuf).await.context("receiving")? == 0 {
                bail!("connection closed by the server");
            }
        };
        if !wire.is_drained() {
            bail!("the server sent more than the echo's reply (or a close)");
        }
        reply
    } else {
        io.write_all(&out).await.context("sending")?;
        io.flush().await.context("sending")?;
        loop {
            if let Some(frame) = codec.decode(&mut rbuf).context("undecodable reply")? {
                break frame;
            }
            if rbuf.capacity() == rbuf.len() {
                rbuf.reserve(ECHO_BUF);
            }
            if io.read_buf(&mut rbuf).await.context("receiving")? == 0 {
                bail!("connection closed by the server");
            }
        }
    };
    if !rbuf.is_empty() {
        bail!("the server sent more than the echo's reply");
    }
    if reply.msg_id == 0 {
        bail!(
            "error reply to msg_id {msg_id}: {}",
            String::from_utf8_lossy(&reply.data)
        );
    }
    if reply.msg_id != msg_id || reply.data != data {
        bail!(
            "echo on msg_id {msg_id} came back as msg_id {} with {} bytes (sent {})",
            reply.msg_id,
            reply.data.len(),
            data.len()
        );
    }
    Ok(())
}

/// Opens session `index`: connect, set up the transport, one echo.
async fn open(connector: &Connector, index: usize, plan: &IdlePlan) -> Result<Stream> {
    let tcp = connector
        .connect(index)
        .await
        .context("connect failed (server out of file descriptors, or at its session limit?)")?;
    let mut stream = set_up(tcp, plan.addr, &plan.transport).await?;
    let payload = format!("idle-{index}");
    echo(
        &mut stream,
        plan.transport.ws.is_some(),
        plan.echo_msg_id,
        payload.as_bytes(),
        index as u64,
    )
    .await
    .context("first echo")?;
    Ok(stream)
}

/// Connects to `addr` over `transport` and checks an echo on each of
/// `msg_ids`, within `timeout` in all: a readiness probe for a server
/// that speaks only TLS or WebSocket.
pub(crate) async fn probe(
    addr: SocketAddr,
    transport: &Transport,
    msg_ids: &[u32],
    timeout: Duration,
) -> Result<()> {
    let exchange = async {
        let tcp = Connector::plain(addr).connect(0).await?;
        let mut stream = set_up(tcp, addr, transport).await?;
        for (i, &id) in msg_ids.iter().enumerate() {
            let data = format!("probe-{id}");
            echo(
                &mut stream,
                transport.ws.is_some(),
                id,
                data.as_bytes(),
                i as u64,
            )
            .await
            .with_context(|| format!("echo on msg_id {id}"))?;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .with_context(|| {
            format!(
                "no {} echo from {addr} within {timeout:?}",
                transport.name()
            )
        })?
        .with_context(|| format!("{} probe of {addr}", transport.name()))
}

/// What an idle session looks like from this side, without waiting.
#[derive(Debug, PartialEq, Eq)]
enum Liveness {
    /// Nothing to read: open and quiet.
    Open,
    /// End of stream, an error, or a WebSocket close frame.
    Closed,
    /// The server sent something nobody asked for.
    Data,
}

/// Reads whatever has arrived on `stream` without waiting (no coop budget
/// either: thousands of sessions are checked in one go, and a budget
/// running out would read as "nothing arrived").
fn liveness(stream: &mut Stream, ws: bool) -> Liveness {
    let mut buf = [0u8; 64];
    match tokio::task::unconstrained(stream.read(&mut buf)).now_or_never() {
        None => Liveness::Open,
        Some(Ok(0)) | Some(Err(_)) => Liveness::Closed,
        Some(Ok(_)) if ws && buf[0] & 0x0F == 0x8 => Liveness::Closed,
        Some(Ok(_)) => Liveness::Data,
    }
}

/// `(after - before) / sessions` in bytes, for KiB readings.
fn per_session(before: Option<u64>, after: Option<u64>, sessions: usize) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if sessions > 0 => {
            Some((a as f64 - b as f64) * 1024.0 / sessions as f64)
        }
        _ => None,
    }
}

/// Opens the sessions, measures, checks, then closes them all.
pub(crate) async fn run(plan: &IdlePlan) -> Result<IdleReport> {
    if plan.conns == 0 {
        bail!("--conns must be at least 1");
    }
    let limit = crate::sys::raise_nofile(plan.conns as u64 + crate::sys::NOFILE_RESERVE)
        .context("raising RLIMIT_NOFILE")?;
    let fit = crate::sys::sessions_within(limit);
    let conns = plan.conns.min(fit);
    let mut first_problem = None;
    let mut note = None;
    if conns < plan.conns {
        let msg = format!(
            "opening {conns} sessions, not {}: RLIMIT_NOFILE of this process is {} (hard {})",
            plan.conns, limit.soft, limit.hard
        );
        eprintln!("warning: {msg}");
        note = Some(msg);
    }
    let mut rss = plan.pid.map(RssReader::open).transpose()?;
    // This process's own figure is a by-product: left out where unreadable.
    let mut own_rss = RssReader::open(std::process::id()).ok();
    let rss_before = rss.as_mut().map(RssReader::kib).transpose()?;
    let own_before = own_rss.as_mut().and_then(|r| r.kib().ok());

    let bar = ProgressBar::new(conns as u64);
    if let Ok(style) = ProgressStyle::with_template("{spinner} opening {wide_bar} {pos}/{len}") {
        bar.set_style(style);
    }
    if !plan.progress || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }

    let connector = Connector::new(plan.addr, plan.source_base);
    let started = Instant::now();
    let results: Vec<Result<Stream>> = stream::iter(0..conns)
        .map(|i| {
            let connector = &connector;
            let bar = &bar;
            async move {
                let r = tokio::time::timeout(OPEN_TIMEOUT, open(connector, i, plan))
                    .await
                    .unwrap_or_else(|_| bail!("not open within {OPEN_TIMEOUT:?}"));
                bar.inc(1);
                r.with_context(|| format!("session {i}"))
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let connect_s = started.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let mut streams = Vec::with_capacity(conns);
    let mut connect_failures = 0;
    for r in results {
        match r {
            Ok(s) => streams.push(s),
            Err(e) => {
                connect_failures += 1;
                first_problem.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    streams.shrink_to_fit();

    tokio::time::sleep(plan.settle).await;
    let rss_after = rss.as_mut().map(RssReader::kib).transpose()?;
    let own_after = own_rss.as_mut().and_then(|r| r.kib().ok());

    let ws = plan.transport.ws.is_some();
    let (mut closed, mut unexpected) = (0, 0);
    let mut alive = Vec::with_capacity(streams.len());
    for (i, s) in streams.iter_mut().enumerate() {
        match liveness(s, ws) {
            Liveness::Open => alive.push(i),
            Liveness::Closed => closed += 1,
            Liveness::Data => unexpected += 1,
        }
    }
    if closed > 0 {
        first_problem.get_or_insert_with(|| format!("{closed} sessions were closed by the server"));
    }
    if unexpected > 0 {
        first_problem.get_or_insert_with(|| {
            format!("the server sent something to {unexpected} idle sessions")
        });
    }

    let (mut sample_ok, mut sample_failed) = (0, 0);
    let picks = plan.sample.min(alive.len());
    for k in 0..picks {
        let idx = alive[k * alive.len() / picks];
        let payload = format!("idle-check-{idx}");
        let check = echo(
            &mut streams[idx],
            ws,
            plan.echo_msg_id,
            payload.as_bytes(),
            !(idx as u64),
        );
        let outcome = tokio::time::timeout(CHECK_TIMEOUT, check)
            .await
            .unwrap_or_else(|_| bail!("no reply within {CHECK_TIMEOUT:?}"));
        match outcome {
            Ok(()) => sample_ok += 1,
            Err(e) => {
                sample_failed += 1;
                first_problem.get_or_insert_with(|| format!("session {idx}: {e:#}"));
            }
        }
    }
    let connected = streams.len();
    drop(streams);

    Ok(IdleReport {
        addr: plan.addr.to_string(),
        transport: plan.transport.name().to_string(),
        requested: plan.conns,
        attempted: conns,
        connected,
        connect_failures,
        connect_s,
        pid: plan.pid,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        bytes_per_session: per_session(rss_before, rss_after, connected),
        client_bytes_per_session: per_session(own_before, own_after, connected),
        closed,
        unexpected,
        sample_ok,
        sample_failed,
        first_problem,
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use zinx_cluster::prelude::*;
    use zinx_test_support::cluster::TestCluster;

    /// The demo gate's local echo, on a real gate in this process.
    #[handler(msg_id = 5, group = "gate")]
    async fn gate_echo(_ctx: &mut Ctx, data: Bytes) -> Bytes {
        data
    }

    const ROUTE: &str = r#"{"gate": [{"MsgID": 5, "Name": "echo"}]}"#;

    /// A gate alone: zinx frames on `tcp`, WebSocket on `ws` (path `/`);
    /// TLS and WSS instead with `tls` (a certificate made now, in `_dir`).
    struct Gate {
        cluster: TestCluster,
        tcp: SocketAddr,
        ws: SocketAddr,
        tls: Option<TlsPlan>,
        _dir: tempfile::TempDir,
    }

    impl Gate {
        /// `settings`: more settings.json members, each with a leading comma.
        async fn start(tls: bool, settings: &str) -> Gate {
            let dir = tempfile::tempdir().unwrap();
            let ports = zinx_test_support::free_ports(2).unwrap();
            let dinx = format!(
                r#"{{"gate": [{{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1",
                    "Port": {}, "WsPort": {}, "WsPath": "/"}}]}}"#,
                ports[0], ports[1]
            );
            let mut settings = format!(r#"{{"secret": "bench-idle-test"{settings}"#);
            let mut plan = None;
            if tls {
                let files = crate::cert::write_self_signed(dir.path()).unwrap();
                settings.push_str(&format!(
                    r#", "tls_cert": {:?}, "tls_key": {:?}"#,
                    files.cert.display().to_string(),
                    files.key.display().to_string()
                ));
                plan = Some(TlsPlan {
                    trust: zinx_cluster_client::ClientTls::trusting_pem_file(&files.cert).unwrap(),
                    ca: files.cert,
                    server_name: "localhost".into(),
                });
            }
            settings.push('}');
            let cluster = TestCluster::launch(dinx, ROUTE, settings, &[1]).await;
            Gate {
                cluster,
                tcp: SocketAddr::from(([127, 0, 0, 1], ports[0])),
                ws: SocketAddr::from(([127, 0, 0, 1], ports[1])),
                tls: plan,
                _dir: dir,
            }
        }

        /// The plain gate's TCP and WebSocket, or the TLS gate's TLS and
        /// WSS: (address, transport).
        fn transports(&self) -> [(SocketAddr, Transport); 2] {
            [
                (
                    self.tcp,
                    Transport {
                        ws: None,
                        tls: self.tls.clone(),
                    },
                ),
                (
                    self.ws,
                    Transport {
                        ws: Some("/".into()),
                        tls: self.tls.clone(),
                    },
                ),
            ]
        }
    }

    fn plan(addr: SocketAddr, transport: Transport, conns: usize) -> IdlePlan {
        IdlePlan {
            addr,
            conns,
            pid: None,
            settle: Duration::from_millis(100),
            sample: 10,
            echo_msg_id: 5,
            source_base: Ipv4Addr::new(127, 0, 0, 2),
            transport,
            progress: false,
        }
    }

    #[tokio::test]
    async fn every_transport_opens_echoes_and_stays_open() {
        for tls in [false, true] {
            let gate = Gate::start(tls, "").await;
            for (addr, transport) in gate.transports() {
                let name = transport.name();
                let p = plan(addr, transport, 100);
                let r = run(&p).await.unwrap();
                assert!(r.clean(), "{name}: {}", r.human());
                assert_eq!((r.connected, r.sample_ok), (100, 10), "{name}");
                assert_eq!(r.transport, name);
                assert!(r.human().contains(&format!("100 of 100 {name} sessions")));
            }
            gate.cluster.shutdown().await;
        }
    }

    #[tokio::test]
    async fn sessions_the_server_closes_are_counted_on_every_transport() {
        for tls in [false, true] {
            // The gate closes a session silent for 200 ms; the check comes
            // a second after that.
            let gate = Gate::start(tls, r#", "idle_timeout_ms": 200"#).await;
            for (addr, transport) in gate.transports() {
                let name = transport.name();
                let mut p = plan(addr, transport, 20);
                p.settle = Duration::from_millis(1200);
                let r = run(&p).await.unwrap();
                assert!(!r.clean(), "{name}: {}", r.human());
                assert_eq!((r.connected, r.closed), (20, 20), "{name}: {}", r.human());
                assert_eq!((r.unexpected, r.sample_ok, r.sample_failed), (0, 0, 0));
                assert!(r.first_problem.unwrap().contains("closed by the server"));
            }
            gate.cluster.shutdown().await;
        }
    }

    #[tokio::test]
    async fn a_certificate_for_another_name_opens_no_session() {
        let gate = Gate::start(true, "").await;
        let [(addr, mut transport), _] = gate.transports();
        if let Some(tls) = transport.tls.as_mut() {
            tls.server_name = "other.example".into();
        }
        let r = run(&plan(addr, transport, 5)).await.unwrap();
        assert_eq!((r.connected, r.connect_failures), (0, 5), "{}", r.human());
        let problem = r.first_problem.unwrap();
        assert!(problem.contains("TLS handshake"), "{problem}");
        gate.cluster.shutdown().await;
    }

    #[tokio::test]
    async fn probes_speak_the_transport_of_the_port() {
        let gate = Gate::start(true, "").await;
        for (addr, transport) in gate.transports() {
            probe(addr, &transport, &[5], Duration::from_secs(5))
                .await
                .unwrap();
        }
        // Plain frames on the TLS port get no echo (the gate hangs up).
        let e = probe(gate.tcp, &Transport::tcp(), &[5], Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(format!("{e:#}").contains("TCP probe"), "{e:#}");
        gate.cluster.shutdown().await;
    }

    #[test]
    fn the_command_line_names_the_transport() {
        let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let p = plan(addr, Transport::tcp(), 10);
        assert!(
            p.command().ends_with("--source-base 127.0.0.2"),
            "{}",
            p.command()
        );
        assert_eq!(p.transport.name(), "TCP");
        assert_eq!(p.transport.url(addr), None);
        let ws = Transport::ws("/game");
        assert_eq!(
            (ws.name(), ws.flags().as_str()),
            ("WebSocket", " --ws /game")
        );
        assert_eq!(ws.url(addr).as_deref(), Some("ws://127.0.0.1:9000/game"));
        let dir = tempfile::tempdir().unwrap();
        let files = crate::cert::write_self_signed(dir.path()).unwrap();
        let tls = TlsPlan {
            trust: zinx_cluster_client::ClientTls::trusting_pem_file(&files.cert).unwrap(),
            ca: std::path::PathBuf::from("conf-tls/gate.pem"),
            server_name: "localhost".into(),
        };
        let wss = Transport {
            ws: Some("/".into()),
            tls: Some(tls),
        };
        assert_eq!(wss.name(), "WSS");
        assert_eq!(
            plan(addr, wss.clone(), 10)
                .command()
                .split_once(" --ws")
                .unwrap()
                .1,
            " / --tls conf-tls/gate.pem --server-name localhost"
        );
        // The Host of the upgrade is the name the certificate is checked for.
        assert_eq!(wss.url(addr).as_deref(), Some("wss://localhost:9000/"));
    }
}
