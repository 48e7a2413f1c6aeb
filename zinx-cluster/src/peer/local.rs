//! Links between nodes of one process, without sockets.
//!
//! When a process runs several nodes (`cargo run -p demo` runs them all),
//! a node that dials a peer served by the same process finds it here, by
//! the address it would dial, and the two exchange envelopes through a
//! pair of bounded queues: no encoding, no loopback `send`/`recv`, no
//! heartbeats (a node of the same process cannot go silent; it closes). On
//! a 2-core machine the loopback sends of a forwarded message were most of
//! its cost. Everything else is the same as on a TCP link: the dialer
//! proves the cluster secret (an HMAC over a fresh nonce and both ids),
//! queues are bounded by `link_queue`, the order of envelopes is kept,
//! the link goes down when either node closes, and the dial loop redials
//! (over TCP, if the peer is now in another process). `local_links: false`
//! in settings.json keeps every link on TCP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use hmac::Mac;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span};

use super::{LinkEvents, Links, Peer};
use crate::envelope::Envelope;

/// Envelopes handed to the node in one batch at most.
const LOCAL_BATCH: usize = 256;

/// What a dial in process came to.
#[derive(Debug)]
pub(super) enum Dialed {
    /// The peer is not served by this process (or local links are off):
    /// dial it over TCP.
    NotHere,
    /// The peer's port is bound here but its node does not link yet: try
    /// again after the backoff, not over TCP.
    NotYet,
    /// The peer refused the link, saying why.
    Refused(String),
    /// A link ran, and has ended.
    Ran,
}

/// A node of this process that accepts links, as a dialer reaches it.
trait Acceptor: Send + Sync {
    /// Takes a link from node `from` of run `run`, proven by `mac` over
    /// `nonce`; `Err` says why it is refused.
    fn accept(&self, dial: Dial) -> Result<(), String>;
}

/// What a dialer hands the acceptor.
struct Dial {
    from: u16,
    to: u16,
    run: u64,
    nonce: [u8; 32],
    mac: [u8; super::MAC_LEN],
    /// Envelopes from the dialer.
    rx: mpsc::Receiver<Envelope>,
    /// Envelopes to the dialer.
    tx: mpsc::Sender<Envelope>,
    /// Cancelled when either side ends the link.
    cancel: CancellationToken,
}

/// Backends of this process by the address they accept links on: an empty
/// slot from the moment the address is bound until the node is ready to
/// link, so that nobody dials it over TCP meanwhile.
fn registry() -> &'static Mutex<HashMap<SocketAddr, Arc<Slot>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<SocketAddr, Arc<Slot>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A registry entry: the node accepting on the address, once it does.
#[derive(Default)]
struct Slot(Mutex<Option<Weak<dyn Acceptor>>>);

/// The registry entry of an address this process bound for links: the
/// node that will accept on it offers itself through it
/// ([`LocalSlot::offer`]); dropped without that (a start that failed), the
/// entry goes.
pub(crate) struct LocalSlot {
    addr: SocketAddr,
    slot: Arc<Slot>,
}

impl std::fmt::Debug for LocalSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalSlot({})", self.addr)
    }
}

/// Reserves the entry of `listener`'s address, just bound for links (if
/// `enabled`: a backend with `local_links`).
pub(crate) fn reserve(listener: &tokio::net::TcpListener, enabled: bool) -> Option<LocalSlot> {
    if !enabled {
        return None;
    }
    let addr = listener.local_addr().ok()?;
    let slot = Arc::new(Slot::default());
    if let Ok(mut r) = registry().lock() {
        r.insert(addr, slot.clone());
    }
    Some(LocalSlot { addr, slot })
}

impl Drop for LocalSlot {
    fn drop(&mut self) {
        remove(self.addr, &self.slot);
    }
}

/// Removes `addr`'s entry if it is still `slot` (a node of a later start
/// may hold the address by now).
fn remove(addr: SocketAddr, slot: &Arc<Slot>) {
    if let Ok(mut r) = registry().lock() {
        if r.get(&addr).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            r.remove(&addr);
        }
    }
}

/// A node's entry in the registry; removed when the node stops accepting.
struct Entry<E> {
    links: Arc<Links>,
    events: Arc<E>,
}

impl<E: LinkEvents> Acceptor for Entry<E> {
    fn accept(&self, dial: Dial) -> Result<(), String> {
        let links = &self.links;
        if links.stopping.is_cancelled() {
            return Err(format!("node {} is shutting down", links.id));
        }
        if dial.to != links.id {
            return Err(format!("the node here is {}, not {}", links.id, dial.to));
        }
        let mut proof = links
            .key
            .proof(b"zinx-local", &dial.nonce, dial.from, dial.to);
        proof.update(&dial.run.to_be_bytes());
        if proof.verify_slice(&dial.mac).is_err() {
            links.metrics.link_auth_failures.add(1);
            return Err(format!(
                "node {} failed to prove the cluster secret (wrong secret?)",
                dial.from
            ));
        }
        let peer = links.dialer(dial.from)?;
        peer.run
            .store(dial.run, std::sync::atomic::Ordering::Relaxed);
        let (links, events) = (links.clone(), self.events.clone());
        links.tasks.clone().spawn(run_local(
            links,
            events,
            peer,
            dial.tx,
            dial.rx,
            dial.cancel,
        ));
        Ok(())
    }
}

