//! Running handlers: the per-session queues that keep one session's
//! forwarded messages in order, the handler invocation itself (a panic
//! becomes a handler error), and the session-closed hooks.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use futures::FutureExt;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, debug_span, warn};

use super::ctx::{Ctx, Mode};
use super::{Node, TO_SESSION_FINAL, uid_of};
use crate::envelope::{Kind, Status};
use crate::handler::{BoxFuture, HandlerFailure};
use crate::metrics::Outcome;
use crate::registry::Route;
use crate::session::{Session, SessionId};
use crate::trace::{AttrValue, SpanKind, TraceContext};

/// Called when a session closes, on the gate and on every node that served
/// it.
pub type SessionHook = Arc<dyn Fn(SessionClosed) -> BoxFuture<'static, ()> + Send + Sync>;

/// What a session-closed hook is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionClosed {
    /// The session that closed.
    pub session: SessionId,
    /// Its uid, if it was bound.
    pub uid: Option<String>,
    /// The node running the hook.
    pub node: u16,
}

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
}

/// One forwarded message waiting to run.
pub(crate) struct Job {
    /// Its handler.
    pub(crate) route: &'static Route,
    /// Its payload.
    pub(crate) data: Bytes,
    /// The uid bound when the gate forwarded this message: a message queued
    /// before a logout still runs as the user who sent it.
    uid: Option<Arc<str>>,
    /// The gate's number for this forward (`request` of the envelope),
    /// returned with its completion so the gate knows which one finished.
    pub(crate) forward: u32,
    /// The trace the gate started for this message, when tracing is on.
    pub(crate) trace: Option<TraceContext>,
}

impl Job {
    pub(crate) fn new(route: &'static Route, data: Bytes) -> Job {
        Job {
            route,
            data,
            uid: None,
            forward: 0,
            trace: None,
        }
    }
}

/// What [`Executor::enqueue`] did with a job.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Enqueued {
    /// Queued behind the session's running job.
    Queued,
    /// Queued, and nothing runs this session's jobs: start a drain.
    StartDrain,
}

/// The node's handler executions and hooks.
pub(crate) struct Executor {
    /// Sessions served by this node, with their waiting messages.
    queues: DashMap<SessionId, SessionQueue>,
    /// `node_session_queue`: jobs one session may have waiting.
    limit: usize,
    /// Drain tasks, calls, casts and hooks (shutdown waits for them).
    tasks: TaskTracker,
    /// Session-closed hooks.
    hooks: Vec<SessionHook>,
}

impl Executor {
    pub(crate) fn new(limit: usize, hooks: Vec<SessionHook>) -> Executor {
        Executor {
            queues: DashMap::new(),
            limit: limit.max(1),
            tasks: TaskTracker::new(),
            hooks,
        }
    }

    /// Queues a forwarded message behind the session's earlier ones; gives
    /// the job back when the session already has `limit` waiting.
    pub(crate) fn enqueue(
        &self,
        session: SessionId,
        uid: &Bytes,
        mut job: Job,
    ) -> Result<Enqueued, Job> {
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
        }
        job
    }

    /// Forgets a session (it closed); its uid when this node served it.
    pub(crate) fn close_session(&self, session: SessionId) -> Option<Option<Arc<str>>> {
        self.queues.remove(&session).map(|(_, q)| q.uid)
    }

    /// The sessions of gate `gate` this node knows.
    pub(crate) fn sessions_of(&self, gate: u16) -> Vec<SessionId> {
        self.queues
            .iter()
            .filter(|q| q.key().gate() == gate)
            .map(|q| *q.key())
            .collect()
    }

    /// Forgets every session of gate `gate`; returns them with their uids.
    #[cfg(test)]
    pub(crate) fn close_gate(&self, gate: u16) -> Vec<(SessionId, Option<Arc<str>>)> {
        self.sessions_of(gate)
            .into_iter()
            .filter_map(|s| self.close_session(s).map(|uid| (s, uid)))
            .collect()
    }

    /// Runs `fut` as tracked work (shutdown waits for it).
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(fut);
    }

    /// Runs `fut` as tracked work, starting right here: polled once in
    /// place, and spawned only if it has to wait. Most handlers finish
    /// without waiting, and then cost no task, no scheduling and no
    /// cross-thread wake-up, and their answers join the link's current
    /// write. Tracked from before that first poll, so shutdown never sees
    /// the executor idle while a handler runs in place.
    pub(crate) fn run_eagerly<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut fut = Box::pin(self.tasks.track_future(fut));
        // A no-op waker is enough: a future that is pending is polled
        // again by its task right away, with that task's waker, and a
        // future must wake the waker of its latest poll only.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if fut.as_mut().poll(&mut cx).is_pending() {
            tokio::spawn(fut);
        }
    }

    /// Runs the session-closed hooks. A hook that panics, whether while
    /// making its future or while running it, is logged like a panicking
    /// handler and hurts nobody else.
    pub(crate) fn run_hooks(&self, node: u16, session: SessionId, uid: Option<Arc<str>>) {
        for hook in &self.hooks {
            let closed = SessionClosed {
                session,
                uid: uid.as_deref().map(str::to_string),
                node,
            };
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(closed))) {
                Ok(fut) => {
                    self.tasks.spawn(async move {
                        if let Err(panic) = std::panic::AssertUnwindSafe(fut).catch_unwind().await
                        {
                            warn!(%session, panic = panic_text(&*panic), "session-closed hook panicked");
                        }
                    });
                }
                Err(panic) => {
                    warn!(%session, panic = panic_text(&*panic), "session-closed hook panicked");
                }
            }
        }
    }

    /// No more new work: `wait` can end.
    pub(crate) fn close(&self) {
        self.tasks.close();
    }

    /// Whether no tracked work runs.
    pub(crate) fn is_idle(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits until tracked work has ended (after [`Executor::close`]).
    pub(crate) async fn wait(&self) {
        self.tasks.wait().await
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// Runs a handler; a panic becomes a handler error.
async fn run_entry(
    route: &'static Route,
    ctx: &mut Ctx,
    data: Bytes,
) -> Result<Option<Bytes>, HandlerFailure> {
    // Debug level: a per-message span must cost nothing when debug logs
    // are off (an enabled span allocates and formats its fields).
    let span = debug_span!("msg", msg_id = route.msg_id, group = route.group);
    match std::panic::AssertUnwindSafe((route.entry)(ctx, data).instrument(span))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(panic) => Err(HandlerFailure::Handler(crate::HandlerError::msg(format!(
            "handler {} panicked: {}",
            route.name,
            panic_text(&*panic)
        )))),
    }
}

/// Where a client message comes from, for [`Node::run_client_message`].
struct How<'a> {
    /// The session itself when the handler runs on its gate.
    local: Option<&'a Arc<Session>>,
    /// The gate's number for a forwarded message (0 in place).
    forward: u32,
    /// The trace the gate started for it, when tracing is on.
    trace: Option<&'a TraceContext>,
}

