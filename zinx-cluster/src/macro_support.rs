//! The glue the `#[handler]` expansion calls, re-exported as
//! `zinx_cluster::__private`. Not a public API: names and shapes may change
//! in any release.
//!
//! Each helper exists so that a mistake in a handler's signature is reported
//! at the user's own code with a message of ours: the expansion calls these
//! with spans taken from the user's argument and return types, and the traits
//! they bound carry `#[diagnostic::on_unimplemented]` notes.

use std::future::Future;
use std::marker::PhantomData;

use bytes::Bytes;

use crate::api::Ctx;
use crate::handler::{BoxFuture, HandlerFailure, IntoReply};
use crate::message::Message;

/// What every generated entry point returns (the return type of
/// [`HandlerFn`](crate::registry::HandlerFn)).
pub type EntryFuture<'a> = BoxFuture<'a, Result<Option<Bytes>, HandlerFailure>>;

/// A type a handler's first argument may have: the context, borrowed mutably
/// or shared. The entry point always holds `&mut Ctx`; this turns it into
/// what the handler asked for.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the first argument of a handler",
    label = "the first argument of a handler is its context",
    note = "a handler is `async fn name(ctx: &mut Ctx)` or `async fn name(ctx: &mut Ctx, payload: P)`; `ctx: &Ctx` works too"
)]
pub trait CtxArg<'a> {
    /// Reborrows the context as the handler's first argument.
    fn from_ctx(ctx: &'a mut Ctx) -> Self;
}

impl<'a> CtxArg<'a> for &'a mut Ctx {
    #[inline]
    fn from_ctx(ctx: &'a mut Ctx) -> Self {
        ctx
    }
}

impl<'a> CtxArg<'a> for &'a Ctx {
    #[inline]
    fn from_ctx(ctx: &'a mut Ctx) -> Self {
        ctx
    }
}

/// Converts what a handler returned into the entry point's result.
///
/// A generic function rather than a method call so that a return type
/// without [`IntoReply`] fails here, at the span of the user's return type,
/// with `IntoReply`'s note.
#[inline]
pub fn into_reply<R: IntoReply>(reply: R) -> Result<Option<Bytes>, HandlerFailure> {
    reply.into_reply().map_err(HandlerFailure::Handler)
}

/// Boxes the entry point's future. Generic over `F: Send` so that a handler
/// holding a non-`Send` value across an `.await` is reported at the
/// handler's signature (with rustc's note naming the value), not somewhere
/// inside the expansion.
#[inline]
pub fn boxed<'a, F>(future: F) -> BoxFuture<'a, F::Output>
where
    F: Future + Send + 'a,
{
    Box::pin(future)
}

/// The msg_id of a handler's payload type if it is a [`Message`], `None`
/// otherwise: `MessageIdOf::<P>::ID`.
///
/// A handler given both `msg_id = N` and a message payload asserts, in a
/// const, that the two agree. Whether `P` is a message is answered without
/// specialization: the inherent const below exists only for `P: Message`
/// and, when it does, path resolution prefers it to the trait's default.
pub struct MessageIdOf<P: ?Sized>(PhantomData<P>);

/// The fallback of [`MessageIdOf`]: not a message, no msg_id.
pub trait NotAMessage {
    /// `None`: the payload type says no msg_id.
    const ID: Option<u32> = None;
}

impl<P: ?Sized> NotAMessage for MessageIdOf<P> {}

impl<P: Message> MessageIdOf<P> {
    /// The payload type's msg_id.
    pub const ID: Option<u32> = Some(P::ID);
}
