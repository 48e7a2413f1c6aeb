//! Links to other nodes: the authenticated hello, single-flight dialing with
//! capped exponential backoff, heartbeats, and the reader/writer of a link.
//!
//! Every pair of nodes shares at most one link. Gates dial every backend
//! (gates have no internal port); between backends the lower id dials the
//! higher. Each peer this node dials has exactly one dial task, so two dials
//! to one peer never race, and nobody else ever waits for a dial: a sender
//! finds the link up or gets an error at once.
//!
//! A link starts with a challenge from the acceptor, a hello from the dialer
//! proving knowledge of the cluster secret (HMAC-SHA256 over the
//! acceptor's nonce and both node ids), and the acceptor's own proof. A peer
//! that fails is dropped and logged; nothing it sent reaches a handler.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, FramedRead};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::NodeType;
use crate::envelope::{ENVELOPE_HEADER_LEN, Envelope, Kind, LINK_PROTOCOL_VERSION};
use crate::frame::{Frame, FrameCodec};
use crate::node::Node;

/// How long the hello may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// A link writer gathers up to this many bytes into one write.
const WRITE_BATCH: usize = 64 * 1024;
const NONCE_LEN: usize = 16;
const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Why a message could not be put on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkError {
    /// No link is up.
    Down,
    /// The link's queue is full.
    Full,
}

/// A live link: the sending side of its writer and its identity.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    /// Envelopes to write; bounded by `link_queue`.
    tx: mpsc::Sender<Envelope>,
    /// Distinguishes this link from earlier ones to the same peer, so a
    /// stale link's close never removes the live one.
    generation: u64,
    /// Cancelled to close the link.
    cancel: CancellationToken,
}

/// Another node as this node sees it.
#[derive(Debug)]
pub(crate) struct Peer {
    /// Its node id.
    pub(crate) id: u16,
    /// Its name, for logs.
    pub(crate) name: String,
    /// Its group.
    pub(crate) group: String,
    /// Where to dial it.
    pub(crate) addr: String,
    /// Gate or backend.
    pub(crate) node_type: NodeType,
    /// True when this node dials it; false when it dials us.
    pub(crate) we_dial: bool,
    /// The current link, if up. Never held across an await.
    link: RwLock<Option<Link>>,
    /// The peer announced that it is shutting down: it gets no new work
    /// until a new link comes up, though its link still carries answers.
    stopping: AtomicBool,
    /// Source of link generations.
    generations: AtomicU64,
}

impl Peer {
    pub(crate) fn new(
        id: u16,
        name: String,
        group: String,
        addr: String,
        node_type: NodeType,
        we_dial: bool,
    ) -> Self {
        Peer {
            id,
            name,
            group,
            addr,
            node_type,
            we_dial,
            link: RwLock::new(None),
            stopping: AtomicBool::new(false),
            generations: AtomicU64::new(1),
        }
    }

    /// Whether a link is up and the peer takes new work.
    pub(crate) fn is_live(&self) -> bool {
        !self.stopping.load(Ordering::Relaxed)
            && self.link.read().map(|l| l.is_some()).unwrap_or(false)
    }

    /// The peer is shutting down: choose it for nothing new.
    pub(crate) fn mark_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Queues an envelope on the link without waiting.
    pub(crate) fn send(&self, env: Envelope) -> Result<(), LinkError> {
        let guard = self.link.read().map_err(|_| LinkError::Down)?;
        let link = guard.as_ref().ok_or(LinkError::Down)?;
        link.tx.try_send(env).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => LinkError::Full,
            mpsc::error::TrySendError::Closed(_) => LinkError::Down,
        })
    }

    fn install(&self, link: Link) {
        let old = match self.link.write() {
            Ok(mut l) => {
                // A new link is a peer (re)started: it takes work again.
                self.stopping.store(false, Ordering::Relaxed);
                l.replace(link)
            }
            Err(_) => None,
        };
        if let Some(old) = old {
            old.cancel.cancel();
        }
    }

    /// Removes the link if it is still generation `generation`.
    fn remove(&self, generation: u64) -> bool {
        match self.link.write() {
            Ok(mut l) if l.as_ref().is_some_and(|x| x.generation == generation) => {
                *l = None;
                true
            }
            _ => false,
        }
    }

    /// Closes the current link, if any (shutdown).
    pub(crate) fn close(&self) {
        if let Ok(l) = self.link.read() {
            if let Some(link) = l.as_ref() {
                link.cancel.cancel();
            }
        }
    }
}

