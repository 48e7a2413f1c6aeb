//! Writing a TCP or WebSocket client's frames: by whoever queued them,
//! when it can.
//!
//! A session's frames are written under its queue lock, so bytes leave in
//! queue order whoever writes them: the session's own task (after a read,
//! or when woken) or the task that queued them. The second saves a task
//! wake-up per answer where it matters most: a gate's link reader, having
//! handed a batch of answers to their sessions, writes each session's
//! frames itself at the end of the batch ([`DeferWakes`]) instead of waking
//! every session's task to do it. A write that would block is left to the
//! session's task, which waits for the socket.

use std::cell::RefCell;
use std::io;
use std::sync::{Arc, Weak};

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;

use super::{CloseReason, Queue, Session};
use crate::frame::WRITE_BATCH;

/// What a write of the queued frames did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrote {
    /// Everything queued is written (or there is no socket to write to).
    Done,
    /// The socket is full: the rest waits in the queue.
    Blocked,
    /// The socket failed.
    Failed,
}

impl Session {
    /// Lets frames be written to `sink` by whoever queues them (TCP and
    /// WebSocket clients; `None` for TLS, whose task writes), each wrapped
    /// in a WebSocket binary message with `ws`.
    pub(crate) fn attach(&self, sink: Option<Arc<TcpStream>>, ws: bool) {
        if let Ok(mut q) = self.queue.lock() {
            q.sink = sink;
            q.ws = ws;
        }
    }

    /// Takes the socket `sink` back from the queue, if it is still the one
    /// attached (a resume may have attached another): from here on only
    /// the connection's task writes to it (its closing flush).
    pub(crate) fn detach(&self, sink: &Arc<TcpStream>) {
        if let Ok(mut q) = self.queue.lock() {
            if q.sink.as_ref().is_some_and(|s| Arc::ptr_eq(s, sink)) {
                q.sink = None;
            }
        }
    }

    /// Writes what is queued to the attached socket as far as it takes it
    /// without waiting.
    pub(crate) fn write_queued(&self) -> Wrote {
        match self.queue.lock() {
            Ok(mut q) => write_locked(&mut q),
            Err(_) => Wrote::Failed,
        }
    }

    /// Writes `bytes` (a WebSocket pong) in queue order: behind what is
    /// encoded already, before the frames still queued.
    pub(crate) fn write_control(&self, bytes: &[u8]) -> Wrote {
        match self.queue.lock() {
            Ok(mut q) => {
                q.unsent.extend_from_slice(bytes);
                write_locked(&mut q)
            }
            Err(_) => Wrote::Failed,
        }
    }

    /// Writes what is queued on behalf of the session's task; what cannot
    /// be written now (the socket is full, or there is no attached socket)
    /// is left to the task, which is woken for it.
    pub(crate) fn write_through(&self) {
        let wrote = match self.queue.lock() {
            Ok(mut q) if q.sink.is_some() => write_locked(&mut q),
            _ => Wrote::Blocked,
        };
        match wrote {
            Wrote::Done => {}
            Wrote::Blocked => self.ready.notify_one(),
            Wrote::Failed => self.close_with(CloseReason::IoError),
        }
    }
}

/// Writes `q`'s unsent bytes, then its frames, until done or the socket
/// would block.
fn write_locked(q: &mut Queue) -> Wrote {
    let Queue {
        frames,
        bytes,
        sink,
        ws,
        unsent,
        resume,
    } = q;
    let Some(sink) = sink.as_deref() else {
        return Wrote::Done;
    };
    loop {
        if unsent.is_empty() {
            if frames.is_empty() {
                // An idle session keeps no write buffer.
                *unsent = BytesMut::new();
                return Wrote::Done;
            }
            while unsent.len() < WRITE_BATCH {
                let Some(frame) = frames.pop_front() else {
                    break;
                };
                *bytes = bytes.saturating_sub(frame.wire_len());
                crate::frame::encode_wrapped(&frame, *ws, unsent);
                if let Some(log) = resume.as_mut() {
                    log.wrote(frame);
                }
            }
        }
        match sink.try_write(unsent) {
            Ok(0) => return Wrote::Failed,
            Ok(n) => unsent.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Wrote::Blocked,
            Err(_) => return Wrote::Failed,
        }
    }
}

/// Sessions one batch writes to itself at most; the wake-ups of more are
/// not deferred. Broadcast to 10,000 sessions written by the link reader
/// alone took 96-112 ms instead of 73-77 ms (2 cores).
const DEFER_MAX: usize = 64;

thread_local! {
    /// Whether a [`DeferWakes`] is active on this thread, and the sessions
    /// whose wake-up it holds.
    static DEFERRED: RefCell<(bool, Vec<Weak<Session>>)> = const { RefCell::new((false, Vec::new())) };
}

