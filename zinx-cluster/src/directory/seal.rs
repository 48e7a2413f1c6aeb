//! Signed gate-to-gate messages: anyone who can publish on the Redis server
//! must not be able to push to users, so every message on a gate's channel
//! carries a proof of the cluster secret, as the links do.
//!
//! A message is one envelope frame followed by a trailer:
//!
//! | field | bytes | why |
//! |---|---|---|
//! | envelope | the zinx TLV frame | what is sent (its `node` is the sender) |
//! | run | u64 BE | the sender's run id: a restarted sender is a new run |
//! | seq | u64 BE | per sender run, increasing: a replay repeats a seq |
//! | time | u64 BE | the sender's clock (Unix ms): old captures are refused |
//! | mac | 32 | HMAC-SHA256 with the cluster secret over the label, the target gate, the frame and the three fields above |
//!
//! The receiver ([`Opener`]) checks the MAC first (unsigned and forged
//! messages are dropped), then the time (older than [`MAX_AGE`], from the
//! future beyond [`MAX_SKEW`], or older than the receiver itself), then
//! the sequence: for each sender run it remembers the highest seq and a
//! window of the [`WINDOW`] below it, so a replay inside the time bound is
//! caught even when messages arrive slightly out of order. The target gate
//! is signed too, so a message cannot be replayed to another gate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};

use crate::envelope::Envelope;
use crate::peer::{LinkKey, MAC_LEN};

/// Domain separation from the link hello's proofs.
const LABEL: &[u8] = b"zinx-bus-v1";

/// The trailer after the frame: run, seq, time, MAC.
pub(crate) const TRAILER_LEN: usize = 8 + 8 + 8 + MAC_LEN;

/// A message stamped longer ago than this is refused (replay of an old
/// capture). Also how long a receiver remembers a sender run.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(30);

/// Tolerated clock difference between two machines of the cluster.
pub(crate) const MAX_SKEW: Duration = Duration::from_secs(5);

/// Sequence numbers below a run's highest that may still arrive (out of
/// order) once each.
const WINDOW: u64 = 64;

/// The wall clock in Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Signs the messages one node sends.
#[derive(Debug)]
pub(crate) struct Sealer {
    /// The cluster secret.
    key: LinkKey,
    /// This node's run id.
    run: u64,
    /// The last seq handed out.
    seq: AtomicU64,
}

impl Sealer {
    pub(crate) fn new(key: LinkKey, run: u64) -> Sealer {
        Sealer {
            key,
            run,
            seq: AtomicU64::new(0),
        }
    }

    /// The signed message carrying `env` to gate `target`.
    pub(crate) fn seal(&self, target: u16, env: &Envelope) -> Result<BytesMut, String> {
        let mut buf = BytesMut::with_capacity(env.wire_len() + TRAILER_LEN);
        env.encode_into(&mut buf)
            .map_err(|e| format!("message not encodable: {e}"))?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let frame_len = buf.len();
        buf.put_u64(self.run);
        buf.put_u64(seq);
        buf.put_u64(now_ms());
        let mac = self.key.sign(
            LABEL,
            &[&target.to_be_bytes(), &buf[..frame_len], &buf[frame_len..]],
        );
        buf.extend_from_slice(&mac);
        Ok(buf)
    }
}

/// Why a message on a gate's channel was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No valid MAC: unsigned, forged, signed with another secret, or
    /// meant for another gate.
    Forged,
    /// Signed, but seen before or stamped outside the accepted time.
    Replayed(String),
    /// Signed, but not one envelope.
    Malformed(String),
}

/// The highest seq of one sender run and which of the [`WINDOW`] below it
/// were seen.
#[derive(Debug, Clone, Copy)]
struct RunSeen {
    /// The highest seq seen.
    highest: u64,
    /// Bit `i`: seq `highest - 1 - i` was seen.
    below: u64,
    /// The time stamp of the newest message (for forgetting the run).
    stamp: u64,
}

