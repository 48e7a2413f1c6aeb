//! Pipelined echo load that accounts for every request: CONNS connections
//! each keep WINDOW tagged requests in flight, and each request ends as an
//! *echo*, an *error answer* (a frame on msg_id 0, JSON
//! `{"msg_id","code","error"}`), or *never answered*.
//!
//! An echo carries its request's tag (connection, sequence number), so it
//! names its request. An error answer names only a msg_id: it is charged
//! to the oldest request of its connection still open, and if that
//! request's echo arrives after all, the charge moves to the next oldest.
//! Either way the per-connection count is exact: a connection's requests
//! never answered are those sent minus its echoes minus its error answers.
//!
//! The caller marks *phases* (its fault schedule: [`Pipeline::set_phase`]).
//! A request counts as sent, and if never answered as never answered, in
//! the phase it was written in; its echo or error answer counts in the
//! phase it arrived in, so the `node_lost` answers to the requests in
//! flight at a fault show under that fault. Used by the reliability tests
//! (`demo/tests`) and by `bench chaos`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;
use zinx_cluster::Frame;
use zinx_cluster::wire::FrameCodec;

/// What happened in one phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhaseTally {
    /// Requests written.
    pub sent: u64,
    /// Echoes that arrived.
    pub echoed: u64,
    /// Error answers that arrived, by `code`.
    pub errors: BTreeMap<String, u64>,
    /// Requests written in this phase that got nothing (by the end of the
    /// drain), or whose connection closed first.
    pub never_answered: u64,
    /// When the first and the last error answer of the phase arrived.
    pub error_window: Option<(Instant, Instant)>,
}

impl PhaseTally {
    /// Error answers, all codes.
    pub fn error_answers(&self) -> u64 {
        self.errors.values().sum()
    }

    fn add(&mut self, other: &PhaseTally) {
        self.sent += other.sent;
        self.echoed += other.echoed;
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
        self.never_answered += other.never_answered;
        self.error_window = match (self.error_window, other.error_window) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (x, None) | (None, x) => x,
        };
    }

    fn error(&mut self, code: &str, at: Instant, delta: i64) {
        let n = self.errors.entry(code.to_string()).or_default();
        *n = n.saturating_add_signed(delta);
        if delta > 0 {
            self.error_window = Some(match self.error_window {
                Some((first, last)) => (first.min(at), last.max(at)),
                None => (at, at),
            });
        }
    }
}

/// What a whole run saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One tally per phase, by phase number.
    pub phases: Vec<PhaseTally>,
    /// Connections the server closed while the load ran.
    pub closed_connections: usize,
    /// How long requests were sent.
    pub ran: Duration,
}

impl Report {
    /// Every phase together.
    pub fn total(&self) -> PhaseTally {
        let mut t = PhaseTally::default();
        for p in &self.phases {
            t.add(p);
        }
        t
    }
}

/// A running load; [`Pipeline::finish`] stops it and reports.
pub struct Pipeline {
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<Conn>>,
    started: Instant,
    drain: Arc<std::sync::Mutex<Duration>>,
    /// Echoes received so far, all connections.
    echoed: Arc<AtomicU64>,
}

