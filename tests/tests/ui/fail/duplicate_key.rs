use zinx_cluster::prelude::*;

#[handler(msg_id = 3, group = "im", msg_id = 4)]
async fn send(_ctx: &mut Ctx) {}

#[handler(msg_id = 5, group = "im", group = "chat")]
async fn join(_ctx: &mut Ctx) {}

fn main() {}
