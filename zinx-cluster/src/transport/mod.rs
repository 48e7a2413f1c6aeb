//! Client transports besides plain TCP: WebSocket ([`ws`]) and TLS
//! ([`tls`]), each ending in the same session as a TCP client.
//!
//! A transport knows bytes, frames and close codes, never the node: the gate
//! hands it an [`Endpoint`] (the session seen from the socket: "a frame came
//! in", "what is queued for the client", "must we close") and the transport
//! runs the connection until it ends, returning why ([`Ended`]). So the
//! transports are tested here with a fake endpoint, without a cluster.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio_util::codec::Decoder;
use tracing::warn;

use crate::frame::{Frame, FrameCodec, FrameError, HEADER_LEN};
use crate::session::CloseReason;

pub(crate) mod stream;
pub(crate) mod tls;
pub(crate) mod ws;
mod ws_frame;

pub(crate) use crate::frame::WRITE_BATCH;

/// The session side of one client connection, as a transport sees it.
///
/// The gate implements it over its node and the session; tests implement it
/// with an echo.
pub(crate) trait Endpoint: Send + Sync {
    /// Runs one frame from the client (in place, forwarded, or refused
    /// while the node shuts down). Returns when the next frame may run.
    fn frame_in(&self, frame: Frame) -> impl Future<Output = ()> + Send;

    /// Moves encoded frames queued for the client into `out` until it holds
    /// at least `max` bytes; true when frames remain queued.
    fn drain_out(&self, out: &mut BytesMut, max: usize) -> bool;

    /// Resolves when frames may have been queued for the client.
    fn queued(&self) -> impl Future<Output = ()> + Send;

    /// Resolves when the connection must close (kick, queue full,
    /// shutdown), with why. A close that comes later may wake `queued`
    /// instead: the transport loops call `closing` again after every
    /// wake-up, so an endpoint may resolve at once when the reason is
    /// already known and otherwise never (the gate's does: its closes and
    /// its shutdown all wake `queued`).
    fn closing(&self) -> impl Future<Output = CloseReason> + Send;

    /// Whether the idle timeout is suspended (while the node drains for
    /// shutdown, a quiet client waits for its answers).
    fn idle_suspended(&self) -> bool;

    /// Bytes came from the client (once per read): it is not idle.
    fn touch(&self) {}
}

/// Limits of a client connection, from `settings.json`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// `max_frame_len`: largest data length of one frame.
    pub(crate) max_frame_len: usize,
    /// `idle_timeout_ms`, `None` when 0.
    pub(crate) idle: Option<Duration>,
}

/// Why a transport connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// One of the session's own reasons (client closed, idle, oversize,
    /// kick, queue full, shutdown, socket error).
    Session(CloseReason),
    /// A WebSocket text message: zinx frames travel in binary messages.
    TextMessage,
    /// A WebSocket protocol violation (bad masking, bad opcode, ..).
    Protocol,
}

impl Ended {
    /// The session's close reason (for counters and the log).
    pub(crate) fn reason(self) -> CloseReason {
        match self {
            Ended::Session(r) => r,
            Ended::TextMessage | Ended::Protocol => CloseReason::IoError,
        }
    }
}

/// Splits a buffer of encoded frames (as [`Endpoint::drain_out`] writes
/// them) into one buffer per frame, without copying.
pub(crate) fn split_frames(buf: &mut BytesMut) -> impl Iterator<Item = bytes::Bytes> + '_ {
    std::iter::from_fn(move || {
        if buf.len() < HEADER_LEN {
            return None;
        }
        let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
        let n = (HEADER_LEN + len).min(buf.len());
        Some(buf.split_to(n).freeze())
    })
}

/// Runs every whole frame of `rbuf` through `ep`, in order; why the
/// connection must close when a frame is over the limit or undecodable.
pub(crate) async fn frames_in<E: Endpoint>(
    codec: &mut FrameCodec,
    rbuf: &mut BytesMut,
    ep: &E,
) -> Option<CloseReason> {
    loop {
        match codec.decode(rbuf) {
            Ok(Some(frame)) => ep.frame_in(frame).await,
            Ok(None) => return None,
            Err(FrameError::TooLarge { msg_id, len, max }) => {
                warn!(
                    msg_id,
                    len, max, "frame over the size limit: closing the connection"
                );
                return Some(CloseReason::Oversize);
            }
            Err(FrameError::Io(_)) => return Some(CloseReason::IoError),
        }
    }
}

