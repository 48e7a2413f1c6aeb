//! A zinx-compatible async client: for tests, the demo client and the load
//! tool. It speaks exactly what a Go zinx client speaks.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_util::codec::Framed;

use crate::frame::{Frame, FrameCodec, FrameError};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The frame layer failed (I/O, or a frame over the limit).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
    /// Nothing arrived in time.
    #[error("no frame within {0:?}")]
    Timeout(Duration),
}

/// A connection to a gate.
#[derive(Debug)]
pub struct Client {
    framed: Framed<TcpStream, FrameCodec>,
}

impl Client {
    /// Connects with the default frame limit (64 KiB).
    pub async fn connect(addr: impl ToSocketAddrs) -> std::io::Result<Client> {
        Self::connect_with(addr, FrameCodec::default()).await
    }

    /// Connects with a given codec (frame limit).
    pub async fn connect_with(
        addr: impl ToSocketAddrs,
        codec: FrameCodec,
    ) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Client {
            framed: Framed::new(stream, codec),
        })
    }

    /// Sends one frame.
    pub async fn send(&mut self, msg_id: u32, data: impl Into<Bytes>) -> Result<(), ClientError> {
        self.framed.send(Frame::new(msg_id, data)).await?;
        Ok(())
    }

    /// Queues a frame without flushing (see [`Client::flush`]).
    pub async fn feed(&mut self, msg_id: u32, data: impl Into<Bytes>) -> Result<(), ClientError> {
        self.framed.feed(Frame::new(msg_id, data)).await?;
        Ok(())
    }

    /// Flushes queued frames.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        SinkExt::<Frame>::flush(&mut self.framed).await?;
        Ok(())
    }

    /// Waits for the next frame.
    pub async fn recv(&mut self) -> Result<Frame, ClientError> {
        match self.framed.next().await {
            Some(r) => Ok(r?),
            None => Err(ClientError::Closed),
        }
    }

    /// Waits for the next frame at most `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<Frame, ClientError> {
        tokio::time::timeout(timeout, self.recv())
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    /// Sends a frame and waits (at most `timeout`) for the next frame.
    pub async fn request(
        &mut self,
        msg_id: u32,
        data: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Frame, ClientError> {
        self.send(msg_id, data).await?;
        self.recv_timeout(timeout).await
    }

    /// The underlying stream (e.g. to write raw bytes in tests).
    pub fn get_mut(&mut self) -> &mut TcpStream {
        self.framed.get_mut()
    }
}
