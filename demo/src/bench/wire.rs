//! Small request/reply helpers over a raw `TcpStream`, for checks that are
//! not on a hot path (readiness probes, liveness samples).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use zinx_cluster::{Frame, FrameCodec};

/// Sends one frame on `stream` and waits at most `timeout` for the next.
pub(crate) async fn request(
    stream: &mut TcpStream,
    frame: Frame,
    timeout: Duration,
) -> Result<Frame> {
    let mut framed = Framed::new(stream, FrameCodec::default());
    let exchange = async {
        framed.send(frame).await.context("sending")?;
        match framed.next().await {
            Some(r) => r.context("receiving"),
            None => bail!("connection closed by the server"),
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow!("no reply within {timeout:?}"))?
}

/// Sends `data` on `msg_id` and checks the reply is the same msg_id and the
/// same bytes.
pub(crate) async fn echo_check(
    stream: &mut TcpStream,
    msg_id: u32,
    data: Bytes,
    timeout: Duration,
) -> Result<()> {
    let reply = request(stream, Frame::new(msg_id, data.clone()), timeout).await?;
    if reply.msg_id == 0 {
        bail!(
            "error reply to msg_id {msg_id}: {}",
            String::from_utf8_lossy(&reply.data)
        );
    }
    if reply.msg_id != msg_id || reply.data != data {
        bail!(
            "echo on msg_id {msg_id} came back as msg_id {} with {} bytes (sent {})",
            reply.msg_id,
            reply.data.len(),
            data.len()
        );
    }
    Ok(())
}

/// Connects to `addr` and checks an echo on each of `msg_ids`.
pub(crate) async fn probe_echo(addr: SocketAddr, msg_ids: &[u32], timeout: Duration) -> Result<()> {
    let mut stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow!("connecting to {addr} took over {timeout:?}"))?
        .with_context(|| format!("connecting to {addr}"))?;
    for &id in msg_ids {
        echo_check(&mut stream, id, Bytes::from(format!("probe-{id}")), timeout).await?;
    }
    Ok(())
}
