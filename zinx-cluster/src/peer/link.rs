//! Running links: the acceptor of a backend's port, one dial loop per
//! peer this node dials (single-flight, capped exponential backoff), and
//! the reader and writer of an authenticated link with its heartbeats.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Framed, FramedRead};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::handshake::{hello_as_acceptor, hello_as_dialer};
use super::local::Dialed;
use super::{LinkEvents, Links, Peer};
use crate::envelope::{Envelope, Kind};
use crate::frame::{Frame, FrameCodec, WRITE_BATCH};

/// How long the hello may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// Accepts links on a backend's address until the node stops.
pub(super) async fn accept_links<E: LinkEvents>(
    links: Arc<Links>,
    events: Arc<E>,
    listener: TcpListener,
) {
    let stop = links.stopping.clone();
    crate::net::accept_loop(
        listener,
        &stop,
        "link",
        Duration::from_millis(50),
        |stream, addr| {
            let links = links.clone();
            let events = events.clone();
            links.tasks.clone().spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, hello_as_acceptor(&links, stream))
                    .await
                {
                    Ok(Ok((peer, framed))) => run_link(links, events, peer, framed).await,
                    Ok(Err(reason)) => {
                        links.metrics.link_auth_failures.add(1);
                        warn!(%addr, %reason, "link refused");
                    }
                    Err(_) => {
                        links.metrics.link_auth_failures.add(1);
                        warn!(%addr, "link refused: no hello within {HANDSHAKE_TIMEOUT:?}");
                    }
                }
            });
        },
    )
    .await;
}

/// Keeps a link to `peer` up until the node closes: dial, hello, run,
/// and on failure retry after a capped exponential backoff.
pub(super) async fn dial_loop<E: LinkEvents>(links: Arc<Links>, events: Arc<E>, peer: Arc<Peer>) {
    let min = Duration::from_millis(links.settings.reconnect_min_ms.max(1));
    let max = Duration::from_millis(links.settings.reconnect_max_ms.max(1));
    let closed = links.closed.clone();
    let mut backoff = min;
    let mut failures = 0u32;
    while !closed.is_cancelled() {
        // A peer served by this process is linked without a socket.
        match super::local::dial(&links, &events, &peer).await {
            Dialed::Ran => {
                backoff = min;
                failures = 0;
            }
            Dialed::NotYet => {}
            Dialed::Refused(reason) => {
                failures += 1;
                if failures == 1 {
                    warn!(peer = %peer.name, %reason, "in-process link refused; retrying with backoff");
                }
            }
            Dialed::NotHere => {
                if !dial_tcp(&links, &events, &peer, &mut failures).await {
                    break;
                }
                if failures == 0 {
                    backoff = min;
                }
            }
        }
        tokio::select! {
            _ = closed.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(max);
    }
}

/// Dials `peer` over TCP and runs the link until it ends; `failures` is
/// reset by a link that came up, counted up by one that did not. False
/// when the node closed meanwhile.
async fn dial_tcp<E: LinkEvents>(
    links: &Arc<Links>,
    events: &Arc<E>,
    peer: &Arc<Peer>,
    failures: &mut u32,
) -> bool {
    let attempt = async {
        let stream = TcpStream::connect(&peer.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", peer.addr))?;
        let _ = stream.set_nodelay(true);
        hello_as_dialer(links, peer, stream).await
    };
    let result = tokio::select! {
        _ = links.closed.cancelled() => return false,
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt) => r,
    };
    match result {
        Ok(Ok(framed)) => {
            *failures = 0;
            run_link(links.clone(), events.clone(), peer.clone(), framed).await;
        }
        Ok(Err(reason)) => {
            *failures += 1;
            if *failures == 1 {
                warn!(peer = %peer.name, %reason, "link down; retrying with backoff");
            } else {
                debug!(peer = %peer.name, %reason, failures = *failures, "link still down");
            }
        }
        Err(_) => {
            *failures += 1;
            if *failures == 1 {
                warn!(peer = %peer.name, "dial timed out; retrying with backoff");
            }
        }
    }
    true
}

/// Runs an authenticated link until it fails, goes silent past the
/// heartbeat timeout, is replaced, or the node closes.
async fn run_link<E: LinkEvents>(
    links: Arc<Links>,
    events: Arc<E>,
    peer: Arc<Peer>,
    framed: Framed<TcpStream, FrameCodec>,
) {
    let span = info_span!("peer", peer = %peer.name, id = peer.id, group = %peer.group);
    let parts = framed.into_parts();
    let (rd, wr) = parts.io.into_split();
    let mut reader = FramedRead::new(rd, parts.codec);
    *reader.read_buffer_mut() = parts.read_buf;
    let (tx, rx) = mpsc::channel(links.settings.link_queue.max(1));
    let cancel = links.closed.child_token();
    let heartbeat = Duration::from_millis(links.settings.heartbeat_interval_ms.max(1));
    let dead_after = Duration::from_millis(links.settings.heartbeat_timeout_ms.max(1));
    links
        .tasks
        .spawn(write_link(wr, rx, heartbeat, cancel.clone()).instrument(span.clone()));
    let generation = links.install_link(&peer, tx, &cancel, false);
    info!(parent: &span, addr = %peer.addr, "link up");
    let mut codec = parts.codec;
    let mut batch = Vec::new();
    let reason = loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => break "closed".to_string(),
            n = tokio::time::timeout(dead_after, reader.next()) => n,
        };
        match next {
            Err(_) => break format!("silent for {dead_after:?}: declared dead"),
            Ok(None) => break "closed by peer".to_string(),
            Ok(Some(Err(e))) => break format!("read failed: {e}"),
            Ok(Some(Ok(frame))) => {
                // This envelope and the whole ones the same read brought
                // are handed over together: the node does once per batch
                // what it would otherwise do per envelope (waking the
                // tasks that write them on).
                let mut failed = take(frame, &mut batch).err();
                while failed.is_none() && batch.len() < LINK_BATCH {
                    match codec.decode(reader.read_buffer_mut()) {
                        Ok(Some(frame)) => failed = take(frame, &mut batch).err(),
                        Ok(None) => break,
                        Err(e) => failed = Some(format!("read failed: {e}")),
                    }
                }
                events.on_envelopes(peer.id, &mut batch);
                if let Some(reason) = failed {
                    break reason;
                }
            }
        }
    };
    cancel.cancel();
    links.link_ended(&events, &peer, generation, &reason, &span);
}