/// While alive, frames queued on this thread do not wake their session's
/// task: when it ends, each session that got some is written to directly
/// ([`Session::write_through`]), the rest left to its task. For code that
/// queues many frames in one go without awaiting (a link reader handing
/// over what one read brought).
pub(crate) struct DeferWakes {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl DeferWakes {
    /// Starts deferring on this thread; `None` if already deferring.
    pub(crate) fn begin() -> Option<DeferWakes> {
        DEFERRED.with(|d| {
            let mut d = d.try_borrow_mut().ok()?;
            if d.0 {
                return None;
            }
            d.0 = true;
            Some(DeferWakes {
                _not_send: std::marker::PhantomData,
            })
        })
    }
}

impl Drop for DeferWakes {
    fn drop(&mut self) {
        let mut held = DEFERRED.with(|d| {
            let mut d = d.borrow_mut();
            d.0 = false;
            std::mem::take(&mut d.1)
        });
        for s in held.drain(..) {
            if let Some(s) = s.upgrade() {
                s.write_through();
            }
        }
        // The list (at most DEFER_MAX long) is kept for the next batch.
        DEFERRED.with(|d| {
            if let Ok(mut d) = d.try_borrow_mut() {
                d.1 = held;
            }
        });
    }
}

/// Holds `s`'s wake-up if a [`DeferWakes`] is active on this thread; false
/// when the caller must wake it.
pub(super) fn defer_wake(s: &Session) -> bool {
    DEFERRED.with(|d| {
        let Ok(mut d) = d.try_borrow_mut() else {
            return false;
        };
        if !d.0 {
            return false;
        }
        if d.1.last().is_some_and(|w| std::ptr::eq(w.as_ptr(), s)) {
            return true;
        }
        // A fan-out (a broadcast, a room) is written faster by the
        // sessions' own tasks, on every core, than by this one in turn.
        if d.1.len() >= DEFER_MAX {
            return false;
        }
        d.1.push(s.me.clone());
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use crate::session::{Offer, QueueBound, SessionId};
    use bytes::Bytes;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    fn session() -> Arc<Session> {
        Session::new(
            SessionId::new(1, 1),
            QueueBound {
                frames: 1024,
                bytes: 1 << 20,
            },
        )
    }

    async fn pair() -> (Arc<TcpStream>, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
        (Arc::new(a.unwrap()), b.unwrap().0)
    }

    #[tokio::test]
    async fn a_deferred_batch_is_written_in_order_without_waking_the_task() {
        let s = session();
        let (ours, mut client) = pair().await;
        s.attach(Some(ours), false);
        {
            let _batch = DeferWakes::begin().expect("not nested");
            assert!(DeferWakes::begin().is_none(), "nested batches are refused");
            for b in [b"a", b"b", b"c"] {
                assert_eq!(s.offer(Frame::new(7, Bytes::from_static(b))), Offer::Queued);
            }
        }
        let mut got = [0u8; 27];
        client.read_exact(&mut got).await.unwrap();
        let datas: Vec<u8> = got.chunks(9).map(|f| f[8]).collect();
        assert_eq!(datas, b"abc");
        // Nothing left for the task, and it was not woken.
        let mut rest = BytesMut::new();
        assert!(!s.drain_into(&mut rest, usize::MAX));
        assert!(rest.is_empty());
        let woken = tokio::time::timeout(std::time::Duration::from_millis(20), s.ready.notified());
        assert!(woken.await.is_err(), "the session's task was woken");
    }

    #[tokio::test]
    async fn a_fan_out_beyond_the_bound_wakes_the_sessions_at_once() {
        let many: Vec<_> = (0..DEFER_MAX + 1).map(|_| session()).collect();
        let _batch = DeferWakes::begin().expect("not nested");
        for s in &many {
            s.offer(Frame::new(4, Bytes::from_static(b"all")));
        }
        // Still inside the batch: the last one was woken at once.
        let last = many.last().unwrap();
        let woken =
            tokio::time::timeout(std::time::Duration::from_millis(100), last.ready.notified());
        assert!(
            woken.await.is_ok(),
            "the session past the bound waited for the batch"
        );
    }

    #[tokio::test]
    async fn without_a_socket_the_task_is_woken_at_the_end_of_the_batch() {
        let s = session();
        {
            let _batch = DeferWakes::begin().expect("not nested");
            s.offer(Frame::new(7, Bytes::from_static(b"x")));
        }
        let woken = tokio::time::timeout(std::time::Duration::from_secs(1), s.ready.notified());
        assert!(woken.await.is_ok(), "the session's task was not woken");
        let mut out = BytesMut::new();
        s.drain_into(&mut out, usize::MAX);
        assert_eq!(out.len(), 9);
    }

    #[tokio::test]
    async fn a_full_socket_leaves_the_rest_to_the_task_in_order() {
        let s = session();
        let (ours, mut client) = pair().await;
        s.attach(Some(ours.clone()), false);
        // More than the socket buffers hold while the client reads nothing.
        let big = Bytes::from(vec![1u8; 8 << 20]);
        s.offer(Frame::new(1, big.clone()));
        assert_eq!(s.write_queued(), Wrote::Blocked);
        s.offer(Frame::new(2, Bytes::from_static(b"after")));
        // The task's closing drain gets the unsent tail first, then the
        // later frame: nothing reordered, nothing lost.
        let mut rest = BytesMut::new();
        assert!(!s.drain_into(&mut rest, usize::MAX));
        // Detaching drops the last handle of our socket: the client reads
        // what it accepted, then the end.
        s.detach(&ours);
        drop(ours);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        let mut expected = BytesMut::new();
        Frame::new(1, big).encode_into(&mut expected).unwrap();
        Frame::new(2, Bytes::from_static(b"after"))
            .encode_into(&mut expected)
            .unwrap();
        assert!(got.len() < expected.len(), "the socket took everything");
        got.extend_from_slice(&rest);
        assert_eq!(got.len(), expected.len());
        assert!(got[..] == expected[..], "bytes reordered or lost");
    }
}
