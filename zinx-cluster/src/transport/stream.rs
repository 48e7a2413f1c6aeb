//! A zinx client over any byte stream (`AsyncRead + AsyncWrite`): the loop
//! TLS and WebSocket clients run, with a [`Framing`] between the stream's
//! bytes and zinx frames (none for TLS, WebSocket frames for `ws`). Plain
//! TCP clients keep the gate's own loop, which can wait for readability
//! without holding a read buffer; a TLS stream holds its record buffers
//! anyway, so this loop simply reads.

use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::debug;

use super::{Ended, Endpoint, Limits, WRITE_BATCH, frames_in, idle_expired, write_unless_closed};
use crate::frame::FrameCodec;
use crate::session::CloseReason;

/// Read buffer growth step.
const READ_CHUNK: usize = 4 * 1024;
/// On close, queued frames (and a closing message) get this long.
const CLOSE_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

/// What a transport puts between a connection's bytes and zinx frames.
pub(crate) trait Framing: Send {
    /// Takes what the client sent (`input`): the bytes of zinx frames go
    /// to `frames` (in order), what the transport answers by itself (a
    /// pong) to `out`.
    fn parse(&mut self, input: &mut BytesMut, frames: &mut BytesMut, out: &mut BytesMut) -> Parsed;

    /// Moves encoded zinx frames (as [`Endpoint::drain_out`] writes them)
    /// from `frames` to `out`, wrapped for the wire.
    fn wrap(&mut self, frames: &mut BytesMut, out: &mut BytesMut);

    /// Appends what the client is told last when the connection ends with
    /// `ended` (a WebSocket close frame), if anything.
    fn last_words(&mut self, _ended: Ended, _out: &mut BytesMut) {}
}

/// What [`Framing::parse`] left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// `input` is used up (or holds part of a message): read more.
    More,
    /// Parsing stopped to answer something (after the frames before it
    /// run): parse again.
    Again,
    /// The connection ends (after the frames before it run).
    End(Ended),
}

/// zinx frames straight on the stream (TLS).
#[derive(Debug, Default)]
pub(crate) struct Plain;

impl Framing for Plain {
    fn parse(
        &mut self,
        input: &mut BytesMut,
        frames: &mut BytesMut,
        _out: &mut BytesMut,
    ) -> Parsed {
        append(input, frames);
        Parsed::More
    }

    fn wrap(&mut self, frames: &mut BytesMut, out: &mut BytesMut) {
        append(frames, out);
    }
}

/// Moves `from`'s bytes to the end of `to` (without a copy when `to` is
/// empty).
fn append(from: &mut BytesMut, to: &mut BytesMut) {
    if to.is_empty() {
        std::mem::swap(from, to);
    } else {
        to.extend_from_slice(from);
        from.clear();
    }
}

/// Serves one client on `io` until the connection ends; returns why.
pub(crate) async fn serve<S, E>(io: S, ep: &E, limits: Limits) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    E: Endpoint,
{
    serve_framed(io, BytesMut::new(), Plain, ep, limits).await
}

/// Runs what the client sent through `framing` and the zinx frames it
/// yields through `ep`, in order; `Some` when the connection ends.
async fn on_input<F: Framing, E: Endpoint>(
    framing: &mut F,
    input: &mut BytesMut,
    rbuf: &mut BytesMut,
    codec: &mut FrameCodec,
    out: &mut BytesMut,
    ep: &E,
) -> Option<Ended> {
    loop {
        let parsed = framing.parse(input, rbuf, out);
        if !rbuf.is_empty() {
            if let Some(r) = frames_in(codec, rbuf, ep).await {
                return Some(Ended::Session(r));
            }
        }
        match parsed {
            Parsed::More => return None,
            Parsed::Again => {}
            Parsed::End(ended) => return Some(ended),
        }
    }
}

/// Writes all of `out`, advancing it as the stream takes it, then flushes:
/// if the write is dropped halfway, `out` holds exactly what is left.
async fn write_out<S: AsyncWrite + Unpin>(io: &mut S, out: &mut BytesMut) -> std::io::Result<()> {
    while !out.is_empty() {
        let n = io.write(out).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        out.advance(n);
    }
    io.flush().await
}

