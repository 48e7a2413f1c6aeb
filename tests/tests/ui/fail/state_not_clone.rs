use zinx_cluster::prelude::*;

struct Pool;

#[handler(msg_id = 1, group = "im")]
async fn query(_ctx: &mut Ctx, State(_pool): State<Pool>) {}

fn main() {}
