use serde::{Deserialize, Serialize};
use zinx_cluster::prelude::*;

#[derive(Message, Serialize, Deserialize)]
#[message(id = 3, codec = "msgpack")]
struct Chat {
    to: String,
}

#[derive(Message)]
#[message(id = 4, codec = "raw")]
struct Pair(Bytes, Bytes);

fn main() {}
