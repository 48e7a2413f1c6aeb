use zinx_cluster::prelude::*;

struct Chat;

impl Chat {
    #[handler(msg_id = 3, group = "im")]
    async fn send(&self, _ctx: &mut Ctx) {}
}

fn main() {}
