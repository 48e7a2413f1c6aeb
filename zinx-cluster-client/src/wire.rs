//! The zinx client frame and its codec.
//!
//! zinx's default `DataPack` writes a frame as
//!
//! ```text
//! +-----------------+-----------------+----------------+
//! | msg_id: u32 BE  | len: u32 BE     | data: len bytes|
//! +-----------------+-----------------+----------------+
//! ```
//!
//! [`FrameCodec`] decodes that from a byte stream that may deliver a frame one
//! byte at a time or several frames in one read, and encodes it byte for byte
//! like Go zinx. Unlike zinx it enforces a maximum data length: a header that
//! announces more is refused *before* anything of that size is allocated.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Size of the frame header: `msg_id` then `len`, both u32 big-endian.
pub const HEADER_LEN: usize = 8;

/// Default maximum data length of one frame: 64 KiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024;

/// The msg_id zinx clients use for their heartbeat (`StartHeartBeat`).
pub const ZINX_HEARTBEAT_MSG_ID: u32 = 99999;

/// Session resume (see [`resume`]): client → gate, a new resumable
/// session or a resume; gate → client, the answer.
pub const HELLO_MSG_ID: u32 = 99990;
/// Session resume: client → gate, how many frames the client has received.
pub const ACK_MSG_ID: u32 = 99991;
/// Session resume: gate → client, reconnect (to any gate) and resume.
pub const MOVE_MSG_ID: u32 = 99992;
/// Session resume: client → gate, end the session now (no resume window).
pub const BYE_MSG_ID: u32 = 99993;
/// The msg ids reserved for control frames (no route may use them), and
/// the heartbeat.
pub const RESERVED_MSG_IDS: std::ops::RangeInclusive<u32> = 99990..=99999;

/// Whether a frame on `msg_id` is a control frame of session resume or the
/// heartbeat: not counted among the frames a session received, never
/// routed to a handler.
pub fn is_control(msg_id: u32) -> bool {
    RESERVED_MSG_IDS.contains(&msg_id)
}

/// The JSON payloads of the session-resume control frames (PROTOCOL.md,
/// "Session resume"). A client that never sends HELLO never sees one.
pub mod resume {
    use serde::{Deserialize, Serialize};

    /// HELLO, client → gate: `{}` for a new resumable session, or a token
    /// and the count of frames received to resume one.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Hello {
        /// The token of the session to resume.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub token: Option<String>,
        /// Frames received on that session (all but control frames),
        /// cumulative across resumes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub received: Option<u64>,
    }

    /// HELLO's answer, gate → client.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct HelloAnswer {
        /// Present on a resume: whether the session was resumed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub resumed: Option<bool>,
        /// The session's token from now on (a resume gives a new one).
        pub token: String,
        /// How long the gate keeps the session after its socket is lost.
        pub window_ms: u64,
        /// On a resume: frames sent again (sent before, not received).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub replayed: Option<u64>,
        /// On a refused resume: `expired`, `unknown`, `overflow` or
        /// `disabled`; the session is a fresh one, not logged in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reason: Option<String>,
    }

    /// ACK, client → gate.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Ack {
        /// Frames received on the session so far.
        pub received: u64,
    }

    /// MOVE, gate → client.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Move {
        /// Why (`draining`).
        pub reason: String,
    }
}

/// One zinx message: a numeric id and its payload.
///
/// `data` is a [`Bytes`], so a frame can be forwarded, queued or broadcast
/// without copying its payload.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Frame {
    /// The message id; routes the frame to a handler (see `route.json`).
    pub msg_id: u32,
    /// The payload, possibly empty.
    pub data: Bytes,
}

impl Frame {
    /// A frame with the given id and payload.
    pub fn new(msg_id: u32, data: impl Into<Bytes>) -> Self {
        Frame {
            msg_id,
            data: data.into(),
        }
    }

