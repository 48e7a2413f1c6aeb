use zinx_cluster::prelude::*;

const LOGIN: u16 = 1;

// A const msg_id is checked by the compiler, at the path.
#[handler(msg_id = LOGIN, group = "gate")]
async fn login(_ctx: &mut Ctx) {}

fn main() {}
