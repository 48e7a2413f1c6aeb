//! Requests to other nodes that wait for an answer (`call`, and what a
//! backend asks of a gate: bind, unbind, kick, push to a uid): request ids,
//! the table of pending requests, their timeouts and their failure when
//! the link they went out on goes down.
//!
//! Knows nothing of links or sockets: [`Rpc::request`] takes the function
//! that puts the envelope on its way, so the table can be tested alone.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::oneshot;

use crate::envelope::{Envelope, Status};
use crate::peer::LinkError;

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestError {
    /// It could not be sent.
    Link(LinkError),
    /// The link it went out on went down before the answer came.
    Lost,
    /// No answer within the timeout.
    Timeout,
}

/// A request waiting for its answer.
#[derive(Debug)]
struct Pending {
    /// The node that must answer: its link going down fails the request.
    peer: u16,
    /// Wakes the waiter with the answer; dropping it wakes it with `Lost`.
    tx: oneshot::Sender<(Status, Bytes)>,
}

/// The pending requests of one node.
#[derive(Debug)]
pub(crate) struct Rpc {
    /// By request id.
    pending: DashMap<u32, Pending>,
    /// Next request id (never 0: 0 means "no answer wanted").
    next: AtomicU32,
}

impl Default for Rpc {
    fn default() -> Self {
        Rpc {
            pending: DashMap::new(),
            next: AtomicU32::new(1),
        }
    }
}

impl Rpc {
    /// A fresh request id, never 0 (also used as a balancing key for calls
    /// made outside any session).
    pub(crate) fn next_id(&self) -> u32 {
        loop {
            let r = self.next.fetch_add(1, Ordering::Relaxed);
            if r != 0 {
                return r;
            }
        }
    }

    /// Sends `env` to node `to` through `send` as a request and waits for
    /// its answer, at most `timeout`.
    pub(crate) async fn request(
        &self,
        to: u16,
        mut env: Envelope,
        timeout: Duration,
        send: impl FnOnce(Envelope) -> Result<(), LinkError>,
    ) -> Result<(Status, Bytes), RequestError> {
        let request = self.next_id();
        env.request = request;
        let (tx, rx) = oneshot::channel();
        self.pending.insert(request, Pending { peer: to, tx });
        if let Err(e) = send(env) {
            self.pending.remove(&request);
            return Err(RequestError::Link(e));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(RequestError::Lost),
            Err(_) => {
                self.pending.remove(&request);
                Err(RequestError::Timeout)
            }
        }
    }

    /// Hands an answer to its waiter; an answer nobody waits for (timed
    /// out, or forged) is ignored.
    pub(crate) fn resolve(&self, request: u32, status: Status, payload: Bytes) {
        if let Some((_, p)) = self.pending.remove(&request) {
            let _ = p.tx.send((status, payload));
        }
    }

    /// Fails every request waiting on node `peer` (its link went down);
    /// returns how many.
    pub(crate) fn fail_peer(&self, peer: u16) -> usize {
        let lost: Vec<u32> = self
            .pending
            .iter()
            .filter(|p| p.peer == peer)
            .map(|p| *p.key())
            .collect();
        for r in &lost {
            // Dropping the sender wakes the waiter with `Lost`.
            self.pending.remove(r);
        }
        lost.len()
    }

    /// Requests waiting right now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Kind;
    use std::sync::Arc;

    #[tokio::test]
    async fn an_answer_reaches_its_waiter() {
        let rpc = Arc::new(Rpc::default());
        let (sent_tx, sent_rx) = oneshot::channel();
        let waiter = {
            let rpc = rpc.clone();
            tokio::spawn(async move {
                rpc.request(
                    7,
                    Envelope::new(Kind::Call),
                    Duration::from_secs(5),
                    |env| {
                        let _ = sent_tx.send(env.request);
                        Ok(())
                    },
                )
                .await
            })
        };
        let request = sent_rx.await.expect("sent");
        assert_ne!(request, 0);
        rpc.resolve(request, Status::Ok, Bytes::from_static(b"yes"));
        let answer = waiter.await.expect("joined");
        assert_eq!(answer, Ok((Status::Ok, Bytes::from_static(b"yes"))));
        assert_eq!(rpc.len(), 0);
    }

    #[tokio::test]
    async fn a_lost_link_fails_only_its_own_requests_at_once() {
        let rpc = Arc::new(Rpc::default());
        let spawn = |peer: u16| {
            let rpc = rpc.clone();
            tokio::spawn(async move {
                rpc.request(
                    peer,
                    Envelope::new(Kind::Call),
                    Duration::from_secs(30),
                    |_| Ok(()),
                )
                .await
            })
        };
        let a = spawn(2);
        let b = spawn(3);
        while rpc.len() < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(rpc.fail_peer(2), 1);
        assert_eq!(a.await.expect("joined"), Err(RequestError::Lost));
        assert_eq!(rpc.len(), 1);
        assert_eq!(rpc.fail_peer(3), 1);
        assert_eq!(b.await.expect("joined"), Err(RequestError::Lost));
    }

    #[tokio::test]
    async fn send_failures_and_timeouts_leave_nothing_pending() {
        let rpc = Rpc::default();
        let r = rpc
            .request(2, Envelope::new(Kind::Call), Duration::from_secs(1), |_| {
                Err(LinkError::Full)
            })
            .await;
        assert_eq!(r, Err(RequestError::Link(LinkError::Full)));
        let r = rpc
            .request(
                2,
                Envelope::new(Kind::Call),
                Duration::from_millis(10),
                |_| Ok(()),
            )
            .await;
        assert_eq!(r, Err(RequestError::Timeout));
        assert_eq!(rpc.len(), 0);
        // A late answer to a timed-out request is ignored.
        rpc.resolve(1, Status::Ok, Bytes::new());
    }
}