impl LocalSlot {
    /// Offers the links of `links` to the nodes of this process that dial
    /// this address, until the node stops accepting.
    pub(super) fn offer<E: LinkEvents>(self, links: &Arc<Links>, events: &Arc<E>) {
        let entry: Arc<dyn Acceptor> = Arc::new(Entry {
            links: links.clone(),
            events: events.clone(),
        });
        if let Ok(mut a) = self.slot.0.lock() {
            *a = Some(Arc::downgrade(&entry));
        }
        let stopping = links.stopping.clone();
        links.tasks.spawn(async move {
            stopping.cancelled().await;
            // Dropping the slot removes the entry; the acceptor goes with
            // this task.
            drop(self);
            drop(entry);
        });
    }
}

/// Links to `peer` in this process if it is served here, until the link
/// ends.
pub(super) async fn dial<E: LinkEvents>(
    links: &Arc<Links>,
    events: &Arc<E>,
    peer: &Arc<Peer>,
) -> Dialed {
    if !links.settings.local_links {
        return Dialed::NotHere;
    }
    let Ok(addr) = peer.addr.parse::<SocketAddr>() else {
        return Dialed::NotHere;
    };
    let slot = registry().lock().ok().and_then(|r| r.get(&addr).cloned());
    let Some(slot) = slot else {
        return Dialed::NotHere;
    };
    let acceptor = slot.0.lock().ok().and_then(|a| a.clone());
    let Some(acceptor) = acceptor.and_then(|w| w.upgrade()) else {
        // Bound by this process, not linking yet: not a TCP peer either.
        return Dialed::NotYet;
    };
    let queue = links.settings.link_queue.max(1);
    let (to_peer, from_us) = mpsc::channel(queue);
    let (to_us, from_peer) = mpsc::channel(queue);
    let nonce: [u8; 32] = rand::random();
    let mut mac = links.key.proof(b"zinx-local", &nonce, links.id, peer.id);
    mac.update(&links.run.to_be_bytes());
    let cancel = CancellationToken::new();
    let dial = Dial {
        from: links.id,
        to: peer.id,
        run: links.run,
        nonce,
        mac: mac.finalize().into_bytes().into(),
        rx: from_us,
        tx: to_us,
        cancel: cancel.clone(),
    };
    if let Err(why) = acceptor.accept(dial) {
        return Dialed::Refused(why);
    }
    drop(acceptor);
    run_local(
        links.clone(),
        events.clone(),
        peer.clone(),
        to_peer,
        from_peer,
        cancel,
    )
    .await;
    Dialed::Ran
}

/// Runs one side of a local link until either side ends it or this node
/// closes: envelopes from the peer go to `events` in batches.
async fn run_local<E: LinkEvents>(
    links: Arc<Links>,
    events: Arc<E>,
    peer: Arc<Peer>,
    tx: mpsc::Sender<Envelope>,
    mut rx: mpsc::Receiver<Envelope>,
    cancel: CancellationToken,
) {
    let span = info_span!("peer", peer = %peer.name, id = peer.id, group = %peer.group);
    let generation = links.install_link(&peer, tx, &cancel, true);
    info!(parent: &span, "link up (in process)");
    let closed = links.closed.clone();
    let mut batch = Vec::new();
    let reason = async {
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => return "closed",
                _ = closed.cancelled() => return "closed",
                env = rx.recv() => env,
            };
            let Some(env) = first else {
                return "closed by peer";
            };
            batch.push(env);
            while batch.len() < LOCAL_BATCH {
                match rx.try_recv() {
                    Ok(env) => batch.push(env),
                    Err(_) => break,
                }
            }
            events.on_envelopes(peer.id, &mut batch);
        }
    }
    .instrument(span.clone())
    .await;
    // Either side's end is the link's end.
    cancel.cancel();
    // What the peer queued before the end still arrives, as a TCP link's
    // writer flushes its queue when it closes.
    while let Ok(env) = rx.try_recv() {
        batch.push(env);
        if batch.len() == LOCAL_BATCH {
            events.on_envelopes(peer.id, &mut batch);
        }
    }
    if !batch.is_empty() {
        events.on_envelopes(peer.id, &mut batch);
    }
    links.link_ended(&events, &peer, generation, reason, &span);
}
