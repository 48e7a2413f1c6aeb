use zinx_cluster::prelude::*;

// Not `Deserialize`: `Json<Chat>` is no payload.
struct Chat {
    _to: String,
}

#[handler(msg_id = 3, group = "im")]
async fn send(_ctx: &mut Ctx, _msg: Json<Chat>) {}

fn main() {}
