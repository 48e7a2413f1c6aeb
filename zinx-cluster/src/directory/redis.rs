//! The user directory in Redis, for clusters with several gates.
//!
//! What lives in Redis (`<prefix>` is the `directory_prefix` setting,
//! default `zinx`):
//!
//! | what | Redis | value |
//! |---|---|---|
//! | where uid U is | string `<prefix>:uid:<U>`, with a TTL | `<session>:<gate>:<run>`: the session id in decimal (its gate in the high 16 bits), its gate, and the run id of that gate's process |
//! | gate N is alive | string `<prefix>:gate:<N>:run`, TTL `heartbeat_timeout_ms` | the run id of gate N's process, refreshed every `heartbeat_interval_ms` |
//! | messages to gate N | pub/sub channel `<prefix>:gate:<N>` | one encoded [`Envelope`] (a zinx TLV frame) and a signed trailer (see `seal`) |
//!
//! - bind: `SET key value GET PX ttl` (Redis 6.2 or newer) writes the
//!   binding and returns the previous holder in one step, so two logins of
//!   one uid on two gates always see each other; the same round trip
//!   refreshes the gate's run key.
//! - unbind: a Lua compare-and-delete, so an older session closing never
//!   removes the binding of a newer login.
//! - locate: a Lua script reads the binding and its gate's run key; a
//!   binding whose gate run key is gone (the gate died: nobody refreshed it
//!   within the heartbeat timeout) or names another run (the gate was
//!   restarted) is stale: the script deletes it and the uid is not online.
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

use super::keepalive::{DELETE_IF_LUA, REFRESH_LUA};
use super::outbox::Outbox;
use super::seal::{Opener, Sealer};
use crate::envelope::Envelope;
use crate::error::SendError;
use crate::frame::FrameCodec;
use crate::metrics::Metrics;
use crate::peer::LinkKey;
use crate::session::SessionId;
use crate::settings::Settings;

/// Longest wait for Redis in any directory operation (connecting included):
/// a hung or unreachable Redis fails the operation, never wedges a session.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(1);

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

