use std::rc::Rc;

use zinx_cluster::prelude::*;

async fn later() {}

// Handlers run on a multi-threaded runtime: their future must be `Send`.
#[handler(msg_id = 3, group = "im")]
async fn send(_ctx: &mut Ctx) {
    let shared = Rc::new(1);
    later().await;
    drop(shared);
}

fn main() {}
