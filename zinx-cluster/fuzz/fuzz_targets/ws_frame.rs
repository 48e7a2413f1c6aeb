//! The WebSocket frame parser of a gate (client frames after the upgrade)
//! over arbitrary bytes arriving in arbitrary chunks: never a panic, never
//! more output than input, whatever the headers claim (64-bit lengths,
//! bad masks, fragments, control frames).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, Vec<u8>)| {
    let (chunk, bytes) = input;
    zinx_cluster::internals::fuzz_ws_frames(&bytes, usize::from(chunk));
});
