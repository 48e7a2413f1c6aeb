//! A zinx-compatible async client: for tests, the demo client and the load
//! tool. It speaks exactly what a Go zinx client speaks, over plain TCP,
//! TLS, or WebSocket (`ws://` and `wss://`, zinx's `NewWsClient`: each frame
//! one binary message; received messages are read as a byte stream).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::codec::{Decoder, Encoder, Framed};

use crate::wire::{Frame, FrameCodec, FrameError};

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
    /// The WebSocket layer failed (or the server closed it with a code).
    #[error("WebSocket: {0}")]
    WebSocket(String),
}

/// Why the certificates to trust could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The PEM text holds no usable certificate.
    #[error("{}{what}", if path.as_os_str().is_empty() { String::new() } else { format!("{}: ", path.display()) })]
    Pem {
        /// The file (empty for PEM text given directly).
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The certificates a client trusts for TLS and `wss://`.
#[derive(Debug, Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Trusts the certificates of a PEM file (a CA, or a gate's
    /// self-signed certificate).
    pub fn trusting_pem_file(path: &Path) -> Result<ClientTls, TlsError> {
        let pem = std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ClientTls::trusting_pem(&pem).map_err(|e| match e {
            TlsError::Pem { what, .. } => TlsError::Pem {
                path: path.to_path_buf(),
                what,
            },
            e => e,
        })
    }

    /// Trusts the certificates of PEM text.
    pub fn trusting_pem(pem: &[u8]) -> Result<ClientTls, TlsError> {
        let bad = |what: String| TlsError::Pem {
            path: PathBuf::new(),
            what,
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("unusable certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(bad("no CERTIFICATE in the PEM text".to_string()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    /// Runs the TLS handshake on a connected stream, checking the gate's
    /// certificate for `host`: for tools that do their own framing (the
    /// load tool); [`Client::connect_tls`] does all of it.
    pub async fn wrap(&self, tcp: TcpStream, host: &str) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
    }
}

/// A WebSocket carrying zinx frames, and what was read of a frame so far.
#[derive(Debug)]
struct WsConn<S> {
    ws: WebSocketStream<S>,
    rbuf: BytesMut,
    codec: FrameCodec,
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> WsConn<S> {
    async fn feed(&mut self, frame: Frame) -> Result<(), ClientError> {
        let mut wire = BytesMut::with_capacity(frame.wire_len());
        self.codec.encode(frame, &mut wire)?;
        self.ws
            .feed(Message::Binary(wire.freeze()))
            .await
            .map_err(|e| ClientError::WebSocket(e.to_string()))
    }

    async fn flush(&mut self) -> Result<(), ClientError> {
        self.ws
            .flush()
            .await
            .map_err(|e| ClientError::WebSocket(e.to_string()))
    }

    async fn recv(&mut self) -> Result<Frame, ClientError> {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.rbuf)? {
                return Ok(frame);
            }
            match self.ws.next().await {
                Some(Ok(Message::Binary(b))) => self.rbuf.extend_from_slice(&b),
                Some(Ok(Message::Close(Some(f)))) => {
                    return Err(ClientError::WebSocket(format!(
                        "closed by the server: {} {}",
                        u16::from(f.code),
                        f.reason
                    )));
                }
                Some(Ok(Message::Close(None))) | None => return Err(ClientError::Closed),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ClientError::WebSocket(e.to_string())),
            }
        }
    }
}

#[derive(Debug)]
enum Conn {
    Tcp(Framed<TcpStream, FrameCodec>),
    Tls(Box<Framed<TlsStream<TcpStream>, FrameCodec>>),
    Ws(Box<WsConn<TcpStream>>),
    Wss(Box<WsConn<TlsStream<TcpStream>>>),
}

/// A connection to a gate.
#[derive(Debug)]
pub struct Client {
    conn: Conn,
}

