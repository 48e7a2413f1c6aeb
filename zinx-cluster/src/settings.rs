//! Optional tuning of a cluster: `settings.json` beside `dinx.json`.
//!
//! Every field has a default, so the file may be absent or hold only what
//! differs. Durations are whole milliseconds. Unknown keys are an error (a
//! typo never silently falls back to a default).
//!
//! ```json
//! {
//!   "max_frame_len": 65536,
//!   "max_sessions": 100000,
//!   "idle_timeout_ms": 60000,
//!   "balance": { "im": "round_robin" },
//!   "secret": "change me",
//!   "redis_url": "redis://127.0.0.1:6379/0",
//!   "tls_cert": "certs/gate.pem",
//!   "tls_key": "certs/gate.key",
//!   "otlp_endpoint": "http://127.0.0.1:4318/v1/traces",
//!   "admin_token_env": "ZINX_ADMIN_TOKEN"
//! }
//! ```
//!
//! Relative `tls_cert` / `tls_key` paths are relative to the configuration
//! directory. Secrets can stay out of the file: `ZINX_CLUSTER_SECRET`
//! overrides `secret`, and `admin_token_env` names the environment
//! variable that holds the admin token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Environment variable that overrides [`Settings::secret`].
pub const SECRET_ENV: &str = "ZINX_CLUSTER_SECRET";
/// Environment variable that overrides [`Settings::redis_url`].
pub const REDIS_URL_ENV: &str = "ZINX_REDIS_URL";
/// The secret used when none is configured; startup warns loudly about it.
pub(crate) const DEFAULT_SECRET: &str = "zinx-cluster-insecure-default-secret";

/// How a group's node is chosen for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Hash of the session id over the live nodes: one session, one node
    /// (while that node lives).
    #[default]
    Sticky,
    /// Each message to the next live node.
    RoundRobin,
    /// A uniformly random live node.
    Random,
}

/// What a client is told when its message fails (unknown msg_id, bad
/// payload, handler error, no live node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ErrorReply {
    /// A frame on [`Settings::error_msg_id`] whose data is JSON:
    /// `{"msg_id":N,"code":"unknown_msg_id","error":"..."}`.
    #[default]
    Frame,
    /// Nothing (the failure is still logged and counted).
    None,
}

