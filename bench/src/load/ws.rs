//! The load tool's WebSocket client framing (RFC 6455), after a handshake
//! made with tungstenite: each zinx frame goes out as one masked binary
//! message, as zinx's own WebSocket client sends them; binary payload that
//! comes back is appended to the reply stream.
//!
//! Written for the load tool rather than using tungstenite's message API:
//! the load tool runs on the same cores as the gate it measures, and a
//! client that allocates a message per frame takes CPU the gate then does
//! not get, which made WebSocket look slower than it is next to TCP.

use anyhow::Context;
use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A WebSocket connection, client side, after its upgrade.
pub(crate) struct WsWire<S> {
    io: S,
    /// What the server sent and is not parsed yet.
    inb: BytesMut,
    /// Frames on their way out.
    out: BytesMut,
    /// Payload bytes of the current server frame still to come.
    left: u64,
    /// Whether that payload is data (binary) or is skipped (ping, pong).
    data: bool,
    /// The server sent a close frame.
    closed: bool,
    /// Masking keys (xorshift64).
    seed: u64,
    /// How much `inb` grows by when it runs short: 64 KiB under load, a
    /// few hundred bytes for the idle tool's one-off echoes.
    chunk: usize,
}

/// `inb` growth under load: one read takes whatever a window of replies is.
const LOAD_CHUNK: usize = 64 * 1024;

