//! A backend's per-session queues: the forwarded messages of one session
//! run one after another, in arrival order, each finished with a final
//! answer (or a bare completion) to the gate that forwarded it.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use tracing::{debug, warn};

use super::Backend;
use crate::api::NodeApi;
use crate::envelope::{Envelope, Kind};
use crate::error::ErrorCode;
use crate::frame::Frame;
use crate::metrics::Outcome;
use crate::node::{ClientMessage, TO_SESSION_FINAL, envelope, uid_of};
use crate::registry::Route;
use crate::session::SessionId;
use crate::trace::TraceContext;

/// A client session this node has served: its waiting messages, in
/// arrival order, and its uid. Kept until the gate says the session closed
/// (or the gate's link goes down), so the session-closed hooks run here too.
#[derive(Default)]
struct SessionQueue {
    /// Messages waiting to run.
    jobs: VecDeque<Job>,
    /// A drain task is running this session's messages.
    running: bool,
    /// The uid the gate last sent with the session's messages (reused
    /// while it does not change, so a message costs no allocation).
    uid: Option<Arc<str>>,
    /// The session moved to another gate: forgotten (no hooks) once its
    /// queue runs out.
    moved: bool,
}

/// One forwarded message waiting to run.
pub(super) struct Job {
    /// Its handler.
    route: &'static Route,
    /// Its payload.
    data: Bytes,
    /// The uid bound when the gate forwarded this message: a message queued
    /// before a logout still runs as the user who sent it.
    uid: Option<Arc<str>>,
    /// The gate's number for this forward (`request` of the envelope),
    /// returned with its completion so the gate knows which one finished.
    forward: u32,
    /// The trace the gate started for this message, when tracing is on.
    trace: Option<TraceContext>,
}

impl Job {
    fn new(route: &'static Route, data: Bytes) -> Job {
        Job {
            route,
            data,
            uid: None,
            forward: 0,
            trace: None,
        }
    }
}

/// What [`Queues::enqueue`] did with a job.
#[derive(Debug, PartialEq, Eq)]
enum Enqueued {
    /// Queued behind the session's running job.
    Queued,
    /// Queued, and nothing runs this session's jobs: start a drain.
    StartDrain,
}

/// The sessions a backend serves, with their waiting messages.
pub(super) struct Queues {
    /// By session.
    queues: DashMap<SessionId, SessionQueue>,
    /// `node_session_queue`: jobs one session may have waiting.
    limit: usize,
}

impl Queues {
    pub(super) fn new(limit: usize) -> Queues {
        Queues {
            queues: DashMap::new(),
            limit: limit.max(1),
        }
    }

    /// Queues a forwarded message behind the session's earlier ones; gives
    /// the job back when the session already has `limit` waiting.
    fn enqueue(&self, session: SessionId, uid: &Bytes, mut job: Job) -> Result<Enqueued, Job> {
        let mut q = self.queues.entry(session).or_default();
        if q.jobs.len() >= self.limit {
            return Err(job);
        }
        match (&q.uid, uid.is_empty()) {
            (Some(cur), false) if cur.as_bytes() == &uid[..] => {}
            (None, true) => {}
            _ => q.uid = uid_of(uid),
        }
        job.uid = q.uid.clone();
        q.jobs.push_back(job);
        if q.running {
            Ok(Enqueued::Queued)
        } else {
            q.running = true;
            Ok(Enqueued::StartDrain)
        }
    }

    /// The session's next job; `None` (and the session marked idle) when
    /// there is none, or when the session closed meanwhile.
    fn next_job(&self, session: SessionId) -> Option<Job> {
        let mut q = self.queues.get_mut(&session)?;
        let job = q.jobs.pop_front();
        if job.is_none() {
            q.running = false;
            if q.moved {
                drop(q);
                self.queues.remove(&session);
            }
        }
        job
    }

    /// Session `from` is `to` from now on (it moved to another gate): its
    /// uid goes with it; its queue here runs out under the old id (what it
    /// holds was forwarded before the move, and answers through the old
    /// gate, which relays), then is forgotten without hooks.
    pub(super) fn moved(&self, from: SessionId, to: SessionId) {
        let uid = match self.queues.get_mut(&from) {
            Some(mut q) => {
                q.moved = true;
                let uid = q.uid.clone();
                let idle = !q.running;
                drop(q);
                if idle {
                    self.queues.remove(&from);
                }
                uid
            }
            None => return,
        };
        let mut q = self.queues.entry(to).or_default();
        if q.uid.is_none() {
            q.uid = uid;
        }
    }

    /// Forgets a session (it closed); its uid when this node served it.
    pub(super) fn close_session(&self, session: SessionId) -> Option<Option<Arc<str>>> {
        self.queues.remove(&session).map(|(_, q)| q.uid)
    }

    /// The sessions of gate `gate` this node knows.
    pub(super) fn sessions_of(&self, gate: u16) -> Vec<SessionId> {
        self.queues
            .iter()
            .filter(|q| q.key().gate() == gate)
            .map(|q| *q.key())
            .collect()
    }

    /// Forgets every session of gate `gate`; returns them with their uids.
    #[cfg(test)]
    fn close_gate(&self, gate: u16) -> Vec<(SessionId, Option<Arc<str>>)> {
        self.sessions_of(gate)
            .into_iter()
            .filter_map(|s| self.close_session(s).map(|uid| (s, uid)))
            .collect()
    }
}

