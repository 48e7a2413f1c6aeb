//! How a gate's clients reach it: plain TCP, WebSocket ([`ws`]), TLS
//! ([`tls`], [`tls_wire`]) or WSS, all served by one connection loop
//! ([`conn`]) that ends in the same session.
//!
//! A transport knows bytes, frames and close codes, never the node: the
//! gate hands the loop its session and an [`Inbound`](conn::Inbound) ("a
//! frame came in", "where is the gate in its life"), and the loop runs the
//! connection until it ends, returning why ([`Ended`]). So the transports
//! are tested here with an echo, without a cluster.

pub(crate) mod close;
pub(crate) mod conn;
pub(crate) mod tls;
pub(crate) mod tls_wire;
pub(crate) mod ws;
mod ws_frame;

#[cfg(test)]
mod tests;

use crate::session::CloseReason;

/// Why a client connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// One of the session's own reasons (client closed, idle, oversize,
    /// kick, queue full, shutdown, socket error).
    Session(CloseReason),
    /// A WebSocket text message: zinx frames travel in binary messages.
    TextMessage,
    /// A WebSocket protocol violation (bad masking, bad opcode, ..), or a
    /// TLS one.
    Protocol,
    /// A resume moved the connection to another session (the gate goes on
    /// serving it with that one).
    Switched,
    /// Another connection took the session over (a resume from the same
    /// client on a new socket): this one ends, the session does not.
    TakenOver,
}

impl Ended {
    /// The session's close reason (for counters and the log).
    pub(crate) fn reason(self) -> CloseReason {
        match self {
            Ended::Session(r) => r,
            Ended::TextMessage | Ended::Protocol => CloseReason::IoError,
            Ended::Switched | Ended::TakenOver => CloseReason::ClientClosed,
        }
    }
}

/// The WebSocket frame parser, for the fuzz target (feature `internals`):
/// feeds `data` in chunks of `chunk` bytes, as a client's reads would
/// bring it; never panics, whatever the bytes.
#[cfg(feature = "internals")]
pub fn fuzz_ws_frames(data: &[u8], chunk: usize) {
    ws_frame::fuzz(data, chunk)
}
