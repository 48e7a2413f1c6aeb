//! WebSocket framing (RFC 6455, section 5) of an upgraded connection, the
//! server's side: client frames parsed and unmasked straight into the zinx
//! byte stream, server frames written with a fixed header.
//!
//! zinx over WebSocket needs no message boundaries (binary messages are a
//! byte stream, see `ws`), so a data frame's payload goes to the zinx
//! decoder as it arrives: nothing is buffered per message, a message of any
//! length costs no memory beyond what one read brought, and there is no
//! message object per frame. What the RFC asks of a server is checked:
//! client frames masked, reserved bits clear (no extension is agreed),
//! known opcodes, control frames whole and at most 125 bytes, continuation
//! frames only inside a fragmented message.

use bytes::{Buf, Bytes, BytesMut};

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
const FIN: u8 = 0x80;

/// A control frame from the client, handed over in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    /// Answered with a pong carrying the same payload.
    Ping(Bytes),
    /// Nothing to do.
    Pong,
    /// The client closes; its close payload (status code and reason), to
    /// echo the code.
    Close(Bytes),
}

/// Why the connection must close instead of reading on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A text message: zinx frames travel in binary messages (1003).
    Text,
    /// A breach of RFC 6455 (1002), with what it was.
    Protocol(&'static str),
}

/// Parses client frames; keeps the state of a data frame whose payload
/// has not all arrived yet.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    /// Payload bytes of the current data frame still to come.
    left: u64,
    /// The current data frame's masking key, rotated to the next byte.
    mask: [u8; 4],
    /// A fragmented binary message is open (a frame with FIN clear came).
    fragmented: bool,
}

impl Reader {
    /// Consumes frames from `inb` (what the socket brought), appending
    /// binary payload, unmasked, to `data`, until `inb` holds no more whole
    /// header or a control frame comes (returned, for its answer to go out
    /// in order). `Ok(None)`: more bytes are needed.
    pub(crate) fn read(
        &mut self,
        inb: &mut BytesMut,
        data: &mut BytesMut,
    ) -> Result<Option<Control>, Violation> {
        loop {
            if self.left > 0 {
                if inb.is_empty() {
                    return Ok(None);
                }
                let n = usize::try_from(self.left).map_or(inb.len(), |left| left.min(inb.len()));
                let chunk = &mut inb[..n];
                unmask(chunk, &mut self.mask);
                data.extend_from_slice(chunk);
                inb.advance(n);
                self.left -= n as u64;
                continue;
            }
            let Some(head) = Header::parse(inb)? else {
                return Ok(None);
            };
            if head.opcode >= OP_CLOSE {
                // Control frames are whole and small: wait for all of it.
                let len = head.len as usize;
                if inb.len() < head.size + len {
                    return Ok(None);
                }
                inb.advance(head.size);
                let mut payload = inb.split_to(len);
                let mut mask = head.mask;
                unmask(&mut payload, &mut mask);
                return Ok(Some(match head.opcode {
                    OP_CLOSE => Control::Close(payload.freeze()),
                    OP_PING => Control::Ping(payload.freeze()),
                    _ => Control::Pong,
                }));
            }
            match head.opcode {
                OP_TEXT => return Err(Violation::Text),
                OP_BINARY if self.fragmented => {
                    return Err(Violation::Protocol("a new message inside a fragmented one"));
                }
                OP_CONTINUATION if !self.fragmented => {
                    return Err(Violation::Protocol(
                        "a continuation frame outside a message",
                    ));
                }
                _ => {}
            }
            self.fragmented = !head.fin;
            inb.advance(head.size);
            self.left = head.len;
            self.mask = head.mask;
        }
    }
}

/// A parsed frame header.
struct Header {
    fin: bool,
    opcode: u8,
    len: u64,
    mask: [u8; 4],
    /// Bytes the header takes.
    size: usize,
}

