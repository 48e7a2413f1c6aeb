use zinx_cluster::prelude::*;
use zinx_cluster::FromPayload;

#[handler(msg_id = 3, group = "im")]
async fn by_type<P: FromPayload>(_ctx: &mut Ctx, _payload: P) {}

#[handler(msg_id = 4, group = "im")]
async fn by_const<const N: usize>(_ctx: &mut Ctx) {}

#[handler(msg_id = 5, group = "im")]
async fn by_lifetime<'a>(_ctx: &'a mut Ctx) {}

#[handler(msg_id = 6, group = "im")]
async fn by_impl(_ctx: &mut Ctx, _payload: impl FromPayload) {}

fn main() {}
