//! One connection of `bench load`: its window of requests in flight, the
//! payloads it writes, and the checking of every reply.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Decoder;
use zinx_cluster::Frame;
use zinx_cluster::wire::FrameCodec;

use super::ws::WsWire;
use super::{LoadPlan, PAYLOAD_HEADER, SAMPLE_BATCH, Shared, StopAt};

/// A connection's transport.
pub(crate) enum Wire {
    /// zinx frames on TCP.
    Tcp(TcpStream),
    /// zinx frames on TLS.
    Tls(Box<TlsStream<TcpStream>>),
    /// zinx frames in WebSocket binary messages, one frame per message.
    Ws(Box<WsWire<TcpStream>>),
    /// The same over TLS (`wss://`).
    Wss(Box<WsWire<TlsStream<TcpStream>>>),
}

impl Wire {
    /// Writes (and empties) `wbuf`, whole encoded frames.
    async fn write(&mut self, wbuf: &mut BytesMut) -> std::io::Result<()> {
        match self {
            Wire::Tcp(s) => s.write_all_buf(wbuf).await,
            Wire::Tls(s) => {
                s.write_all_buf(wbuf).await?;
                s.flush().await
            }
            Wire::Ws(ws) => ws.write(wbuf).await,
            Wire::Wss(ws) => ws.write(wbuf).await,
        }
    }

    /// Appends what has arrived to `rbuf`; 0 when the server closed.
    async fn read(&mut self, rbuf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Wire::Tcp(s) => s.read_buf(rbuf).await,
            Wire::Tls(s) => s.read_buf(rbuf).await,
            Wire::Ws(ws) => ws.read(rbuf).await,
            Wire::Wss(ws) => ws.read(rbuf).await,
        }
    }
}

/// What one connection counted.
#[derive(Debug, Default)]
pub(super) struct ConnTotals {
    pub(super) measured: u64,
    pub(super) errors: u64,
    pub(super) mismatches: u64,
    pub(super) lost: u64,
    /// When the last measured reply arrived.
    pub(super) last_measured: Option<Instant>,
}

impl ConnTotals {
    pub(super) fn add(&mut self, o: &ConnTotals) {
        self.measured += o.measured;
        self.errors += o.errors;
        self.mismatches += o.mismatches;
        self.lost += o.lost;
    }
}

/// A request in flight.
struct InFlight {
    /// The payload sent; the reply must be identical.
    payload: Bytes,
    /// Its sequence number on this connection (the oldest answers an error).
    seq: u64,
    /// When it was written.
    sent: Instant,
    /// Sent while measuring: its reply counts.
    measured: bool,
}

/// One connection's loop state.
pub(super) struct Conn {
    id: u32,
    msg_id: u32,
    size: usize,
    reply_timeout: Duration,
    shared: Arc<Shared>,
    codec: FrameCodec,
    /// One entry per window position.
    slots: Vec<Option<InFlight>>,
    /// Free window positions.
    free: Vec<u32>,
    /// Slots filled since the last write, stamped when it goes out.
    unstamped: Vec<u32>,
    next_seq: u64,
    /// Latency samples not yet merged into the shared histogram.
    samples: Vec<u64>,
    totals: ConnTotals,
}

impl Conn {
    pub(super) fn new(id: u32, plan: &LoadPlan, shared: Arc<Shared>) -> Conn {
        Conn {
            id,
            msg_id: plan.msg_id,
            size: plan.size,
            reply_timeout: plan.reply_timeout,
            shared,
            codec: FrameCodec::new(plan.size.max(zinx_cluster::wire::DEFAULT_MAX_FRAME_LEN)),
            slots: (0..plan.window).map(|_| None).collect(),
            free: (0..plan.window as u32).rev().collect(),
            unstamped: Vec::with_capacity(plan.window),
            next_seq: 0,
            samples: Vec::with_capacity(SAMPLE_BATCH),
            totals: ConnTotals::default(),
        }
    }

    fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether another request may go out, claiming it in requests mode.
    /// Returns `Some(measured)`.
    fn claim(&self) -> Option<bool> {
        if self.shared.stop.load(Ordering::Acquire) {
            return None;
        }
        let measuring = self.shared.measuring.load(Ordering::Acquire);
        match self.shared.stop_at {
            StopAt::Duration(_) => Some(measuring),
            StopAt::Requests(_) if !measuring => Some(false),
            StopAt::Requests(_) => self
                .shared
                .remaining
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
                .ok()
                .map(|_| true),
        }
    }

    /// Encodes as many new requests as the window allows into `wbuf`.
    fn fill(&mut self, wbuf: &mut BytesMut, now: Instant) {
        while let Some(&slot) = self.free.last() {
            let Some(measured) = self.claim() else { break };
            self.free.pop();
            let seq = self.next_seq;
            self.next_seq += 1;
            let mut p = BytesMut::with_capacity(self.size);
            p.put_u32(self.id);
            p.put_u32(slot);
            p.put_u64(seq);
            p.extend((0..self.size - PAYLOAD_HEADER).map(|i| (seq as u8).wrapping_add(i as u8)));
            let payload = p.freeze();
            wbuf.reserve(zinx_cluster::wire::HEADER_LEN + payload.len());
            wbuf.put_u32(self.msg_id);
            wbuf.put_u32(payload.len() as u32);
            wbuf.extend_from_slice(&payload);
            self.slots[slot as usize] = Some(InFlight {
                payload,
                seq,
                sent: now,
                measured,
            });
            self.unstamped.push(slot);
        }
    }

