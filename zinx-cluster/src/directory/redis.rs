//! The user directory in Redis, for clusters with several gates.
//!
//! What lives in Redis (`<prefix>` is the `directory_prefix` setting,
//! default `zinx`):
//!
//! | what | Redis | value |
//! |---|---|---|
//! | where uid U is | string `<prefix>:uid:<U>`, with a TTL | the session id in decimal (its gate in the high 16 bits) |
//! | messages to gate N | pub/sub channel `<prefix>:gate:<N>` | one encoded [`Envelope`] (a zinx TLV frame) |
//!
//! - bind: `SET key session GET PX ttl` (Redis 6.2 or newer) writes the
//!   binding and returns the previous holder in one step, so two logins of
//!   one uid on two gates always see each other.
//! - unbind: a Lua compare-and-delete, so an older session closing never
//!   removes the binding of a newer login.
//! - locate: `GET`.
//! - keep-alive: every `ttl / 3` each gate runs a Lua script over its
//!   bindings, in batches: `PEXPIRE` where the key still names the gate's
//!   session, re-create it where the key is gone (Redis restarted without
//!   persistence), leave it alone where another session holds the uid. A
//!   gate that dies stops refreshing, so its bindings vanish within the TTL.
//! - gate to gate: `PUBLISH` on the target gate's channel. Each gate
//!   subscribes to its own channel, pings the subscription to notice a
//!   silently dead connection, and resubscribes with backoff.
//!
//! Every operation is bounded by [`OP_TIMEOUT`]: with Redis down, directory
//! operations fail at once with [`SendError::Directory`] naming Redis, and
//! everything that does not need the directory keeps working. Commands go
//! through one `ConnectionManager` per node, created lazily (startup neither
//! fails nor waits when Redis is down) and reconnecting by itself; an outage
//! is logged once when it starts and once when it ends.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use super::subscription::Subscription;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ErrorKind, RedisError, Script};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::envelope::Envelope;
use crate::error::SendError;
use crate::frame::FrameCodec;
use crate::session::SessionId;
use crate::settings::Settings;

/// Longest wait for Redis in any directory operation (connecting included):
/// a hung or unreachable Redis fails the operation, never wedges a session.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(1);

/// Bindings per keep-alive (or final cleanup) script run: large enough for
/// few round trips, small enough that one run never holds Redis for long.
const BATCH: usize = 256;

/// Redis unreachable this long with a connection manager this old: replace
/// the manager, in case it is stuck on a failed connection it does not
/// retry (e.g. a failed authentication after the password was fixed).
const REBUILD_AFTER: Duration = Duration::from_secs(5);

/// At shutdown, the last cleanup of a gate's bindings gets this long.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Removes each binding of `KEYS` that still names its session `ARGV[i]`.
const UNBIND_LUA: &str = r"
local removed = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then
    redis.call('DEL', key)
    removed = removed + 1
  end
end
return removed
";

