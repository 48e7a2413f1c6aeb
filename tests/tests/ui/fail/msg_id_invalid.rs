use zinx_cluster::prelude::*;

#[handler(msg_id = "3", group = "im")]
async fn string(_ctx: &mut Ctx) {}

#[handler(msg_id = -1, group = "im")]
async fn negative(_ctx: &mut Ctx) {}

#[handler(msg_id = 4294967296, group = "im")]
async fn too_large(_ctx: &mut Ctx) {}

#[handler(msg_id = 3u64, group = "im")]
async fn wrong_suffix(_ctx: &mut Ctx) {}

#[handler(msg_id = 1 + 2, group = "im")]
async fn expression(_ctx: &mut Ctx) {}

#[handler(msg_id = 99999, group = "im")]
async fn heartbeat(_ctx: &mut Ctx) {}

fn main() {}
