//! The internal node-to-node message.
//!
//! Links between nodes carry zinx TLV frames (see [`crate::frame`]) whose
//! `msg_id` is the message's own msg_id and whose data is a fixed 18-byte
//! header followed by the uid (when the kind has one) and the payload:
//!
//! ```text
//! TLV: msg_id u32 | len u32 |
//! header: kind u8 | flags u8 | node u16 | session u64 | request u32 | uid_len u16 |
//! body: uid (uid_len bytes) | payload
//! ```
//!
//! All integers are big-endian. The overhead is 26 bytes per message (plus
//! the uid where one is carried), against ~90 bytes of gob type information
//! per message in the Go original. Decoding slices the frame's `Bytes`: the
//! payload is never copied.
//!
//! With tracing on, a message may carry a W3C trace context: the top bit of
//! `flags` on the wire ([`FLAG_TRACED`]) says that 25 bytes (trace id 16,
//! span id 8, trace flags 1) follow the header, before the uid. Untraced
//! messages are byte for byte as above. The bit belongs to the envelope
//! layer: [`Envelope::flags`] never shows it, [`Envelope::trace`] does.

// Public only with the `internals` feature (fuzzing, benchmarks).
#![cfg_attr(not(feature = "internals"), allow(unreachable_pub))]

use bytes::{Buf, Bytes, BytesMut};

use crate::frame::{Frame, HEADER_LEN};
use crate::trace::{TRACE_CONTEXT_LEN, TraceContext};

/// Size of the envelope header inside the TLV data.
pub const ENVELOPE_HEADER_LEN: usize = 18;

/// Total per-message overhead on a link: TLV header plus envelope header.
pub const ENVELOPE_OVERHEAD: usize = HEADER_LEN + ENVELOPE_HEADER_LEN;

// The PROTOCOL.md budget: at most 32 bytes of overhead per message.
const _: () = assert!(ENVELOPE_OVERHEAD <= 32);

/// The wire bit of `flags` saying a trace context follows the header. Kinds
/// keep their own flags in the low seven bits.
pub const FLAG_TRACED: u8 = 0x80;

/// Version of the link protocol, stated in the hello.
/// Version 2 added [`Kind::Done`] and the final flag of a
/// [`Kind::ToSession`]; both carry the number the gate gave the forward
/// (0: unnumbered, the node's oldest). Version 3 added rooms (kinds
/// `Room`, `Join`, `Leave`). Version 4 added session resume across gates
/// (`Handover`, `HandoverDone` on the bus, `SessionMoved` to backends).
pub const LINK_PROTOCOL_VERSION: u16 = 4;

/// `flags` of a [`Kind::Heartbeat`] that announces a graceful shutdown:
/// messages already on their way are still answered (with `node_stopping`),
/// but the receiver must not choose the sender for anything new.
pub(crate) const HEARTBEAT_STOPPING: u8 = 1;

/// `flags` of a [`Kind::Heartbeat`] answering [`HEARTBEAT_STOPPING`]: the
/// sender will send nothing new. The link is ordered, so once this arrives
/// every message sent before it has arrived too: the stopping node may
/// close the link without losing any.
pub(crate) const HEARTBEAT_STOPPING_ACK: u8 = 2;