/// Keeps alive each binding of `KEYS` (for `ARGV[1]` ms) that still names
/// its session `ARGV[i + 1]`, re-creates those that are gone, and returns
/// the (1-based) positions of the re-created ones.
const REFRESH_LUA: &str = r"
local recreated = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
  elseif not holder then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
    recreated[#recreated + 1] = i
  end
end
return recreated
";

/// The command connection and what decides when to replace it.
struct Managed {
    /// Multiplexed, reconnecting connection shared by every operation.
    manager: ConnectionManager,
    /// When `manager` was created.
    built: Instant,
    /// Since when Redis has been failing (`None` while it answers): an
    /// outage is logged once at its start and once at its end.
    down_since: Option<Instant>,
}

/// The directory of a node whose cluster has a Redis URL.
pub(crate) struct RedisDirectory {
    /// The URL with any password hidden, for messages and logs.
    url: String,
    /// Opens command connections and the gate's pub/sub connections.
    client: Client,
    /// See [`Managed`].
    conn: Mutex<Managed>,
    /// `<prefix>:uid:`.
    uid_prefix: String,
    /// `<prefix>:gate:`.
    gate_prefix: String,
    /// Lifetime of a binding its gate stops refreshing (`directory_ttl_ms`).
    ttl_ms: u64,
    /// [`UNBIND_LUA`].
    unbind_script: Script,
    /// [`REFRESH_LUA`].
    refresh_script: Script,
    /// The startup check; `close` waits for it.
    tasks: TaskTracker,
}

impl std::fmt::Debug for RedisDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDirectory")
            .field("url", &self.url)
            .field("uid_prefix", &self.uid_prefix)
            .field("ttl_ms", &self.ttl_ms)
            .finish_non_exhaustive()
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

/// One connection attempt per reconnection, no backoff inside the manager:
/// with Redis down an operation fails at once instead of waiting through
/// retries, and every operation (the keep-alive and the startup check
/// included) starts a fresh attempt, so the first one after Redis is back
/// succeeds.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(OP_TIMEOUT))
        .set_response_timeout(Some(OP_TIMEOUT))
        .set_number_of_retries(0)
}

/// Whether an error says Redis itself is unreachable or unusable (as
/// opposed to refusing one command on a working connection).
fn is_outage(e: &RedisError) -> bool {
    !matches!(
        e.kind(),
        ErrorKind::Server(_) | ErrorKind::UnexpectedReturnType
    )
}