fn proof(secret: &[u8], label: &[u8], nonce: &[u8], a: u16, b: u16) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed first), so this
    // never fails; `KeyInit::new_from_slice` just has a fallible signature.
    let mut mac = <HmacSha256 as hmac::digest::KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()));
    mac.update(label);
    mac.update(nonce);
    mac.update(&a.to_be_bytes());
    mac.update(&b.to_be_bytes());
    mac
}

fn nonce() -> [u8; NONCE_LEN] {
    rand::random()
}

fn link_codec(node: &Node) -> FrameCodec {
    // A forwarded client frame plus the envelope header and a uid.
    FrameCodec::new(node.settings.max_frame_len + ENVELOPE_HEADER_LEN + usize::from(u16::MAX))
}

async fn next_envelope(framed: &mut Framed<TcpStream, FrameCodec>) -> Result<Envelope, String> {
    let frame = framed
        .next()
        .await
        .ok_or_else(|| "closed during the hello".to_string())?
        .map_err(|e| e.to_string())?;
    Envelope::decode(frame).map_err(|e| e.to_string())
}

async fn send_envelope(
    framed: &mut Framed<TcpStream, FrameCodec>,
    env: Envelope,
) -> Result<(), String> {
    let mut buf = BytesMut::new();
    env.encode_into(&mut buf).map_err(|e| e.to_string())?;
    let mut data = buf.freeze();
    data.advance(crate::frame::HEADER_LEN);
    framed
        .send(Frame::new(env.msg_id, data))
        .await
        .map_err(|e| e.to_string())
}

/// Dialer side of the hello. Returns the framed stream once both sides are
/// proven.
async fn hello_as_dialer(
    node: &Node,
    peer: &Peer,
    stream: TcpStream,
) -> Result<Framed<TcpStream, FrameCodec>, String> {
    let mut framed = Framed::new(stream, link_codec(node));
    let challenge = next_envelope(&mut framed).await?;
    if challenge.kind != Kind::Challenge {
        return Err(format!("expected a challenge, got {:?}", challenge.kind));
    }
    let mut p = challenge.payload.clone();
    if p.len() < 2 + NONCE_LEN {
        return Err("short challenge".into());
    }
    let version = p.get_u16();
    if version != LINK_PROTOCOL_VERSION {
        return Err(format!(
            "peer speaks link protocol {version}, we speak {LINK_PROTOCOL_VERSION}"
        ));
    }
    if challenge.node != peer.id {
        return Err(format!(
            "{} answered as node {}, expected node {}",
            peer.addr, challenge.node, peer.id
        ));
    }
    let their_nonce = p.split_to(NONCE_LEN);
    let my_nonce = nonce();
    let mac = proof(&node.secret, b"zinx-hello", &their_nonce, node.id, peer.id)
        .finalize()
        .into_bytes();
    let mut payload = BytesMut::with_capacity(2 + NONCE_LEN + MAC_LEN);
    payload.put_u16(LINK_PROTOCOL_VERSION);
    payload.extend_from_slice(&my_nonce);
    payload.extend_from_slice(&mac);
    let mut hello = Envelope::new(Kind::Hello);
    hello.node = node.id;
    hello.payload = payload.freeze();
    send_envelope(&mut framed, hello).await?;
    let ack = next_envelope(&mut framed).await?;
    if ack.kind != Kind::HelloAck {
        return Err(format!("hello refused by node {}", peer.id));
    }
    proof(&node.secret, b"zinx-ack", &my_nonce, peer.id, node.id)
        .verify_slice(&ack.payload)
        .map_err(|_| {
            node.metrics
                .link_auth_failures
                .fetch_add(1, Ordering::Relaxed);
            format!("node {} failed to prove the cluster secret", peer.id)
        })?;
    Ok(framed)
}

