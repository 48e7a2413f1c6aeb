//! The zinx client frame: the wire format lives in the client SDK
//! (`zinx_cluster_client::wire`), shared by both ends; this module adds
//! what only the runtime needs: the write batch, and the WebSocket header a
//! frame travels behind on a WebSocket connection.

use bytes::{BufMut, BytesMut};

pub use zinx_cluster_client::wire::{
    DEFAULT_MAX_FRAME_LEN, Frame, FrameCodec, FrameError, HEADER_LEN, ZINX_HEARTBEAT_MSG_ID,
};

/// A writer (a client session, a link) gathers up to this many bytes of
/// queued frames into one write: few syscalls under load, bounded memory.
pub(crate) const WRITE_BATCH: usize = 64 * 1024;

/// `FIN` and the binary opcode: the first byte of a WebSocket server frame
/// holding one whole message.
const WS_FIN_BINARY: u8 = 0x82;

/// Appends the header of an unmasked WebSocket server frame (RFC 6455
/// 5.2) with `first` (FIN and opcode) for a payload of `len` bytes: the
/// shortest length encoding.
pub(crate) fn put_ws_header(out: &mut BytesMut, first: u8, len: usize) {
    out.reserve(10 + len);
    out.put_u8(first);
    if len < 126 {
        out.put_u8(len as u8);
    } else if let Ok(n) = u16::try_from(len) {
        out.put_u8(126);
        out.put_u16(n);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
}

/// Appends `frame` as the wire carries it: as is, or as one WebSocket
/// binary message (zinx's WebSocket mode: one frame per message).
pub(crate) fn encode_wrapped(frame: &Frame, ws: bool, out: &mut BytesMut) {
    if ws {
        put_ws_header(out, WS_FIN_BINARY, frame.wire_len());
    }
    // A frame over 4 GiB cannot exist here: sizes are bounded.
    let _ = frame.encode_into(out);
}
