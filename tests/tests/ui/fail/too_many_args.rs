use zinx_cluster::prelude::*;

#[handler(msg_id = 3, group = "im")]
async fn send(_ctx: &mut Ctx, _to: String, _text: String, _at: u64) {}

fn main() {}
