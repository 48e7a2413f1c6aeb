use zinx_cluster::prelude::*;

// JSON, the default codec, but no serde.
#[derive(Message)]
#[message(id = 3)]
struct Chat {
    to: String,
}

// protobuf, but no prost.
#[derive(Message)]
#[message(id = 4, codec = "protobuf")]
struct Move {
    x: i32,
}

// raw, but not over bytes or text.
#[derive(Message)]
#[message(id = 5, codec = "raw")]
struct Count(u64);

fn main() {}