/// What an envelope asks its receiver to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Acceptor → dialer: protocol version, acceptor node id, nonce.
    Challenge = 1,
    /// Dialer → acceptor: version, dialer node id, nonce, HMAC proof.
    Hello = 2,
    /// Acceptor → dialer: HMAC proof of the acceptor.
    HelloAck = 3,
    /// Either way: the link is alive (sent when it is otherwise quiet).
    /// With the `STOPPING` flag (1): the sender is shutting down; send it
    /// no new work. Older peers ignore the flags of a heartbeat.
    Heartbeat = 4,
    /// Gate → node: a client message of session `session` on gate `node`,
    /// the session's uid in the body; `request` numbers it (per session).
    Forward = 5,
    /// Node → gate: write this frame to session `session`. With the final
    /// flag, the last answer to the forward numbered `request`.
    ToSession = 6,
    /// Node → gate: write this frame to the session bound to the uid in the
    /// body; answered with a [`Kind::Response`] when `request` is not 0.
    ToUid = 7,
    /// Node → gate: write this frame to every session of the gate.
    Broadcast = 8,
    /// Node → node: run the handler of `msg_id`, answer with a response.
    Call = 9,
    /// The answer to a [`Kind::Call`] or another request; `flags` holds a
    /// [`Status`].
    Response = 10,
    /// Node → node: run the handler of `msg_id`, no answer.
    Cast = 11,
    /// Gate → node: session `session` closed.
    SessionClosed = 12,
    /// Node → gate: bind session `session` to the uid in the body.
    Bind = 13,
    /// Node → gate: unbind session `session`.
    Unbind = 14,
    /// Node → gate: close the session `session`, or the session bound to the
    /// uid in the body when there is one.
    Kick = 15,
    /// Node → gate: the handler of a message forwarded for session
    /// `session` finished without a final answer (a [`Kind::ToSession`]
    /// with the final flag ends one that answered); `request` is the
    /// forward's number. The gate counts what each node still owes it.
    Done = 16,
    /// Node → gate: write this frame to every member, on the gate, of the
    /// room named in the body (where other kinds carry a uid).
    Room = 17,
    /// Node → gate: session `session` joins the room named in the body;
    /// answered with a [`Kind::Response`].
    Join = 18,
    /// Node → gate: session `session` leaves the room named in the body;
    /// answered with a [`Kind::Response`].
    Leave = 19,
    /// Gate → gate (the bus): hand session `session` over for a resume on
    /// gate `node`; the body holds the client's token, the payload the new
    /// session's id and the count of frames the client received.
    Handover = 20,
    /// Gate → gate (the bus): the answer to the [`Kind::Handover`] numbered
    /// `request`: `flags` 0 and the session's state in the payload, or why
    /// not (1 expired, 2 unknown, 3 overflow).
    HandoverDone = 21,
    /// Gate → node: session `session` moved (a resume on another gate) and
    /// is the session in the payload from now on; it did not close.
    SessionMoved = 22,
}

impl Kind {
    /// The kind of a header byte.
    pub fn from_u8(b: u8) -> Option<Kind> {
        use Kind::*;
        Some(match b {
            1 => Challenge,
            2 => Hello,
            3 => HelloAck,
            4 => Heartbeat,
            5 => Forward,
            6 => ToSession,
            7 => ToUid,
            8 => Broadcast,
            9 => Call,
            10 => Response,
            11 => Cast,
            12 => SessionClosed,
            13 => Bind,
            14 => Unbind,
            15 => Kick,
            16 => Done,
            17 => Room,
            18 => Join,
            19 => Leave,
            20 => Handover,
            21 => HandoverDone,
            22 => SessionMoved,
            _ => return None,
        })
    }
}

/// Outcome carried in the `flags` of a [`Kind::Response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Done; the payload is the result.
    Ok = 0,
    /// The target (uid, session) is not there.
    NotFound = 1,
    /// It failed; the payload is the reason as UTF-8 text.
    Failed = 2,
    /// The handler ran but gave no reply.
    NoReply = 3,
}

impl Status {
    /// The status of a flags byte (unknown values read as `Failed`).
    pub fn from_u8(b: u8) -> Status {
        match b {
            0 => Status::Ok,
            1 => Status::NotFound,
            3 => Status::NoReply,
            _ => Status::Failed,
        }
    }
}

/// A decoded internal message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// What to do.
    pub kind: Kind,
    /// Kind-specific bits ([`Status`] for responses); the low seven bits
    /// (the top one is [`FLAG_TRACED`] on the wire).
    pub flags: u8,
    /// The message's msg_id (0 for control kinds).
    pub msg_id: u32,
    /// The gate that owns `session`, or the sending node for node-to-node
    /// kinds.
    pub node: u16,
    /// Cluster-wide session id, 0 when none.
    pub session: u64,
    /// Request id for calls and acknowledged requests, 0 otherwise.
    pub request: u32,
    /// The session's uid, empty when none.
    pub uid: Bytes,
    /// The message data.
    pub payload: Bytes,
    /// The trace this message belongs to, when tracing is on.
    pub trace: Option<TraceContext>,
}

