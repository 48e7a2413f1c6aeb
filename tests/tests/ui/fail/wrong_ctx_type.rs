use zinx_cluster::prelude::*;

// The context forgotten: the payload came first.
#[handler(msg_id = 3, group = "im")]
async fn send(_msg: Json<String>) {}

// The context by value.
#[handler(msg_id = 4, group = "im")]
async fn join(_ctx: Ctx) {}

fn main() {}
