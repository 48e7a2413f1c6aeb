use zinx_cluster::prelude::*;

#[handler(msg_id = 3, group = "")]
async fn empty(_ctx: &mut Ctx) {}

#[handler(msg_id = 4, group = im)]
async fn not_a_string(_ctx: &mut Ctx) {}

fn main() {}