impl RunSeen {
    /// Records `seq`; false when it was seen or is too old to tell.
    fn admit(&mut self, seq: u64) -> bool {
        if seq > self.highest {
            let shift = seq - self.highest;
            self.below = if shift > WINDOW {
                0
            } else {
                // The old highest becomes bit `shift - 1`.
                (self.below << 1 | 1)
                    .checked_shl((shift - 1) as u32)
                    .unwrap_or(0)
            };
            self.highest = seq;
            return true;
        }
        let back = self.highest - seq;
        if back == 0 || back > WINDOW {
            return false;
        }
        let bit = 1u64 << (back - 1);
        if self.below & bit != 0 {
            return false;
        }
        self.below |= bit;
        true
    }
}

/// Checks the messages arriving on one gate's channel.
#[derive(Debug)]
pub(crate) struct Opener {
    /// The cluster secret.
    key: LinkKey,
    /// The gate whose channel this is.
    me: u16,
    /// When this receiver started (Unix ms): nothing stamped well before
    /// it was meant for it.
    started: u64,
    /// Per (sender node, run): what was seen. Only authentic runs get an
    /// entry, and entries older than [`MAX_AGE`] are forgotten.
    seen: HashMap<(u16, u64), RunSeen>,
}

impl Opener {
    pub(crate) fn new(key: LinkKey, me: u16) -> Opener {
        Opener {
            key,
            me,
            started: now_ms(),
            seen: HashMap::new(),
        }
    }

    /// The envelope of a message, if it is authentic and new.
    pub(crate) fn open(&mut self, payload: &[u8]) -> Result<Envelope, Refused> {
        self.open_at(payload, now_ms())
    }

