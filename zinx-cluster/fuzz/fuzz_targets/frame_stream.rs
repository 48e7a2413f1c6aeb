//! The frame decoder over arbitrary byte streams split at arbitrary points:
//! never a panic, never a frame over the limit, and re-encoding what was
//! decoded gives back the bytes consumed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};
use zinx_cluster::wire::{FrameCodec, FrameError};

fuzz_target!(|input: (u16, Vec<u8>, Vec<u8>)| {
    let (max, cuts, stream) = input;
    let mut codec = FrameCodec::new(usize::from(max));
    let mut buf = BytesMut::new();
    let mut consumed = BytesMut::new();
    let mut at = 0usize;
    let mut points: Vec<usize> = cuts.iter().map(|c| usize::from(*c) % (stream.len() + 1)).collect();
    points.push(stream.len());
    points.sort_unstable();
    for p in points {
        buf.extend_from_slice(&stream[at..p]);
        at = p;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.data.len() <= usize::from(max));
                    codec.encode(&frame, &mut consumed).expect("re-encodes");
                }
                Ok(None) => break,
                Err(FrameError::TooLarge { len, .. }) => {
                    assert!(len > u64::from(max));
                    return;
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }
    assert_eq!(&consumed[..], &stream[..consumed.len()]);
});
