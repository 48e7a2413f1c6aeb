use serde::{Deserialize, Serialize};
use zinx_cluster::prelude::*;

#[derive(Message, Serialize, Deserialize)]
#[message(id = 3)]
struct Chat {
    to: String,
}

#[handler(msg_id = 4, group = "im")]
async fn send(_ctx: &mut Ctx, _chat: Chat) {}

fn main() {}