    /// Marks the requests just encoded as sent now.
    fn stamp(&mut self) {
        let now = Instant::now();
        for slot in self.unstamped.drain(..) {
            if let Some(f) = self.slots[slot as usize].as_mut() {
                f.sent = now;
            }
        }
    }

    /// The slot a reply payload names, when it is one of ours in flight.
    fn slot_of(&self, data: &[u8]) -> Option<u32> {
        if data.len() < PAYLOAD_HEADER {
            return None;
        }
        let conn = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        let slot = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        (conn == self.id && self.slots.get(slot as usize)?.is_some()).then_some(slot)
    }

    fn release(&mut self, slot: u32) -> Option<InFlight> {
        let f = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        Some(f)
    }

    fn record(&mut self, f: &InFlight, now: Instant, stopped: bool) {
        if f.measured && !stopped {
            self.totals.measured += 1;
            self.totals.last_measured = Some(now);
            let us = now.saturating_duration_since(f.sent).as_micros();
            self.samples.push(u64::try_from(us).unwrap_or(u64::MAX));
            if self.samples.len() >= SAMPLE_BATCH {
                self.merge_samples();
            }
        }
    }

    fn merge_samples(&mut self) {
        if self.samples.is_empty() {
            return;
        }
        if let Ok(mut h) = self.shared.hist.lock() {
            for &us in &self.samples {
                h.saturating_record(us);
            }
        }
        self.samples.clear();
    }

    /// Handles one reply; returns whether it was a measured success.
    fn on_frame(&mut self, frame: Frame, now: Instant, stopped: bool) -> bool {
        if frame.msg_id == 0 {
            self.totals.errors += 1;
            self.shared.note_problem(|| {
                format!(
                    "error frame on msg_id 0: {}",
                    String::from_utf8_lossy(&frame.data[..frame.data.len().min(300)])
                )
            });
            // The oldest request in flight is the one refused.
            let oldest = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.as_ref().map(|f| (f.seq, i as u32)))
                .min();
            if let Some((_, slot)) = oldest {
                self.release(slot);
            }
            return false;
        }
        let Some(slot) = self.slot_of(&frame.data) else {
            self.totals.mismatches += 1;
            self.shared.note_problem(|| {
                format!(
                    "reply on msg_id {} with {} bytes matches no request in flight",
                    frame.msg_id,
                    frame.data.len()
                )
            });
            return false;
        };
        let Some(f) = self.release(slot) else {
            return false;
        };
        if frame.msg_id != self.msg_id || frame.data != f.payload {
            self.totals.mismatches += 1;
            self.shared.note_problem(|| {
                format!(
                    "reply to seq {} differs: msg_id {} (sent {}), {} bytes (sent {})",
                    f.seq,
                    frame.msg_id,
                    self.msg_id,
                    frame.data.len(),
                    f.payload.len()
                )
            });
            return false;
        }
        self.record(&f, now, stopped);
        f.measured && !stopped
    }

    pub(super) async fn run(mut self, mut stream: Wire) -> ConnTotals {
        let mut rbuf = BytesMut::with_capacity(64 * 1024);
        let mut wbuf = BytesMut::with_capacity(self.slots.len() * (self.size + 8));
        self.fill(&mut wbuf, Instant::now());
        self.stamp();
        if let Err(e) = stream.write(&mut wbuf).await {
            return self.fail(format!("write failed: {e}"));
        }
        while self.in_flight() > 0 {
            match tokio::time::timeout(self.reply_timeout, stream.read(&mut rbuf)).await {
                Err(_) => {
                    let timeout = self.reply_timeout;
                    return self.fail(format!("no reply within {timeout:?}"));
                }
                Ok(Ok(0)) => return self.fail("connection closed by the server".into()),
                Ok(Err(e)) => return self.fail(format!("read failed: {e}")),
                Ok(Ok(_)) => {}
            }
            let now = Instant::now();
            let stopped = self.shared.stop.load(Ordering::Acquire);
            let mut ok = 0;
            loop {
                match self.codec.decode(&mut rbuf) {
                    Ok(Some(frame)) => ok += u64::from(self.on_frame(frame, now, stopped)),
                    Ok(None) => break,
                    Err(e) => return self.fail(format!("undecodable reply stream: {e}")),
                }
            }
            if ok > 0 {
                self.shared.done.fetch_add(ok, Ordering::Relaxed);
            }
            self.fill(&mut wbuf, now);
            if !wbuf.is_empty() {
                self.stamp();
                if let Err(e) = stream.write(&mut wbuf).await {
                    return self.fail(format!("write failed: {e}"));
                }
            }
        }
        self.merge_samples();
        self.totals
    }

    /// Ends the connection, counting what is in flight as lost.
    fn fail(mut self, why: String) -> ConnTotals {
        let lost = self.in_flight() as u64;
        if lost > 0 {
            self.totals.lost += lost;
            let id = self.id;
            self.shared
                .note_problem(|| format!("connection {id}: {why} ({lost} requests in flight)"));
        }
        self.merge_samples();
        self.totals
    }
}