/// Why bytes from a peer are not an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Fewer bytes than the header needs.
    #[error("envelope of {0} bytes is shorter than its {ENVELOPE_HEADER_LEN}-byte header")]
    Short(usize),
    /// The kind byte is not one we know.
    #[error("unknown envelope kind {0}")]
    UnknownKind(u8),
    /// The uid length runs past the end of the data.
    #[error("uid length {uid_len} exceeds the {available} bytes after the header")]
    BadUidLen {
        /// The announced uid length.
        uid_len: usize,
        /// Bytes available after the header.
        available: usize,
    },
    /// A uid longer than a u16 can say.
    #[error("uid of {0} bytes is longer than 65535")]
    UidTooLong(usize),
    /// The traced flag is set but the trace context is cut short or zero.
    #[error("bad trace context extension")]
    BadTrace,
}

impl Envelope {
    /// An envelope of `kind` with everything else zero or empty.
    pub fn new(kind: Kind) -> Self {
        Envelope {
            kind,
            flags: 0,
            msg_id: 0,
            node: 0,
            session: 0,
            request: 0,
            uid: Bytes::new(),
            payload: Bytes::new(),
            trace: None,
        }
    }

    /// Bytes of the trace extension on the wire (0 when untraced).
    fn trace_len(&self) -> usize {
        if self.trace.is_some() {
            TRACE_CONTEXT_LEN
        } else {
            0
        }
    }

    /// Bytes this envelope takes on a link.
    pub fn wire_len(&self) -> usize {
        ENVELOPE_OVERHEAD + self.trace_len() + self.uid.len() + self.payload.len()
    }

    /// Appends the whole link frame (TLV header, envelope header, uid,
    /// payload) to `dst`.
    pub fn encode_into(&self, dst: &mut BytesMut) -> Result<(), EnvelopeError> {
        let uid_len =
            u16::try_from(self.uid.len()).map_err(|_| EnvelopeError::UidTooLong(self.uid.len()))?;
        let data_len = ENVELOPE_HEADER_LEN + self.trace_len() + self.uid.len() + self.payload.len();
        // Payloads are bounded by the link's frame limit far below 4 GiB.
        let len = u32::try_from(data_len).unwrap_or(u32::MAX);
        // Both headers built on the stack and appended at once: one bounds
        // check instead of eleven (about 5x faster than put_* calls).
        let mut head = [0u8; ENVELOPE_OVERHEAD];
        head[0..4].copy_from_slice(&self.msg_id.to_be_bytes());
        head[4..8].copy_from_slice(&len.to_be_bytes());
        head[8] = self.kind as u8;
        head[9] = match self.trace {
            Some(_) => self.flags | FLAG_TRACED,
            None => self.flags & !FLAG_TRACED,
        };
        head[10..12].copy_from_slice(&self.node.to_be_bytes());
        head[12..20].copy_from_slice(&self.session.to_be_bytes());
        head[20..24].copy_from_slice(&self.request.to_be_bytes());
        head[24..26].copy_from_slice(&uid_len.to_be_bytes());
        dst.reserve(HEADER_LEN + data_len);
        dst.extend_from_slice(&head);
        if let Some(trace) = &self.trace {
            dst.extend_from_slice(&trace.to_bytes());
        }
        dst.extend_from_slice(&self.uid);
        dst.extend_from_slice(&self.payload);
        Ok(())
    }