/// Drives `write` to its end, unless the connection must close first
/// (`Err` with why). A close arrives through `queued` (see
/// [`Endpoint::closing`]): the same write (not cancel-safe) keeps being
/// polled, and `closing` is asked again after each wake-up.
pub(crate) async fn write_unless_closed<E: Endpoint>(
    write: impl Future<Output = std::io::Result<()>>,
    ep: &E,
) -> Result<std::io::Result<()>, CloseReason> {
    tokio::pin!(write);
    loop {
        tokio::select! {
            w = &mut write => return Ok(w),
            r = ep.closing() => return Err(r),
            _ = ep.queued() => {}
        }
    }
}

/// The idle timer of a client silent since `last_read` fired: `true` when
/// it has been silent for `idle` (and the node is not draining); otherwise
/// the timer is set for the next possible expiry.
pub(crate) fn idle_expired<E: Endpoint>(
    ep: &E,
    last_read: Instant,
    idle: Duration,
    timer: Pin<&mut tokio::time::Sleep>,
) -> bool {
    if last_read.elapsed() >= idle && !ep.idle_suspended() {
        return true;
    }
    let next = if ep.idle_suspended() {
        Instant::now() + idle
    } else {
        last_read + idle
    };
    timer.reset(next.into());
    false
}

#[cfg(test)]
pub(crate) mod testing {
    //! A fake [`Endpoint`]: echoes every frame, can be told to close.

    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::sync::Notify;
    use tokio_util::sync::CancellationToken;

    use super::*;

    /// Echoes frames back; msg_id 7 answers twice (a push and a reply).
    #[derive(Default)]
    pub(crate) struct Echo {
        pub(crate) out: Mutex<VecDeque<Frame>>,
        pub(crate) ready: Notify,
        pub(crate) close: CancellationToken,
        pub(crate) reason: Mutex<Option<CloseReason>>,
        pub(crate) seen: Mutex<Vec<Frame>>,
        pub(crate) stopping: AtomicBool,
    }

    impl Echo {
        pub(crate) fn kick(&self, reason: CloseReason) {
            if let Ok(mut r) = self.reason.lock() {
                *r = Some(reason);
            }
            self.close.cancel();
        }
    }

    impl Endpoint for Echo {
        async fn frame_in(&self, frame: Frame) {
            if let Ok(mut seen) = self.seen.lock() {
                seen.push(frame.clone());
            }
            if let Ok(mut out) = self.out.lock() {
                if frame.msg_id == 7 {
                    out.push_back(Frame::new(8, "push"));
                }
                out.push_back(frame);
            }
            self.ready.notify_one();
        }

        fn drain_out(&self, out: &mut BytesMut, max: usize) -> bool {
            let Ok(mut q) = self.out.lock() else {
                return false;
            };
            while out.len() < max {
                let Some(f) = q.pop_front() else { break };
                let _ = f.encode_into(out);
            }
            !q.is_empty()
        }

        async fn queued(&self) {
            self.ready.notified().await
        }

        async fn closing(&self) -> CloseReason {
            self.close.cancelled().await;
            self.reason
                .lock()
                .ok()
                .and_then(|r| *r)
                .unwrap_or(CloseReason::Kicked)
        }

        fn idle_suspended(&self) -> bool {
            self.stopping.load(Ordering::Relaxed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_frames_cuts_at_frame_boundaries() {
        let mut buf = BytesMut::new();
        Frame::new(1, "ab").encode_into(&mut buf).unwrap();
        Frame::new(2, "").encode_into(&mut buf).unwrap();
        Frame::new(3, vec![7u8; 70_000])
            .encode_into(&mut buf)
            .unwrap();
        let parts: Vec<_> = split_frames(&mut buf).collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(&parts[0][..], b"\0\0\0\x01\0\0\0\x02ab");
        assert_eq!(parts[1].len(), 8);
        assert_eq!(parts[2].len(), 70_008);
        assert!(buf.is_empty());
    }
}
