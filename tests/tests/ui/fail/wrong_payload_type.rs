use zinx_cluster::prelude::*;

struct Chat {
    _to: String,
}

#[handler(msg_id = 3, group = "im")]
async fn send(_ctx: &mut Ctx, _msg: Chat) {}

#[handler(msg_id = 4, group = "im")]
async fn count(_ctx: &mut Ctx, _n: u32) {}

fn main() {}
