use zinx_cluster::prelude::*;

#[handler(msg_id = 3, group = "im")]
async fn send() {}

fn main() {}
