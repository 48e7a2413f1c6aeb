//! TLS on a gate's client ports (rustls; the connections in `tls_wire`):
//! TLS on the TCP port, WSS on the WebSocket port, with the certificate
//! chain and key of `settings.json`'s `tls_cert` / `tls_key` (PEM files).
//!
//! The files are read once, at start; a missing, unreadable or malformed
//! file is a start-time error that names the file ([`TlsConfigError`]).
//! The crypto provider is `ring`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
}
