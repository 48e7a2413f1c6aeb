//! A zinx client over any byte stream (`AsyncRead + AsyncWrite`): the loop a
//! TLS client runs. Plain TCP clients keep the gate's own loop, which can
//! wait for readability without holding a read buffer; a TLS stream holds
//! its record buffers anyway, so this loop simply reads.

use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Ended, Endpoint, Limits, WRITE_BATCH, frames_in, idle_expired, write_unless_closed};
use crate::frame::FrameCodec;
use crate::session::CloseReason;

/// Read buffer growth step.
const READ_CHUNK: usize = 4 * 1024;
/// On close, queued frames get this long to reach the client.
const CLOSE_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves one client on `io` until the connection ends; returns why.
pub(crate) async fn serve<S, E>(mut io: S, ep: &E, limits: Limits) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    E: Endpoint,
{
    let mut codec = FrameCodec::new(limits.max_frame_len);
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    let idle = limits.idle;
    let mut last_read = Instant::now();
    let idle_timer = tokio::time::sleep(idle.unwrap_or(std::time::Duration::from_secs(3600)));
    tokio::pin!(idle_timer);
    let ended = 'conn: loop {
        // Write everything queued for the client.
        loop {
            ep.drain_out(&mut wbuf, WRITE_BATCH);
            if wbuf.is_empty() {
                break;
            }
            let write = async {
                io.write_all(&wbuf).await?;
                io.flush().await
            };
            let written = match write_unless_closed(write, ep).await {
                Ok(w) => w,
                Err(r) => break 'conn Ended::Session(r),
            };
            if written.is_err() {
                return Ended::Session(CloseReason::IoError);
            }
            wbuf.clear();
            // Frames queued during the write consumed their wake-up: the
            // loop drains until the queue is empty.
        }
        if wbuf.capacity() > 2 * WRITE_BATCH {
            wbuf = BytesMut::new();
        }
        if rbuf.capacity() - rbuf.len() < 512 {
            rbuf.reserve(READ_CHUNK);
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
            n = io.read_buf(&mut rbuf) => {
                match n {
                    Ok(0) => break Ended::Session(CloseReason::ClientClosed),
                    Ok(_) => last_read = Instant::now(),
                    // A TLS client that hangs up without close_notify: the
                    // usual way clients leave, not a failure.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        break Ended::Session(CloseReason::ClientClosed);
                    }
                    Err(_) => break Ended::Session(CloseReason::IoError),
                }
                if let Some(r) = frames_in(&mut codec, &mut rbuf, ep).await {
                    break 'conn Ended::Session(r);
                }
                if rbuf.is_empty() && rbuf.capacity() > 4 * READ_CHUNK {
                    rbuf = BytesMut::new();
                }
            }
        }
    };
    // A kicked or shut-down client still gets what was queued for it; one
    // that stopped reading does not.
    if ended != Ended::Session(CloseReason::QueueFull) {
        ep.drain_out(&mut wbuf, usize::MAX);
        let flush = async {
            io.write_all(&wbuf).await?;
            io.shutdown().await
        };
        let _ = tokio::time::timeout(CLOSE_FLUSH, flush).await;
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
