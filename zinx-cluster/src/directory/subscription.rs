//! A gate's subscription to its Redis channel: a stream of the envelopes
//! other gates publish to it.
//!
//! [`Subscription::next`] hides the connection's life: it subscribes,
//! pings a quiet subscription to notice a silently dead connection, and
//! resubscribes with capped backoff whenever it is lost. Only messages
//! signed with the cluster secret for this gate, and not seen before, pass
//! (see `seal`); the others are yielded as [`Refused`] for the gate to
//! count. It only yields; the gate decides what to do with each envelope
//! (see `gate::directory`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tracing::{debug, info, warn};

use super::redis::{OP_TIMEOUT, RedisDirectory};
use super::seal::{Opener, Refused};
use crate::envelope::{Envelope, Kind};

/// First and largest delay between attempts to resubscribe a gate's channel.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(100);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);

/// A quiet subscription is pinged this often: a connection that died
/// without closing (a cable, a firewall) is noticed and replaced.
const SUBSCRIPTION_PING: Duration = Duration::from_secs(5);

/// The envelopes published to one gate's channel.
pub(crate) struct Subscription {
    /// Opens the pub/sub connections.
    dir: Arc<RedisDirectory>,
    /// `<prefix>:gate:<id>`.
    channel: String,
    /// The live subscription, if any.
    conn: Option<(PubSubSink, PubSubStream)>,
    /// Delay before the next subscribe attempt.
    backoff: Duration,
    /// Since when the channel has been lost (logged once per outage).
    lost_since: Option<Instant>,
    /// Checks each message's signature and freshness.
    opener: Opener,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .field("up", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    pub(super) fn new(dir: Arc<RedisDirectory>, channel: String, opener: Opener) -> Subscription {
        Subscription {
            dir,
            channel,
            conn: None,
            backoff: RESUBSCRIBE_MIN,
            lost_since: None,
            opener,
        }
    }

    /// The next envelope published to this gate, or a message refused as
    /// forged or replayed. Waits through outages (resubscribing);
    /// authentic messages that are not one envelope of a kind a gate takes
    /// from another gate are logged and skipped.
    pub(crate) async fn next(&mut self) -> Result<Envelope, Refused> {
        loop {
            let Some((sink, messages)) = self.conn.as_mut() else {
                self.connect().await;
                continue;
            };
            let ping = tokio::time::sleep(SUBSCRIPTION_PING);
            tokio::pin!(ping);
            let lost = tokio::select! {
                msg = messages.next() => match msg {
                    Some(msg) => match self.opener.open(msg.get_payload_bytes()) {
                        Ok(env) => match accept(env) {
                            Some(env) => return Ok(env),
                            None => continue,
                        },
                        Err(Refused::Malformed(e)) => {
                            warn!(error = %e, "undecodable message on the gate channel ignored");
                            continue;
                        }
                        Err(refused) => return Err(refused),
                    },
                    None => "gate channel subscription lost; resubscribing",
                },
                _ = &mut ping => {
                    let pong = tokio::time::timeout(OP_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if matches!(pong, Ok(Ok(_))) {
                        continue;
                    }
                    "gate channel connection does not answer; resubscribing"
                }
            };
            warn!(channel = %self.channel, "{lost}");
            self.conn = None;
            self.lost_since = Some(Instant::now());
        }
    }

    /// Subscribes, or waits the backoff after a failed attempt.
    async fn connect(&mut self) {
        match self.dir.open_subscription(&self.channel).await {
            Ok(pubsub) => {
                match self.lost_since.take() {
                    Some(since) => {
                        info!(channel = %self.channel, after = ?since.elapsed(), "gate channel subscribed again")
                    }
                    None => debug!(channel = %self.channel, "gate channel subscribed"),
                }
                self.backoff = RESUBSCRIBE_MIN;
                self.conn = Some(pubsub.split());
            }
            Err(e) => {
                if self.lost_since.is_none() {
                    warn!(channel = %self.channel, error = %e, "cannot subscribe to the gate channel: messages from other gates are lost until it works; retrying");
                    self.lost_since = Some(Instant::now());
                }
                tokio::time::sleep(self.backoff).await;
                self.backoff = (self.backoff * 2).min(RESUBSCRIBE_MAX);
            }
        }
    }
}

/// The envelope of one authentic channel message, if it is one a gate
/// takes from another gate.
fn accept(mut env: Envelope) -> Option<Envelope> {
    match env.kind {
        Kind::ToUid | Kind::Broadcast | Kind::Room | Kind::Kick => {
            // Published messages are never requests: nothing answers them
            // over a link.
            env.request = 0;
            Some(env)
        }
        // A frame for a session (maybe a forward's last answer, relayed
        // for a session that moved here: `request` is the forward's
        // number), a forward done, a session handed over between gates
        // (`request` numbers the handover).
        Kind::ToSession | Kind::Done | Kind::Handover | Kind::HandoverDone => Some(env),
        kind => {
            warn!(
                ?kind,
                from = env.node,
                "unexpected envelope on the gate channel ignored"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn only_gate_to_gate_kinds_pass_and_never_as_requests() {
        let mut push = Envelope::new(Kind::ToUid);
        push.node = 4;
        push.request = 9;
        push.uid = Bytes::from_static(b"bob");
        let got = accept(push.clone()).expect("a push to a uid passes");
        assert_eq!(got.request, 0);
        assert_eq!(got.uid, push.uid);
        assert!(accept(Envelope::new(Kind::Forward)).is_none());
    }
}