impl Pipeline {
    /// Connects `conns` connections to `addr` (all of them before it
    /// returns) and starts `window` requests in flight on each, on
    /// `msg_id` (an echo).
    pub async fn start(
        addr: SocketAddr,
        msg_id: u32,
        conns: usize,
        window: usize,
    ) -> io::Result<Pipeline> {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicUsize::new(0));
        let drain = Arc::new(std::sync::Mutex::new(Duration::from_secs(5)));
        let echoed = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for id in 0..conns {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("connecting to {addr}: {e}")))?;
            let _ = stream.set_nodelay(true);
            let conn = Conn::new(
                u32::try_from(id).unwrap_or(u32::MAX),
                msg_id,
                window,
                echoed.clone(),
            );
            tasks.push(tokio::spawn(conn.run(
                stream,
                stop.clone(),
                phase.clone(),
                drain.clone(),
            )));
        }
        Ok(Pipeline {
            stop,
            phase,
            tasks,
            started: Instant::now(),
            drain,
            echoed,
        })
    }

    /// Echoes received so far, all connections and phases.
    pub fn echoed(&self) -> u64 {
        self.echoed.load(Ordering::Relaxed)
    }

    /// Waits (at most `within`) until `more` echoes arrived after the call:
    /// the load is flowing (a fault applied now finds requests in flight;
    /// after a fault, the cluster serves again). False when they did not.
    pub async fn wait_echoes(&self, more: u64, within: Duration) -> bool {
        let target = self.echoed() + more;
        let deadline = Instant::now() + within;
        while self.echoed() < target {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Requests written from now on belong to phase `phase`.
    pub fn set_phase(&self, phase: usize) {
        self.phase.store(phase, Ordering::Relaxed);
    }

    /// Stops sending, waits at most `drain` for the answers still due, and
    /// tallies every request.
    pub async fn finish(self, drain: Duration) -> Report {
        if let Ok(mut d) = self.drain.lock() {
            *d = drain;
        }
        self.stop.store(true, Ordering::Relaxed);
        let ran = self.started.elapsed();
        let mut report = Report {
            ran,
            ..Report::default()
        };
        for t in self.tasks {
            let Ok(conn) = t.await else {
                continue;
            };
            if conn.closed {
                report.closed_connections += 1;
            }
            for (phase, tally) in conn.tally {
                if report.phases.len() <= phase {
                    report.phases.resize(phase + 1, PhaseTally::default());
                }
                report.phases[phase].add(&tally);
            }
        }
        report
    }
}

/// A request written and not yet answered.
#[derive(Debug, Clone, Copy)]
struct Open {
    seq: u64,
    phase: usize,
}

/// One connection's side of the load.
struct Conn {
    id: u32,
    msg_id: u32,
    window: usize,
    next_seq: u64,
    /// Oldest first.
    open: VecDeque<Open>,
    /// Requests charged with an error answer: sequence number → (phase it
    /// was counted in, code), kept in case their echo arrives after all.
    /// Errors are rare.
    errored: HashMap<u64, (usize, String)>,
    tally: BTreeMap<usize, PhaseTally>,
    closed: bool,
    /// The load's echo count, shared by its connections.
    echoed: Arc<AtomicU64>,
}

impl Conn {
    fn new(id: u32, msg_id: u32, window: usize, echoed: Arc<AtomicU64>) -> Conn {
        Conn {
            id,
            msg_id,
            window: window.max(1),
            next_seq: 0,
            open: VecDeque::new(),
            errored: HashMap::new(),
            tally: BTreeMap::new(),
            closed: false,
            echoed,
        }
    }

    async fn run(
        mut self,
        stream: TcpStream,
        stop: Arc<AtomicBool>,
        phase: Arc<AtomicUsize>,
        drain: Arc<std::sync::Mutex<Duration>>,
    ) -> Conn {
        let (rd, mut wr) = stream.into_split();
        let mut rd = FramedRead::new(rd, FrameCodec::default());
        let mut out = BytesMut::new();
        let mut drain_until: Option<Instant> = None;
        loop {
            if stop.load(Ordering::Relaxed) {
                let until = *drain_until.get_or_insert_with(|| {
                    Instant::now() + drain.lock().map(|d| *d).unwrap_or_default()
                });
                if self.open.is_empty() || Instant::now() >= until {
                    break;
                }
            } else if self.open.len() < self.window {
                let p = phase.load(Ordering::Relaxed);
                while self.open.len() < self.window {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    let mut tag = BytesMut::with_capacity(12);
                    tag.put_u32(self.id);
                    tag.put_u64(seq);
                    let _ = Frame::new(self.msg_id, tag.freeze()).encode_into(&mut out);
                    self.open.push_back(Open { seq, phase: p });
                    self.tally.entry(p).or_default().sent += 1;
                }
                if wr.write_all(&out).await.is_err() {
                    self.closed = true;
                    break;
                }
                out.clear();
            }
            let frame = match tokio::time::timeout(Duration::from_millis(50), rd.next()).await {
                Err(_) => continue,
                Ok(Some(Ok(f))) => f,
                Ok(_) => {
                    self.closed = true;
                    break;
                }
            };
            let now = Instant::now();
            let p = phase.load(Ordering::Relaxed);
            if frame.msg_id == self.msg_id {
                self.echo(&frame, p, now);
            } else if frame.msg_id == 0 {
                let code = serde_json::from_slice::<serde_json::Value>(&frame.data)
                    .ok()
                    .and_then(|v| v["code"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "unparsable".to_string());
                self.error(code, p, now);
            }
        }
        for o in std::mem::take(&mut self.open) {
            self.tally.entry(o.phase).or_default().never_answered += 1;
        }
        self
    }

    /// An echo arrived in phase `p`.
    fn echo(&mut self, frame: &Frame, p: usize, now: Instant) {
        let mut data = &frame.data[..];
        if data.len() != 12 || data.get_u32() != self.id {
            return; // not one of ours
        }
        let seq = data.get_u64();
        if let Some(i) = self.open.iter().position(|o| o.seq == seq) {
            self.open.remove(i);
            self.tally.entry(p).or_default().echoed += 1;
            self.echoed.fetch_add(1, Ordering::Relaxed);
        } else if let Some((counted, code)) = self.errored.remove(&seq) {
            // The error answer belonged to a younger request: move it.
            self.tally.entry(counted).or_default().error(&code, now, -1);
            self.tally.entry(p).or_default().echoed += 1;
            self.echoed.fetch_add(1, Ordering::Relaxed);
            self.error(code, p, now);
        }
    }

    /// An error answer arrived in phase `p`: charged to the oldest open
    /// request.
    fn error(&mut self, code: String, p: usize, now: Instant) {
        if let Some(o) = self.open.pop_front() {
            self.tally.entry(p).or_default().error(&code, now, 1);
            self.errored.insert(o.seq, (p, code));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_charged_to_the_wrong_request_moves_to_the_next() {
        let mut c = Conn::new(7, 6, 4, Arc::default());
        let now = Instant::now();
        for (seq, phase) in [(0, 0), (1, 1), (2, 1)] {
            c.open.push_back(Open { seq, phase });
            c.tally.entry(phase).or_default().sent += 1;
        }
        let echo = |seq: u64| {
            let mut b = BytesMut::new();
            b.put_u32(7);
            b.put_u64(seq);
            Frame::new(6, b.freeze())
        };
        // The error is charged to 0, but 0's echo arrives (in phase 1):
        // the error moves to 1.
        c.error("node_lost".into(), 0, now);
        c.echo(&echo(0), 1, now);
        c.echo(&echo(2), 1, now);
        assert!(c.open.is_empty());
        assert_eq!(c.tally[&0].sent, 1);
        assert_eq!(c.tally[&0].echoed, 0);
        assert_eq!(c.tally[&0].error_answers(), 0);
        assert_eq!(c.tally[&1].echoed, 2);
        assert_eq!(c.tally[&1].errors.get("node_lost"), Some(&1));
    }
}
