//! `Ctx`: what a handler can do.

/// The handler context.
pub struct Ctx {
    pub(crate) msg_id: u32,
}