impl Node {
    /// Runs a client message's handler and delivers its outcome: the reply
    /// to the session, or the error answer.
    ///
    /// `local` is the session itself when the handler runs on its gate:
    /// replies then go straight to its queue, without a table lookup. When
    /// the message was forwarded (`local` is `None`), the outcome is marked
    /// final, so the gate knows the message is finished.
    ///
    /// `trace` is the context of the span that sent the message (the
    /// gate's): with tracing on, the handler runs in a child span of it,
    /// and the trace id is in this node's log lines for the message.
    pub(crate) async fn run_client_message(
        self: &Arc<Self>,
        route: &'static Route,
        session: SessionId,
        uid: Option<Arc<str>>,
        data: Bytes,
        local: Option<&Arc<Session>>,
        trace: Option<&TraceContext>,
    ) {
        let how = How {
            local,
            forward: 0,
            trace,
        };
        self.run_message(route, session, uid, data, how).await;
    }

    /// [`Node::run_client_message`]; a forwarded message's completion
    /// carries the gate's number `forward` for it.
    async fn run_message(
        self: &Arc<Self>,
        route: &'static Route,
        session: SessionId,
        uid: Option<Arc<str>>,
        data: Bytes,
        how: How<'_>,
    ) {
        let How {
            local,
            forward,
            trace,
        } = how;
        let forwarded = local.is_none();
        let mut ctx = Ctx::new(self.clone(), route.msg_id, Mode::Client, Some(session), uid);
        ctx.local = local.cloned();
        let mut span = match trace {
            Some(parent) => self
                .tracer
                .start_child(parent, "zinx.handler", SpanKind::Consumer),
            None => None,
        };
        let timed = self.labelled.enabled() && crate::metrics::sample_handler();
        let started = timed.then(std::time::Instant::now);
        let result = match &span {
            Some(sp) => {
                let trace_id = sp.context().trace_id_hex();
                run_entry(route, &mut ctx, data)
                    .instrument(tracing::info_span!("trace", trace_id = %trace_id))
                    .await
            }
            None => run_entry(route, &mut ctx, data).await,
        };
        self.metrics.handled.add(1);
        if self.labelled.enabled() {
            let outcome = match &result {
                Ok(_) => Outcome::Ok,
                Err(f) => Outcome::of_code(f.code()),
            };
            match started {
                Some(started) => {
                    self.labelled
                        .handled_sample(route.msg_id, outcome, started.elapsed())
                }
                None => self.labelled.message(route.msg_id, outcome),
            }
        }
        if let Some(sp) = span.as_mut() {
            sp.set("zinx.msg_id", AttrValue::Int(i64::from(route.msg_id)));
            sp.set("zinx.handler", AttrValue::Str(route.name.to_string()));
            sp.set("zinx.session", AttrValue::Str(session.to_string()));
            if let Err(f) = &result {
                sp.fail(f.to_string());
            }
        }
        drop(span);
        let outcome = match result {
            Ok(Some(reply)) => Some(crate::frame::Frame::new(route.msg_id, reply)),
            Ok(None) => None,
            Err(failure) => {
                match failure {
                    HandlerFailure::Payload(_) => &self.metrics.bad_payload,
                    HandlerFailure::Handler(_) => &self.metrics.handler_errors,
                }
                .add(1);
                warn!(%session, msg_id = route.msg_id, handler = route.name, error = %failure, "message failed");
                let frame = self.error_frame(route.msg_id, failure.code(), &failure.to_string());
                if frame.is_some() {
                    self.metrics.error_answers.add(1);
                }
                frame
            }
        };
        if forwarded {
            self.finish_forwarded(session, route.msg_id, forward, outcome);
        } else if let Some(frame) = outcome {
            if let Err(e) = ctx.reply_with(frame.msg_id, frame.data) {
                debug!(%session, msg_id = route.msg_id, error = %e, "reply not delivered");
            }
        }
    }

