use zinx_cluster::prelude::*;

#[handler(msg_id = 3, group = "im")]
async fn send(_ctx: &mut Ctx) {}

mod again {
    use zinx_cluster::prelude::*;

    // The same msg_id in the same crate: a build error at the second msg_id.
    #[handler(msg_id = 3, group = "im")]
    async fn send_again(_ctx: &mut Ctx) {}
}

fn main() {}