impl Header {
    /// The header at the start of `buf`, `None` until all of it is there.
    fn parse(buf: &[u8]) -> Result<Option<Header>, Violation> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        if b0 & 0x70 != 0 {
            return Err(Violation::Protocol(
                "reserved bits set (no extension agreed)",
            ));
        }
        let opcode = b0 & 0x0F;
        let fin = b0 & FIN != 0;
        if !matches!(
            opcode,
            OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
        ) {
            return Err(Violation::Protocol("unknown opcode"));
        }
        if b1 & 0x80 == 0 {
            return Err(Violation::Protocol("client frame not masked"));
        }
        let (len_size, short) = match b1 & 0x7F {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(u64::from(n))),
        };
        let size = 2 + len_size + 4;
        if buf.len() < size {
            return Ok(None);
        }
        let len = match short {
            Some(n) => n,
            None if len_size == 2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
            None => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&buf[2..10]);
                let n = u64::from_be_bytes(n);
                if n >> 63 != 0 {
                    return Err(Violation::Protocol("frame length with its top bit set"));
                }
                n
            }
        };
        if opcode >= OP_CLOSE && (!fin || len > 125) {
            return Err(Violation::Protocol(
                "control frame fragmented or over 125 bytes",
            ));
        }
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&buf[size - 4..size]);
        Ok(Some(Header {
            fin,
            opcode,
            len,
            mask,
            size,
        }))
    }
}

/// XORs `buf` with the masking key, which is left rotated to the byte
/// after `buf` (a payload may arrive in several pieces).
fn unmask(buf: &mut [u8], mask: &mut [u8; 4]) {
    let mut chunks = buf.chunks_exact_mut(8);
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    let rest = chunks.into_remainder();
    for (i, b) in rest.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
    mask.rotate_left(rest.len() & 3);
}

/// Appends one unmasked server frame with `opcode` and `payload`.
fn put_frame(out: &mut BytesMut, opcode: u8, payload: &[u8]) {
    crate::frame::put_ws_header(out, FIN | opcode, payload.len());
    out.extend_from_slice(payload);
}

/// Appends one binary message (a final binary frame) holding `payload`
/// (the queue writes frames behind `frame::put_ws_header` directly).
#[cfg(test)]
pub(crate) fn put_binary(out: &mut BytesMut, payload: &[u8]) {
    put_frame(out, OP_BINARY, payload);
}

/// Appends the pong answering a ping's `payload`.
pub(crate) fn put_pong(out: &mut BytesMut, payload: &[u8]) {
    put_frame(out, OP_PONG, payload);
}

/// Appends a close frame with `code` and `reason` (at most 123 bytes).
pub(crate) fn put_close(out: &mut BytesMut, code: u16, reason: &str) {
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason);
    put_frame(out, OP_CLOSE, &payload);
}

/// Appends the close frame answering a client's close: its status code
/// echoed (RFC 6455 5.5.1), or none if it sent none.
pub(crate) fn put_close_reply(out: &mut BytesMut, client_payload: &[u8]) {
    let payload = client_payload.get(..2).unwrap_or_default();
    put_frame(out, OP_CLOSE, payload);
}