    /// Sends the last answer of a forwarded message to its gate, marked
    /// final and carrying the gate's number `forward` for the message;
    /// with no answer, a bare completion marker.
    pub(crate) fn finish_forwarded(
        &self,
        session: SessionId,
        msg_id: u32,
        forward: u32,
        answer: Option<crate::frame::Frame>,
    ) {
        let gate = session.gate();
        let mut env = match answer {
            Some(frame) => super::envelope(
                Kind::ToSession,
                self.id,
                frame.msg_id,
                session.0,
                frame.data,
            ),
            None => super::envelope(Kind::Done, self.id, msg_id, session.0, Bytes::new()),
        };
        env.flags = TO_SESSION_FINAL;
        env.request = forward;
        match self.links.get(gate) {
            Some(peer) => {
                if let Err(e) = peer.send(env) {
                    debug!(%session, msg_id, ?e, "final answer not sent: the gate's link is gone");
                }
            }
            None => debug!(%session, msg_id, "final answer for a gate without a link dropped"),
        }
    }

    /// Queues a forwarded message and starts its session's drain if idle.
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        session: SessionId,
        uid: &Bytes,
        job: Job,
    ) -> Result<(), Job> {
        if self.exec.enqueue(session, uid, job)? == Enqueued::StartDrain {
            let node = self.clone();
            self.exec
                .run_eagerly(async move { node.drain(session).await });
        }
        Ok(())
    }

    /// Runs a session's queued messages one after another.
    async fn drain(self: Arc<Self>, session: SessionId) {
        while let Some(job) = self.exec.next_job(session) {
            let how = How {
                local: None,
                forward: job.forward,
                trace: job.trace.as_ref(),
            };
            self.run_message(job.route, session, job.uid, job.data, how)
                .await;
        }
    }

    /// Runs the handler of a call or cast and returns its answer.
    pub(crate) async fn invoke(
        self: &Arc<Self>,
        route: &'static Route,
        mode: Mode,
        session: Option<SessionId>,
        uid: Option<Arc<str>>,
        data: Bytes,
    ) -> (Status, Bytes) {
        let mut ctx = Ctx::new(self.clone(), route.msg_id, mode, session, uid);
        let result = run_entry(route, &mut ctx, data).await;
        self.metrics.handled.add(1);
        match result {
            Ok(Some(reply)) => (Status::Ok, reply),
            Ok(None) => match ctx.take_call_reply() {
                Some(reply) => (Status::Ok, reply),
                None => (Status::NoReply, Bytes::new()),
            },
            Err(failure) => {
                self.metrics.handler_errors.add(1);
                warn!(msg_id = route.msg_id, handler = route.name, ?mode, error = %failure, "call failed");
                (Status::Failed, failure.to_answer())
            }
        }
    }

    /// Runs the hooks of a session that closed.
    pub(crate) fn run_hooks(&self, session: SessionId, uid: Option<Arc<str>>) {
        self.exec.run_hooks(self.id, session, uid);
        // A draining shutdown now has hook tasks to wait for.
        self.work_finished();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Route;

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
        let exec = Executor::new(8, Vec::new());
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
        let exec = Executor::new(1, Vec::new());
        let s = SessionId::new(1, 1);
        assert!(exec.enqueue(s, &Bytes::new(), job(b"1")).is_ok());
        assert!(exec.enqueue(s, &Bytes::new(), job(b"2")).is_err());
    }

    #[test]
    fn closing_a_gate_forgets_only_its_sessions() {
        let exec = Executor::new(8, Vec::new());
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

    #[tokio::test]
    async fn a_panicking_hook_is_contained() {
        let hook: SessionHook = Arc::new(|_| panic!("hook made no future"));
        let late: SessionHook = Arc::new(|_| Box::pin(async { panic!("hook future panicked") }));
        let exec = Executor::new(8, vec![hook, late]);
        exec.run_hooks(1, SessionId::new(1, 1), None);
        exec.close();
        exec.wait().await;
        assert!(exec.is_idle());
    }
}