    /// Number of bytes this frame takes on the wire.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.data.len()
    }

    /// Appends the wire form of this frame to `dst`.
    ///
    /// Fails only when the payload is longer than a u32 can say.
    pub fn encode_into(&self, dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = u32::try_from(self.data.len()).map_err(|_| FrameError::TooLarge {
            msg_id: self.msg_id,
            len: self.data.len() as u64,
            max: u32::MAX as usize,
        })?;
        dst.reserve(HEADER_LEN + self.data.len());
        dst.put_u32(self.msg_id);
        dst.put_u32(len);
        dst.extend_from_slice(&self.data);
        Ok(())
    }

    /// The wire form of this frame as one buffer.
    pub fn to_bytes(&self) -> Result<Bytes, FrameError> {
        let mut buf = BytesMut::with_capacity(self.wire_len());
        self.encode_into(&mut buf)?;
        Ok(buf.freeze())
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The header announced more data than this connection accepts. The
    /// connection must be closed: the stream cannot be resynchronised.
    #[error("frame msg_id={msg_id} announces {len} bytes of data, over the limit of {max}")]
    TooLarge {
        /// The msg_id read from the offending header.
        msg_id: u32,
        /// The length the header announced.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// The transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// tokio-util codec for [`Frame`]s with a maximum data length.
#[derive(Clone, Copy, Debug)]
pub struct FrameCodec {
    /// Largest `len` a header may announce; larger is a [`FrameError::TooLarge`].
    max_len: usize,
}

impl FrameCodec {
    /// A codec refusing frames whose data is longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        FrameCodec { max_len }
    }

    /// The configured maximum data length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let msg_id = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        let len = u32::from_be_bytes([src[4], src[5], src[6], src[7]]);
        // Checked before any reservation: a hostile header never makes us
        // allocate what it announces.
        let len = match usize::try_from(len) {
            Ok(len) if len <= self.max_len => len,
            _ => {
                return Err(FrameError::TooLarge {
                    msg_id,
                    len: u64::from(len),
                    max: self.max_len,
                });
            }
        };
        let total = HEADER_LEN + len;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let data = src.split_to(len).freeze();
        Ok(Some(Frame { msg_id, data }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode(&frame, dst)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        if frame.data.len() > self.max_len {
            return Err(FrameError::TooLarge {
                msg_id: frame.msg_id,
                len: frame.data.len() as u64,
                max: self.max_len,
            });
        }
        frame.encode_into(dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test vector is hex"))
            .collect()
    }

    fn encode(frame: &Frame) -> Vec<u8> {
        let mut buf = BytesMut::new();
        FrameCodec::default()
            .encode(frame, &mut buf)
            .expect("encodes");
        buf.to_vec()
    }

    fn decode_all(codec: &mut FrameCodec, buf: &mut BytesMut) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(f) = codec.decode(buf).expect("decodes") {
            out.push(f);
        }
        out
    }

    const VECTORS: &[(u32, &[u8], &str)] = &[
        (4, b"FullSend...", "000000040000000b46756c6c53656e642e2e2e"),
        (3, b"Send...", "000000030000000753656e642e2e2e"),
        (1, b"", "0000000100000000"),
    ];

    #[test]
    fn protocol_vectors_encode_byte_for_byte() {
        for (msg_id, data, wire) in VECTORS {
            let frame = Frame::new(*msg_id, Bytes::from_static(data));
            assert_eq!(encode(&frame), hex(wire), "msg_id {msg_id}");
        }
    }

    #[test]
    fn protocol_vectors_decode() {
        for (msg_id, data, wire) in VECTORS {
            let mut buf = BytesMut::from(&hex(wire)[..]);
            let frame = FrameCodec::default().decode(&mut buf).unwrap().unwrap();
            assert_eq!(frame.msg_id, *msg_id);
            assert_eq!(&frame.data[..], *data);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn stream_fed_one_byte_at_a_time() {
        let wire: Vec<u8> = VECTORS.iter().flat_map(|(_, _, w)| hex(w)).collect();
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire {
            buf.put_u8(b);
            got.extend(decode_all(&mut codec, &mut buf));
        }
        let ids: Vec<u32> = got.iter().map(|f| f.msg_id).collect();
        assert_eq!(ids, vec![4, 3, 1]);
        assert_eq!(&got[0].data[..], b"FullSend...");
        assert_eq!(&got[1].data[..], b"Send...");
        assert!(got[2].data.is_empty());
    }

    #[test]
    fn several_frames_in_one_buffer() {
        let mut wire = Vec::new();
        for i in 0..100u32 {
            wire.extend(encode(&Frame::new(i, vec![i as u8; i as usize])));
        }
        let mut buf = BytesMut::from(&wire[..]);
        let got = decode_all(&mut FrameCodec::default(), &mut buf);
        assert_eq!(got.len(), 100);
        for (i, f) in got.iter().enumerate() {
            assert_eq!(f.msg_id, i as u32);
            assert_eq!(f.data.len(), i);
            assert!(f.data.iter().all(|b| *b == i as u8));
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn zero_length_data() {
        let wire = encode(&Frame::new(7, Bytes::new()));
        assert_eq!(wire, hex("0000000700000000"));
        let mut buf = BytesMut::from(&wire[..]);
        let f = FrameCodec::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(f, Frame::new(7, Bytes::new()));
    }

    #[test]
    fn oversize_header_is_refused_without_allocating() {
        let mut buf = BytesMut::from(&hex("00000005ffffffff")[..]);
        let cap_before = buf.capacity();
        let err = FrameCodec::new(1024).decode(&mut buf).unwrap_err();
        match err {
            FrameError::TooLarge { msg_id, len, max } => {
                assert_eq!((msg_id, len, max), (5, 0xffff_ffff, 1024));
            }
            other => panic!("unexpected error {other}"),
        }
        // Nothing was reserved for the announced 4 GiB.
        assert_eq!(buf.capacity(), cap_before);
    }

    #[test]
    fn oversize_error_names_msg_id_length_and_limit() {
        let mut buf = BytesMut::from(&hex("0000000500011170")[..]);
        let err = FrameCodec::new(65536).decode(&mut buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "frame msg_id=5 announces 70000 bytes of data, over the limit of 65536"
        );
    }

    #[test]
    fn limit_is_inclusive() {
        let wire = encode(&Frame::new(1, vec![0u8; 16]));
        let mut buf = BytesMut::from(&wire[..]);
        assert!(FrameCodec::new(16).decode(&mut buf).unwrap().is_some());
        let mut buf = BytesMut::from(&wire[..]);
        assert!(FrameCodec::new(15).decode(&mut buf).is_err());
    }

    #[test]
    fn encoder_refuses_frames_over_the_limit() {
        let mut buf = BytesMut::new();
        let err = FrameCodec::new(4)
            .encode(&Frame::new(1, vec![0u8; 5]), &mut buf)
            .unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len: 5, .. }));
        assert!(buf.is_empty());
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        (
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..2048),
        )
            .prop_map(|(id, data)| Frame::new(id, data))
    }

    proptest! {
        #[test]
        fn round_trips_arbitrary_frames(
            frames in proptest::collection::vec(arb_frame(), 0..16),
            cuts in proptest::collection::vec(any::<usize>(), 0..32),
        ) {
            let mut wire = BytesMut::new();
            let mut codec = FrameCodec::default();
            for f in &frames {
                codec.encode(f, &mut wire).unwrap();
            }
            // Deliver the stream in chunks cut at arbitrary points.
            let wire = wire.freeze();
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
            points.push(wire.len());
            points.sort_unstable();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut at = 0;
            for p in points {
                buf.extend_from_slice(&wire[at..p]);
                at = p;
                got.extend(decode_all(&mut codec, &mut buf));
            }
            prop_assert_eq!(got, frames);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn arbitrary_streams_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..4096),
            cuts in proptest::collection::vec(any::<usize>(), 0..32),
            max in 0usize..1024,
        ) {
            let mut codec = FrameCodec::new(max);
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            points.push(bytes.len());
            points.sort_unstable();
            let mut buf = BytesMut::new();
            let mut at = 0;
            'feed: for p in points {
                buf.extend_from_slice(&bytes[at..p]);
                at = p;
                loop {
                    match codec.decode(&mut buf) {
                        Ok(Some(f)) => prop_assert!(f.data.len() <= max),
                        Ok(None) => break,
                        Err(FrameError::TooLarge { len, .. }) => {
                            prop_assert!(len > max as u64);
                            break 'feed;
                        }
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    }
                }
            }
        }
    }
}
