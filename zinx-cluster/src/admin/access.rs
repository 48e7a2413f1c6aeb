//! Who may use the admin endpoint's paths other than `/healthz` and
//! `/readyz`: the bearer token of `admin_token` / `admin_token_env`.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::error;

use crate::http::Request;
use crate::settings::Settings;

/// Who may use the paths other than `/healthz` and `/readyz`.
pub(crate) enum Access {
    /// Anybody who reaches the port (no `admin_token`).
    Open,
    /// Requests bearing the token whose SHA-256 digest this is.
    Token([u8; 32]),
    /// Nobody: a token is configured but could not be read at start.
    Locked,
}

impl Access {
    /// From `admin_token` / `admin_token_env`. A variable that vanished
    /// since the configuration was checked locks the endpoint (logged)
    /// rather than opening it.
    pub(crate) fn from_settings(settings: &Settings) -> Access {
        match settings.effective_admin_token() {
            Ok(Some(token)) => Access::Token(Sha256::digest(token.as_bytes()).into()),
            Ok(None) => Access::Open,
            Err(why) => {
                error!("admin endpoint: {why}: every path but /healthz and /readyz answers 401");
                Access::Locked
            }
        }
    }

    /// Whether `req` may go on; else the `WWW-Authenticate` value to send.
    pub(super) fn check(&self, req: &Request) -> Result<(), &'static str> {
        const MISSING: &str = "Bearer realm=\"zinx-cluster admin\"";
        const INVALID: &str = "Bearer realm=\"zinx-cluster admin\", error=\"invalid_token\"";
        let expected = match self {
            Access::Open => return Ok(()),
            Access::Locked => return Err(MISSING),
            Access::Token(digest) => digest,
        };
        let presented = req.header("authorization").and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        let Some(presented) = presented else {
            return Err(MISSING);
        };
        let digest = Sha256::digest(presented.as_bytes());
        if bool::from(digest.as_slice().ct_eq(expected)) {
            Ok(())
        } else {
            Err(INVALID)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_checked_as_a_bearer_token() {
        let req = |auth: Option<&str>| Request {
            method: "GET".into(),
            path: "/metrics".into(),
            version: "HTTP/1.1".into(),
            headers: auth
                .map(|v| ("Authorization".to_string(), v.to_string()))
                .into_iter()
                .collect(),
        };
        let access = Access::Token(Sha256::digest(b"s3cret-admin").into());
        assert!(access.check(&req(Some("Bearer s3cret-admin"))).is_ok());
        assert!(access.check(&req(Some("bearer  s3cret-admin "))).is_ok());
        let missing = access.check(&req(None)).unwrap_err();
        assert!(!missing.contains("invalid_token"), "{missing}");
        assert_eq!(access.check(&req(Some("Basic s3cret-admin"))), Err(missing));
        let wrong = access
            .check(&req(Some("Bearer s3cret-admin2")))
            .unwrap_err();
        assert!(wrong.contains("error=\"invalid_token\""), "{wrong}");
        assert!(access.check(&req(Some("Bearer"))).is_err());
        assert!(
            Access::Locked
                .check(&req(Some("Bearer s3cret-admin")))
                .is_err()
        );
        assert!(Access::Open.check(&req(None)).is_ok());
    }
}
