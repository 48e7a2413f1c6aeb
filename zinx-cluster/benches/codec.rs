//! Codec microbenchmarks: the client frame and the internal envelope,
//! each encoded and decoded with a 64-byte payload (the size the load
//! scenarios use). The budget is 50 ns per message each way.
//!
//! Run with `cargo bench -p zinx-cluster --bench codec`; `bench suite` reads
//! the results from `target/criterion/codec/*/new/estimates.json`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tokio_util::codec::{Decoder, Encoder};
use zinx_cluster::Frame;
use zinx_cluster::internals::{Envelope, Kind};
use zinx_cluster::wire::FrameCodec;

const PAYLOAD: usize = 64;

/// Frames in one simulated read buffer (64 KiB of 72-byte frames is ~900).
const FRAMES_PER_READ: u64 = 1024;

fn payload() -> Bytes {
    Bytes::from((0..PAYLOAD as u8).collect::<Vec<u8>>())
}

/// An envelope as a gate forwards a logged-in client's message.
fn forward_envelope() -> Envelope {
    Envelope {
        kind: Kind::Forward,
        flags: 0,
        msg_id: 6,
        node: 1,
        session: 0x0001_0000_0000_002a,
        request: 0,
        uid: Bytes::from_static(b"alice"),
        payload: payload(),
        trace: None,
    }
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));

    let frame = Frame::new(5, payload());
    let mut codec = FrameCodec::default();

    // Encoding appends to a buffer that is reused, as a connection's write
    // buffer is.
    g.bench_function("frame_encode", |b| {
        let mut buf = BytesMut::with_capacity(4096);
        b.iter(|| {
            buf.clear();
            codec
                .encode(black_box(&frame), &mut buf)
                .expect("a 64-byte frame is under the limit");
            black_box(&buf);
        })
    });

    // Decoding splits one frame off a read buffer holding many, as a
    // connection's buffer does after a read; filling the buffer is setup,
    // not measured. (A fresh buffer per frame would also time the one-off
    // promotion of its storage to shared, which a real buffer pays once per
    // read, not per frame.)
    let wire = frame.to_bytes().expect("a 64-byte frame encodes");
    g.bench_function("frame_decode", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(FRAMES_PER_READ);
                let mut buf = BytesMut::with_capacity(n as usize * wire.len());
                for _ in 0..n {
                    buf.extend_from_slice(&wire);
                }
                let start = Instant::now();
                for _ in 0..n {
                    let f = codec
                        .decode(black_box(&mut buf))
                        .expect("valid frame")
                        .expect("whole frame");
                    black_box(f);
                }
                total += start.elapsed();
                left -= n;
            }
            total
        })
    });

    let env = forward_envelope();
    g.bench_function("envelope_encode", |b| {
        let mut buf = BytesMut::with_capacity(4096);
        b.iter(|| {
            buf.clear();
            black_box(&env)
                .encode_into(&mut buf)
                .expect("a 5-byte uid fits");
            black_box(&buf);
        })
    });

    // Decoding takes the link frame the frame codec produced; it slices the
    // frame's data and copies nothing.
    let mut link = BytesMut::new();
    env.encode_into(&mut link).expect("a 5-byte uid fits");
    let link_frame = FrameCodec::default()
        .decode(&mut link)
        .expect("valid frame")
        .expect("whole frame");
    g.bench_function("envelope_decode", |b| {
        b.iter_batched(
            || link_frame.clone(),
            |f| Envelope::decode(black_box(f)).expect("valid envelope"),
            BatchSize::SmallInput,
        )
    });

    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
