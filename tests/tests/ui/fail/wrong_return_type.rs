use zinx_cluster::prelude::*;

#[handler(msg_id = 3, group = "im")]
async fn count(_ctx: &mut Ctx) -> u32 {
    1
}

// An error type with no `Into<HandlerError>`.
#[derive(Debug)]
struct Oops;

#[handler(msg_id = 4, group = "im")]
async fn fail(_ctx: &mut Ctx) -> Result<String, Oops> {
    Err(Oops)
}

fn main() {}
