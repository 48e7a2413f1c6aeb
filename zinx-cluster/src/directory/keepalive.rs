//! Keeping a gate alive in the directory: its run key (every heartbeat
//! interval; without it the gate's bindings are stale to everyone), its
//! bindings (every third of the TTL), and their removal at shutdown. The
//! gate runs the loops (`gate::directory`); this is what they call.

use std::sync::Arc;
use std::time::Duration;

use super::redis::RedisDirectory;
use crate::error::SendError;
use crate::session::SessionId;

/// Bindings per keep-alive (or final cleanup) script run: large enough for
/// few round trips, small enough that one run never holds Redis for long.
pub(super) const BATCH: usize = 256;

/// Deletes `KEYS[1]` if it still holds `ARGV[1]`.
pub(super) const DELETE_IF_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Keeps alive each binding of `KEYS` (for `ARGV[1]` ms) that still names
/// its session `ARGV[i + 1]`, re-creates those that are gone, and returns
/// the (1-based) positions of the re-created ones.
pub(super) const REFRESH_LUA: &str = r"
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

impl RedisDirectory {
    /// Writes this gate's run key: it is alive for the heartbeat timeout.
    pub(crate) async fn keep_run_alive(&self) -> Result<(), SendError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.run_key(self.node))
            .arg(self.run)
            .arg("PX")
            .arg(self.run_ttl_ms);
        let cmd = &cmd;
        self.op("refresh the gate's run", true, |mut c| async move {
            cmd.query_async(&mut c).await
        })
        .await
    }

    /// Removes this gate's run key if it still names this run (shutdown):
    /// its bindings are stale at once.
    pub(crate) async fn end_run(&self) -> Result<(), SendError> {
        let mut inv = self.delete_if_script.prepare_invoke();
        inv.key(self.run_key(self.node)).arg(self.run);
        let inv = &inv;
        self.op("end the gate's run", true, |mut c| async move {
            inv.invoke_async::<i64>(&mut c).await
        })
        .await
        .map(|_| ())
    }

    /// How often a gate refreshes its run key.
    pub(crate) fn run_period(&self) -> Duration {
        self.run_period
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
                inv.key(self.key(uid)).arg(self.value(*session));
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
}
