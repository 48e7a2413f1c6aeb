//! What a resumable session keeps so that it can outlive its socket: the
//! count of frames sent to the client, what the client acknowledged, and
//! the frames sent since (to send again after a resume), bounded in bytes.
//!
//! The log lives under the session's queue lock: a frame moves from the
//! queue to the log as it is written, whoever writes it, so the count and
//! the log always match what left. Control frames (the resume protocol's
//! own, the heartbeat) are neither counted nor kept.
//!
//! A session that never said HELLO has no log: one `Option` and nothing
//! more.

use std::collections::VecDeque;

use super::Queue;
#[cfg(test)]
use super::Session;
use crate::frame::Frame;

/// A resumable session's sending history.
#[derive(Debug)]
pub(crate) struct ResumeLog {
    /// Frames written on this logical session (counted across resumes).
    pub(super) sent: u64,
    /// The client's last acknowledgement (≤ `sent`).
    pub(super) acked: u64,
    /// Frames `acked + 1 ..= sent`, oldest first.
    kept: VecDeque<Frame>,
    /// Their size on the wire.
    kept_bytes: usize,
    /// `resume_buffer_bytes`.
    limit: usize,
    /// The kept frames outgrew `limit` and were dropped: this session can
    /// no longer be resumed.
    pub(super) overflowed: bool,
    /// Counts the session's resumes: a token names one epoch, so an older
    /// token (a resume used it) is no longer valid.
    pub(super) epoch: u32,
}

/// Why a resume was refused (the reason of HELLO's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The session kept more unacknowledged frames than allowed.
    Overflow,
    /// The count the client says does not match what was sent.
    Unknown,
}

impl ResumeLog {
    pub(super) fn new(limit: usize) -> Self {
        ResumeLog {
            sent: 0,
            acked: 0,
            kept: VecDeque::new(),
            kept_bytes: 0,
            limit,
            overflowed: false,
            epoch: 1,
        }
    }

    /// Notes a frame written to the client: counted and kept (control
    /// frames are neither).
    pub(super) fn wrote(&mut self, frame: Frame) {
        if zinx_cluster_client::wire::is_control(frame.msg_id) {
            return;
        }
        self.sent += 1;
        if self.overflowed {
            return;
        }
        self.kept_bytes += frame.wire_len();
        self.kept.push_back(frame);
        if self.kept_bytes > self.limit {
            // Past the bound the session is no longer resumable: the
            // memory goes back at once.
            self.overflowed = true;
            self.kept = VecDeque::new();
            self.kept_bytes = 0;
        }
    }

    /// The client has received `received` frames: those are forgotten.
    pub(super) fn ack(&mut self, received: u64) {
        if received <= self.acked || received > self.sent {
            return;
        }
        let drop = usize::try_from(received - self.acked).unwrap_or(usize::MAX);
        if !self.overflowed {
            for _ in 0..drop.min(self.kept.len()) {
                if let Some(f) = self.kept.pop_front() {
                    self.kept_bytes -= f.wire_len();
                }
            }
            if self.kept.is_empty() && self.kept.capacity() > 64 {
                self.kept = VecDeque::new();
            }
        }
        self.acked = received;
    }
}

/// What a resume did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resumed {
    /// Frames the client gets that it had not received (sent again, and
    /// queued while it was away).
    pub(crate) replayed: u64,
    /// The session's new epoch (its new token's).
    pub(crate) epoch: u32,
}

/// A resumable session's state as it leaves for another gate.
#[derive(Debug, Default)]
pub(crate) struct Exported {
    /// Frames the client had received (its count at the resume).
    pub(crate) received: u64,
    /// The frames it has not received, oldest first: sent again, then
    /// queued.
    pub(crate) frames: Vec<Frame>,
}

/// [`Session::resume`] under the queue lock.
pub(super) fn resume_locked(q: &mut Queue, received: u64) -> Result<Resumed, Refused> {
    let Some(log) = q.resume.as_mut() else {
        return Err(Refused::Unknown);
    };
    if log.overflowed {
        return Err(Refused::Overflow);
    }
    if received < log.acked || received > log.sent {
        return Err(Refused::Unknown);
    }
    log.ack(received);
    // Frames received+1 ..= sent go back to the queue's front, in order,
    // to be sent (and counted) again.
    let again = std::mem::take(&mut log.kept);
    log.kept_bytes = 0;
    log.sent = received;
    log.epoch = log.epoch.wrapping_add(1).max(1);
    let epoch = log.epoch;
    for frame in again.into_iter().rev() {
        q.bytes += frame.wire_len();
        q.frames.push_front(frame);
    }
    let replayed = q
        .frames
        .iter()
        .filter(|f| !zinx_cluster_client::wire::is_control(f.msg_id))
        .count() as u64;
    Ok(Resumed { replayed, epoch })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{QueueBound, SessionId};
    use bytes::BytesMut;

    fn session() -> std::sync::Arc<Session> {
        Session::new(
            SessionId::new(1, 1),
            QueueBound {
                frames: 1000,
                bytes: 1 << 20,
            },
        )
    }

    fn drain(s: &Session) -> Vec<u32> {
        let mut out = BytesMut::new();
        s.drain_into(&mut out, usize::MAX);
        let mut codec = crate::frame::FrameCodec::new(1 << 20);
        let mut ids = Vec::new();
        while let Ok(Some(f)) = tokio_util::codec::Decoder::decode(&mut codec, &mut out) {
            ids.push(f.msg_id);
        }
        ids
    }

    #[test]
    fn frames_are_kept_until_acknowledged_and_sent_again_after_a_resume() {
        let s = session();
        assert_eq!(s.make_resumable(1 << 20), Some(1));
        for i in 1..=5 {
            s.offer(Frame::new(i, "x"));
        }
        // A control frame is neither counted nor kept.
        s.offer(Frame::new(zinx_cluster_client::wire::MOVE_MSG_ID, "{}"));
        assert_eq!(drain(&s), [1, 2, 3, 4, 5, 99992]);
        s.ack(2);
        s.offer(Frame::new(6, "x"));
        // The client got 3 of them: 4, 5 again, then 6, after the answer.
        let r = s.resume(3, |_| Some(Frame::new(99990, "answer")));
        assert_eq!(
            r,
            Ok(Resumed {
                replayed: 3,
                epoch: 2
            })
        );
        assert_eq!(drain(&s), [99990, 4, 5, 6]);
        // Counting goes on from there: 6 frames sent in all.
        assert_eq!(s.resume(7, |_| None), Err(Refused::Unknown));
        assert_eq!(s.resume(6, |_| None).map(|r| r.replayed), Ok(0));
        // An acknowledgement older than one already given is no resume.
        assert_eq!(s.resume(5, |_| None), Err(Refused::Unknown));
    }

    #[test]
    fn past_the_bound_a_session_is_no_longer_resumable() {
        let s = session();
        s.make_resumable(100);
        s.offer(Frame::new(1, vec![0u8; 60]));
        drain(&s);
        assert!(s.is_resumable());
        s.offer(Frame::new(2, vec![0u8; 60]));
        drain(&s);
        assert!(!s.is_resumable());
        assert!(s.resume_overflowed());
        assert_eq!(s.resume(0, |_| None), Err(Refused::Overflow));
    }
}
