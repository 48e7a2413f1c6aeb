//! Running handlers, on any node: a client's message (in place on its gate,
//! or forwarded to a backend), a call or cast from another node (or from
//! this one); a panic becomes a handler error. Also `call` and `cast`
//! themselves, and the session-closed hooks. The tasks that run them are
//! tracked (the [`Runner`]), so shutdown waits for them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug_span, warn};

use super::rpc::RequestError;
use super::{Node, envelope};
use crate::api::{Ctx, Mode, NodeApi, Origin};
use crate::config::NodeType;
use crate::envelope::{Envelope, Kind, Status};
use crate::error::{CallError, ErrorCode};
use crate::frame::Frame;
use crate::handler::{BoxFuture, HandlerError, HandlerFailure};
use crate::metrics::Outcome;
use crate::peer::LinkError;
use crate::registry::Route;
use crate::session::{Session, SessionId};
use crate::trace::{AttrValue, SpanKind, TraceContext};

/// Called when a session closes, on the gate and on every node that served
/// it.
pub(crate) type SessionHook = Arc<dyn Fn(SessionClosed) -> BoxFuture<'static, ()> + Send + Sync>;

/// What a session-closed hook is told.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionClosed {
    /// The session that closed.
    pub session: crate::session::SessionId,
    /// Its uid, if it was bound.
    pub uid: Option<String>,
    /// The node running the hook.
    pub node: u16,
}

/// The node's handler tasks (calls, casts, forwarded messages) and its
/// session-closed hooks.
pub(crate) struct Runner {
    /// Every task it starts (shutdown waits for them).
    tasks: TaskTracker,
    /// Session-closed hooks.
    hooks: Vec<SessionHook>,
}

impl Runner {
    pub(crate) fn new(hooks: Vec<SessionHook>) -> Runner {
        Runner {
            tasks: TaskTracker::new(),
            hooks,
        }
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
    /// the runner idle while a handler runs in place.
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

    /// Waits until tracked work has ended (after [`Runner::close`]).
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
        Err(panic) => Err(HandlerFailure::Handler(HandlerError::msg(format!(
            "handler {} panicked: {}",
            route.name,
            panic_text(&*panic)
        )))),
    }
}

/// A client's message to run (see [`Node::run_client`]).
pub(crate) struct ClientMessage<'a> {
    /// Its handler.
    pub(crate) route: &'static Route,
    /// The session it came from.
    pub(crate) session: SessionId,
    /// The uid bound when it was sent.
    pub(crate) uid: Option<Arc<str>>,
    /// Its payload.
    pub(crate) data: Bytes,
    /// The session itself when the handler runs on its gate: replies go
    /// straight to its queue, without a table lookup.
    pub(crate) local: Option<&'a Arc<Session>>,
    /// The context of the span that sent it (the gate's), when tracing:
    /// the handler runs in a child span of it, and the trace id is in this
    /// node's log lines for the message.
    pub(crate) trace: Option<&'a TraceContext>,
}

impl Node {
    /// Runs a client message's handler on behalf of `api` (the node's
    /// role) and returns its outcome for the client: the returned reply, or
    /// the error answer (per the policy), or nothing.
    pub(crate) async fn run_client(
        &self,
        api: Arc<dyn NodeApi>,
        msg: ClientMessage<'_>,
    ) -> Option<Frame> {
        let ClientMessage {
            route,
            session,
            uid,
            data,
            local,
            trace,
        } = msg;
        let origin = Origin {
            session: Some(session),
            uid,
        };
        let mut ctx = Ctx::new(api, route.msg_id, Mode::Client, origin, local.cloned());
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
                Err(f) => Outcome::of(&f.code()),
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
        match result {
            Ok(Some(reply)) => Some(Frame::new(route.msg_id, reply)),
            Ok(None) => None,
            Err(failure) => {
                match failure {
                    HandlerFailure::Payload(_) => &self.metrics.bad_payload,
                    HandlerFailure::Handler(_) => &self.metrics.handler_errors,
                }
                .add(1);
                warn!(%session, msg_id = route.msg_id, handler = route.name, error = %failure, "message failed");
                self.error_frame(route.msg_id, &failure.code(), &failure.to_string())
            }
        }
    }

