//! TLS on a gate's client ports (rustls through tokio-rustls): TLS on the
//! TCP port, WSS on the WebSocket port, with the certificate chain and key
//! of `settings.json`'s `tls_cert` / `tls_key` (PEM files).
//!
//! The files are read once, at start; a missing, unreadable or malformed
//! file is a start-time error that names the file ([`TlsConfigError`]).
//! The crypto provider is `ring`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// A client gets this long to finish its TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no PEM item of the kind expected.
    #[error("{}: {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("{} with {}: {source}", cert.display(), key.display())]
    Rustls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        source: rustls::Error,
    },
}

/// Loads a PEM certificate chain and private key into a server TLS
/// configuration (ALPN none: zinx frames and WebSocket both run over the
/// plain TLS stream).
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsConfigError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Pem {
            path: cert.to_path_buf(),
            what: format!("not a PEM certificate chain: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsConfigError::Pem {
            path: cert.to_path_buf(),
            what: "no CERTIFICATE in the file".to_string(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsConfigError::Pem {
        path: key.to_path_buf(),
        what: format!("no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key_der))
        .map_err(|source| TlsConfigError::Rustls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        })?;
    Ok(Arc::new(config))
}

/// Runs the server side of a TLS handshake on `io`, bounded in time.
pub(crate) async fn accept<S>(
    config: &Arc<ServerConfig>,
    io: S,
) -> std::io::Result<tokio_rustls::server::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let acceptor = TlsAcceptor::from(config.clone());
    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

#[cfg(test)]
pub(crate) mod testing {
    //! A certificate made at test time, and a client configuration trusting it.

    use super::*;
    use tokio_rustls::rustls::ClientConfig;

    /// A self-signed certificate for `localhost` / 127.0.0.1 written as PEM
    /// files in `dir`; returns (cert path, key path, client config).
    pub(crate) fn self_signed(dir: &Path) -> (PathBuf, PathBuf, Arc<ClientConfig>) {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let certified = rcgen::generate_simple_self_signed(names).expect("rcgen");
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        std::fs::write(&cert_path, certified.cert.pem()).expect("write cert");
        std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("write key");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.cert.der().clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_root_certificates(roots)
            .with_no_client_auth();
        (cert_path, key_path, Arc::new(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, FrameCodec};
    use crate::transport::testing::Echo;
    use crate::transport::{Ended, Limits, stream, ws};
    use futures::{SinkExt, StreamExt};
    use tokio_rustls::TlsConnector;
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_util::codec::Framed;

    fn limits() -> Limits {
        Limits {
            max_frame_len: 1024,
            idle: None,
        }
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = testing::self_signed(dir.path());
        let missing = dir.path().join("nope.pem");
        let e = load_server_config(&missing, &key).unwrap_err().to_string();
        assert!(e.contains("nope.pem") && e.contains("cannot read"), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let e = load_server_config(&junk, &key).unwrap_err().to_string();
        assert!(e.contains("junk.pem") && e.contains("CERTIFICATE"), "{e}");
        let e = load_server_config(&cert, &junk).unwrap_err().to_string();
        assert!(e.contains("junk.pem") && e.contains("private key"), "{e}");
        // A key that is not the certificate's.
        let other = tempfile::tempdir().unwrap();
        let (_, other_key, _) = testing::self_signed(other.path());
        let e = load_server_config(&cert, &other_key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cert.pem"), "{e}");
        assert!(load_server_config(&cert, &key).is_ok());
    }

    #[tokio::test]
    async fn tls_and_wss_carry_frames() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, client_config) = testing::self_signed(dir.path());
        let server_config = load_server_config(&cert, &key).unwrap();
        let connector = TlsConnector::from(client_config);
        let name = ServerName::try_from("localhost").unwrap();

        // TLS on the TCP port.
        let (a, b) = tokio::io::duplex(64 * 1024);
        let sc = server_config.clone();
        let server = tokio::spawn(async move {
            let tls = accept(&sc, a).await.unwrap();
            stream::serve(tls, &Echo::default(), limits()).await
        });
        let tls = connector.connect(name.clone(), b).await.unwrap();
        let mut c = Framed::new(tls, FrameCodec::new(1024));
        c.send(Frame::new(5, "over tls")).await.unwrap();
        assert_eq!(c.next().await.unwrap().unwrap(), Frame::new(5, "over tls"));
        drop(c);
        assert_eq!(
            server.await.unwrap().reason(),
            crate::session::CloseReason::ClientClosed
        );

        // WSS on the WebSocket port.
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            let tls = accept(&server_config, a).await.unwrap();
            let socket = ws::accept(tls, "/").await.unwrap();
            ws::serve(socket, &Echo::default(), limits()).await
        });
        let tls = connector.connect(name, b).await.unwrap();
        let (mut c, _) = tokio_tungstenite::client_async("wss://localhost/", tls)
            .await
            .unwrap();
        let mut wire = bytes::BytesMut::new();
        Frame::new(5, "over wss").encode_into(&mut wire).unwrap();
        c.send(tokio_tungstenite::tungstenite::Message::Binary(
            wire.freeze(),
        ))
        .await
        .unwrap();
        let got = c.next().await.unwrap().unwrap().into_data();
        assert_eq!(&got[8..], b"over wss");
        c.close(None).await.unwrap();
        assert_eq!(
            server.await.unwrap(),
            Ended::Session(crate::session::CloseReason::ClientClosed)
        );
    }

    /// The library's `Client` over real sockets: TLS, ws:// and wss://.
    #[tokio::test]
    async fn the_client_speaks_every_transport() {
        use tokio::net::TcpListener;
        use zinx_cluster_client::{Client, ClientTls};
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = testing::self_signed(dir.path());
        let server_config = load_server_config(&cert, &key).unwrap();
        let trust = ClientTls::trusting_pem_file(&cert).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Serves three connections: TLS, WS, WSS.
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = accept(&server_config, tcp).await.unwrap();
            stream::serve(tls, &Echo::default(), limits()).await;
            let (tcp, _) = listener.accept().await.unwrap();
            let socket = ws::accept(tcp, "/zinx").await.unwrap();
            ws::serve(socket, &Echo::default(), limits()).await;
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = accept(&server_config, tcp).await.unwrap();
            let socket = ws::accept(tls, "/zinx").await.unwrap();
            ws::serve(socket, &Echo::default(), limits()).await
        });
        let t = std::time::Duration::from_secs(5);
        let mut c = Client::connect_tls(addr, &trust, "localhost")
            .await
            .unwrap();
        assert_eq!(c.request(5, "a", t).await.unwrap(), Frame::new(5, "a"));
        drop(c);
        let mut c = Client::connect_ws(&format!("ws://{addr}/zinx"), None)
            .await
            .unwrap();
        // Two frames in one message, answered as two messages.
        let mut two = bytes::BytesMut::new();
        Frame::new(1, "x").encode_into(&mut two).unwrap();
        Frame::new(2, "y").encode_into(&mut two).unwrap();
        c.send_raw(two.freeze()).await.unwrap();
        assert_eq!(c.recv_timeout(t).await.unwrap(), Frame::new(1, "x"));
        assert_eq!(c.recv_timeout(t).await.unwrap(), Frame::new(2, "y"));
        drop(c);
        let url = format!("wss://localhost:{}/zinx", addr.port());
        let mut c = Client::connect_ws(&url, Some(&trust)).await.unwrap();
        c.send(9, vec![7u8; 1000]).await.unwrap();
        assert_eq!(
            c.recv_timeout(t).await.unwrap(),
            Frame::new(9, vec![7u8; 1000])
        );
        drop(c);
        server.await.unwrap();
    }
}
