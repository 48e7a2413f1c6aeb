use serde::{Deserialize, Serialize};
use zinx_cluster::prelude::*;

#[derive(Message, Serialize, Deserialize)]
struct Chat {
    to: String,
}

#[derive(Message, Serialize, Deserialize)]
#[message(codec = "json")]
struct Said {
    from: String,
}

fn main() {}