/// Tuning knobs; see the module docs for the file format.
///
/// `Debug` never shows the secret, nor the password of the Redis URL.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Largest data length of a client frame; a header announcing more
    /// closes the connection. Default 65536.
    pub max_frame_len: usize,
    /// Sessions one gate holds at most; beyond it a new connection is
    /// accepted and closed at once (logged, counted). Default 100000.
    pub max_sessions: usize,
    /// A client silent this long is closed; 0 disables. Default 60000.
    pub idle_timeout_ms: u64,
    /// Frames queued towards one client at most; a client that lets its
    /// queue fill is closed (logged, counted). Default 1024.
    pub session_queue: usize,
    /// Bytes (frame headers included) queued towards one client at most;
    /// beyond it the client is closed like a full `session_queue`, with a
    /// reset, so neither the gate nor the kernel keeps its backlog. A
    /// single larger frame still passes an empty queue. Default 1 MiB.
    pub session_queue_bytes: usize,
    /// Envelopes queued on one node-to-node link at most; when full the
    /// message fails with an error answer (logged, counted). Default 65536.
    pub link_queue: usize,
    /// Messages queued for one session on a backend at most; beyond it the
    /// message fails with an error answer. Default 1024.
    pub node_session_queue: usize,
    /// A link sends a heartbeat when it has been quiet this long.
    /// Default 500.
    pub heartbeat_interval_ms: u64,
    /// A link silent this long is declared dead. Default 2000 (so a dead
    /// peer is known within the 3 s bound).
    pub heartbeat_timeout_ms: u64,
    /// First reconnect delay of a link; doubles up to the maximum.
    /// Default 100.
    pub reconnect_min_ms: u64,
    /// Cap of the reconnect delay. Default 2000.
    pub reconnect_max_ms: u64,
    /// Default timeout of `Ctx::call`. Default 5000.
    pub call_timeout_ms: u64,
    /// On shutdown, in-flight handlers get this long to finish.
    /// Default 5000.
    pub shutdown_grace_ms: u64,
    /// Shared secret proving a node belongs to the cluster (HMAC of a
    /// challenge). `ZINX_CLUSTER_SECRET` overrides it; without either a
    /// well-known default is used and startup warns loudly.
    pub secret: Option<String>,
    /// Balancing of groups not named in [`Settings::balance`].
    /// Default `sticky`.
    pub default_balance: Balance,
    /// Balancing per group name.
    pub balance: BTreeMap<String, Balance>,
    /// How failures are answered. Default `frame`.
    pub error_reply: ErrorReply,
    /// msg_id of error frames. Default 0 (never a route: validation refuses a
    /// route on it while `error_reply` is `frame`).
    pub error_msg_id: u32,
    /// Redis URL of the shared user directory (several gates);
    /// `ZINX_REDIS_URL` overrides it. Default none: in-memory directory.
    pub redis_url: Option<String>,
    /// Lifetime of a directory binding that its gate stops refreshing.
    /// Default 30000.
    pub directory_ttl_ms: u64,
    /// First part of every Redis key and channel of the directory
    /// (`<prefix>:uid:<uid>`, `<prefix>:gate:<id>`), so several clusters can
    /// share one Redis. Default `"zinx"`.
    pub directory_prefix: String,
    /// PEM certificate chain of the gates' client ports: with
    /// [`Settings::tls_key`], gates serve TLS on `Port` and WSS on `WsPort`.
    /// Default none (plain TCP and WebSocket).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of [`Settings::tls_cert`].
    pub tls_key: Option<PathBuf>,
    /// Per-msg_id metrics (counts by outcome, handler and forward latency)
    /// for the admin endpoint's `/metrics`. Default true; false leaves one
    /// branch per message.
    pub metrics: bool,
    /// OTLP/HTTP endpoint (JSON encoding) that spans are exported to, e.g.
    /// `http://127.0.0.1:4318/v1/traces`. Setting it turns tracing on: the
    /// gate starts a trace per client message and the envelope carries its
    /// W3C trace context to the backend. Default none: off.
    pub otlp_endpoint: Option<String>,
    /// With tracing on, trace one client message in this many (1 = every
    /// message). Default 1.
    pub trace_every: u32,
    /// Nodes run by one process link through in-memory queues instead of
    /// loopback TCP (the cluster secret is still proven). Default true;
    /// false keeps every link on TCP, e.g. to measure the network path
    /// with all nodes in one process.
    pub local_links: bool,
    /// How long a resumable session (its client said HELLO) outlives a
    /// lost socket: uid bound, rooms kept, frames kept for the client,
    /// backends told nothing, until it resumes on any gate or the window
    /// ends. Default 30000; 0 turns session resume off (HELLO is answered
    /// `disabled`).
    pub resume_window_ms: u64,
    /// Bytes of frames a resumable session keeps until its client
    /// acknowledges them; past it the session can no longer be resumed
    /// (`overflow`). Default 262144.
    pub resume_buffer_bytes: usize,
    /// Bearer token of the admin endpoints (`AdminPort`): when set, every
    /// path but `/healthz` and `/readyz` needs `Authorization: Bearer
    /// <token>` (visible ASCII, no spaces). Default none: open, as the
    /// endpoint binds loopback unless `AdminIP` says otherwise.
    pub admin_token: Option<String>,
    /// The environment variable holding the admin token, instead of
    /// [`Settings::admin_token`] (not both); it must be set when the
    /// cluster starts.
    pub admin_token_env: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("max_frame_len", &self.max_frame_len)
            .field("max_sessions", &self.max_sessions)
            .field("idle_timeout_ms", &self.idle_timeout_ms)
            .field("session_queue", &self.session_queue)
            .field("session_queue_bytes", &self.session_queue_bytes)
            .field("link_queue", &self.link_queue)
            .field("node_session_queue", &self.node_session_queue)
            .field("heartbeat_interval_ms", &self.heartbeat_interval_ms)
            .field("heartbeat_timeout_ms", &self.heartbeat_timeout_ms)
            .field("reconnect_min_ms", &self.reconnect_min_ms)
            .field("reconnect_max_ms", &self.reconnect_max_ms)
            .field("call_timeout_ms", &self.call_timeout_ms)
            .field("shutdown_grace_ms", &self.shutdown_grace_ms)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("default_balance", &self.default_balance)
            .field("balance", &self.balance)
            .field("error_reply", &self.error_reply)
            .field("error_msg_id", &self.error_msg_id)
            .field("redis_url", &self.redis_url.as_deref().map(redact))
            .field("directory_ttl_ms", &self.directory_ttl_ms)
            .field("directory_prefix", &self.directory_prefix)
            .field("local_links", &self.local_links)
            .field("resume_window_ms", &self.resume_window_ms)
            .field("resume_buffer_bytes", &self.resume_buffer_bytes)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .field("admin_token_env", &self.admin_token_env)
            .finish_non_exhaustive()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_frame_len: crate::frame::DEFAULT_MAX_FRAME_LEN,
            max_sessions: 100_000,
            idle_timeout_ms: 60_000,
            session_queue: 1024,
            session_queue_bytes: 1 << 20,
            link_queue: 65_536,
            node_session_queue: 1024,
            heartbeat_interval_ms: 500,
            heartbeat_timeout_ms: 2_000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 2_000,
            call_timeout_ms: 5_000,
            shutdown_grace_ms: 5_000,
            secret: None,
            default_balance: Balance::Sticky,
            balance: BTreeMap::new(),
            error_reply: ErrorReply::Frame,
            error_msg_id: 0,
            redis_url: None,
            directory_ttl_ms: 30_000,
            directory_prefix: "zinx".to_string(),
            tls_cert: None,
            tls_key: None,
            metrics: true,
            otlp_endpoint: None,
            trace_every: 1,
            local_links: true,
            resume_window_ms: 30_000,
            resume_buffer_bytes: 256 * 1024,
            admin_token: None,
            admin_token_env: None,
        }
    }
}