/// `scheme://host[:port]/path` of a WebSocket URL: (tls, host, port).
fn parse_ws_url(url: &str) -> std::io::Result<(bool, String, u16)> {
    let bad = |why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{url:?}: {why} (expected ws://host:port/path or wss://..)"),
        )
    };
    let (tls, rest) = if let Some(r) = url.strip_prefix("ws://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("wss://") {
        (true, r)
    } else {
        return Err(bad("not a ws:// or wss:// URL"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.parse::<u16>().is_ok() => {
            (h, p.parse().unwrap_or_default())
        }
        _ => (authority, if tls { 443 } else { 80 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok((tls, host.to_string(), port))
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
            conn: Conn::Tcp(Framed::new(stream, codec)),
        })
    }

    /// Connects over TLS, checking the gate's certificate against `tls`
    /// for the name `server_name` (e.g. `localhost`).
    pub async fn connect_tls(
        addr: impl ToSocketAddrs,
        tls: &ClientTls,
        server_name: &str,
    ) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let tls = tls.wrap(stream, server_name).await?;
        Ok(Client {
            conn: Conn::Tls(Box::new(Framed::new(tls, FrameCodec::default()))),
        })
    }

    /// Connects to a gate's WebSocket port: `ws://host:port/path`, or
    /// `wss://..` with the certificates `tls` trusts.
    pub async fn connect_ws(url: &str, tls: Option<&ClientTls>) -> std::io::Result<Client> {
        let (secure, host, port) = parse_ws_url(url)?;
        if secure && tls.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a wss:// URL needs the certificates to trust",
            ));
        }
        let stream = TcpStream::connect((host.as_str(), port)).await?;
        stream.set_nodelay(true)?;
        let config = Some(WebSocketConfig::default().max_message_size(Some(16 << 20)));
        let ws_err =
            |e: tokio_tungstenite::tungstenite::Error| std::io::Error::other(e.to_string());
        let codec = FrameCodec::new(16 << 20);
        let conn = if secure {
            let tls = tls.ok_or_else(|| std::io::Error::other("no TLS trust"))?;
            let stream = tls.wrap(stream, &host).await?;
            let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, config)
                .await
                .map_err(ws_err)?;
            Conn::Wss(Box::new(WsConn {
                ws,
                rbuf: BytesMut::new(),
                codec,
            }))
        } else {
            let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, config)
                .await
                .map_err(ws_err)?;
            Conn::Ws(Box::new(WsConn {
                ws,
                rbuf: BytesMut::new(),
                codec,
            }))
        };
        Ok(Client { conn })
    }

    /// Sends one frame.
    pub async fn send(&mut self, msg_id: u32, data: impl Into<Bytes>) -> Result<(), ClientError> {
        self.feed(msg_id, data).await?;
        self.flush().await
    }

    /// Queues a frame without flushing (see [`Client::flush`]).
    pub async fn feed(&mut self, msg_id: u32, data: impl Into<Bytes>) -> Result<(), ClientError> {
        let frame = Frame::new(msg_id, data);
        match &mut self.conn {
            Conn::Tcp(f) => f.feed(frame).await?,
            Conn::Tls(f) => f.feed(frame).await?,
            Conn::Ws(w) => w.feed(frame).await?,
            Conn::Wss(w) => w.feed(frame).await?,
        }
        Ok(())
    }

    /// Flushes queued frames.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        match &mut self.conn {
            Conn::Tcp(f) => SinkExt::<Frame>::flush(f).await?,
            Conn::Tls(f) => SinkExt::<Frame>::flush(f.as_mut()).await?,
            Conn::Ws(w) => w.flush().await?,
            Conn::Wss(w) => w.flush().await?,
        }
        Ok(())
    }

    /// Waits for the next frame.
    pub async fn recv(&mut self) -> Result<Frame, ClientError> {
        let next = match &mut self.conn {
            Conn::Tcp(f) => f.next().await,
            Conn::Tls(f) => f.next().await,
            Conn::Ws(w) => return w.recv().await,
            Conn::Wss(w) => return w.recv().await,
        };
        match next {
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

    /// Sends raw bytes as one WebSocket binary message (several frames, or
    /// part of one); on TCP and TLS, writes them to the stream.
    pub async fn send_raw(&mut self, bytes: impl Into<Bytes>) -> Result<(), ClientError> {
        use tokio::io::AsyncWriteExt;
        let bytes = bytes.into();
        let ws_err =
            |e: tokio_tungstenite::tungstenite::Error| ClientError::WebSocket(e.to_string());
        match &mut self.conn {
            Conn::Tcp(f) => f
                .get_mut()
                .write_all(&bytes)
                .await
                .map_err(FrameError::Io)?,
            Conn::Tls(f) => {
                let s = f.get_mut();
                s.write_all(&bytes).await.map_err(FrameError::Io)?;
                s.flush().await.map_err(FrameError::Io)?;
            }
            Conn::Ws(w) => w.ws.send(Message::Binary(bytes)).await.map_err(ws_err)?,
            Conn::Wss(w) => w.ws.send(Message::Binary(bytes)).await.map_err(ws_err)?,
        }
        Ok(())
    }

    /// The TCP socket under any TLS or WebSocket layer (e.g. to write raw
    /// bytes in tests; on TLS or WebSocket that breaks the connection).
    pub fn get_mut(&mut self) -> &mut TcpStream {
        match &mut self.conn {
            Conn::Tcp(f) => f.get_mut(),
            Conn::Tls(f) => f.get_mut().get_mut().0,
            Conn::Ws(w) => w.ws.get_mut(),
            Conn::Wss(w) => w.ws.get_mut().get_mut().0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_urls_parse() {
        assert_eq!(
            parse_ws_url("ws://127.0.0.1:9000/").unwrap(),
            (false, "127.0.0.1".into(), 9000)
        );
        assert_eq!(
            parse_ws_url("wss://localhost/chat").unwrap(),
            (true, "localhost".into(), 443)
        );
        assert_eq!(
            parse_ws_url("ws://[::1]:9000/x").unwrap(),
            (false, "::1".into(), 9000)
        );
        assert!(parse_ws_url("http://x/").is_err());
        assert!(parse_ws_url("ws:///").is_err());
    }

    #[tokio::test]
    async fn wss_without_trust_is_refused_before_connecting() {
        let e = Client::connect_ws("wss://127.0.0.1:1/", None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("certificates to trust"), "{e}");
    }
}