    /// Decodes the envelope carried by a link frame, slicing its data.
    pub fn decode(frame: Frame) -> Result<Envelope, EnvelopeError> {
        let Frame { msg_id, mut data } = frame;
        if data.len() < ENVELOPE_HEADER_LEN {
            return Err(EnvelopeError::Short(data.len()));
        }
        let kind_byte = data.get_u8();
        let kind = Kind::from_u8(kind_byte).ok_or(EnvelopeError::UnknownKind(kind_byte))?;
        let wire_flags = data.get_u8();
        let node = data.get_u16();
        let session = data.get_u64();
        let request = data.get_u32();
        let uid_len = usize::from(data.get_u16());
        let trace = if wire_flags & FLAG_TRACED != 0 {
            let ext: &[u8; TRACE_CONTEXT_LEN] = data
                .get(..TRACE_CONTEXT_LEN)
                .and_then(|b| b.try_into().ok())
                .ok_or(EnvelopeError::BadTrace)?;
            let trace = TraceContext::from_bytes(ext).ok_or(EnvelopeError::BadTrace)?;
            data.advance(TRACE_CONTEXT_LEN);
            Some(trace)
        } else {
            None
        };
        if uid_len > data.len() {
            return Err(EnvelopeError::BadUidLen {
                uid_len,
                available: data.len(),
            });
        }
        let uid = data.split_to(uid_len);
        Ok(Envelope {
            kind,
            flags: wire_flags & !FLAG_TRACED,
            msg_id,
            node,
            session,
            request,
            uid,
            payload: data,
            trace,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameCodec;
    use proptest::prelude::*;
    use tokio_util::codec::Decoder;

    fn roundtrip(env: &Envelope) -> Envelope {
        let mut buf = BytesMut::new();
        env.encode_into(&mut buf).unwrap();
        assert_eq!(buf.len(), env.wire_len());
        let frame = FrameCodec::new(1 << 20).decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        Envelope::decode(frame).unwrap()
    }

    #[test]
    fn header_layout_is_fixed_and_within_budget() {
        let env = Envelope {
            kind: Kind::Forward,
            flags: 0x2B,
            msg_id: 6,
            node: 0x0102,
            session: 0x0102_0000_0000_0007,
            request: 9,
            uid: Bytes::from_static(b"al"),
            payload: Bytes::from_static(b"hi"),
            trace: None,
        };
        let mut buf = BytesMut::new();
        env.encode_into(&mut buf).unwrap();
        let expect: &[u8] = &[
            0, 0, 0, 6, // msg_id
            0, 0, 0, 22, // len = 18 + 2 + 2
            5, 0x2B, 1, 2, // kind, flags, node
            1, 2, 0, 0, 0, 0, 0, 7, // session
            0, 0, 0, 9, // request
            0, 2, b'a', b'l', b'h', b'i',
        ];
        assert_eq!(&buf[..], expect);
        assert_eq!(roundtrip(&env), env);
    }

    #[test]
    fn malformed_envelopes_are_errors() {
        let short = Frame::new(1, Bytes::from_static(&[5, 0, 0]));
        assert_eq!(Envelope::decode(short), Err(EnvelopeError::Short(3)));
        let mut data = vec![0u8; ENVELOPE_HEADER_LEN];
        data[0] = 200;
        assert_eq!(
            Envelope::decode(Frame::new(1, data.clone())),
            Err(EnvelopeError::UnknownKind(200))
        );
        data[0] = Kind::ToUid as u8;
        data[16] = 0;
        data[17] = 5;
        assert_eq!(
            Envelope::decode(Frame::new(1, data)),
            Err(EnvelopeError::BadUidLen {
                uid_len: 5,
                available: 0
            })
        );
    }

    #[test]
    fn a_traced_envelope_carries_its_context_after_the_header() {
        let trace = TraceContext::from_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .unwrap();
        let mut env = Envelope::new(Kind::Response);
        env.flags = Status::NoReply as u8;
        env.uid = Bytes::from_static(b"al");
        env.payload = Bytes::from_static(b"hi");
        let mut plain = BytesMut::new();
        env.encode_into(&mut plain).unwrap();
        env.trace = Some(trace);
        let mut buf = BytesMut::new();
        env.encode_into(&mut buf).unwrap();
        assert_eq!(buf.len(), plain.len() + TRACE_CONTEXT_LEN);
        assert_eq!(buf[9], FLAG_TRACED | Status::NoReply as u8);
        assert_eq!(
            &buf[ENVELOPE_OVERHEAD..ENVELOPE_OVERHEAD + 16],
            &trace.trace_id
        );
        let back = roundtrip(&env);
        assert_eq!(back, env);
        assert_eq!(Status::from_u8(back.flags), Status::NoReply);
        // Flagged but cut short, or all zero: an error, not a panic.
        let cut = Frame::new(
            1,
            buf.split_to(ENVELOPE_OVERHEAD + 10)
                .split_off(HEADER_LEN)
                .freeze(),
        );
        assert_eq!(Envelope::decode(cut), Err(EnvelopeError::BadTrace));
        let mut zero = vec![0u8; ENVELOPE_HEADER_LEN + TRACE_CONTEXT_LEN];
        zero[0] = Kind::Forward as u8;
        zero[1] = FLAG_TRACED;
        assert_eq!(
            Envelope::decode(Frame::new(1, zero)),
            Err(EnvelopeError::BadTrace)
        );
    }

    fn arb_kind() -> impl Strategy<Value = Kind> {
        (1u8..=22).prop_map(|b| Kind::from_u8(b).expect("1..=22 are kinds"))
    }

    proptest! {
        #[test]
        fn round_trips(
            kind in arb_kind(), flags: u8, msg_id: u32, node: u16, session: u64, request: u32,
            traced: bool,
            uid in proptest::collection::vec(any::<u8>(), 0..64),
            payload in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let env = Envelope {
                kind, flags: flags & !FLAG_TRACED, msg_id, node, session, request,
                uid: Bytes::from(uid), payload: Bytes::from(payload),
                trace: traced.then(TraceContext::new_root),
            };
            prop_assert_eq!(roundtrip(&env), env);
        }

        #[test]
        fn arbitrary_bytes_never_panic(msg_id: u32, data in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(env) = Envelope::decode(Frame::new(msg_id, data.clone())) {
                prop_assert_eq!(
                    ENVELOPE_HEADER_LEN + env.trace_len() + env.uid.len() + env.payload.len(),
                    data.len()
                );
                // What decodes is exactly what re-encodes: no byte is
                // ignored or invented.
                let mut wire = BytesMut::new();
                env.encode_into(&mut wire).unwrap();
                prop_assert_eq!(&wire[HEADER_LEN..], &data[..]);
                prop_assert_eq!(&wire[..4], &msg_id.to_be_bytes()[..]);
            }
        }

        #[test]
        fn header_shaped_bytes_decode_exactly_when_valid(
            msg_id: u32,
            kind in 0u8..=20,
            uid_len in 0u16..48,
            mut data in proptest::collection::vec(any::<u8>(), 17..200),
        ) {
            // Random bytes rarely look like a header; these do, up to a
            // kind and a uid length that may or may not fit.
            data[0] = kind;
            data[1] &= !FLAG_TRACED;
            data.splice(16..16, uid_len.to_be_bytes());
            let fits = usize::from(uid_len) <= data.len() - ENVELOPE_HEADER_LEN;
            match Envelope::decode(Frame::new(msg_id, data.clone())) {
                Ok(env) => {
                    prop_assert!((1..=22).contains(&kind) && fits);
                    prop_assert_eq!(env.uid.len(), usize::from(uid_len));
                    let mut wire = BytesMut::new();
                    env.encode_into(&mut wire).unwrap();
                    prop_assert_eq!(&wire[HEADER_LEN..], &data[..]);
                }
                Err(EnvelopeError::UnknownKind(k)) => prop_assert_eq!(k, kind),
                Err(EnvelopeError::BadUidLen { uid_len: n, .. }) => {
                    prop_assert!(!fits);
                    prop_assert_eq!(n, usize::from(uid_len));
                }
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}
