//! The envelope decoder over arbitrary bytes: never a panic, and what
//! decodes re-encodes to the same bytes.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use zinx_cluster::Frame;
use zinx_cluster::internals::Envelope;

fuzz_target!(|input: (u32, Vec<u8>)| {
    let (msg_id, data) = input;
    if let Ok(env) = Envelope::decode(Frame::new(msg_id, Bytes::from(data.clone()))) {
        let mut wire = BytesMut::new();
        env.encode_into(&mut wire).expect("re-encodes");
        assert_eq!(&wire[8..], &data[..]);
    }
});
