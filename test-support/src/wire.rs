//! Raw zinx request/reply over a `TcpStream`, for checks off the hot path
//! (readiness probes, liveness samples). Errors are `io::Error`s that say
//! what went wrong, so the bench tool can report them.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use zinx_cluster::Frame;
use zinx_cluster::wire::FrameCodec;

fn failed(what: String) -> io::Error {
    io::Error::other(what)
}

/// Sends one frame on `stream` and waits at most `timeout` for the next.
pub async fn request(stream: &mut TcpStream, frame: Frame, timeout: Duration) -> io::Result<Frame> {
    let mut framed = Framed::new(stream, FrameCodec::default());
    let exchange = async {
        framed
            .send(frame)
            .await
            .map_err(|e| failed(format!("sending: {e}")))?;
        match framed.next().await {
            Some(r) => r.map_err(|e| failed(format!("receiving: {e}"))),
            None => Err(failed("connection closed by the server".into())),
        }
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no reply within {timeout:?}"),
        )
    })?
}

/// Sends `data` on `msg_id` and checks the reply is the same msg_id and the
/// same bytes.
pub async fn echo_check(
    stream: &mut TcpStream,
    msg_id: u32,
    data: Bytes,
    timeout: Duration,
) -> io::Result<()> {
    let reply = request(stream, Frame::new(msg_id, data.clone()), timeout).await?;
    if reply.msg_id == 0 {
        return Err(failed(format!(
            "error reply to msg_id {msg_id}: {}",
            String::from_utf8_lossy(&reply.data)
        )));
    }
    if reply.msg_id != msg_id || reply.data != data {
        return Err(failed(format!(
            "echo on msg_id {msg_id} came back as msg_id {} with {} bytes (sent {})",
            reply.msg_id,
            reply.data.len(),
            data.len()
        )));
    }
    Ok(())
}

/// Connects to `addr` and checks an echo on each of `msg_ids`.
pub async fn probe_echo(addr: SocketAddr, msg_ids: &[u32], timeout: Duration) -> io::Result<()> {
    let mut stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {addr} took over {timeout:?}"),
            )
        })?
        .map_err(|e| io::Error::new(e.kind(), format!("connecting to {addr}: {e}")))?;
    for &id in msg_ids {
        echo_check(&mut stream, id, Bytes::from(format!("probe-{id}")), timeout).await?;
    }
    Ok(())
}