    /// Runs the handler of a call or cast on behalf of `api` and returns
    /// its answer.
    pub(crate) async fn invoke(
        &self,
        api: Arc<dyn NodeApi>,
        route: &'static Route,
        mode: Mode,
        origin: Origin,
        data: Bytes,
    ) -> (Status, Bytes) {
        let mut ctx = Ctx::new(api, route.msg_id, mode, origin, None);
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

    /// Calls the handler of `frame`'s msg_id on a node of `group` and waits
    /// for its reply (`api` runs it when this node is the one chosen).
    pub(crate) async fn call(
        &self,
        api: Arc<dyn NodeApi>,
        group: &str,
        frame: Frame,
        origin: Origin,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let msg_id = frame.msg_id;
        let target = self.call_target(group, origin.session)?;
        self.metrics.calls.add(1);
        let timed_out = || CallError::Timeout {
            group: group.to_string(),
            msg_id,
            after: timeout,
        };
        let (status, answer) = if target == self.id {
            let route = self
                .handlers
                .get(msg_id)
                .ok_or_else(|| CallError::NoHandler {
                    group: group.to_string(),
                    msg_id,
                })?;
            let fut = self.invoke(api, route, Mode::Call { from: self.id }, origin, frame.data);
            tokio::time::timeout(timeout, fut).await.map_err(|_| {
                self.metrics.call_timeouts.add(1);
                timed_out()
            })?
        } else {
            let env = self.call_envelope(Kind::Call, frame, origin);
            match self.request(target, env, timeout).await {
                Ok(a) => a,
                Err(RequestError::Timeout) => {
                    self.metrics.call_timeouts.add(1);
                    return Err(timed_out());
                }
                Err(RequestError::Lost) | Err(RequestError::Link(LinkError::Down)) => {
                    return Err(CallError::LinkLost { node: target });
                }
                Err(RequestError::Link(LinkError::Full)) => {
                    return Err(CallError::Congested { node: target });
                }
            }
        };
        match status {
            Status::Ok => Ok(answer),
            Status::NoReply => Err(CallError::NoReply {
                group: group.to_string(),
                msg_id,
            }),
            Status::NotFound => Err(CallError::NoHandler {
                group: group.to_string(),
                msg_id,
            }),
            Status::Failed => {
                let (code, message) = crate::handler::decode_failure(&answer);
                Err(CallError::Remote {
                    node: target,
                    code,
                    message,
                })
            }
        }
    }

    /// Sends a cast of `frame`'s msg_id to a node of `group`; the route to
    /// run here when this node is the one chosen (see [`cast`]).
    fn cast_out(
        &self,
        group: &str,
        frame: Frame,
        origin: Origin,
    ) -> Result<Option<(&'static Route, Frame, Origin)>, CallError> {
        let target = self.call_target(group, origin.session)?;
        if target == self.id {
            let route = self
                .handlers
                .get(frame.msg_id)
                .ok_or_else(|| CallError::NoHandler {
                    group: group.to_string(),
                    msg_id: frame.msg_id,
                })?;
            return Ok(Some((route, frame, origin)));
        }
        let env = self.call_envelope(Kind::Cast, frame, origin);
        let peer = self
            .links
            .get(target)
            .ok_or(CallError::LinkLost { node: target })?;
        peer.send(env).map_err(|e| match e {
            LinkError::Down => CallError::LinkLost { node: target },
            LinkError::Full => CallError::Congested { node: target },
        })?;
        Ok(None)
    }

    /// A call or cast carrying the caller's session and uid.
    fn call_envelope(&self, kind: Kind, frame: Frame, origin: Origin) -> Envelope {
        let session = origin.session.map_or(0, |s| s.0);
        let mut env = envelope(kind, self.id, frame.msg_id, session, frame.data);
        if let Some(uid) = origin.uid {
            env.uid = Bytes::copy_from_slice(uid.as_bytes());
        }
        env
    }

    fn call_target(&self, group: &str, session: Option<SessionId>) -> Result<u16, CallError> {
        let g = self
            .routing
            .group(group)
            .ok_or_else(|| CallError::UnknownGroup {
                group: group.to_string(),
            })?;
        if g.node_type == NodeType::Gate && !g.nodes.contains(&self.id) {
            return Err(CallError::GateGroup {
                group: group.to_string(),
            });
        }
        let key = match session {
            Some(s) => s.0,
            None => u64::from(self.rpc.next_id()),
        };
        self.choose(g, key, None)
            .ok_or_else(|| CallError::NoLiveNode {
                group: group.to_string(),
            })
    }

    /// Runs the hooks of a session that closed.
    pub(crate) fn run_hooks(&self, session: SessionId, uid: Option<Arc<str>>) {
        self.runner.run_hooks(self.id, session, uid);
        // A draining shutdown now has hook tasks to wait for.
        self.work_finished();
    }
}

/// A node in one of its roles (a gate or a backend): what runs handlers
/// needs both the shared [`Node`] and the role's outbound API for the
/// handlers' contexts.
pub(crate) trait Role: NodeApi + Sized {
    /// The shared node.
    fn node(&self) -> &Node;
}

/// A call or cast from node `from` to `role`: its handler runs as tracked
/// work; a call's answer goes back to `from`.
pub(crate) fn on_call<R: Role>(role: &Arc<R>, from: u16, env: Envelope) {
    let node = role.node();
    let respond = env.kind == Kind::Call;
    let Some(route) = node.handlers.get(env.msg_id) else {
        warn!(
            from,
            msg_id = env.msg_id,
            "call for a msg_id with no handler here"
        );
        if respond {
            let why = format!(
                "node {} has no handler for msg_id {}",
                node.name, env.msg_id
            );
            node.respond(
                from,
                env.request,
                Status::Failed,
                crate::handler::encode_failure(&ErrorCode::UnknownMsgId, &why),
            );
        }
        return;
    };
    let mode = if respond {
        Mode::Call { from }
    } else {
        Mode::Cast { from }
    };
    let origin = Origin {
        session: (env.session != 0).then_some(SessionId(env.session)),
        uid: super::uid_of(&env.uid),
    };
    let role = role.clone();
    node.runner.spawn(async move {
        let node = role.node();
        let api: Arc<dyn NodeApi> = role.clone();
        let (status, payload) = node.invoke(api, route, mode, origin, env.payload).await;
        if respond {
            node.respond(from, env.request, status, payload);
        }
    });
}

/// `role`'s cast of `frame`'s msg_id to a node of `group`: sent, or run
/// here as tracked work when this node is the one chosen.
pub(crate) fn cast<R: Role>(
    role: &Arc<R>,
    group: &str,
    frame: Frame,
    origin: Origin,
) -> Result<(), CallError> {
    let node = role.node();
    let Some((route, frame, origin)) = node.cast_out(group, frame, origin)? else {
        return Ok(());
    };
    let from = node.id;
    let role = role.clone();
    node.runner.spawn(async move {
        let api: Arc<dyn NodeApi> = role.clone();
        role.node()
            .invoke(api, route, Mode::Cast { from }, origin, frame.data)
            .await;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_hook_is_contained() {
        let hook: SessionHook = Arc::new(|_| panic!("hook made no future"));
        let late: SessionHook = Arc::new(|_| Box::pin(async { panic!("hook future panicked") }));
        let exec = Runner::new(vec![hook, late]);
        exec.run_hooks(1, SessionId::new(1, 1), None);
        exec.close();
        exec.wait().await;
        assert!(exec.is_idle());
    }
}
