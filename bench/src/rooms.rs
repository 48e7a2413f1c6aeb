//! `bench rooms`: what a room costs against what it replaces, as ratios
//! measured in one run against one demo cluster.
//!
//! 1. **One big room.** Every session joins room `big` (msg 7). Rounds
//!    alternate a broadcast to every logged-in session (msg 4) and a say
//!    to `big` (msg 9): the same sessions, the same path (client → gate →
//!    im node → gate → fan-out). The ratio is the median time until every
//!    session got the room's line over the broadcast's; which of the two
//!    goes first alternates between rounds.
//! 2. **Many small rooms.** Every session also joins `size` of `rooms`
//!    rooms of `size` members. One say to each room in turn (all in
//!    flight), timed until every member got it; then as many pushes to a
//!    user (msg 3, one frame each). The ratio is the time per delivered
//!    frame of the rooms over the pushes'.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use demo::{BROADCAST, Chat, Delivery, JOIN, Join, SAY, SEND, Said, Say, Shout};
use futures::{SinkExt, StreamExt, stream};
use serde::Serialize;
use tokio::sync::mpsc;
use zinx_cluster::Frame;

use crate::broadcast::{LOGIN_CONCURRENCY, Reader, Writer, login, median};
use crate::sys::Connector;

/// What `bench rooms` does.
#[derive(Debug, Clone)]
pub(crate) struct RoomsPlan {
    /// Gate address.
    pub(crate) addr: SocketAddr,
    /// Logged-in sessions; all are members of the big room.
    pub(crate) sessions: usize,
    /// Rounds of the big room against the broadcast.
    pub(crate) rounds: usize,
    /// Small rooms (each session is in `size` of them).
    pub(crate) rooms: usize,
    /// Members of a small room.
    pub(crate) size: usize,
    /// How long one phase waits for its deliveries.
    pub(crate) timeout: Duration,
    /// First loopback source address (see [`Connector`]).
    pub(crate) source_base: Ipv4Addr,
}

impl RoomsPlan {
    /// The equivalent command line.
    pub(crate) fn command(&self) -> String {
        format!(
            "bench rooms --addr {} --sessions {} --rounds {} --rooms {} --size {} --timeout {} --source-base {}",
            self.addr,
            self.sessions,
            self.rounds,
            self.rooms,
            self.size,
            self.timeout.as_secs_f64(),
            self.source_base
        )
    }
}

/// What `bench rooms` found.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RoomsReport {
    /// Sessions logged in.
    pub(crate) sessions: usize,
    /// Median time until all got a broadcast, ms.
    pub(crate) broadcast_all_ms: Option<f64>,
    /// Median time until all got the big room's line, ms.
    pub(crate) room_all_ms: Option<f64>,
    /// `room_all_ms / broadcast_all_ms` (target ≤ 1.2).
    pub(crate) big_room_ratio: Option<f64>,
    /// Small rooms published to.
    pub(crate) small_rooms: usize,
    /// Members of each.
    pub(crate) room_size: usize,
    /// Microseconds per delivered frame, small rooms.
    pub(crate) small_room_us_per_frame: Option<f64>,
    /// Microseconds per delivered frame, pushes to a user.
    pub(crate) push_us_per_frame: Option<f64>,
    /// `small_room_us_per_frame / push_us_per_frame` (target ≤ 1.0).
    pub(crate) small_rooms_ratio: Option<f64>,
    /// Microseconds per join, all joins in flight.
    pub(crate) join_us: Option<f64>,
    /// Deliveries that did not arrive in time, all phases.
    pub(crate) missing: usize,
}

impl RoomsReport {
    /// Every delivery arrived.
    pub(crate) fn clean(&self) -> bool {
        self.missing == 0 && self.big_room_ratio.is_some() && self.small_rooms_ratio.is_some()
    }

