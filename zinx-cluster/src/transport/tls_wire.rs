//! TLS for a gate's client connections, with rustls' unbuffered API: the
//! connection holds its keys and state, and no buffer while the client is
//! quiet. What the socket brings is decrypted from a transient buffer;
//! only a partial record waits between reads (so an idle TLS session
//! costs its cipher state, not rustls' 4 KiB receive buffer and record
//! queues — see issue 21 in BENCHMARKS.md).
//!
//! [`handshake`] runs the server side of the handshake on a TCP socket
//! (bounded in time); [`TlsConn`] then turns TLS bytes into plaintext and
//! back; [`TlsIo`] is the same connection as an async byte stream, for the
//! WebSocket upgrade that follows the handshake on a WSS port.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::server::UnbufferedServerConnection;
use tokio_rustls::rustls::unbuffered::{ConnectionState, EncodeError, EncryptError};
use tokio_rustls::rustls::{self, ServerConfig};

use super::tls::HANDSHAKE_TIMEOUT;

/// A read from the socket takes at most this much at once.
const READ_CHUNK: usize = 4 * 1024;
/// First guess of an encoded handshake record's size (grown on demand).
const ENCODE_GUESS: usize = 2 * 1024;

/// Why a TLS connection cannot go on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// The peer broke the protocol (or its records do not decrypt).
    #[error("TLS: {0}")]
    Protocol(#[from] rustls::Error),
    /// This side may not send (yet, or any more).
    #[error("TLS: cannot send now ({0})")]
    CannotSend(&'static str),
}

impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// What feeding TLS bytes did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fed {
    /// The peer sent close_notify: it sends nothing more.
    pub(crate) peer_closed: bool,
}

/// One server-side TLS connection, without buffers of its own between
/// records.
pub(crate) struct TlsConn {
    /// rustls' state: keys, sequence numbers, the handshake.
    conn: UnbufferedServerConnection,
    /// TLS bytes received and not processed yet: a record that has not
    /// all arrived. Empty (and without capacity) between records.
    incoming: BytesMut,
    /// close_notify came from the peer.
    peer_closed: bool,
    /// The handshake is done: application data flows.
    established: bool,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn")
            .field("incoming", &self.incoming.len())
            .field("peer_closed", &self.peer_closed)
            .field("established", &self.established)
            .finish()
    }
}

impl TlsConn {
    /// A connection of `config`, before its handshake.
    pub(crate) fn new(config: Arc<ServerConfig>) -> Result<TlsConn, TlsError> {
        Ok(TlsConn {
            conn: UnbufferedServerConnection::new(config)?,
            incoming: BytesMut::new(),
            peer_closed: false,
            established: false,
        })
    }

    /// Whether application data may flow (the handshake is done).
    pub(crate) fn is_established(&self) -> bool {
        self.established
    }

    /// Whether the peer sent close_notify.
    pub(crate) fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Feeds what the socket brought: decrypted application data is
    /// appended to `plain`, what TLS must send (handshake records, alerts,
    /// session tickets) to `out`.
    pub(crate) fn feed(
        &mut self,
        tls: &[u8],
        plain: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<Fed, TlsError> {
        self.incoming.extend_from_slice(tls);
        self.process(plain, out)?;
        if self.incoming.is_empty() {
            // Between records: keep no receive buffer.
            self.incoming = BytesMut::new();
        }
        Ok(Fed {
            peer_closed: self.peer_closed,
        })
    }

    /// Runs rustls over `incoming` until it needs more bytes or is ready
    /// for application data.
    fn process(&mut self, plain: &mut BytesMut, out: &mut BytesMut) -> Result<(), TlsError> {
        loop {
            let status = self.conn.process_tls_records(&mut self.incoming);
            let discard = status.discard;
            let go_on = match status.state? {
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(record) = r.next_record() {
                        plain.extend_from_slice(record?.payload);
                    }
                    true
                }
                ConnectionState::ReadEarlyData(mut r) => {
                    // Early data is not enabled; taken as data if it comes.
                    while let Some(record) = r.next_record() {
                        plain.extend_from_slice(record?.payload);
                    }
                    true
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    encode_into(out, |buf| e.encode(buf))?;
                    true
                }
                ConnectionState::TransmitTlsData(t) => {
                    // `out` is sent by the caller before anything else.
                    t.done();
                    true
                }
                ConnectionState::PeerClosed => {
                    self.peer_closed = true;
                    true
                }
                ConnectionState::WriteTraffic(_) => {
                    self.established = true;
                    false
                }
                ConnectionState::BlockedHandshake | ConnectionState::Closed => false,
                // A state of a newer rustls: nothing to do here.
                _ => false,
            };
            self.incoming.advance(discard);
            if !go_on {
                return Ok(());
            }
        }
    }

    /// Encrypts `plain` as application data, appending the records to
    /// `out`.
    pub(crate) fn encrypt(&mut self, plain: &[u8], out: &mut BytesMut) -> Result<(), TlsError> {
        self.write_traffic(out, |w, buf| w.encrypt(plain, buf))
    }

    /// Appends a close_notify alert to `out` (the orderly end of a TLS
    /// connection).
    pub(crate) fn close_notify(&mut self, out: &mut BytesMut) -> Result<(), TlsError> {
        self.write_traffic(out, |w, buf| w.queue_close_notify(buf))
    }

