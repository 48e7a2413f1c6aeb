use zinx_cluster::prelude::*;

#[handler(msg_id = 3, group = "im")]
fn send(_ctx: &mut Ctx) {}

fn main() {}