    /// A short human summary.
    pub(crate) fn human(&self) -> String {
        let f = |v: Option<f64>, unit: &str| v.map_or("n/a".into(), |v| format!("{v:.2}{unit}"));
        format!(
            "{} sessions\n\
             big room: all received p50 {} vs broadcast {} -> ratio {} (target <= 1.2)\n\
             {} rooms of {}: {} per delivered frame vs push {} -> ratio {} (target <= 1.0)\n\
             join: {} each (all in flight)\n\
             missing {}",
            self.sessions,
            f(self.room_all_ms, " ms"),
            f(self.broadcast_all_ms, " ms"),
            f(self.big_room_ratio, ""),
            self.small_rooms,
            self.room_size,
            f(self.small_room_us_per_frame, " us"),
            f(self.push_us_per_frame, " us"),
            f(self.small_rooms_ratio, ""),
            f(self.join_us, " us"),
            self.missing,
        )
    }
}

/// What a reader saw, tagged with the text that names it.
#[derive(Debug)]
enum Seen {
    /// A join was answered.
    Joined,
    /// A marked line arrived on this msg_id.
    Line(u32, String),
}

/// Reads one session's frames and reports the ones the phases count.
async fn read(mut reader: Reader, seen: mpsc::Sender<(Seen, Instant)>) {
    while let Some(Ok(frame)) = reader.next().await {
        let now = Instant::now();
        let event = match frame.msg_id {
            JOIN => Some(Seen::Joined),
            BROADCAST | SEND => serde_json::from_slice::<Delivery>(&frame.data)
                .ok()
                .map(|d| Seen::Line(frame.msg_id, d.text)),
            SAY => serde_json::from_slice::<Said>(&frame.data)
                .ok()
                .map(|d| Seen::Line(SAY, d.text)),
            _ => None,
        };
        if let Some(e) = event
            && seen.send((e, now)).await.is_err()
        {
            return;
        }
    }
}

/// Waits for `want` events accepted by `count`; returns when the last
/// arrived (or `None` at the deadline) and how many are missing.
async fn wait_for(
    rx: &mut mpsc::Receiver<(Seen, Instant)>,
    want: usize,
    timeout: Duration,
    mut count: impl FnMut(&Seen) -> bool,
) -> (Option<Instant>, usize) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut got = 0;
    let mut last = None;
    while got < want {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((e, at))) => {
                if count(&e) {
                    got += 1;
                    last = Some(at);
                }
            }
            Ok(None) | Err(_) => return (None, want - got),
        }
    }
    (last, 0)
}

/// Sends what `feed` queued on every session.
async fn flush_all(writers: &mut [Writer]) -> Result<()> {
    for w in writers {
        SinkExt::<Frame>::flush(w).await?;
    }
    Ok(())
}

fn frame(msg_id: u32, body: &impl Serialize) -> Result<Frame> {
    Ok(Frame::new(msg_id, Bytes::from(serde_json::to_vec(body)?)))
}