    /// Brings the connection to its write-traffic state (encoding what
    /// TLS has pending first), then writes with `write`.
    fn write_traffic(
        &mut self,
        out: &mut BytesMut,
        mut write: impl FnMut(
            &mut rustls::unbuffered::WriteTraffic<'_, rustls::server::ServerConnectionData>,
            &mut [u8],
        ) -> Result<usize, EncryptError>,
    ) -> Result<(), TlsError> {
        loop {
            let status = self.conn.process_tls_records(&mut self.incoming);
            let discard = status.discard;
            let done = match status.state? {
                ConnectionState::WriteTraffic(mut w) => {
                    let mut guess = ENCODE_GUESS;
                    loop {
                        let start = out.len();
                        out.resize(start + guess, 0);
                        match write(&mut w, &mut out[start..]) {
                            Ok(n) => {
                                out.truncate(start + n);
                                break;
                            }
                            Err(EncryptError::InsufficientSize(s)) => {
                                out.truncate(start);
                                guess = s.required_size;
                            }
                            Err(_) => {
                                out.truncate(start);
                                return Err(TlsError::CannotSend("keys exhausted"));
                            }
                        }
                    }
                    true
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    encode_into(out, |buf| e.encode(buf))?;
                    false
                }
                ConnectionState::TransmitTlsData(t) => {
                    t.done();
                    false
                }
                // Every feed drains what decrypts, so no record waits
                // here; were one to, it must not be dropped silently.
                ConnectionState::ReadTraffic(_) | ConnectionState::ReadEarlyData(_) => {
                    return Err(TlsError::CannotSend("received data not read"));
                }
                ConnectionState::PeerClosed => {
                    self.peer_closed = true;
                    false
                }
                ConnectionState::Closed => return Err(TlsError::CannotSend("closed")),
                _ => return Err(TlsError::CannotSend("handshake not complete")),
            };
            self.incoming.advance(discard);
            if done {
                return Ok(());
            }
        }
    }
}

/// Encodes a handshake record with `encode` at the end of `out`, growing
/// the room until it fits.
fn encode_into(
    out: &mut BytesMut,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), TlsError> {
    let mut guess = ENCODE_GUESS;
    loop {
        let start = out.len();
        out.resize(start + guess, 0);
        match encode(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(s)) => {
                out.truncate(start);
                guess = s.required_size;
            }
            Err(_) => {
                out.truncate(start);
                return Err(TlsError::CannotSend("record encoded twice"));
            }
        }
    }
}

/// Runs the server side of a TLS handshake on `tcp`, bounded in time;
/// the connection, and any application data that came with the last
/// handshake flight.
pub(crate) async fn handshake(
    tcp: &TcpStream,
    config: &Arc<ServerConfig>,
) -> io::Result<(TlsConn, BytesMut)> {
    let run = async {
        let mut tls = TlsConn::new(config.clone())?;
        let mut plain = BytesMut::new();
        let mut out = BytesMut::new();
        let mut raw = vec![0u8; READ_CHUNK];
        loop {
            if !out.is_empty() {
                write_all(tcp, &mut out).await?;
            }
            if tls.is_established() {
                return Ok((tls, plain));
            }
            tcp.readable().await?;
            let n = match tcp.try_read(&mut raw) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            tls.feed(&raw[..n], &mut plain, &mut out)?;
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, run)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// Writes all of `out` to `tcp`, waiting for the socket as needed.
pub(crate) async fn write_all(tcp: &TcpStream, out: &mut BytesMut) -> io::Result<()> {
    while !out.is_empty() {
        tcp.writable().await?;
        match tcp.try_write(out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => out.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A TLS connection as an async byte stream of its plaintext: for what
/// comes between the handshake and the session (a WebSocket upgrade).
/// [`TlsIo::into_parts`] gives the connection back, with the plaintext read
/// but not consumed.
pub(crate) struct TlsIo<'a> {
    /// The socket.
    tcp: &'a TcpStream,
    /// The TLS state.
    tls: TlsConn,
    /// Decrypted, not read yet.
    plain: BytesMut,
    /// Encrypted, not written yet.
    out: BytesMut,
}

impl<'a> TlsIo<'a> {
    /// `tls` over `tcp`, with `plain` already decrypted.
    pub(crate) fn new(tcp: &'a TcpStream, tls: TlsConn, plain: BytesMut) -> Self {
        TlsIo {
            tcp,
            tls,
            plain,
            out: BytesMut::new(),
        }
    }

    /// The connection and the plaintext read but not consumed (what it
    /// had to write is written: call after a flush).
    pub(crate) fn into_parts(self) -> (TlsConn, BytesMut) {
        (self.tls, self.plain)
    }

    /// Writes what is encrypted, as far as the socket takes it now.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            ready!(self.tcp.poll_write_ready(cx))?;
            match self.tcp.try_write(&self.out) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.out.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for TlsIo<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        loop {
            if !me.plain.is_empty() {
                let n = me.plain.len().min(buf.remaining());
                buf.put_slice(&me.plain[..n]);
                me.plain.advance(n);
                return Poll::Ready(Ok(()));
            }
            if me.tls.peer_closed() {
                return Poll::Ready(Ok(()));
            }
            // Anything TLS wanted to say (a key update answer) first.
            ready!(me.poll_write_out(cx))?;
            ready!(me.tcp.poll_read_ready(cx))?;
            let mut raw = [0u8; READ_CHUNK];
            match me.tcp.try_read(&mut raw) {
                Ok(0) => return Poll::Ready(Ok(())),
                Ok(n) => {
                    me.tls.feed(&raw[..n], &mut me.plain, &mut me.out)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for TlsIo<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        ready!(me.poll_write_out(cx))?;
        me.tls.encrypt(data, &mut me.out)?;
        // Best effort now; the rest by the next write or flush.
        if let Poll::Ready(Err(e)) = me.poll_write_out(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_write_out(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_write_out(cx)
    }
}