/// Acceptor side of the hello. Returns the proven peer and the stream.
async fn hello_as_acceptor(
    node: &Node,
    stream: TcpStream,
) -> Result<(Arc<Peer>, Framed<TcpStream, FrameCodec>), String> {
    let mut framed = Framed::new(stream, link_codec(node));
    let my_nonce = nonce();
    let mut payload = BytesMut::with_capacity(2 + NONCE_LEN);
    payload.put_u16(LINK_PROTOCOL_VERSION);
    payload.extend_from_slice(&my_nonce);
    let mut challenge = Envelope::new(Kind::Challenge);
    challenge.node = node.id;
    challenge.payload = payload.freeze();
    send_envelope(&mut framed, challenge).await?;
    let hello = next_envelope(&mut framed).await?;
    if hello.kind != Kind::Hello {
        return Err(format!("expected a hello, got {:?}", hello.kind));
    }
    let mut p = hello.payload.clone();
    if p.len() != 2 + NONCE_LEN + MAC_LEN {
        return Err("malformed hello".into());
    }
    let version = p.get_u16();
    if version != LINK_PROTOCOL_VERSION {
        return Err(format!(
            "peer speaks link protocol {version}, we speak {LINK_PROTOCOL_VERSION}"
        ));
    }
    let their_nonce = p.split_to(NONCE_LEN);
    let their_mac = p;
    proof(&node.secret, b"zinx-hello", &my_nonce, hello.node, node.id)
        .verify_slice(&their_mac)
        .map_err(|_| {
            format!(
                "node {} failed to prove the cluster secret (wrong secret?)",
                hello.node
            )
        })?;
    let peer = node
        .peers
        .get(&hello.node)
        .filter(|p| !p.we_dial)
        .cloned()
        .ok_or_else(|| {
            format!(
                "node {} is not expected to dial node {}",
                hello.node, node.id
            )
        })?;
    let ack_mac = proof(&node.secret, b"zinx-ack", &their_nonce, node.id, peer.id)
        .finalize()
        .into_bytes();
    let mut ack = Envelope::new(Kind::HelloAck);
    ack.node = node.id;
    ack.payload = Bytes::copy_from_slice(&ack_mac);
    send_envelope(&mut framed, ack).await?;
    Ok((peer, framed))
}

/// Accepts links on a backend's address until the node stops.
pub(crate) async fn accept_links(node: Arc<Node>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = node.stopping.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "accepting a link failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let node = node.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, hello_as_acceptor(&node, stream)).await {
                Ok(Ok((peer, framed))) => run_link(node, peer, framed).await,
                Ok(Err(reason)) => {
                    node.metrics
                        .link_auth_failures
                        .fetch_add(1, Ordering::Relaxed);
                    warn!(%addr, %reason, "link refused");
                }
                Err(_) => {
                    node.metrics
                        .link_auth_failures
                        .fetch_add(1, Ordering::Relaxed);
                    warn!(%addr, "link refused: no hello within {HANDSHAKE_TIMEOUT:?}");
                }
            }
        });
    }
}

/// Keeps a link to `peer` up until the node closes: dial, hello, run,
/// and on failure retry after a capped exponential backoff.
pub(crate) async fn dial_loop(node: Arc<Node>, peer: Arc<Peer>) {
    let min = Duration::from_millis(node.settings.reconnect_min_ms.max(1));
    let max = Duration::from_millis(node.settings.reconnect_max_ms.max(1));
    let mut backoff = min;
    let mut failures = 0u32;
    while !node.closed.is_cancelled() {
        let attempt = async {
            let stream = TcpStream::connect(&peer.addr)
                .await
                .map_err(|e| format!("connect {}: {e}", peer.addr))?;
            let _ = stream.set_nodelay(true);
            hello_as_dialer(&node, &peer, stream).await
        };
        let result = tokio::select! {
            _ = node.closed.cancelled() => break,
            r = tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt) => r,
        };
        match result {
            Ok(Ok(framed)) => {
                backoff = min;
                failures = 0;
                run_link(node.clone(), peer.clone(), framed).await;
            }
            Ok(Err(reason)) => {
                failures += 1;
                if failures == 1 {
                    warn!(peer = %peer.name, %reason, "link down; retrying with backoff");
                } else {
                    debug!(peer = %peer.name, %reason, failures, "link still down");
                }
            }
            Err(_) => {
                failures += 1;
                if failures == 1 {
                    warn!(peer = %peer.name, "dial timed out; retrying with backoff");
                }
            }
        }
        tokio::select! {
            _ = node.closed.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(max);
    }
}

