use zinx_cluster::prelude::*;

#[handler]
async fn send(_ctx: &mut Ctx) {}

fn main() {}