impl Backend {
    /// A client message forwarded by a gate: queued behind the session's
    /// earlier ones, or refused with a final error answer.
    pub(super) fn on_forward(self: &Arc<Self>, env: Envelope) {
        let node = &self.node;
        let session = SessionId(env.session);
        let msg_id = env.msg_id;
        let forward = env.request;
        let refuse = |code: ErrorCode, why: String| {
            warn!(%session, msg_id, "{why}");
            node.labelled().message(msg_id, Outcome::of(&code));
            let frame = node.error_frame(msg_id, &code, &why);
            self.finish_forwarded(session, msg_id, forward, frame);
        };
        if node.stopping().is_cancelled() {
            return refuse(
                ErrorCode::NodeStopping,
                format!("node {} is shutting down", node.name()),
            );
        }
        // A gate never forwards an internal msg_id; refused the same way
        // here all the same, should one come from a gate of another build.
        let Some(route) = node.handlers().get(msg_id).filter(|r| !r.internal) else {
            node.metrics().unknown_msg_id.add(1);
            return refuse(
                ErrorCode::UnknownMsgId,
                format!("node {} has no handler for msg_id {msg_id}", node.name()),
            );
        };
        let mut job = Job::new(route, env.payload);
        job.forward = forward;
        job.trace = env.trace;
        match self.queues.enqueue(session, &env.uid, job) {
            Ok(Enqueued::StartDrain) => {
                let me = self.clone();
                node.runner()
                    .run_eagerly(async move { me.drain(session).await });
            }
            Ok(Enqueued::Queued) => {}
            Err(_) => refuse(
                ErrorCode::Overloaded,
                format!(
                    "more than {} messages of this session are waiting on node {}",
                    node.settings().node_session_queue,
                    node.name()
                ),
            ),
        }
    }

    /// Runs a session's queued messages one after another.
    async fn drain(self: Arc<Self>, session: SessionId) {
        while let Some(job) = self.queues.next_job(session) {
            let api: Arc<dyn NodeApi> = self.clone();
            let msg = ClientMessage {
                route: job.route,
                session,
                uid: job.uid,
                data: job.data,
                local: None,
                trace: job.trace.as_ref(),
            };
            let answer = self.node.run_client(api, msg).await;
            self.finish_forwarded(session, job.route.msg_id, job.forward, answer);
        }
    }

    /// Sends the last answer of a forwarded message to its gate, marked
    /// final and carrying the gate's number `forward` for the message;
    /// with no answer, a bare completion marker.
    fn finish_forwarded(
        &self,
        session: SessionId,
        msg_id: u32,
        forward: u32,
        answer: Option<Frame>,
    ) {
        let node = &self.node;
        let gate = session.gate();
        let mut env = match answer {
            Some(frame) => envelope(
                Kind::ToSession,
                node.id(),
                frame.msg_id,
                session.0,
                frame.data,
            ),
            None => envelope(Kind::Done, node.id(), msg_id, session.0, Bytes::new()),
        };
        env.flags = TO_SESSION_FINAL;
        env.request = forward;
        match node.links().get(gate) {
            Some(peer) => {
                if let Err(e) = peer.send(env) {
                    debug!(%session, msg_id, ?e, "final answer not sent: the gate's link is gone");
                }
            }
            None => debug!(%session, msg_id, "final answer for a gate without a link dropped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Ctx;
    use crate::handler::{BoxFuture, HandlerFailure};

    fn entry<'a>(_: &'a mut Ctx, _: Bytes) -> BoxFuture<'a, Result<Option<Bytes>, HandlerFailure>> {
        Box::pin(async { Ok(None) })
    }

    static ROUTE: Route = Route {
        msg_id: 6,
        group: "im",
        name: "echo",
        internal: false,
        module: "test",
        file: file!(),
        line: line!(),
        entry,
    };

    fn job(data: &'static [u8]) -> Job {
        Job::new(&ROUTE, Bytes::from_static(data))
    }

    #[test]
    fn one_drain_per_session_in_arrival_order() {
        let exec = Queues::new(8);
        let s = SessionId::new(1, 1);
        let alice = Bytes::from_static(b"alice");
        assert_eq!(
            exec.enqueue(s, &alice, job(b"1")).ok(),
            Some(Enqueued::StartDrain)
        );
        assert_eq!(
            exec.enqueue(s, &alice, job(b"2")).ok(),
            Some(Enqueued::Queued)
        );
        let first = exec.next_job(s).expect("first job");
        assert_eq!(&first.data[..], b"1");
        assert_eq!(first.uid.as_deref(), Some("alice"));
        assert_eq!(&exec.next_job(s).expect("second job").data[..], b"2");
        assert!(exec.next_job(s).is_none());
        // Idle again: the next message starts a new drain.
        assert_eq!(
            exec.enqueue(s, &Bytes::new(), job(b"3")).ok(),
            Some(Enqueued::StartDrain)
        );
        assert_eq!(exec.next_job(s).expect("third").uid, None);
    }

    #[test]
    fn a_full_session_queue_gives_the_job_back() {
        let exec = Queues::new(1);
        let s = SessionId::new(1, 1);
        assert!(exec.enqueue(s, &Bytes::new(), job(b"1")).is_ok());
        assert!(exec.enqueue(s, &Bytes::new(), job(b"2")).is_err());
    }

    #[test]
    fn closing_a_gate_forgets_only_its_sessions() {
        let exec = Queues::new(8);
        let bob = Bytes::from_static(b"bob");
        for (gate, seq) in [(1, 1), (1, 2), (4, 1)] {
            let _ = exec.enqueue(SessionId::new(gate, seq), &bob, job(b"x"));
        }
        let mut gone = exec.close_gate(1);
        gone.sort_by_key(|(s, _)| *s);
        assert_eq!(gone.len(), 2);
        assert_eq!(gone[0].1.as_deref(), Some("bob"));
        assert!(exec.next_job(SessionId::new(1, 1)).is_none());
        assert!(exec.next_job(SessionId::new(4, 1)).is_some());
    }
}
