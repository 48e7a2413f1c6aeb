//! `bench cert`: a self-signed certificate for a TLS gate, and the PEM file
//! `bench load --tls` and `bench idle --tls` trust. The suite writes one into
//! the configuration of its TLS gate the same way.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The names the certificate is valid for: a gate on this machine.
const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// Where [`write_self_signed`] put the certificate and its key.
#[derive(Debug, Clone)]
pub(crate) struct CertFiles {
    /// `gate.pem`: the certificate (settings `tls_cert`; what clients trust).
    pub(crate) cert: PathBuf,
    /// `gate.key`: its private key (settings `tls_key`).
    pub(crate) key: PathBuf,
}

/// Generates a self-signed certificate (ECDSA P-256) for `localhost` and
/// `127.0.0.1` and writes `gate.pem` and `gate.key` into `dir`, creating it.
pub(crate) fn write_self_signed(dir: &Path) -> Result<CertFiles> {
    let names = NAMES.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let certified = rcgen::generate_simple_self_signed(names)
        .context("generating a self-signed certificate")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = CertFiles {
        cert: dir.join("gate.pem"),
        key: dir.join("gate.key"),
    };
    for (path, pem) in [
        (&files.cert, certified.cert.pem()),
        (&files.key, certified.signing_key.serialize_pem()),
    ] {
        std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_one_a_client_can_trust() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_self_signed(&dir.path().join("conf")).unwrap();
        assert!(zinx_cluster_client::ClientTls::trusting_pem_file(&files.cert).is_ok());
        let key = std::fs::read_to_string(&files.key).unwrap();
        assert!(key.contains("PRIVATE KEY"), "{key}");
        // The gate's loader accepts the pair.
        assert!(zinx_cluster::tls::load_server_config(&files.cert, &files.key).is_ok());
    }
}
