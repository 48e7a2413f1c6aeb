use zinx_cluster::prelude::*;

#[handler(msg_id = 3, group = "im", name = "send", timeout(5))]
async fn send(_ctx: &mut Ctx) {}

fn main() {}
