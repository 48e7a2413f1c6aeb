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

mod handshake;
mod link;
mod local;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::envelope::{ENVELOPE_HEADER_LEN, Envelope};
use crate::frame::FrameCodec;
use crate::metrics::Metrics;
use crate::settings::Settings;

pub(crate) use handshake::{LinkKey, MAC_LEN};
pub(crate) use local::{LocalSlot, reserve as reserve_local};

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
    /// An in-process link (see `local`), not a TCP one.
    in_process: bool,
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
    /// True when this node dials it; false when it dials us.
    pub(crate) we_dial: bool,
    /// The current link, if up. Never held across an await.
    link: RwLock<Option<Link>>,
    /// The peer announced that it is shutting down: it gets no new work
    /// until a new link comes up, though its link still carries answers.
    stopping: AtomicBool,
    /// Source of link generations.
    generations: AtomicU64,
    /// The peer acknowledged our shutdown notice on the current link: it
    /// sends nothing new, and everything it sent before has arrived.
    stop_acked: AtomicBool,
    /// The run id the peer told in its latest hello (0: not told): the
    /// same run after a link blip is the same process, with its sessions.
    run: AtomicU64,
}

impl Peer {
    pub(crate) fn new(id: u16, name: String, group: String, addr: String, we_dial: bool) -> Self {
        Peer {
            id,
            name,
            group,
            addr,
            we_dial,
            link: RwLock::new(None),
            stopping: AtomicBool::new(false),
            generations: AtomicU64::new(1),
            stop_acked: AtomicBool::new(false),
            run: AtomicU64::new(0),
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

    /// The peer's run id as told in its latest hello (0: not told).
    pub(crate) fn run(&self) -> u64 {
        self.run.load(Ordering::Relaxed)
    }

    /// How many links to the peer have come up so far: changes whenever a
    /// new link is made.
    pub(crate) fn links_made(&self) -> u64 {
        self.generations.load(Ordering::Relaxed)
    }

    /// Whether the link that is up runs in process (no socket).
    pub(crate) fn is_in_process(&self) -> bool {
        self.link
            .read()
            .map(|l| l.as_ref().is_some_and(|l| l.in_process))
            .unwrap_or(false)
    }

    /// Whether a link is up (whether or not the peer takes new work).
    pub(crate) fn is_up(&self) -> bool {
        self.link.read().map(|l| l.is_some()).unwrap_or(false)
    }

    /// The peer acknowledged our shutdown notice.
    pub(crate) fn mark_stop_acked(&self) {
        self.stop_acked.store(true, Ordering::Relaxed);
    }

    /// Whether this node may close the link without losing what the peer
    /// sent: the peer acknowledged our shutdown notice, or no link is up.
    pub(crate) fn quiet_for_us(&self) -> bool {
        self.stop_acked.load(Ordering::Relaxed) || !self.is_up()
    }

    /// Queues an envelope on the link without waiting.
    pub(crate) fn send(&self, env: Envelope) -> Result<(), LinkError> {
        self.send_or_return(env).map_err(|(e, _)| e)
    }

    /// [`Peer::send`], giving the envelope back when it could not be
    /// queued (to try another node with it).
    pub(crate) fn send_or_return(&self, env: Envelope) -> Result<(), (LinkError, Envelope)> {
        let Ok(guard) = self.link.read() else {
            return Err((LinkError::Down, env));
        };
        let Some(link) = guard.as_ref() else {
            return Err((LinkError::Down, env));
        };
        link.tx.try_send(env).map_err(|e| match e {
            mpsc::error::TrySendError::Full(env) => (LinkError::Full, env),
            mpsc::error::TrySendError::Closed(env) => (LinkError::Down, env),
        })
    }

    fn install(&self, link: Link) {
        let old = match self.link.write() {
            Ok(mut l) => {
                // A new link is a peer (re)started: it takes work again.
                self.stopping.store(false, Ordering::Relaxed);
                self.stop_acked.store(false, Ordering::Relaxed);
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

/// What a link hands up to its node: every envelope it reads, and its end.
/// The node implements it; this module never names the node.
pub(crate) trait LinkEvents: Send + Sync + 'static {
    /// An envelope from node `from`. Must not block: spawn the work.
    fn on_envelope(self: &Arc<Self>, from: u16, env: Envelope);
    /// The envelopes one read brought from node `from`, oldest first, to
    /// be taken out of `batch`. Must not block.
    fn on_envelopes(self: &Arc<Self>, from: u16, batch: &mut Vec<Envelope>) {
        for env in batch.drain(..) {
            self.on_envelope(from, env);
        }
    }
    /// The link to `peer` went down (closed, failed, or silent past the
    /// heartbeat timeout) and was not replaced meanwhile.
    fn on_link_down(self: &Arc<Self>, peer: &Peer);
}

/// One node's side of its links: the peers, the key proving membership, the
/// limits, and the tasks running the links.
#[derive(Debug)]
pub(crate) struct Links {
    /// This node's id.
    id: u16,
    /// Every node this node links with.
    peers: HashMap<u16, Arc<Peer>>,
    /// Proves (and checks) knowledge of the cluster secret.
    key: LinkKey,
    /// This node's run id, told to the nodes it dials in the hello.
    run: u64,
    /// Frame limit, queue bound, heartbeat and reconnect timing.
    settings: Arc<Settings>,
    /// Link counters (shared with the node).
    metrics: Arc<Metrics>,
    /// Cancelled to stop accepting links.
    stopping: CancellationToken,
    /// Cancelled to close every link.
    closed: CancellationToken,
    /// Accept, dial, reader and writer tasks: shutdown waits for the
    /// writers to flush.
    tasks: TaskTracker,
}

impl Links {
    /// The links of node `id` with `peers`.
    pub(crate) fn new(
        id: u16,
        peers: HashMap<u16, Arc<Peer>>,
        key: LinkKey,
        settings: Arc<Settings>,
        metrics: Arc<Metrics>,
        stopping: CancellationToken,
        closed: CancellationToken,
    ) -> Links {
        Links {
            id,
            peers,
            key,
            run: 0,
            settings,
            metrics,
            stopping,
            closed,
            tasks: TaskTracker::new(),
        }
    }

    /// Tells `run`, this process's run id, in the hellos of the links this
    /// node dials.
    pub(crate) fn with_run(mut self, run: u64) -> Links {
        self.run = run;
        self
    }

    /// The peer with node id `id`, if this node links with it.
    /// The cluster secret as a key (links prove it; gates sign resume
    /// tokens with it).
    pub(crate) fn key(&self) -> &LinkKey {
        &self.key
    }

    pub(crate) fn get(&self, id: u16) -> Option<&Arc<Peer>> {
        self.peers.get(&id)
    }

    /// Every peer.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Peer>> {
        self.peers.values()
    }

    /// Whether peer `id` has a link up and takes new work.
    pub(crate) fn is_live(&self, id: u16) -> bool {
        self.peers.get(&id).is_some_and(|p| p.is_live())
    }

    /// Lets nodes of this process that dial this node's link address (the
    /// `slot` reserved when it was bound) link with it without sockets
    /// (see `local`).
    pub(crate) fn offer_local<E: LinkEvents>(self: &Arc<Self>, events: &Arc<E>, slot: LocalSlot) {
        slot.offer(self, events);
    }

    /// Starts the links: an acceptor on `listener` (a backend's port) and a
    /// dial loop for every peer this node dials.
    pub(crate) fn start<E: LinkEvents>(
        self: &Arc<Self>,
        events: Arc<E>,
        listener: Option<TcpListener>,
    ) {
        if let Some(listener) = listener {
            self.tasks
                .spawn(link::accept_links(self.clone(), events.clone(), listener));
        }
        for peer in self.peers.values().filter(|p| p.we_dial) {
            self.tasks
                .spawn(link::dial_loop(self.clone(), events.clone(), peer.clone()));
        }
    }

    /// Closes every link (their writers flush what is queued, within a
    /// bound) and waits for their tasks to end, at most `timeout`.
    pub(crate) async fn close(&self, timeout: Duration) {
        self.closed.cancel();
        for p in self.peers.values() {
            p.close();
        }
        self.tasks.close();
        if tokio::time::timeout(timeout, self.tasks.wait())
            .await
            .is_err()
        {
            warn!("links still flushing at the end of shutdown");
        }
    }

    /// The peer that may dial this node as node `from` (proven already),
    /// or why it may not.
    fn dialer(&self, from: u16) -> Result<Arc<Peer>, String> {
        self.peers
            .get(&from)
            .filter(|p| !p.we_dial)
            .cloned()
            .ok_or_else(|| format!("node {from} is not expected to dial node {}", self.id))
    }

    /// Makes `tx` (closed through `cancel`) the link to `peer`, counted;
    /// returns the link's generation.
    fn install_link(
        &self,
        peer: &Peer,
        tx: mpsc::Sender<Envelope>,
        cancel: &CancellationToken,
        in_process: bool,
    ) -> u64 {
        let generation = peer.generations.fetch_add(1, Ordering::Relaxed);
        peer.install(Link {
            tx,
            generation,
            cancel: cancel.clone(),
            in_process,
        });
        self.metrics.links_up.add(1);
        generation
    }

    /// The link of `generation` to `peer` ended for `reason`: unless a newer
    /// link replaced it, it is removed, counted, logged (in `span`) and
    /// reported to `events`.
    fn link_ended<E: LinkEvents>(
        &self,
        events: &Arc<E>,
        peer: &Peer,
        generation: u64,
        reason: &str,
        span: &tracing::Span,
    ) {
        if peer.remove(generation) {
            self.metrics.links_down.add(1);
            if self.closed.is_cancelled() {
                tracing::debug!(parent: span, %reason, "link closed");
            } else {
                warn!(parent: span, %reason, "link down");
            }
            events.on_link_down(peer);
        }
    }

    fn codec(&self) -> FrameCodec {
        // A forwarded client frame plus the envelope header and a uid.
        FrameCodec::new(self.settings.max_frame_len + ENVELOPE_HEADER_LEN + usize::from(u16::MAX))
    }
}