/// Writes queued envelopes, gathering many into one write, and a
/// heartbeat whenever the link has been quiet for `heartbeat`.
async fn write_link(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Envelope>,
    heartbeat: Duration,
    cancel: CancellationToken,
) {
    let mut buf = BytesMut::with_capacity(WRITE_BATCH);
    loop {
        let next = tokio::select! {
            biased;
            n = tokio::time::timeout(heartbeat, rx.recv()) => n,
            _ = cancel.cancelled() => break,
        };
        match next {
            Err(_) => encode(&Envelope::new(Kind::Heartbeat), &mut buf),
            Ok(None) => break,
            Ok(Some(env)) => {
                encode(&env, &mut buf);
                drain(&mut rx, &mut buf);
                if buf.len() < WRITE_BATCH {
                    // Woken by the first envelope of a burst, this task
                    // would write it alone: the tasks that produce the
                    // rest (other sessions' reads, handlers) are queued
                    // behind it. Yielding once lets them run first, so one
                    // `send` carries the burst (forwarded echo, 10 clients
                    // x 1 in flight: 2.85 -> 1.84 sends and 24 -> 16 us of
                    // CPU per message). A quiet link pays one extra poll.
                    tokio::task::yield_now().await;
                    drain(&mut rx, &mut buf);
                }
            }
        }
        let written = tokio::select! {
            w = wr.write_all(&buf) => w,
            _ = cancel.cancelled() => break,
        };
        if written.is_err() {
            cancel.cancel();
            return;
        }
        buf.clear();
        if buf.capacity() > 4 * WRITE_BATCH {
            buf = BytesMut::with_capacity(WRITE_BATCH);
        }
    }
    // Closing: what was already queued (answers of finished handlers during
    // a graceful shutdown) still goes out, within a bound.
    while let Ok(env) = rx.try_recv() {
        encode(&env, &mut buf);
    }
    if !buf.is_empty() {
        let _ = tokio::time::timeout(Duration::from_secs(1), wr.write_all(&buf)).await;
    }
    let _ = wr.shutdown().await;
}

/// Envelopes handed to the node in one batch at most.
const LINK_BATCH: usize = 256;

/// Decodes a link frame's envelope into `batch`.
fn take(frame: Frame, batch: &mut Vec<Envelope>) -> Result<(), String> {
    match Envelope::decode(frame) {
        Ok(env) => {
            batch.push(env);
            Ok(())
        }
        Err(e) => Err(format!("malformed envelope: {e}")),
    }
}

fn drain(rx: &mut mpsc::Receiver<Envelope>, buf: &mut BytesMut) {
    while buf.len() < WRITE_BATCH {
        match rx.try_recv() {
            Ok(env) => encode(&env, buf),
            Err(_) => break,
        }
    }
}

fn encode(env: &Envelope, buf: &mut BytesMut) {
    if let Err(e) = env.encode_into(buf) {
        // Only a uid over 64 KiB can fail, and uids are checked at bind.
        warn!(error = %e, kind = ?env.kind, "envelope dropped: cannot encode");
    }
}
