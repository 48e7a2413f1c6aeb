use zinx_cluster::prelude::*;

// Every problem of one attribute is reported at once.
#[handler(msg_id = "x", colour = "red")]
fn send<T>(_ctx: &mut Ctx, _a: T, _b: T) {}

fn main() {}