    fn open_at(&mut self, payload: &[u8], now: u64) -> Result<Envelope, Refused> {
        let Some(frame_len) = payload.len().checked_sub(TRAILER_LEN) else {
            return Err(Refused::Forged);
        };
        let (frame, trailer) = payload.split_at(frame_len);
        let (fields, mac) = trailer.split_at(24);
        if !self
            .key
            .verify(LABEL, &[&self.me.to_be_bytes(), frame, fields], mac)
        {
            return Err(Refused::Forged);
        }
        let field = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&fields[i * 8..i * 8 + 8]);
            u64::from_be_bytes(b)
        };
        let (run, seq, stamp) = (field(0), field(1), field(2));
        let max_age = MAX_AGE.as_millis() as u64;
        let skew = MAX_SKEW.as_millis() as u64;
        if stamp.saturating_add(max_age) < now {
            return Err(Refused::Replayed(format!("stamped {} ms ago", now - stamp)));
        }
        if stamp > now.saturating_add(skew) {
            return Err(Refused::Replayed(format!(
                "stamped {} ms in the future (clocks apart?)",
                stamp - now
            )));
        }
        if stamp.saturating_add(skew) < self.started {
            return Err(Refused::Replayed("stamped before this gate started".into()));
        }
        let env = super::redis::decode(frame).map_err(Refused::Malformed)?;
        self.seen
            .retain(|_, r| r.stamp.saturating_add(max_age) >= now);
        let seen = self.seen.entry((env.node, run)).or_insert(RunSeen {
            highest: 0,
            below: 0,
            stamp,
        });
        if !seen.admit(seq) {
            return Err(Refused::Replayed(format!(
                "seq {seq} of node {} run {run:x} seen before",
                env.node
            )));
        }
        seen.stamp = seen.stamp.max(stamp);
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Kind;
    use bytes::Bytes;

    fn key(s: &[u8]) -> LinkKey {
        LinkKey::new(s).expect("a key")
    }

    fn push(from: u16) -> Envelope {
        let mut env = Envelope::new(Kind::ToUid);
        env.node = from;
        env.msg_id = 3;
        env.uid = Bytes::from_static(b"bob");
        env.payload = Bytes::from_static(b"hi");
        env
    }

    #[test]
    fn a_sealed_message_opens_once_at_its_gate_only() {
        let sealer = Sealer::new(key(b"s"), 77);
        let mut gate2 = Opener::new(key(b"s"), 2);
        let msg = sealer.seal(2, &push(1)).unwrap();
        assert_eq!(gate2.open(&msg).unwrap(), push(1));
        assert!(matches!(gate2.open(&msg), Err(Refused::Replayed(_))));
        // Signed for gate 2: gate 3 refuses it.
        let mut gate3 = Opener::new(key(b"s"), 3);
        assert_eq!(gate3.open(&msg), Err(Refused::Forged));
    }

    #[test]
    fn unsigned_forged_and_tampered_messages_are_refused() {
        let mut gate2 = Opener::new(key(b"s"), 2);
        let mut plain = BytesMut::new();
        push(1).encode_into(&mut plain).unwrap();
        assert_eq!(gate2.open(&plain), Err(Refused::Forged));
        assert_eq!(gate2.open(b""), Err(Refused::Forged));
        let other = Sealer::new(key(b"not the secret"), 1)
            .seal(2, &push(1))
            .unwrap();
        assert_eq!(gate2.open(&other), Err(Refused::Forged));
        let mut tampered = Sealer::new(key(b"s"), 1).seal(2, &push(1)).unwrap();
        let last = tampered.len() - TRAILER_LEN - 1;
        tampered[last] ^= 1;
        assert_eq!(gate2.open(&tampered), Err(Refused::Forged));
    }

    #[test]
    fn old_and_future_stamps_are_refused() {
        let sealer = Sealer::new(key(b"s"), 1);
        let mut gate2 = Opener::new(key(b"s"), 2);
        gate2.started = 0;
        let msg = sealer.seal(2, &push(1)).unwrap();
        let now = now_ms();
        let age = MAX_AGE.as_millis() as u64;
        assert!(matches!(
            gate2.open_at(&msg, now + age + 1_000),
            Err(Refused::Replayed(_))
        ));
        assert!(matches!(
            gate2.open_at(&msg, now - MAX_SKEW.as_millis() as u64 - 1_000),
            Err(Refused::Replayed(_))
        ));
        // A gate that started after the message was stamped refuses it.
        let mut late = Opener::new(key(b"s"), 2);
        late.started = now + MAX_SKEW.as_millis() as u64 + 1_000;
        assert!(matches!(late.open_at(&msg, now), Err(Refused::Replayed(_))));
        assert!(gate2.open_at(&msg, now).is_ok());
    }

    #[test]
    fn out_of_order_messages_pass_once_within_the_window() {
        let sealer = Sealer::new(key(b"s"), 9);
        let mut gate2 = Opener::new(key(b"s"), 2);
        let msgs: Vec<_> = (0..100)
            .map(|_| sealer.seal(2, &push(1)).unwrap())
            .collect();
        // 1, 3, 2, then 100 (2..=99 minus those seen stay in the window
        // only if within 64 of 100).
        assert!(gate2.open(&msgs[0]).is_ok());
        assert!(gate2.open(&msgs[2]).is_ok());
        assert!(gate2.open(&msgs[1]).is_ok());
        assert!(gate2.open(&msgs[1]).is_err());
        assert!(gate2.open(&msgs[99]).is_ok());
        assert!(gate2.open(&msgs[50]).is_ok(), "seq 51 is within the window");
        assert!(gate2.open(&msgs[50]).is_err());
        assert!(gate2.open(&msgs[10]).is_err(), "seq 11 is below the window");
        // Another run of the same sender is tracked on its own.
        let restarted = Sealer::new(key(b"s"), 10);
        assert!(gate2.open(&restarted.seal(2, &push(1)).unwrap()).is_ok());
        assert!(gate2.open(&msgs[98]).is_ok());
    }
}
