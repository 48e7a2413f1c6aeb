//! Messages to other gates through the Redis bus: one bounded queue per
//! target gate, drained by one publisher task per target, so the bus
//! behaves like a link.
//!
//! - **Bounded**: a target's queue holds `link_queue` messages. When it is
//!   full the sender gets [`SendError::Congested`] at once; nothing spawns
//!   a task per message, however hard the load.
//! - **Failures reach the caller**: a sender that waits
//!   ([`RedisDirectory::publish`]) gets the publish's own outcome (Redis
//!   down, no gate listening). A sender that cannot wait
//!   ([`RedisDirectory::send`], behind `push` and `broadcast`) gets
//!   [`SendError::Unreachable`] at once while its target is known
//!   unreachable (its last publish reached nobody or failed, less than
//!   [`PROBE_AFTER`] ago); otherwise the message is queued and `Ok`, as on
//!   a link.
//! - **In order**: one task publishes a target's messages, a batch at a
//!   time in one pipelined round trip.
//! - **Drained at shutdown**: [`RedisDirectory::close`] stops the
//!   publishers after they publish what is queued (bounded).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, info_span, warn};

use super::redis::RedisDirectory;
use crate::envelope::Envelope;
use crate::error::SendError;

/// Messages published in one pipelined round trip at most.
const BATCH: usize = 64;

/// A target known unreachable gets no message that nobody waits for
/// during this long after its last failure; then one goes through as a
/// probe.
pub(crate) const PROBE_AFTER: Duration = Duration::from_millis(500);

/// How long a waiting sender waits at most for its publish (queue and
/// round trip).
const WAIT_AT_MOST: Duration = Duration::from_secs(3);

/// One message to publish, and who waits for its outcome.
struct Outgoing {
    /// The message.
    env: Envelope,
    /// The sender waiting for the outcome, if it waits.
    done: Option<oneshot::Sender<Result<(), SendError>>>,
}

/// The queue of one target gate and what is known of it.
struct Target {
    /// The queue its publisher drains (`link_queue` messages).
    tx: mpsc::Sender<Outgoing>,
    /// When its last publish failed (ms since `Outbox::epoch`, plus one),
    /// 0 while it succeeds.
    failed_at: Arc<AtomicU64>,
}

/// The queues of every target gate (created at a gate's first message).
pub(crate) struct Outbox {
    /// By target gate id (only gates of the configuration get one).
    targets: std::sync::Mutex<HashMap<u16, Target>>,
    /// Zero of `failed_at`.
    epoch: Instant,
}

impl Outbox {
    pub(crate) fn new() -> Outbox {
        Outbox {
            targets: std::sync::Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
    }
}

impl RedisDirectory {
    /// Queues an envelope for gate `gate` without waiting (see the module
    /// docs for what `Ok` means).
    pub(crate) fn send(self: &Arc<Self>, gate: u16, env: Envelope) -> Result<(), SendError> {
        self.enqueue(gate, env, None)
    }

    /// Sends an envelope to gate `gate` and waits until it is published:
    /// fails when Redis fails or no gate listens there.
    pub(crate) async fn publish(
        self: &Arc<Self>,
        gate: u16,
        env: Envelope,
    ) -> Result<(), SendError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(gate, env, Some(tx))?;
        match tokio::time::timeout(WAIT_AT_MOST, rx).await {
            Ok(Ok(result)) => result,
            // The publisher ended (shutdown) or took too long.
            Ok(Err(_)) | Err(_) => Err(SendError::Unreachable { node: gate }),
        }
    }

