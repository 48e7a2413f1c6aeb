//! The zinx client frame: the wire format lives in the client SDK
//! (`zinx_cluster_client::wire`), shared by both ends; this module adds
//! what only the runtime needs.

pub use zinx_cluster_client::wire::{
    DEFAULT_MAX_FRAME_LEN, Frame, FrameCodec, FrameError, HEADER_LEN, ZINX_HEARTBEAT_MSG_ID,
};

/// A writer (a client session, a link) gathers up to this many bytes of
/// queued frames into one write: few syscalls under load, bounded memory.
pub(crate) const WRITE_BATCH: usize = 64 * 1024;
