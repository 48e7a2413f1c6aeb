//! The end of a client connection: what is queued, the wire's last words
//! (a WebSocket close frame with its code, a TLS close_notify), then an
//! orderly close — or a reset when the client does not take what is left.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tracing::{debug, warn};

use super::Ended;
use super::conn::{Reading, Wire};
use super::tls_wire::write_all;
use super::ws_frame;
use crate::session::{CloseReason, Session};

/// On close, queued frames get this long to reach the client, and the
/// client this long to close its side after ours.
pub(crate) const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// The close frame's code and reason telling a WebSocket client why, when
/// there is one to send.
fn close_frame(ended: Ended) -> Option<(u16, &'static str)> {
    Some(match ended {
        Ended::TextMessage => (1003, "zinx frames travel in binary messages"),
        Ended::Protocol => (1002, "WebSocket protocol error"),
        Ended::Session(CloseReason::Oversize) => (1009, "frame over max_frame_len"),
        Ended::Session(CloseReason::Idle) => (1000, "idle timeout"),
        Ended::Session(CloseReason::Kicked) => (1000, "kicked"),
        Ended::Session(CloseReason::QueueFull) => (1008, "client does not read"),
        Ended::Session(CloseReason::Moved) => (1001, "session moved to another gate"),
        Ended::Session(CloseReason::Shutdown) => (1001, "server shutting down"),
        Ended::Session(CloseReason::ClientClosed | CloseReason::IoError)
        | Ended::Switched
        | Ended::TakenOver => return None,
    })
}

/// Ends a connection that ended with `ended`: takes the socket back from
/// the session's queue, writes what is queued (not to a client that
/// stopped reading) and the wire's last words (a WebSocket close frame, a
/// TLS close_notify), then closes.
///
/// A close the server decides (idle, kick, shutdown, a client that does
/// not read, a breach) frees the kernel's memory at once: when what it
/// must write does not fit the socket now, or the client has not closed
/// its side within [`CLOSE_FLUSH`] of ours, the connection is reset
/// (SO_LINGER 0) instead of left in FIN-WAIT holding unsent bytes.
pub(crate) async fn finish(
    stream: Arc<TcpStream>,
    wire: &mut Wire,
    session: &Session,
    reading: &mut Reading,
    ended: Ended,
) {
    // Only this task writes from here on.
    session.detach(&stream);
    let stream = match Arc::try_unwrap(stream) {
        Ok(stream) => stream,
        // Unreachable: the queue held the only other handle, and writers
        // borrow it under the queue's lock.
        Err(_) => {
            warn!(session = %session.id, "client socket still shared at close: dropped without a flush");
            return;
        }
    };
    if ended == Ended::Session(CloseReason::IoError) {
        // Nothing more can be said.
        return;
    }
    let by_client = ended == Ended::Session(CloseReason::ClientClosed);
    let mut plain = BytesMut::new();
    // One that stopped reading gets no backlog, only why.
    if ended != Ended::Session(CloseReason::QueueFull) {
        session.drain_into(&mut plain, usize::MAX);
    }
    let ws_closed = match wire {
        Wire::Ws(ws) => Some(ws),
        Wire::Wss(b) => Some(&mut b.1),
        Wire::Tcp | Wire::Tls(_) => None,
    };
    if let Some(ws) = ws_closed {
        if let Some(reply) = ws.close_reply.take() {
            ws_frame::put_close_reply(&mut plain, &reply);
            ws.closed = true;
        } else if ws.closed {
            // Nothing may follow a close frame.
            plain.clear();
        } else if let Some((code, why)) = close_frame(ended) {
            ws_frame::put_close(&mut plain, code, why);
            ws.closed = true;
        }
    }
    let mut out = match wire.tls() {
        Some(tls) => {
            // Behind the records not yet written.
            let mut out = std::mem::take(&mut reading.out);
            let said = if plain.is_empty() {
                Ok(())
            } else {
                tls.encrypt(&plain, &mut out)
            }
            .and_then(|()| tls.close_notify(&mut out));
            if let Err(e) = said {
                debug!(session = %session.id, error = %e, "TLS close not said");
            }
            out
        }
        None => plain,
    };
    if ended == Ended::Session(CloseReason::QueueFull) {
        // It does not read: its socket is full already. Why, if it fits.
        let _ = stream.try_write(&out);
        reset(&stream, session);
        return;
    }
    if by_client {
        // The client closed (its close frame or close_notify gets ours):
        // nothing to wait for beyond that.
        if !out.is_empty() {
            let _ = tokio::time::timeout(CLOSE_FLUSH, write_all(&stream, &mut out)).await;
        }
        return;
    }
    // Whatever the socket takes now; the rest, for a reader that is just
    // slow, within the bound.
    let flushed = tokio::time::timeout(CLOSE_FLUSH, write_all(&stream, &mut out))
        .await
        .is_ok_and(|r| r.is_ok());
    if !flushed {
        reset(&stream, session);
        return;
    }
    // Our side is done; wait (bounded) for the client's: a close with
    // unread data in our receive buffer sends a reset, and a reset can make
    // the client drop answers it has received but not yet read.
    let mut stream = stream;
    let closed = tokio::time::timeout(CLOSE_FLUSH, async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? != 0 {}
        Ok::<(), io::Error>(())
    })
    .await;
    if !closed.is_ok_and(|r| r.is_ok()) {
        reset(&stream, session);
    }
}

/// Makes the close of `stream` a reset: the kernel drops what is unsent.
fn reset(stream: &TcpStream, session: &Session) {
    if let Err(e) = stream.set_zero_linger() {
        debug!(session = %session.id, error = %e, "abortive close not set");
    }
}

/// Drops a connection whose session lives on (it waits for a resume, or a
/// resume took it to another connection): the socket is let go, nothing of
/// the session's queue is written to it, and a client still reading gets
/// a reset rather than a clean end it could take for the session's.
pub(crate) fn drop_socket(stream: Arc<TcpStream>, session: &Session) {
    session.detach(&stream);
    if let Err(e) = stream.set_zero_linger() {
        debug!(session = %session.id, error = %e, "abortive close not set");
    }
}