impl RedisDirectory {
    /// A directory on `url` with the settings' TTL and key prefix. Only the
    /// URL is checked here: nothing connects yet, so a Redis that is down
    /// at startup delays nothing (the connection is made by the first
    /// operation and retried by every later one).
    pub(crate) fn open(url: &str, settings: &Settings) -> Result<RedisDirectory, String> {
        let shown = redact(url);
        let client = Client::open(url).map_err(|e| format!("invalid Redis URL {shown:?}: {e}"))?;
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config())
            .map_err(|e| format!("Redis at {shown}: {e}"))?;
        let prefix = &settings.directory_prefix;
        Ok(RedisDirectory {
            url: shown,
            client,
            conn: Mutex::new(Managed {
                manager,
                built: Instant::now(),
                down_since: None,
            }),
            uid_prefix: format!("{prefix}:uid:"),
            gate_prefix: format!("{prefix}:gate:"),
            ttl_ms: settings.directory_ttl_ms,
            unbind_script: Script::new(UNBIND_LUA),
            refresh_script: Script::new(REFRESH_LUA),
            tasks: TaskTracker::new(),
        })
    }

    /// The Redis key of a uid's binding.
    pub(crate) fn key(&self, uid: &str) -> String {
        format!("{}{uid}", self.uid_prefix)
    }

    /// The pub/sub channel of a gate.
    pub(crate) fn channel(&self, gate: u16) -> String {
        format!("{}{gate}", self.gate_prefix)
    }

    fn managed(&self) -> MutexGuard<'_, Managed> {
        // Nothing panics while holding it; recover the data if it ever did.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn manager(&self) -> ConnectionManager {
        self.managed().manager.clone()
    }

    /// Notes that Redis answered.
    fn up(&self) {
        let mut m = self.managed();
        if let Some(since) = m.down_since.take() {
            info!(url = %self.url, down_for = ?since.elapsed(), "user directory: Redis is reachable again");
        }
    }

    /// Notes that Redis failed: logs the start of an outage, and replaces a
    /// connection manager that has been failing for long.
    fn down(&self, what: &str, why: &dyn std::fmt::Display) {
        let mut m = self.managed();
        let now = Instant::now();
        match m.down_since {
            None => {
                m.down_since = Some(now);
                error!(
                    url = %self.url, op = what, error = %why,
                    "!!! user directory: Redis is unreachable. Logins, and pushes and kicks across gates, fail until it is back; reconnecting !!!"
                );
            }
            Some(since)
                if now.duration_since(since) > REBUILD_AFTER
                    && now.duration_since(m.built) > REBUILD_AFTER =>
            {
                match ConnectionManager::new_lazy_with_config(self.client.clone(), manager_config())
                {
                    Ok(manager) => {
                        debug!(url = %self.url, "replacing the Redis connection manager");
                        m.manager = manager;
                        m.built = now;
                    }
                    Err(e) => {
                        warn!(url = %self.url, error = %e, "cannot recreate the Redis connection")
                    }
                }
            }
            Some(_) => {}
        }
    }

    /// Runs one operation against Redis within [`OP_TIMEOUT`]. `retry`: the
    /// operation is idempotent and is tried a second time (within the same
    /// time budget) after an I/O error: the first attempt may only have
    /// found the connection dropped (Redis restarted) or an old failed
    /// connection attempt, and the second runs on the fresh connection that
    /// the failure started.
    async fn op<T, F, Fut>(&self, what: &str, retry: bool, f: F) -> Result<T, SendError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempts = async {
            let first = f(self.manager()).await;
            match first {
                Err(e) if retry && e.is_io_error() => f(self.manager()).await,
                other => other,
            }
        };
        match tokio::time::timeout(OP_TIMEOUT, attempts).await {
            Ok(Ok(v)) => {
                self.up();
                Ok(v)
            }
            Ok(Err(e)) if is_outage(&e) => {
                self.down(what, &e);
                Err(SendError::directory(format!(
                    "Redis at {} is unavailable ({what} failed: {e})",
                    self.url
                )))
            }
            Ok(Err(e)) => {
                self.up();
                warn!(url = %self.url, op = what, error = %e, "Redis refused a directory operation");
                Err(SendError::directory(format!(
                    "Redis at {} refused {what}: {e}",
                    self.url
                )))
            }
            Err(_) => {
                let why = format!("no answer within {OP_TIMEOUT:?}");
                self.down(what, &why);
                Err(SendError::directory(format!(
                    "Redis at {} is unavailable ({what}: {why})",
                    self.url
                )))
            }
        }
    }

    // ---------------------------------------------------------------
    // The directory contract (see `Directory`)
    // ---------------------------------------------------------------

    /// Writes `uid → session` and returns the previous holder.
    pub(crate) async fn bind(
        &self,
        uid: &str,
        session: SessionId,
    ) -> Result<Option<SessionId>, SendError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(uid))
            .arg(session.0)
            .arg("GET")
            .arg("PX")
            .arg(self.ttl_ms);
        let cmd = &cmd;
        // A retried SET that had in fact run returns this very session as
        // the previous holder; the caller ignores it.
        let previous: Option<String> = self
            .op("bind", true, |mut c| async move {
                cmd.query_async(&mut c).await
            })
            .await?;
        Ok(previous.and_then(|p| match p.parse::<u64>() {
            Ok(id) => Some(SessionId(id)),
            Err(_) => {
                warn!(uid, value = %p, "a directory binding held something else than a session id; overwritten");
                None
            }
        }))
    }

    /// Removes `uid → session` if the binding still names `session`.
    pub(crate) async fn unbind(&self, uid: &str, session: SessionId) -> Result<(), SendError> {
        self.unbind_many(&[(uid, session)]).await.map(|_| ())
    }

    /// Removes each binding that still names its session; returns how many
    /// were removed.
    async fn unbind_many(&self, bindings: &[(&str, SessionId)]) -> Result<u64, SendError> {
        let mut inv = self.unbind_script.prepare_invoke();
        for (uid, session) in bindings {
            inv.key(self.key(uid)).arg(session.0);
        }
        let inv = &inv;
        self.op("unbind", true, |mut c| async move {
            inv.invoke_async(&mut c).await
        })
        .await
    }

    /// The gate holding `uid`, or `None` when it is bound nowhere.
    pub(crate) async fn locate(&self, uid: &str) -> Result<Option<u16>, SendError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(uid));
        let cmd = &cmd;
        let holder: Option<String> = self
            .op("locate", true, |mut c| async move {
                cmd.query_async(&mut c).await
            })
            .await?;
        Ok(holder
            .and_then(|h| h.parse::<u64>().ok())
            .map(|id| SessionId(id).gate()))
    }

    /// Publishes an envelope on gate `gate`'s channel. Fails with
    /// [`SendError::Unreachable`] when no gate listens there (it is down,
    /// or its subscription is being re-established).
    pub(crate) async fn publish(&self, gate: u16, env: Envelope) -> Result<(), SendError> {
        let mut buf = BytesMut::with_capacity(env.wire_len());
        env.encode_into(&mut buf)
            .map_err(|e| SendError::directory(format!("message not encodable: {e}")))?;
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.channel(gate)).arg(&buf[..]);
        let cmd = &cmd;
        // Not retried: a publish that did reach Redis before the connection
        // dropped would be delivered twice.
        let receivers: i64 = self
            .op("publish", false, |mut c| async move {
                cmd.query_async(&mut c).await
            })
            .await?;
        if receivers == 0 {
            return Err(SendError::Unreachable { node: gate });
        }
        Ok(())
    }

    /// `INFO server`: proves Redis answers, and tells its version.
    async fn server_info(&self) -> Result<String, SendError> {
        let mut cmd = redis::cmd("INFO");
        cmd.arg("server");
        let cmd = &cmd;
        self.op("check", true, |mut c| async move {
            cmd.query_async(&mut c).await
        })
        .await
    }

    // ---------------------------------------------------------------
    // Keep-alive (the gate runs the loop, see `gate::directory`)
    // ---------------------------------------------------------------

    /// Keeps alive (for the TTL) each binding that still names its
    /// session, re-creates those Redis lost, and returns the re-created
    /// ones.
    pub(crate) async fn refresh<'a>(
        &self,
        bindings: &'a [(Arc<str>, SessionId)],
    ) -> Result<Vec<&'a (Arc<str>, SessionId)>, SendError> {
        let mut recreated_all = Vec::new();
        for chunk in bindings.chunks(BATCH) {
            let mut inv = self.refresh_script.prepare_invoke();
            inv.arg(self.ttl_ms);
            for (uid, session) in chunk {
                inv.key(self.key(uid)).arg(session.0);
            }
            let inv = &inv;
            let recreated: Vec<usize> = self
                .op("refresh bindings", true, |mut c| async move {
                    inv.invoke_async(&mut c).await
                })
                .await?;
            recreated_all.extend(
                recreated
                    .into_iter()
                    .filter_map(|i| i.checked_sub(1).and_then(|i| chunk.get(i))),
            );
        }
        Ok(recreated_all)
    }

    /// Removes each binding that still names its session, in batches;
    /// returns how many were removed.
    pub(crate) async fn unbind_all(
        &self,
        bindings: &[(Arc<str>, SessionId)],
    ) -> Result<u64, SendError> {
        let mut removed = 0;
        for chunk in bindings.chunks(BATCH) {
            let chunk: Vec<(&str, SessionId)> = chunk.iter().map(|(u, s)| (&**u, *s)).collect();
            removed += self.unbind_many(&chunk).await?;
        }
        Ok(removed)
    }

    /// The keep-alive period: a third of the TTL.
    pub(crate) fn refresh_period(&self) -> Duration {
        Duration::from_millis((self.ttl_ms / 3).max(1))
    }

    // ---------------------------------------------------------------
    // Startup check
    // ---------------------------------------------------------------

    /// Starts a check that Redis answers (logged loudly until it does); it
    /// ends early when `closed` is cancelled.
    pub(crate) fn start_check(self: &Arc<Self>, node: u16, closed: CancellationToken) {
        let span = info_span!("directory", node);
        self.tasks
            .spawn(self.clone().check(closed).instrument(span));
    }

    /// Waits (a bounded time) for the check to end.
    pub(crate) async fn close(&self) {
        self.tasks.close();
        if tokio::time::timeout(CLOSE_TIMEOUT, self.tasks.wait())
            .await
            .is_err()
        {
            warn!(url = %self.url, "directory check still running at the end of shutdown");
        }
    }

    /// Pings Redis until it answers (each failure after the first is only
    /// retried: the outage was logged once), and warns when it is too old.
    async fn check(self: Arc<Self>, closed: CancellationToken) {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.server_info().await {
                Ok(info) => {
                    let version = info
                        .lines()
                        .find_map(|l| l.strip_prefix("redis_version:"))
                        .unwrap_or("?")
                        .trim()
                        .to_string();
                    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
                    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
                    if (major, minor) < (6, 2) {
                        error!(url = %self.url, %version, "!!! user directory: Redis {version} is too old: bind needs SET ... GET (Redis 6.2 or newer) !!!");
                    } else {
                        info!(url = %self.url, %version, "user directory: Redis reachable");
                    }
                    return;
                }
                // Redis answered, refusing INFO (an ACL): reachable.
                Err(_) if self.managed().down_since.is_none() => return,
                Err(_) => {}
            }
            tokio::select! {
                _ = closed.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// A subscription to gate `gate`'s channel (see [`Subscription`]).
    pub(crate) fn subscribe(self: &Arc<Self>, gate: u16) -> Subscription {
        Subscription::new(self.clone(), self.channel(gate))
    }

    /// Opens a pub/sub connection subscribed to `channel`, within
    /// [`OP_TIMEOUT`].
    pub(crate) async fn open_subscription(
        &self,
        channel: &str,
    ) -> Result<redis::aio::PubSub, String> {
        let connect = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, RedisError>(pubsub)
        };
        match tokio::time::timeout(OP_TIMEOUT, connect).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {OP_TIMEOUT:?}")),
        }
    }
}