/// The binding of `KEYS[1]` if its gate's run (`ARGV[1]` is the gate key
/// prefix) is the one alive; a stale binding is deleted and `0` returned.
/// A value without a run (written by an older version) is returned as is.
const LOCATE_LUA: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local gate, run = string.match(v, '^%d+:(%d+):(%d+)$')
if not gate then return v end
if redis.call('GET', ARGV[1] .. gate .. ':run') == run then return v end
redis.call('DEL', KEYS[1])
return 0
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
    pub(super) ttl_ms: u64,
    /// This node's id.
    pub(super) node: u16,
    /// This node's run id (a random number drawn at start): names this
    /// process in its bindings and its run key.
    pub(super) run: u64,
    /// Lifetime of a gate's run key (`heartbeat_timeout_ms`): a gate
    /// silent this long is dead to the directory.
    pub(super) run_ttl_ms: u64,
    /// How often a gate refreshes its run key (`heartbeat_interval_ms`).
    pub(super) run_period: Duration,
    /// Signs what this node publishes.
    sealer: Sealer,
    /// The cluster secret, for the subscription's [`Opener`].
    key: LinkKey,
    /// [`LOCATE_LUA`].
    locate_script: Script,
    /// [`DELETE_IF_LUA`].
    pub(super) delete_if_script: Script,
    /// [`UNBIND_LUA`].
    unbind_script: Script,
    /// [`REFRESH_LUA`].
    pub(super) refresh_script: Script,
    /// The startup check and the bus publishers; `close` waits for them.
    pub(super) tasks: TaskTracker,
    /// Cancelled by `close`: the bus publishers publish what is queued
    /// and end.
    pub(super) stopping: CancellationToken,
    /// The bus's queues, one per target gate (see `outbox`).
    pub(super) outbox: Outbox,
    /// Bound of each queue (`link_queue`, as a link's).
    pub(super) queue_len: usize,
    /// The node's counters (the bus counts what it refuses and fails).
    pub(super) metrics: Arc<Metrics>,
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
    pub(crate) fn open(
        url: &str,
        settings: &Settings,
        me: Identity,
    ) -> Result<RedisDirectory, String> {
        let shown = crate::settings::redact(url);
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
            node: me.node,
            run: me.run,
            run_ttl_ms: settings.heartbeat_timeout_ms.max(1),
            run_period: Duration::from_millis(settings.heartbeat_interval_ms.max(1)),
            sealer: Sealer::new(me.key.clone(), me.run),
            key: me.key,
            locate_script: Script::new(LOCATE_LUA),
            delete_if_script: Script::new(DELETE_IF_LUA),
            unbind_script: Script::new(UNBIND_LUA),
            refresh_script: Script::new(REFRESH_LUA),
            tasks: TaskTracker::new(),
            stopping: CancellationToken::new(),
            outbox: Outbox::new(),
            queue_len: settings.link_queue.max(1),
            metrics: me.metrics,
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

    /// The key that says which run of a gate is alive.
    pub(crate) fn run_key(&self, gate: u16) -> String {
        format!("{}{gate}:run", self.gate_prefix)
    }

    /// What a binding of `session` (of this gate) holds.
    pub(super) fn value(&self, session: SessionId) -> String {
        format!("{}:{}:{}", session.0, self.node, self.run)
    }

    /// This node's id.
    pub(crate) fn node(&self) -> u16 {
        self.node
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
    pub(super) async fn op<T, F, Fut>(&self, what: &str, retry: bool, f: F) -> Result<T, SendError>
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
        let mut pipe = redis::pipe();
        // The run key first: a binding is never visible before its run.
        pipe.cmd("SET")
            .arg(self.run_key(self.node))
            .arg(self.run)
            .arg("PX")
            .arg(self.run_ttl_ms)
            .ignore()
            .cmd("SET")
            .arg(self.key(uid))
            .arg(self.value(session))
            .arg("GET")
            .arg("PX")
            .arg(self.ttl_ms);
        let pipe = &pipe;
        // A retried SET that had in fact run returns this very session as
        // the previous holder; the caller ignores it.
        let (previous,): (Option<String>,) = self
            .op("bind", true, |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        Ok(previous.and_then(|p| match session_of(&p) {
            Some(id) => Some(id),
            None => {
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
    pub(super) async fn unbind_many(
        &self,
        bindings: &[(&str, SessionId)],
    ) -> Result<u64, SendError> {
        let mut inv = self.unbind_script.prepare_invoke();
        for (uid, session) in bindings {
            inv.key(self.key(uid)).arg(self.value(*session));
        }
        let inv = &inv;
        self.op("unbind", true, |mut c| async move {
            inv.invoke_async(&mut c).await
        })
        .await
    }

    /// The gate holding `uid`, or `None` when it is bound nowhere, or
    /// bound on a gate that is dead or restarted (that stale binding is
    /// removed on the way).
    pub(crate) async fn locate(&self, uid: &str) -> Result<Option<u16>, SendError> {
        let mut inv = self.locate_script.prepare_invoke();
        inv.key(self.key(uid)).arg(&self.gate_prefix);
        let inv = &inv;
        let holder: redis::Value = self
            .op("locate", true, |mut c| async move {
                inv.invoke_async(&mut c).await
            })
            .await?;
        Ok(match holder {
            redis::Value::BulkString(v) => std::str::from_utf8(&v)
                .ok()
                .and_then(session_of)
                .map(SessionId::gate),
            redis::Value::Int(_) => {
                self.metrics.stale_bindings.add(1);
                debug!(uid, "binding on a dead gate removed: not online");
                None
            }
            _ => None,
        })
    }

    /// The signed message carrying `env` to gate `gate`.
    pub(super) fn seal(&self, gate: u16, env: &Envelope) -> Result<BytesMut, String> {
        self.sealer.seal(gate, env)
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
    // Startup check
    // ---------------------------------------------------------------

    /// Starts a check that Redis answers (logged loudly until it does); it
    /// ends early when `closed` is cancelled.
    pub(crate) fn start_check(self: &Arc<Self>, node: u16, closed: CancellationToken) {
        let span = info_span!("directory", node);
        self.tasks
            .spawn(self.clone().check(closed).instrument(span));
    }

    /// Stops the bus publishers once they have published what is queued,
    /// and waits (a bounded time) for them and the check to end.
    pub(crate) async fn close(&self) {
        self.stopping.cancel();
        self.tasks.close();
        if tokio::time::timeout(CLOSE_TIMEOUT, self.tasks.wait())
            .await
            .is_err()
        {
            warn!(url = %self.url, "directory check or bus publishers still running at the end of shutdown");
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

    /// A subscription to this gate's channel (see [`Subscription`]),
    /// opening only messages signed for it.
    pub(crate) fn subscribe(self: &Arc<Self>) -> Subscription {
        Subscription::new(
            self.clone(),
            self.channel(self.node),
            Opener::new(self.key.clone(), self.node),
        )
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

/// The session of a binding's value (`<session>:<gate>:<run>`, or a bare
/// session id as older versions wrote).
fn session_of(value: &str) -> Option<SessionId> {
    value
        .split(':')
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .map(SessionId)
}

/// Who a node's directory speaks for.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The node id.
    pub(crate) node: u16,
    /// The run id of this process.
    pub(crate) run: u64,
    /// The cluster secret (signs and checks gate-to-gate messages).
    pub(crate) key: LinkKey,
    /// The node's counters.
    pub(crate) metrics: Arc<Metrics>,
}

/// Decodes the envelope of a gate channel message: exactly one frame.
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

    fn me() -> Identity {
        Identity {
            node: 1,
            run: 42,
            key: LinkKey::new(b"s").unwrap(),
            metrics: Arc::default(),
        }
    }

    #[tokio::test]
    async fn keys_and_channels_are_namespaced() {
        let settings = Settings {
            directory_prefix: "chat".into(),
            ..Settings::default()
        };
        let d = RedisDirectory::open("redis://127.0.0.1:1/0", &settings, me()).unwrap();
        assert_eq!(d.key("alice"), "chat:uid:alice");
        assert_eq!(d.channel(7), "chat:gate:7");
        assert_eq!(d.run_key(7), "chat:gate:7:run");
        assert_eq!(
            d.value(SessionId::new(1, 5)),
            format!("{}:1:42", SessionId::new(1, 5).0)
        );
        assert_eq!(
            session_of(&d.value(SessionId::new(1, 5))),
            Some(SessionId::new(1, 5))
        );
        assert_eq!(session_of("12"), Some(SessionId(12)));
        assert_eq!(session_of("x:1:2"), None);
    }

    #[tokio::test]
    async fn a_bad_url_is_a_clear_error() {
        let e = RedisDirectory::open("http://:pw@nowhere", &Settings::default(), me()).unwrap_err();
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