    fn enqueue(
        self: &Arc<Self>,
        gate: u16,
        env: Envelope,
        done: Option<oneshot::Sender<Result<(), SendError>>>,
    ) -> Result<(), SendError> {
        if self.stopping.is_cancelled() {
            return Err(SendError::Unreachable { node: gate });
        }
        let outbox = &self.outbox;
        let mut targets = outbox.targets.lock().unwrap_or_else(|p| p.into_inner());
        let target = targets.entry(gate).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(self.queue_len);
            let failed_at = Arc::new(AtomicU64::new(0));
            let span = info_span!("bus", node = self.node(), to = gate);
            self.tasks.spawn(
                self.clone()
                    .publisher(gate, rx, failed_at.clone())
                    .instrument(span),
            );
            Target { tx, failed_at }
        });
        if done.is_none() {
            let failed = target.failed_at.load(Ordering::Relaxed);
            let probe_after = PROBE_AFTER.as_millis() as u64;
            if failed != 0 && outbox.now().saturating_sub(failed) < probe_after {
                self.metrics.bus_unreachable.add(1);
                return Err(SendError::Unreachable { node: gate });
            }
        }
        target
            .tx
            .try_send(Outgoing { env, done })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    self.metrics.bus_queue_full.add(1);
                    SendError::Congested { node: gate }
                }
                mpsc::error::TrySendError::Closed(_) => SendError::Unreachable { node: gate },
            })
    }

    /// Publishes gate `gate`'s messages in order, a batch per round trip,
    /// until the directory closes; then what is queued.
    async fn publisher(
        self: Arc<Self>,
        gate: u16,
        mut rx: mpsc::Receiver<Outgoing>,
        failed_at: Arc<AtomicU64>,
    ) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let first = tokio::select! {
                m = rx.recv() => m,
                _ = self.stopping.cancelled() => break,
            };
            let Some(first) = first else { break };
            batch.push(first);
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            self.publish_batch(gate, &mut batch, &failed_at).await;
        }
        rx.close();
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
            if batch.len() == BATCH {
                self.publish_batch(gate, &mut batch, &failed_at).await;
            }
        }
        if !batch.is_empty() {
            self.publish_batch(gate, &mut batch, &failed_at).await;
        }
    }

    /// Publishes `batch` (emptied) and tells each waiting sender.
    async fn publish_batch(&self, gate: u16, batch: &mut Vec<Outgoing>, failed_at: &AtomicU64) {
        let mut pipe = redis::pipe();
        let channel = self.channel(gate);
        let mut sent = Vec::with_capacity(batch.len());
        for m in batch.drain(..) {
            match self.seal(gate, &m.env) {
                Ok(wire) => {
                    pipe.cmd("PUBLISH").arg(&channel).arg(&wire[..]);
                    sent.push(m);
                }
                Err(e) => {
                    warn!(error = %e, "message to another gate dropped");
                    if let Some(done) = m.done {
                        let _ = done.send(Err(SendError::directory(e)));
                    }
                }
            }
        }
        if sent.is_empty() {
            return;
        }
        let pipe = &pipe;
        // Not retried: a publish that did reach Redis before the connection
        // dropped would be delivered twice.
        let result: Result<Vec<i64>, SendError> = self
            .op("publish", false, |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await;
        let mut failures = 0u64;
        for (i, m) in sent.into_iter().enumerate() {
            let outcome = match &result {
                Ok(receivers) if receivers.get(i).copied().unwrap_or(0) > 0 => Ok(()),
                Ok(_) => Err(SendError::Unreachable { node: gate }),
                Err(e) => Err(e.clone()),
            };
            if outcome.is_err() {
                failures += 1;
            }
            if let Some(done) = m.done {
                let _ = done.send(outcome);
            }
        }
        if failures == 0 {
            if failed_at.swap(0, Ordering::Relaxed) != 0 {
                debug!(gate, "gate reachable through the bus again");
            }
            return;
        }
        self.metrics.bus_publish_failures.add(failures);
        let before = failed_at.swap(self.outbox.now(), Ordering::Relaxed);
        if before == 0 {
            match &result {
                Ok(_) => warn!(
                    gate,
                    failures,
                    "messages to another gate reached nobody: is it running and subscribed?"
                ),
                Err(e) => warn!(gate, failures, error = %e, "messages to another gate failed"),
            }
        }
    }
}