impl Settings {
    /// The balancing policy of a group.
    pub fn balance_of(&self, group: &str) -> Balance {
        self.balance
            .get(group)
            .copied()
            .unwrap_or(self.default_balance)
    }

    /// The cluster secret: `ZINX_CLUSTER_SECRET`, else the setting, else the
    /// insecure default (`true` in the second field).
    pub fn effective_secret(&self) -> (String, bool) {
        if let Ok(s) = std::env::var(SECRET_ENV) {
            if !s.is_empty() {
                return (s, false);
            }
        }
        match &self.secret {
            Some(s) if !s.is_empty() => (s.clone(), false),
            _ => (DEFAULT_SECRET.to_string(), true),
        }
    }

    /// The TLS certificate and key files, relative paths resolved against
    /// the configuration directory `dir`; `None` when TLS is off.
    pub fn tls_files(&self, dir: &Path) -> Option<(PathBuf, PathBuf)> {
        let (cert, key) = (self.tls_cert.as_ref()?, self.tls_key.as_ref()?);
        Some((dir.join(cert), dir.join(key)))
    }

    /// The admin token: the value of the variable `admin_token_env` names,
    /// else `admin_token`; `None` when neither is set (the endpoint is
    /// open). `Err` says why the named variable gives no token.
    pub(crate) fn effective_admin_token(&self) -> Result<Option<String>, String> {
        match &self.admin_token_env {
            Some(name) => match std::env::var(name) {
                Ok(token) if !token.is_empty() => Ok(Some(token)),
                Ok(_) => Err(format!(
                    "environment variable {name} (admin_token_env) is empty"
                )),
                Err(_) => Err(format!(
                    "environment variable {name} (admin_token_env) is not set, or not UTF-8"
                )),
            },
            None => Ok(self.admin_token.clone()),
        }
    }

    /// The Redis URL: `ZINX_REDIS_URL`, else the setting.
    pub fn effective_redis_url(&self) -> Option<String> {
        match std::env::var(REDIS_URL_ENV) {
            Ok(s) if !s.is_empty() => Some(s),
            _ => self.redis_url.clone(),
        }
    }
}

/// `url` with the password (the user info) replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    // The last `@` ends the user info even when the password holds `@` or
    // `/` (the path and query of a Redis URL have none).
    match rest.rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end], &rest[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_in_urls() {
        assert_eq!(
            redact("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            redact("redis://:s3cret@redis.internal:6379/0"),
            "redis://***@redis.internal:6379/0"
        );
        assert_eq!(redact("rediss://user:p@s/s@h/1"), "rediss://***@h/1");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn debug_hides_the_secret_and_the_redis_password() {
        let s = Settings {
            secret: Some("hunter2-cluster".into()),
            admin_token: Some("hunter2-admin".into()),
            redis_url: Some("redis://:pa55word@redis.internal:6379/0".into()),
            ..Settings::default()
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("pa55word"), "{shown}");
        assert!(
            shown.contains("redis://***@redis.internal:6379/0"),
            "{shown}"
        );
        assert!(shown.contains("secret: Some(\"***\")"), "{shown}");
    }
}
