//! What can be sent ([`Outgoing`]: a typed message or a raw frame) and the
//! [`Call`] a `call` returns (awaited for the answer, with its timeout as an
//! option).

use std::future::IntoFuture;
use std::marker::PhantomData;
use std::time::Duration;

use super::ClusterHandle;
use crate::error::CallError;
use crate::frame::Frame;
use crate::handler::{BoxFuture, FromPayload};
use crate::message::{Message, MessageError};

/// What the outbound operations send: a reference to a
/// `#[derive(Message)]` value (encoded by its codec, sent on its msg_id),
/// or a raw [`Frame`] (a msg_id and bytes, for proxies and payloads that
/// are no `Message`).
///
/// ```rust,no_run
/// # use zinx_cluster::prelude::*;
/// # #[derive(Message, serde::Serialize, serde::Deserialize)] #[message(id = 3)] struct Said { text: String }
/// # fn f(ctx: &Ctx, to: SessionId) -> Result<(), SendError> {
/// ctx.push(to, &Said { text: "hi".into() })?;   // typed, on msg_id 3
/// ctx.push(to, Frame::new(3, r#"{"text":"hi"}"#))?;  // the same bytes, raw
/// # Ok(()) }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent",
    label = "not a message",
    note = "send a reference to a `#[derive(Message)]` value (`&msg`), or a `Frame::new(msg_id, bytes)` for raw bytes"
)]
pub trait Outgoing {
    /// The frame to send: msg_id and encoded payload.
    fn into_frame(self) -> Result<Frame, MessageError>;
}

impl<M: Message> Outgoing for &M {
    fn into_frame(self) -> Result<Frame, MessageError> {
        Ok(Frame::new(M::ID, self.to_bytes()?))
    }
}

impl Outgoing for Frame {
    fn into_frame(self) -> Result<Frame, MessageError> {
        Ok(self)
    }
}

/// A call being prepared: `.await` it for the answer, decoded as `A`.
/// Options: [`timeout`](Call::timeout).
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<'a, A> {
    /// The handle making the call (its node, its origin).
    handle: &'a ClusterHandle,
    /// The group called.
    group: &'a str,
    /// The request, or why it did not encode.
    request: Result<Frame, MessageError>,
    /// The timeout; `call_timeout_ms` when `None`.
    timeout: Option<Duration>,
    /// The answer's type.
    answer: PhantomData<fn() -> A>,
}

impl<A> std::fmt::Debug for Call<'_, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("group", &self.group)
            .field("msg_id", &self.request.as_ref().map(|r| r.msg_id).ok())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<'a, A> Call<'a, A> {
    pub(super) fn new(
        handle: &'a ClusterHandle,
        group: &'a str,
        request: Result<Frame, MessageError>,
    ) -> Self {
        Call {
            handle,
            group,
            request,
            timeout: None,
            answer: PhantomData,
        }
    }

    /// Fails with [`CallError::Timeout`] after `timeout` instead of the
    /// configured `call_timeout_ms`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl<'a, A: FromPayload + 'a> IntoFuture for Call<'a, A> {
    type Output = Result<A, CallError>;
    type IntoFuture = BoxFuture<'a, Result<A, CallError>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let request = self.request.map_err(|error| CallError::Encode { error })?;
            let msg_id = request.msg_id;
            let answer = self
                .handle
                .call_frame(self.group, request, self.timeout)
                .await?;
            A::from_payload(answer).map_err(|error| CallError::BadAnswer {
                group: self.group.to_string(),
                msg_id,
                error,
            })
        })
    }
}
