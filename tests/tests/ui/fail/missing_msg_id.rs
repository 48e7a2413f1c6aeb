use zinx_cluster::prelude::*;

#[handler(group = "im")]
async fn send(_ctx: &mut Ctx) {}

fn main() {}
