//! `call` and `cast`: running a handler of another group (or of this
//! node's own) on a node chosen by the group's balancing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::ctx::Mode;
use super::rpc::RequestError;
use super::{Node, envelope};
use crate::config::NodeType;
use crate::envelope::{Envelope, Kind, Status};
use crate::error::CallError;
use crate::peer::LinkError;
use crate::session::SessionId;

/// The session and uid a call carries, so the callee's `Ctx` sees them.
pub(crate) type Origin = (Option<SessionId>, Option<Arc<str>>);

impl Node {
    /// Calls the handler of `msg_id` on a node of `group` and waits for its
    /// reply.
    pub(crate) async fn call(
        self: &Arc<Self>,
        group: &str,
        msg_id: u32,
        payload: Bytes,
        origin: Origin,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let target = self.call_target(group, origin.0)?;
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
            let fut = self.invoke(
                route,
                Mode::Call { from: self.id },
                origin.0,
                origin.1,
                payload,
            );
            tokio::time::timeout(timeout, fut).await.map_err(|_| {
                self.metrics.call_timeouts.add(1);
                timed_out()
            })?
        } else {
            let env = self.call_envelope(Kind::Call, msg_id, payload, origin);
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

    /// Runs the handler of `msg_id` on a node of `group`; no answer.
    pub(crate) fn cast(
        self: &Arc<Self>,
        group: &str,
        msg_id: u32,
        payload: Bytes,
        origin: Origin,
    ) -> Result<(), CallError> {
        let target = self.call_target(group, origin.0)?;
        if target == self.id {
            let route = self
                .handlers
                .get(msg_id)
                .ok_or_else(|| CallError::NoHandler {
                    group: group.to_string(),
                    msg_id,
                })?;
            let node = self.clone();
            self.exec.spawn(async move {
                node.invoke(
                    route,
                    Mode::Cast { from: node.id },
                    origin.0,
                    origin.1,
                    payload,
                )
                .await;
            });
            return Ok(());
        }
        let env = self.call_envelope(Kind::Cast, msg_id, payload, origin);
        let peer = self
            .links
            .get(target)
            .ok_or(CallError::LinkLost { node: target })?;
        peer.send(env).map_err(|e| match e {
            LinkError::Down => CallError::LinkLost { node: target },
            LinkError::Full => CallError::Congested { node: target },
        })
    }

    /// A call or cast carrying the caller's session and uid.
    fn call_envelope(&self, kind: Kind, msg_id: u32, payload: Bytes, origin: Origin) -> Envelope {
        let session = origin.0.map_or(0, |s| s.0);
        let mut env = envelope(kind, self.id, msg_id, session, payload);
        if let Some(uid) = origin.1 {
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
        self.choose(g, key).ok_or_else(|| CallError::NoLiveNode {
            group: group.to_string(),
        })
    }
}

/// The payload of a typed call or cast request.
pub(crate) fn encode_request<Req: crate::Message>(request: &Req) -> Result<Bytes, CallError> {
    request
        .to_bytes()
        .map_err(|error| CallError::Encode { error })
}

/// A typed call: `request` encoded, sent by `raw` (a handler's or a
/// handle's raw call), the answer decoded as `A`.
pub(crate) async fn typed<Req, A, F, Fut>(
    group: &str,
    request: &Req,
    raw: F,
) -> Result<A, CallError>
where
    Req: crate::Message,
    A: crate::FromPayload,
    F: FnOnce(Bytes) -> Fut,
    Fut: std::future::Future<Output = Result<Bytes, CallError>>,
{
    let answer = raw(encode_request(request)?).await?;
    decode_answer(group, Req::ID, answer)
}

/// A call's answer as the type the caller asked for.
fn decode_answer<A: crate::FromPayload>(
    group: &str,
    msg_id: u32,
    answer: Bytes,
) -> Result<A, CallError> {
    A::from_payload(answer).map_err(|error| CallError::BadAnswer {
        group: group.to_string(),
        msg_id,
        error,
    })
}