fn other(why: &str) -> std::io::Error {
    std::io::Error::other(why.to_string())
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsWire<S> {
    /// Upgrades `stream` to a WebSocket at `url` (tungstenite's
    /// handshake; the server says nothing before our first message, so
    /// nothing is left in tungstenite's buffer); `seed` varies the masking
    /// keys.
    pub(crate) async fn upgrade(stream: S, url: &str, seed: u64) -> anyhow::Result<Self> {
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .with_context(|| format!("WebSocket upgrade at {url}"))?;
        Ok(Self::new(ws.into_inner(), seed))
    }

    /// Wraps an upgraded stream; `seed` varies the masking keys.
    pub(crate) fn new(io: S, seed: u64) -> Self {
        Self::with_chunk(io, seed, LOAD_CHUNK)
    }

    /// Wraps an upgraded stream for a short exchange (`bench idle`'s
    /// echoes): its read buffer starts at `chunk` bytes and grows by as
    /// much, so thousands of them in flight stay small.
    pub(crate) fn with_chunk(io: S, seed: u64, chunk: usize) -> Self {
        WsWire {
            io,
            inb: BytesMut::with_capacity(chunk),
            out: BytesMut::new(),
            left: 0,
            data: false,
            closed: false,
            seed: seed | 1,
            chunk: chunk.max(16),
        }
    }

    /// Nothing of the server's is buffered or half-read: dropping this
    /// wrapper loses no byte of the stream, and the next message starts
    /// on a frame boundary.
    pub(crate) fn is_drained(&self) -> bool {
        self.inb.is_empty() && self.left == 0 && !self.closed
    }

    fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.seed;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed = x;
        (x as u32).to_ne_bytes()
    }

    /// Sends each whole zinx frame of `wbuf` as one binary message (and
    /// empties `wbuf`).
    pub(crate) async fn write(&mut self, wbuf: &mut BytesMut) -> std::io::Result<()> {
        while wbuf.len() >= zinx_cluster::wire::HEADER_LEN {
            let len = u32::from_be_bytes([wbuf[4], wbuf[5], wbuf[6], wbuf[7]]) as usize;
            let n = (zinx_cluster::wire::HEADER_LEN + len).min(wbuf.len());
            let mask = self.next_mask();
            self.out.reserve(14 + n);
            self.out.put_u8(0x82);
            if n < 126 {
                self.out.put_u8(0x80 | n as u8);
            } else if let Ok(n16) = u16::try_from(n) {
                self.out.put_u8(0x80 | 126);
                self.out.put_u16(n16);
            } else {
                self.out.put_u8(0x80 | 127);
                self.out.put_u64(n as u64);
            }
            self.out.extend_from_slice(&mask);
            let start = self.out.len();
            self.out.extend_from_slice(&wbuf[..n]);
            for (i, b) in self.out[start..].iter_mut().enumerate() {
                *b ^= mask[i & 3];
            }
            wbuf.advance(n);
        }
        wbuf.clear();
        self.io.write_all(&self.out).await?;
        self.out.clear();
        self.io.flush().await
    }

    /// Appends the binary payload that has arrived to `rbuf`, waiting for
    /// some; 0 when the server closed.
    pub(crate) async fn read(&mut self, rbuf: &mut BytesMut) -> std::io::Result<usize> {
        loop {
            let n = self.parse(rbuf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.closed {
                return Ok(0);
            }
            if self.inb.capacity() - self.inb.len() < (self.chunk / 64).max(16) {
                self.inb.reserve(self.chunk);
            }
            if self.io.read_buf(&mut self.inb).await? == 0 {
                return Ok(0);
            }
        }
    }

    /// Parses what `inb` holds; the data bytes appended to `rbuf`.
    fn parse(&mut self, rbuf: &mut BytesMut) -> std::io::Result<usize> {
        let mut n = 0;
        while !self.closed {
            if self.left > 0 {
                if self.inb.is_empty() {
                    break;
                }
                let take =
                    usize::try_from(self.left).map_or(self.inb.len(), |l| l.min(self.inb.len()));
                if self.data {
                    rbuf.extend_from_slice(&self.inb[..take]);
                    n += take;
                }
                self.inb.advance(take);
                self.left -= take as u64;
                continue;
            }
            let [b0, b1, ..] = self.inb[..] else { break };
            if b1 & 0x80 != 0 {
                return Err(other("a masked frame from the server"));
            }
            let (ext, short) = match b1 & 0x7F {
                126 => (2, None),
                127 => (8, None),
                l => (0, Some(u64::from(l))),
            };
            if self.inb.len() < 2 + ext {
                break;
            }
            let len = match short {
                Some(l) => l,
                None if ext == 2 => u64::from(u16::from_be_bytes([self.inb[2], self.inb[3]])),
                None => {
                    let mut l = [0u8; 8];
                    l.copy_from_slice(&self.inb[2..10]);
                    u64::from_be_bytes(l)
                }
            };
            match b0 & 0x0F {
                0x0 | 0x2 => self.data = true,
                0x8 => self.closed = true,
                0x9 | 0xA => self.data = false,
                op => return Err(other(&format!("unexpected WebSocket opcode {op}"))),
            }
            self.inb.advance(2 + ext);
            self.left = len;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_go_out_masked_one_per_message_and_data_comes_back() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut w = WsWire::new(a, 42);
        let mut wbuf = BytesMut::new();
        zinx_cluster::Frame::new(5, vec![3u8; 200])
            .encode_into(&mut wbuf)
            .unwrap();
        zinx_cluster::Frame::new(6, "x")
            .encode_into(&mut wbuf)
            .unwrap();
        w.write(&mut wbuf).await.unwrap();
        let mut got = vec![0u8; 4 + 4 + 208 + 2 + 4 + 9];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..4], &[0x82, 0x80 | 126, 0, 208]);
        let mask = [got[4], got[5], got[6], got[7]];
        let first: Vec<u8> = got[8..216]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i & 3])
            .collect();
        assert_eq!(&first[..8], &[0, 0, 0, 5, 0, 0, 0, 200]);
        assert_eq!(&got[216..218], &[0x82, 0x80 | 9]);
        // Back: a ping (skipped), binary data split over two frames, a close.
        b.write_all(&[0x89, 1, b'p', 0x02, 2, b'a', b'b', 0x80, 1, b'c', 0x88, 0])
            .await
            .unwrap();
        let mut rbuf = BytesMut::new();
        while w.read(&mut rbuf).await.unwrap() > 0 {}
        assert_eq!(&rbuf[..], b"abc");
    }
}
