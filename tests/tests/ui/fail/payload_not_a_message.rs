use zinx_cluster::prelude::*;

// No msg_id, and the payload is no message: nothing says the msg_id.
#[handler(group = "im")]
async fn echo(_ctx: &mut Ctx, data: Bytes) -> Bytes {
    data
}

fn main() {}
