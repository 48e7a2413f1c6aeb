//! Session resume on a gate (PROTOCOL.md, "Session resume"): a client that
//! said HELLO gets a token; when its socket is lost without BYE its session
//! waits `resume_window_ms` (uid bound, rooms kept, frames kept, backends
//! told nothing); a HELLO with the token on a new connection takes it back,
//! and the frames the client had not received go out again, in order,
//! before anything newer.
//!
//! Tokens are opaque to clients: the session id, the session's resume
//! epoch (a resume moves it on, so a token works once) and an HMAC of both
//! with the cluster secret — not forgeable, not usable for another
//! session.
//!
//! A client that never says HELLO never receives a control frame.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tracing::{debug, info, warn};
use zinx_cluster_client::wire::HELLO_MSG_ID;
use zinx_cluster_client::wire::resume::{Hello, HelloAnswer};

use super::Gate;
use crate::error::ErrorCode;
use crate::frame::Frame;
use crate::peer::LinkKey;
use crate::session::{Refused, Resumed, Session, SessionId, clock_ms};
use crate::settings::Settings;

/// What signs tokens.
const TOKEN_LABEL: &[u8] = b"zinx-resume-token-v1";
/// Bytes of the HMAC in a token.
const TOKEN_MAC: usize = 16;
/// Sessions a gate remembers as ended (for the reason of a late resume)
/// at most.
const GONE_MAX: usize = 65_536;

/// Why a resume was refused: the `reason` of HELLO's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The session's window ended.
    Expired,
    /// No such session (forged, foreign, already used token, a gate that
    /// is gone).
    Unknown,
    /// The session kept more unacknowledged frames than allowed.
    Overflow,
    /// Resume is off (`resume_window_ms` 0).
    Disabled,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Expired => "expired",
            Reason::Unknown => "unknown",
            Reason::Overflow => "overflow",
            Reason::Disabled => "disabled",
        }
    }
}

/// A gate's resume settings, its token key, and the sessions that ended
/// while resumable (so a late resume learns why).
pub(crate) struct Resumes {
    /// `resume_window_ms`.
    window_ms: u64,
    /// `resume_buffer_bytes`.
    buffer: usize,
    /// The cluster secret's key.
    key: LinkKey,
    /// Session id → why it cannot be resumed, until when (clock_ms).
    gone: Mutex<HashMap<u64, (Reason, u64)>>,
}

impl std::fmt::Debug for Resumes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resumes")
            .field("window_ms", &self.window_ms)
            .field("buffer", &self.buffer)
            .finish_non_exhaustive()
    }
}

/// What a HELLO did to its connection.
pub(super) enum Hellod {
    /// The connection goes on with its session.
    Stay,
    /// The connection goes on with this session (resumed).
    Switch(Arc<Session>),
}

impl Resumes {
    pub(crate) fn new(settings: &Settings, key: LinkKey) -> Self {
        Resumes {
            window_ms: settings.resume_window_ms,
            buffer: settings.resume_buffer_bytes,
            key,
            gone: Mutex::new(HashMap::new()),
        }
    }

    /// Whether sessions may be resumed here.
    pub(crate) fn enabled(&self) -> bool {
        self.window_ms > 0
    }

