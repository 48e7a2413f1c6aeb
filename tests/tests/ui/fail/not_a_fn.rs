use zinx_cluster::prelude::*;

#[handler(msg_id = 3, group = "im")]
struct Send;

fn main() {}
