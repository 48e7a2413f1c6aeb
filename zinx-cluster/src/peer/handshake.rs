//! The hello that opens every link: a challenge from the acceptor, a hello
//! from the dialer proving knowledge of the cluster secret (HMAC-SHA256
//! over the acceptor's nonce and both node ids), and the acceptor's own
//! proof. Either side failing drops the connection. The hello also tells
//! the dialer's run id (covered by its proof), so the acceptor knows a
//! link that comes back from the same process from a restarted one.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::{Links, Peer};
use crate::envelope::{Envelope, Kind, LINK_PROTOCOL_VERSION};
use crate::frame::{Frame, FrameCodec};

const NONCE_LEN: usize = 16;
/// Length of an HMAC-SHA256.
pub(crate) const MAC_LEN: usize = 32;
/// The dialer's run id at the end of its hello.
const RUN_LEN: usize = 8;

type HmacSha256 = Hmac<Sha256>;

/// The cluster secret as an HMAC-SHA256 key, set up once at start.
#[derive(Clone)]
pub(crate) struct LinkKey(HmacSha256);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(***)")
    }
}

impl LinkKey {
    /// The key of a cluster secret. Fails only if the HMAC implementation
    /// refuses the key: the cluster then does not start (never a zero key).
    pub(crate) fn new(secret: &[u8]) -> Result<LinkKey, String> {
        <HmacSha256 as hmac::digest::KeyInit>::new_from_slice(secret)
            .map(LinkKey)
            .map_err(|e| format!("cannot set up the HMAC key of the cluster secret: {e}"))
    }

    /// HMAC-SHA256 of `label` followed by `parts` (the gate-to-gate bus
    /// signs its messages with it).
    pub(crate) fn sign(&self, label: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
        self.mac_of(label, parts).finalize().into_bytes().into()
    }

    /// Whether `mac` is [`LinkKey::sign`] of `label` and `parts` (compared
    /// in constant time).
    pub(crate) fn verify(&self, label: &[u8], parts: &[&[u8]], mac: &[u8]) -> bool {
        self.mac_of(label, parts).verify_slice(mac).is_ok()
    }

    /// Whether `mac` is the first bytes (at least 16) of [`LinkKey::sign`]
    /// of `label` and `parts` (compared in constant time).
    pub(crate) fn verify_truncated(&self, label: &[u8], parts: &[&[u8]], mac: &[u8]) -> bool {
        mac.len() >= 16 && self.mac_of(label, parts).verify_truncated_left(mac).is_ok()
    }

    fn mac_of(&self, label: &[u8], parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(label);
        for p in parts {
            mac.update(p);
        }
        mac
    }

    /// The proof of `label` over a nonce and two node ids.
    pub(super) fn proof(&self, label: &[u8], nonce: &[u8], a: u16, b: u16) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(label);
        mac.update(nonce);
        mac.update(&a.to_be_bytes());
        mac.update(&b.to_be_bytes());
        mac
    }
}

fn nonce() -> [u8; NONCE_LEN] {
    rand::random()
}

async fn next_envelope(framed: &mut Framed<TcpStream, FrameCodec>) -> Result<Envelope, String> {
    let frame = framed
        .next()
        .await
        .ok_or_else(|| "closed during the hello".to_string())?
        .map_err(|e| e.to_string())?;
    Envelope::decode(frame).map_err(|e| e.to_string())
}

async fn send_envelope(
    framed: &mut Framed<TcpStream, FrameCodec>,
    env: Envelope,
) -> Result<(), String> {
    let mut buf = BytesMut::new();
    env.encode_into(&mut buf).map_err(|e| e.to_string())?;
    let mut data = buf.freeze();
    data.advance(crate::frame::HEADER_LEN);
    framed
        .send(Frame::new(env.msg_id, data))
        .await
        .map_err(|e| e.to_string())
}