/// Serves one client on `io`, whose first bytes (`input`) may have been
/// read already, through `framing`, until the connection ends; returns why.
pub(crate) async fn serve_framed<S, E, F>(
    mut io: S,
    mut input: BytesMut,
    mut framing: F,
    ep: &E,
    limits: Limits,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    E: Endpoint,
    F: Framing,
{
    let mut codec = FrameCodec::new(limits.max_frame_len);
    let mut rbuf = BytesMut::new();
    // Encoded frames from the endpoint, and the bytes for the wire.
    let mut wbuf = BytesMut::new();
    let mut out = BytesMut::new();
    let idle = limits.idle;
    let mut last_read = Instant::now();
    let idle_timer = tokio::time::sleep(idle.unwrap_or(std::time::Duration::from_secs(3600)));
    tokio::pin!(idle_timer);
    let mut ended = None;
    if !input.is_empty() {
        ended = on_input(
            &mut framing,
            &mut input,
            &mut rbuf,
            &mut codec,
            &mut out,
            ep,
        )
        .await;
    }
    let ended = 'conn: loop {
        if let Some(e) = ended {
            break e;
        }
        // Write everything queued for the client (and what the framing
        // answered itself).
        loop {
            ep.drain_out(&mut wbuf, WRITE_BATCH);
            framing.wrap(&mut wbuf, &mut out);
            if out.is_empty() {
                break;
            }
            match write_unless_closed(write_out(&mut io, &mut out), ep).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    debug!(error = %e, "client write failed");
                    return Ended::Session(CloseReason::IoError);
                }
                Err(r) => break 'conn Ended::Session(r),
            }
            // Frames queued during the write consumed their wake-up: the
            // loop drains until the queue is empty.
        }
        for buf in [&mut wbuf, &mut out] {
            if buf.capacity() > 2 * WRITE_BATCH {
                *buf = BytesMut::new();
            }
        }
        if input.capacity() - input.len() < 512 {
            input.reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            r = ep.closing() => break Ended::Session(r),
            _ = ep.queued() => {}
            _ = &mut idle_timer, if idle.is_some() => {
                let d = idle.unwrap_or_default();
                if idle_expired(ep, last_read, d, idle_timer.as_mut()) {
                    break Ended::Session(CloseReason::Idle);
                }
            }
            n = io.read_buf(&mut input) => {
                match n {
                    Ok(0) => break Ended::Session(CloseReason::ClientClosed),
                    Ok(_) => {}
                    // A TLS client that hangs up without close_notify: the
                    // usual way clients leave, not a failure.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        break Ended::Session(CloseReason::ClientClosed);
                    }
                    Err(e) => {
                        debug!(error = %e, "client read failed");
                        break Ended::Session(CloseReason::IoError);
                    }
                }
                // Once per read: a clock read per message showed in
                // pipelined profiles, and idle is a matter of seconds.
                last_read = Instant::now();
                ep.touch();
                ended = on_input(&mut framing, &mut input, &mut rbuf, &mut codec, &mut out, ep).await;
                for buf in [&mut input, &mut rbuf] {
                    if buf.is_empty() && buf.capacity() > 4 * READ_CHUNK {
                        *buf = BytesMut::new();
                    }
                }
            }
        }
    };
    match ended {
        // The socket failed: nothing more can be said.
        Ended::Session(CloseReason::IoError) => return ended,
        // One that stopped reading gets no backlog, only why.
        Ended::Session(CloseReason::QueueFull) => {}
        // A kicked or shut-down client still gets what was queued for it.
        _ => {
            ep.drain_out(&mut wbuf, usize::MAX);
            framing.wrap(&mut wbuf, &mut out);
        }
    }
    framing.last_words(ended, &mut out);
    if !out.is_empty() || ended != Ended::Session(CloseReason::QueueFull) {
        let close = async {
            write_out(&mut io, &mut out).await?;
            io.shutdown().await
        };
        let _ = tokio::time::timeout(CLOSE_FLUSH, close).await;
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use crate::transport::testing::Echo;
    use futures::{SinkExt, StreamExt};
    use std::time::Duration;
    use tokio_util::codec::Framed;

    fn limits() -> Limits {
        Limits {
            max_frame_len: 1024,
            idle: Some(Duration::from_millis(300)),
        }
    }

    #[tokio::test]
    async fn echoes_frames_and_ends_on_oversize_and_idle() {
        let (a, b) = tokio::io::duplex(4096);
        let ep = Echo::default();
        let client = async {
            let mut c = Framed::new(b, FrameCodec::new(1 << 20));
            c.send(Frame::new(7, "hi")).await.unwrap();
            assert_eq!(c.next().await.unwrap().unwrap(), Frame::new(8, "push"));
            assert_eq!(c.next().await.unwrap().unwrap(), Frame::new(7, "hi"));
            c.send(Frame::new(1, vec![0u8; 2000])).await.unwrap();
            // The server closes: the stream ends.
            assert!(c.next().await.is_none());
        };
        let (ended, ()) = tokio::join!(serve(a, &ep, limits()), client);
        assert_eq!(ended, Ended::Session(CloseReason::Oversize));

        let (a, _b) = tokio::io::duplex(4096);
        let t = Instant::now();
        assert_eq!(
            serve(a, &ep, limits()).await,
            Ended::Session(CloseReason::Idle)
        );
        assert!(t.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn a_kicked_client_gets_what_was_queued() {
        let (a, b) = tokio::io::duplex(4096);
        let ep = Echo::default();
        ep.out.lock().unwrap().push_back(Frame::new(1, "bye"));
        ep.kick(CloseReason::Kicked);
        assert_eq!(
            serve(a, &ep, limits()).await,
            Ended::Session(CloseReason::Kicked)
        );
        let mut c = Framed::new(b, FrameCodec::new(1024));
        assert_eq!(c.next().await.unwrap().unwrap(), Frame::new(1, "bye"));
        assert!(c.next().await.is_none());
    }
}