/// Feeds `data` to a [`Reader`] in chunks of `chunk` bytes (what the fuzz
/// target calls): whatever the bytes, it must end in data, a control
/// frame or a named violation, never a panic, and buffer nothing beyond
/// what it was given.
#[cfg(feature = "internals")]
pub(crate) fn fuzz(data: &[u8], chunk: usize) {
    let mut reader = Reader::default();
    let mut inb = BytesMut::new();
    let mut out = BytesMut::new();
    for piece in data.chunks(chunk.max(1)) {
        inb.extend_from_slice(piece);
        loop {
            let before = inb.len() + out.len();
            match reader.read(&mut inb, &mut out) {
                Ok(None) => break,
                Ok(Some(_)) => {}
                Err(_) => return,
            }
            assert!(out.len() <= before + data.len(), "output bounded by input");
        }
        out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with `mask`.
    fn client(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![b0];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    const M: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[test]
    fn the_rfc_example_unmasks() {
        // RFC 6455 5.7: a masked "Hello".
        let mut inb = BytesMut::from(
            &[
                0x81u8, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ][..],
        );
        // As text it is refused...
        assert_eq!(
            Reader::default().read(&mut inb, &mut BytesMut::new()),
            Err(Violation::Text)
        );
        // ...as binary it is the payload.
        let mut inb = BytesMut::from(
            &[
                0x82u8, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ][..],
        );
        let mut data = BytesMut::new();
        assert_eq!(Reader::default().read(&mut inb, &mut data), Ok(None));
        assert_eq!(&data[..], b"Hello");
        assert!(inb.is_empty());
    }

    #[test]
    fn payload_arriving_byte_by_byte_is_the_same() {
        let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let mut wire = client(0x02, &payload[..1000], M); // FIN clear: fragmented
        wire.extend(client(0x80, &payload[1000..1200], [1, 2, 3, 4]));
        wire.extend(client(0x89, b"are you there", [9, 8, 7, 6]));
        wire.extend(client(0x82, &payload[1200..], [5, 6, 7, 8]));
        for step in [1usize, 3, 7, 4096, wire.len()] {
            let mut r = Reader::default();
            let mut inb = BytesMut::new();
            let mut data = BytesMut::new();
            let mut controls = Vec::new();
            for piece in wire.chunks(step) {
                inb.extend_from_slice(piece);
                while let Some(c) = r.read(&mut inb, &mut data).unwrap() {
                    controls.push(c);
                }
            }
            assert!(data[..] == payload[..], "step {step}");
            assert_eq!(
                controls,
                vec![Control::Ping(Bytes::from_static(b"are you there"))]
            );
        }
    }

    #[test]
    fn breaches_are_named() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                {
                    let mut f = client(0x82, b"x", M);
                    f[1] &= 0x7F; // unmasked
                    f.drain(2..6);
                    f
                },
                "client frame not masked",
            ),
            (
                client(0xC2, b"x", M),
                "reserved bits set (no extension agreed)",
            ),
            (client(0x83, b"x", M), "unknown opcode"),
            (
                client(0x80, b"x", M),
                "a continuation frame outside a message",
            ),
            (
                client(0x09, b"x", M),
                "control frame fragmented or over 125 bytes",
            ),
            (
                client(0x89, &[0u8; 126], M),
                "control frame fragmented or over 125 bytes",
            ),
            (
                {
                    let mut f = client(0x02, b"x", M);
                    f.extend(client(0x82, b"y", M));
                    f
                },
                "a new message inside a fragmented one",
            ),
            (
                {
                    let mut f = vec![0x82, 0xFF];
                    f.extend_from_slice(&(1u64 << 63).to_be_bytes());
                    f.extend_from_slice(&M);
                    f
                },
                "frame length with its top bit set",
            ),
        ];
        for (wire, why) in cases {
            let mut inb = BytesMut::from(&wire[..]);
            let mut data = BytesMut::new();
            let mut r = Reader::default();
            let got = loop {
                match r.read(&mut inb, &mut data) {
                    Ok(Some(_)) => continue,
                    other => break other,
                }
            };
            assert_eq!(got, Err(Violation::Protocol(why)), "{wire:02x?}");
        }
    }

    #[test]
    fn a_huge_declared_length_buffers_nothing() {
        let mut head = vec![0x82, 0xFF];
        head.extend_from_slice(&(1u64 << 40).to_be_bytes());
        head.extend_from_slice(&M);
        let mut inb = BytesMut::from(&head[..]);
        let mut data = BytesMut::new();
        let mut r = Reader::default();
        assert_eq!(r.read(&mut inb, &mut data), Ok(None));
        inb.extend_from_slice(&[0u8; 100]);
        assert_eq!(r.read(&mut inb, &mut data), Ok(None));
        assert_eq!(data.len(), 100);
        assert!(inb.is_empty());
        assert_eq!(r.left, (1u64 << 40) - 100);
    }

    #[test]
    fn server_frames_have_the_shortest_header_and_no_mask() {
        for (len, head) in [
            (0usize, vec![0x82, 0]),
            (125, vec![0x82, 125]),
            (126, vec![0x82, 126, 0, 126]),
            (65_535, vec![0x82, 126, 0xFF, 0xFF]),
            (65_536, vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let mut out = BytesMut::new();
            put_binary(&mut out, &vec![7u8; len]);
            assert_eq!(&out[..head.len()], &head[..], "len {len}");
            assert_eq!(out.len(), head.len() + len);
        }
        let mut out = BytesMut::new();
        put_close(&mut out, 1001, "server shutting down");
        assert_eq!(&out[..4], &[0x88, 22, 0x03, 0xE9]);
        let mut out = BytesMut::new();
        put_close_reply(&mut out, &[0x03, 0xE8, b'b', b'y', b'e']);
        assert_eq!(&out[..], &[0x88, 2, 0x03, 0xE8]);
        let mut out = BytesMut::new();
        put_pong(&mut out, b"hi");
        assert_eq!(&out[..], &[0x8A, 2, b'h', b'i']);
    }
}