/// Logs the sessions in, runs both phases, closes everything.
pub(crate) async fn run(plan: &RoomsPlan) -> Result<RoomsReport> {
    if plan.sessions == 0 || plan.size == 0 || plan.rooms == 0 {
        bail!("--sessions, --rooms and --size must be at least 1");
    }
    if plan.size > plan.sessions {
        bail!("--size cannot exceed --sessions");
    }
    crate::sys::ensure_nofile_for(plan.sessions, "rooms");
    let connector = Connector::new(plan.addr, plan.source_base);
    let tag = std::process::id();
    let names: Vec<String> = (0..plan.sessions).map(|i| format!("r{tag}-{i}")).collect();
    let login_timeout = Duration::from_secs(10);
    let logged: Vec<Result<(Reader, Writer)>> = stream::iter(0..plan.sessions)
        .map(|i| {
            let (connector, name) = (&connector, names[i].clone());
            async move { login(connector, i, name, login_timeout).await }
        })
        .buffered(LOGIN_CONCURRENCY)
        .collect()
        .await;
    let (tx, mut rx) = mpsc::channel(1 << 16);
    let mut writers = Vec::with_capacity(plan.sessions);
    let mut readers = tokio::task::JoinSet::new();
    for r in logged {
        let (reader, writer) = r?;
        writers.push(writer);
        readers.spawn(read(reader, tx.clone()));
    }
    drop(tx);
    let n = writers.len();
    let mut missing = 0;

    // Everybody joins the big room.
    for w in &mut writers {
        w.send(frame(JOIN, &Join { room: "big".into() })?).await?;
    }
    missing += wait_for(&mut rx, n, plan.timeout, |e| matches!(e, Seen::Joined))
        .await
        .1;

    // Phase 1: broadcast and the big room, alternating.
    let mut bcast = Vec::new();
    let mut room = Vec::new();
    for round in 0..plan.rounds {
        // Which goes first alternates, so neither always meets a gate that
        // is still busy with the other's frames.
        let order = if round % 2 == 0 {
            [BROADCAST, SAY]
        } else {
            [SAY, BROADCAST]
        };
        for kind in order {
            let text = format!("bench-{kind}-{round}");
            let f = if kind == BROADCAST {
                frame(BROADCAST, &Shout { text: text.clone() })?
            } else {
                frame(
                    SAY,
                    &Say {
                        room: "big".into(),
                        text: text.clone(),
                    },
                )?
            };
            let t0 = Instant::now();
            writers[round % n].send(f).await?;
            let (last, lost) = wait_for(
                &mut rx,
                n,
                plan.timeout,
                |e| matches!(e, Seen::Line(id, t) if *id == kind && *t == text),
            )
            .await;
            missing += lost;
            if let Some(last) = last {
                let ms = last.duration_since(t0).as_secs_f64() * 1000.0;
                if kind == BROADCAST {
                    bcast.push(ms);
                } else {
                    room.push(ms);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    bcast.sort_by(f64::total_cmp);
    room.sort_by(f64::total_cmp);
    let (broadcast_all_ms, room_all_ms) = (median(&bcast), median(&room));

    // Phase 2: small rooms. Room r has the members (r + j * stride) % n.
    let size = plan.size;
    let stride = (n / size).max(1);
    let t0 = Instant::now();
    let mut joins = 0;
    for r in 0..plan.rooms {
        for j in 0..size {
            let s = (r + j * stride) % n;
            let body = Join {
                room: format!("s{r}"),
            };
            writers[s].feed(frame(JOIN, &body)?).await?;
            joins += 1;
        }
    }
    flush_all(&mut writers).await?;
    let (joined, lost) =
        wait_for(&mut rx, joins, plan.timeout, |e| matches!(e, Seen::Joined)).await;
    missing += lost;
    let join_us = joined.map(|at| at.duration_since(t0).as_secs_f64() * 1e6 / joins as f64);

    let per_frame = |from: Instant, last: Option<Instant>, frames: usize| {
        last.map(|at| at.duration_since(from).as_secs_f64() * 1e6 / frames as f64)
    };
    let t0 = Instant::now();
    for r in 0..plan.rooms {
        let body = Say {
            room: format!("s{r}"),
            text: format!("bench-small-{r}"),
        };
        writers[r % n].feed(frame(SAY, &body)?).await?;
    }
    flush_all(&mut writers).await?;
    let frames = plan.rooms * size;
    let (last, lost) = wait_for(
        &mut rx,
        frames,
        plan.timeout,
        |e| matches!(e, Seen::Line(SAY, t) if t.starts_with("bench-small-")),
    )
    .await;
    missing += lost;
    let small_room_us_per_frame = per_frame(t0, last, frames);

    // As many pushes as the rooms delivered frames, each to one user.
    let t0 = Instant::now();
    for i in 0..frames {
        let body = Chat {
            to: names[(i + 1) % n].clone(),
            text: format!("bench-push-{i}"),
        };
        writers[i % n].feed(frame(SEND, &body)?).await?;
    }
    flush_all(&mut writers).await?;
    let (last, lost) = wait_for(
        &mut rx,
        frames,
        plan.timeout,
        |e| matches!(e, Seen::Line(SEND, t) if t.starts_with("bench-push-")),
    )
    .await;
    missing += lost;
    let push_us_per_frame = per_frame(t0, last, frames);

    readers.abort_all();
    drop(writers);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    Ok(RoomsReport {
        sessions: n,
        broadcast_all_ms,
        room_all_ms,
        big_room_ratio: ratio(room_all_ms, broadcast_all_ms),
        small_rooms: plan.rooms,
        room_size: size,
        small_room_us_per_frame,
        push_us_per_frame,
        small_rooms_ratio: ratio(small_room_us_per_frame, push_us_per_frame),
        join_us,
        missing,
    })
}