/// Dialer side of the hello. Returns the framed stream once both sides are
/// proven.
pub(super) async fn hello_as_dialer(
    links: &Links,
    peer: &Peer,
    stream: TcpStream,
) -> Result<Framed<TcpStream, FrameCodec>, String> {
    let mut framed = Framed::new(stream, links.codec());
    let challenge = next_envelope(&mut framed).await?;
    if challenge.kind != Kind::Challenge {
        return Err(format!("expected a challenge, got {:?}", challenge.kind));
    }
    let mut p = challenge.payload.clone();
    if p.len() < 2 + NONCE_LEN {
        return Err("short challenge".into());
    }
    let version = p.get_u16();
    if version != LINK_PROTOCOL_VERSION {
        return Err(format!(
            "peer speaks link protocol {version}, we speak {LINK_PROTOCOL_VERSION}"
        ));
    }
    if challenge.node != peer.id {
        return Err(format!(
            "{} answered as node {}, expected node {}",
            peer.addr, challenge.node, peer.id
        ));
    }
    let their_nonce = p.split_to(NONCE_LEN);
    let my_nonce = nonce();
    let mut mac = links
        .key
        .proof(b"zinx-hello", &their_nonce, links.id, peer.id);
    mac.update(&links.run.to_be_bytes());
    let mac = mac.finalize().into_bytes();
    let mut payload = BytesMut::with_capacity(2 + NONCE_LEN + MAC_LEN + RUN_LEN);
    payload.put_u16(LINK_PROTOCOL_VERSION);
    payload.extend_from_slice(&my_nonce);
    payload.extend_from_slice(&mac);
    payload.put_u64(links.run);
    let mut hello = Envelope::new(Kind::Hello);
    hello.node = links.id;
    hello.payload = payload.freeze();
    send_envelope(&mut framed, hello).await?;
    let ack = next_envelope(&mut framed).await?;
    if ack.kind != Kind::HelloAck {
        return Err(format!("hello refused by node {}", peer.id));
    }
    links
        .key
        .proof(b"zinx-ack", &my_nonce, peer.id, links.id)
        .verify_slice(&ack.payload)
        .map_err(|_| {
            links.metrics.link_auth_failures.add(1);
            format!("node {} failed to prove the cluster secret", peer.id)
        })?;
    Ok(framed)
}

/// Acceptor side of the hello. Returns the proven peer and the stream.
pub(super) async fn hello_as_acceptor(
    links: &Links,
    stream: TcpStream,
) -> Result<(Arc<Peer>, Framed<TcpStream, FrameCodec>), String> {
    let mut framed = Framed::new(stream, links.codec());
    let my_nonce = nonce();
    let mut payload = BytesMut::with_capacity(2 + NONCE_LEN);
    payload.put_u16(LINK_PROTOCOL_VERSION);
    payload.extend_from_slice(&my_nonce);
    let mut challenge = Envelope::new(Kind::Challenge);
    challenge.node = links.id;
    challenge.payload = payload.freeze();
    send_envelope(&mut framed, challenge).await?;
    let hello = next_envelope(&mut framed).await?;
    if hello.kind != Kind::Hello {
        return Err(format!("expected a hello, got {:?}", hello.kind));
    }
    let mut p = hello.payload.clone();
    // Without a run id: a dialer of an earlier version.
    let with_run = match p.len().checked_sub(2 + NONCE_LEN + MAC_LEN) {
        Some(0) => false,
        Some(RUN_LEN) => true,
        _ => return Err("malformed hello".into()),
    };
    let version = p.get_u16();
    if version != LINK_PROTOCOL_VERSION {
        return Err(format!(
            "peer speaks link protocol {version}, we speak {LINK_PROTOCOL_VERSION}"
        ));
    }
    let their_nonce = p.split_to(NONCE_LEN);
    let their_mac = p.split_to(MAC_LEN);
    let run = if with_run { p.get_u64() } else { 0 };
    let mut proof = links
        .key
        .proof(b"zinx-hello", &my_nonce, hello.node, links.id);
    if with_run {
        proof.update(&run.to_be_bytes());
    }
    proof.verify_slice(&their_mac).map_err(|_| {
        format!(
            "node {} failed to prove the cluster secret (wrong secret?)",
            hello.node
        )
    })?;
    let peer = links.dialer(hello.node)?;
    let ack_mac = links
        .key
        .proof(b"zinx-ack", &their_nonce, links.id, peer.id)
        .finalize()
        .into_bytes();
    let mut ack = Envelope::new(Kind::HelloAck);
    ack.node = links.id;
    ack.payload = Bytes::copy_from_slice(&ack_mac);
    send_envelope(&mut framed, ack).await?;
    peer.run.store(run, std::sync::atomic::Ordering::Relaxed);
    Ok((peer, framed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &[u8]) -> LinkKey {
        LinkKey::new(secret).expect("any length is a valid HMAC key")
    }

    #[test]
    fn proofs_depend_on_secret_nonce_and_ids() {
        let n = [7u8; NONCE_LEN];
        let a = key(b"s1")
            .proof(b"zinx-hello", &n, 1, 2)
            .finalize()
            .into_bytes();
        assert!(
            key(b"s1")
                .proof(b"zinx-hello", &n, 1, 2)
                .verify_slice(&a)
                .is_ok()
        );
        assert!(
            key(b"s2")
                .proof(b"zinx-hello", &n, 1, 2)
                .verify_slice(&a)
                .is_err()
        );
        assert!(
            key(b"s1")
                .proof(b"zinx-hello", &n, 2, 1)
                .verify_slice(&a)
                .is_err()
        );
        assert!(
            key(b"s1")
                .proof(b"zinx-ack", &n, 1, 2)
                .verify_slice(&a)
                .is_err()
        );
        let m = [8u8; NONCE_LEN];
        assert!(
            key(b"s1")
                .proof(b"zinx-hello", &m, 1, 2)
                .verify_slice(&a)
                .is_err()
        );
    }
}