/// Decodes one message of a gate channel: exactly one envelope frame.
pub(crate) fn decode(payload: &[u8]) -> Result<Envelope, String> {
    let mut buf = BytesMut::from(payload);
    let frame = FrameCodec::new(payload.len())
        .decode(&mut buf)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} bytes are not a whole frame", payload.len()))?;
    if !buf.is_empty() {
        return Err(format!("{} bytes after the frame", buf.len()));
    }
    Envelope::decode(frame).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Kind;
    use bytes::Bytes;

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

    #[tokio::test]
    async fn keys_and_channels_are_namespaced() {
        let settings = Settings {
            directory_prefix: "chat".into(),
            ..Settings::default()
        };
        let d = RedisDirectory::open("redis://127.0.0.1:1/0", &settings).unwrap();
        assert_eq!(d.key("alice"), "chat:uid:alice");
        assert_eq!(d.channel(7), "chat:gate:7");
    }

    #[tokio::test]
    async fn a_bad_url_is_a_clear_error() {
        let e = RedisDirectory::open("http://:pw@nowhere", &Settings::default()).unwrap_err();
        assert!(
            e.starts_with("invalid Redis URL \"http://***@nowhere\""),
            "{e}"
        );
    }

    #[test]
    fn gate_channel_messages_decode_to_exactly_one_envelope() {
        let mut env = Envelope::new(Kind::ToUid);
        env.node = 2;
        env.msg_id = 3;
        env.uid = Bytes::from_static(b"bob");
        env.payload = Bytes::from_static(b"hi");
        let mut buf = BytesMut::new();
        env.encode_into(&mut buf).unwrap();
        assert_eq!(decode(&buf).unwrap(), env);
        assert!(decode(&buf[..buf.len() - 1]).is_err());
        let mut two = buf.clone();
        two.extend_from_slice(&buf);
        assert!(decode(&two).is_err());
        assert!(decode(b"").is_err());
    }
}