/// Runs an authenticated link until it fails, goes silent past the
/// heartbeat timeout, is replaced, or the node closes.
async fn run_link(node: Arc<Node>, peer: Arc<Peer>, framed: Framed<TcpStream, FrameCodec>) {
    let generation = peer.generations.fetch_add(1, Ordering::Relaxed);
    let span = info_span!("peer", peer = %peer.name, id = peer.id, group = %peer.group);
    let parts = framed.into_parts();
    let (rd, wr) = parts.io.into_split();
    let mut reader = FramedRead::new(rd, parts.codec);
    *reader.read_buffer_mut() = parts.read_buf;
    let (tx, rx) = mpsc::channel(node.settings.link_queue.max(1));
    let cancel = node.closed.child_token();
    let heartbeat = Duration::from_millis(node.settings.heartbeat_interval_ms.max(1));
    let dead_after = Duration::from_millis(node.settings.heartbeat_timeout_ms.max(1));
    tokio::spawn(write_link(wr, rx, heartbeat, cancel.clone()).instrument(span.clone()));
    peer.install(Link {
        tx,
        generation,
        cancel: cancel.clone(),
    });
    node.metrics.links_up.fetch_add(1, Ordering::Relaxed);
    info!(parent: &span, addr = %peer.addr, "link up");
    let reason = loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => break "closed".to_string(),
            n = tokio::time::timeout(dead_after, reader.next()) => n,
        };
        match next {
            Err(_) => break format!("silent for {dead_after:?}: declared dead"),
            Ok(None) => break "closed by peer".to_string(),
            Ok(Some(Err(e))) => break format!("read failed: {e}"),
            Ok(Some(Ok(frame))) => match Envelope::decode(frame) {
                Ok(env) => node.on_envelope(peer.id, env),
                Err(e) => break format!("malformed envelope: {e}"),
            },
        }
    };
    cancel.cancel();
    if peer.remove(generation) {
        node.metrics.links_down.fetch_add(1, Ordering::Relaxed);
        if node.closed.is_cancelled() {
            debug!(parent: &span, %reason, "link closed");
        } else {
            warn!(parent: &span, %reason, "link down");
        }
        node.on_link_down(&peer);
    }
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
                while buf.len() < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(env) => encode(&env, &mut buf),
                        Err(_) => break,
                    }
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

fn encode(env: &Envelope, buf: &mut BytesMut) {
    if let Err(e) = env.encode_into(buf) {
        // Only a uid over 64 KiB can fail, and uids are checked at bind.
        warn!(error = %e, kind = ?env.kind, "envelope dropped: cannot encode");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_depend_on_secret_nonce_and_ids() {
        let n = [7u8; NONCE_LEN];
        let a = proof(b"s1", b"zinx-hello", &n, 1, 2)
            .finalize()
            .into_bytes();
        assert!(
            proof(b"s1", b"zinx-hello", &n, 1, 2)
                .verify_slice(&a)
                .is_ok()
        );
        assert!(
            proof(b"s2", b"zinx-hello", &n, 1, 2)
                .verify_slice(&a)
                .is_err()
        );
        assert!(
            proof(b"s1", b"zinx-hello", &n, 2, 1)
                .verify_slice(&a)
                .is_err()
        );
        assert!(
            proof(b"s1", b"zinx-ack", &n, 1, 2)
                .verify_slice(&a)
                .is_err()
        );
        let m = [8u8; NONCE_LEN];
        assert!(
            proof(b"s1", b"zinx-hello", &m, 1, 2)
                .verify_slice(&a)
                .is_err()
        );
    }
}
