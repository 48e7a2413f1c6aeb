use zinx_cluster::prelude::*;

#[handler(msg_id = 20, group = "im", internl)]
async fn stats(_ctx: &mut Ctx) {}

#[handler(msg_id = 21, group = "im", internal = true)]
async fn top(_ctx: &mut Ctx) {}

fn main() {}