    /// The resume window.
    pub(crate) fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    /// The token of `session` at `epoch`: hex of id (8 bytes), epoch (4)
    /// and the first 16 bytes of their HMAC.
    pub(super) fn token(&self, session: SessionId, epoch: u32) -> String {
        let id = session.0.to_be_bytes();
        let ep = epoch.to_be_bytes();
        let mac = self.key.sign(TOKEN_LABEL, &[&id, &ep]);
        let mut out = String::with_capacity(2 * (8 + 4 + TOKEN_MAC));
        for b in id.iter().chain(&ep).chain(&mac[..TOKEN_MAC]) {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// The session and epoch a token names, if it is one of ours.
    pub(super) fn open(&self, token: &str) -> Option<(SessionId, u32)> {
        let raw = hex(token)?;
        if raw.len() != 8 + 4 + TOKEN_MAC {
            return None;
        }
        let (id, rest) = raw.split_at(8);
        let (ep, mac) = rest.split_at(4);
        if !self.key.verify_truncated(TOKEN_LABEL, &[id, ep], mac) {
            return None;
        }
        let id = u64::from_be_bytes(id.try_into().ok()?);
        let ep = u32::from_be_bytes(ep.try_into().ok()?);
        Some((SessionId(id), ep))
    }

    /// Remembers that `session` ended for `reason` (for a resume window).
    pub(crate) fn gone(&self, session: SessionId, reason: Reason) {
        let now = clock_ms();
        let Ok(mut gone) = self.gone.lock() else {
            return;
        };
        if gone.len() >= GONE_MAX {
            gone.retain(|_, (_, until)| *until > now);
            if gone.len() >= GONE_MAX {
                // Still full of live entries: the oldest kind of answer
                // (`unknown`) for the ones that do not fit.
                return;
            }
        }
        gone.insert(session.0, (reason, now + self.window_ms));
    }

    /// Why `session` (not here) cannot be resumed.
    pub(super) fn why_gone(&self, session: SessionId) -> Reason {
        let now = clock_ms();
        self.gone
            .lock()
            .ok()
            .and_then(|g| {
                g.get(&session.0)
                    .filter(|(_, until)| *until > now)
                    .map(|(r, _)| *r)
            })
            .unwrap_or(Reason::Unknown)
    }
}

/// The bytes of a hex string.
fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A HELLO answer frame.
fn answer(a: &HelloAnswer) -> Frame {
    let body = serde_json::to_vec(a).unwrap_or_default();
    Frame::new(HELLO_MSG_ID, Bytes::from(body))
}

/// Handles a HELLO from `fresh`'s client: makes the session resumable, or
/// resumes the session its token names (then the connection goes on with
/// that one).
pub(super) async fn hello(gate: &Arc<Gate>, fresh: &Arc<Session>, payload: &[u8]) -> Hellod {
    let resumes = &gate.resumes;
    let metrics = gate.node().metrics();
    let hello: Hello = match serde_json::from_slice(payload) {
        Ok(h) => h,
        Err(e) => {
            warn!(session = %fresh.id, error = %e, "HELLO that is not JSON");
            gate.answer_error(
                fresh.id,
                HELLO_MSG_ID,
                ErrorCode::BadPayload,
                &format!("HELLO must be JSON: {e}"),
            );
            return Hellod::Stay;
        }
    };
    if !resumes.enabled() {
        metrics.resumes_disabled.add(1);
        offer(gate, fresh, refusal(Reason::Disabled, String::new(), 0));
        return Hellod::Stay;
    }
    let Some(token) = hello.token else {
        // A new resumable session.
        let a = fresh_token(gate, fresh);
        offer(gate, fresh, a);
        return Hellod::Stay;
    };
    let received = hello.received.unwrap_or(0);
    // A session of another gate moves here (the bus brings its state).
    if let Some((id, _)) = resumes.open(&token) {
        if id.gate() != gate.node().id() && pristine(fresh) {
            return match super::handover::ask(gate, fresh, id.gate(), &token, received).await {
                Ok(replayed) => {
                    info!(session = %fresh.id, from = %id, replayed, "session resumed from another gate");
                    Hellod::Stay
                }
                Err(reason) => refuse(gate, fresh, reason),
            };
        }
    }
    match take_back(gate, fresh, &token, received) {
        Ok((target, resumed)) => {
            metrics.resumes_resumed.add(1);
            metrics.replayed_frames.add(resumed.replayed);
            info!(session = %target.id, received, replayed = resumed.replayed, "session resumed");
            Hellod::Switch(target)
        }
        Err(reason) => refuse(gate, fresh, reason),
    }
}

/// A refused resume: counted, and the connection's own session made
/// resumable (a fresh one, not logged in).
fn refuse(gate: &Gate, fresh: &Session, reason: Reason) -> Hellod {
    let metrics = gate.node().metrics();
    match reason {
        Reason::Expired => &metrics.resumes_expired,
        Reason::Overflow => &metrics.resumes_overflow,
        Reason::Unknown => &metrics.resumes_unknown,
        Reason::Disabled => &metrics.resumes_disabled,
    }
    .add(1);
    debug!(session = %fresh.id, reason = reason.as_str(), "resume refused");
    let mut a = fresh_token(gate, fresh);
    a.resumed = Some(false);
    a.reason = Some(reason.as_str().to_string());
    offer(gate, fresh, a);
    Hellod::Stay
}

/// Whether the connection's session is untouched (no uid, not resumable):
/// only such a session may become a resumed one.
fn pristine(fresh: &Session) -> bool {
    fresh.uid().is_none() && fresh.resume_epoch().is_none()
}

/// Makes `fresh` resumable: the answer giving its token.
fn fresh_token(gate: &Gate, fresh: &Session) -> HelloAnswer {
    let resumes = &gate.resumes;
    let token = fresh
        .make_resumable(resumes.buffer)
        .map(|epoch| resumes.token(fresh.id, epoch))
        .unwrap_or_default();
    HelloAnswer {
        token,
        window_ms: resumes.window_ms,
        ..HelloAnswer::default()
    }
}

/// A refusal's answer.
fn refusal(reason: Reason, token: String, window_ms: u64) -> HelloAnswer {
    HelloAnswer {
        resumed: Some(false),
        token,
        window_ms,
        reason: Some(reason.as_str().to_string()),
        ..HelloAnswer::default()
    }
}

/// Queues a HELLO answer for `session`'s client.
fn offer(gate: &Gate, session: &Session, a: HelloAnswer) {
    if let Err(e) = gate.offer_to(session, answer(&a)) {
        debug!(session = %session.id, error = %e, "HELLO answer not delivered");
    }
}

/// Takes the session of `token` back for the connection of `fresh` (which
/// must be untouched: no uid, not resumable itself).
fn take_back(
    gate: &Arc<Gate>,
    fresh: &Arc<Session>,
    token: &str,
    received: u64,
) -> Result<(Arc<Session>, Resumed), Reason> {
    let resumes = &gate.resumes;
    let (id, epoch) = resumes.open(token).ok_or(Reason::Unknown)?;
    if !pristine(fresh) || id == fresh.id || id.gate() != gate.node().id() {
        return Err(Reason::Unknown);
    }
    let target = match gate.sessions().get(id) {
        Some(s) if !s.is_closed() => s,
        _ => return Err(resumes.why_gone(id)),
    };
    match target.resume_epoch() {
        Some(e) if e == epoch => {}
        _ if target.resume_overflowed() => return Err(Reason::Overflow),
        _ => return Err(Reason::Unknown),
    }
    let window_ms = resumes.window_ms;
    let outcome = target.resume(received, |outcome| {
        let Ok(r) = outcome else { return None };
        Some(answer(&HelloAnswer {
            resumed: Some(true),
            token: resumes.token(target.id, r.epoch),
            window_ms,
            replayed: Some(r.replayed),
            reason: None,
        }))
    });
    match outcome {
        Ok(r) => {
            if target.detached_since().is_some() {
                gate.node().metrics().sessions_detached.sub(1);
            }
            Ok((target, r))
        }
        Err(Refused::Overflow) => Err(Reason::Overflow),
        Err(Refused::Unknown) => Err(Reason::Unknown),
    }
}
