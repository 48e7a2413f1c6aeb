// rustc reports this one, not the macro: an attribute macro cannot see that
// it is inside an `impl`, and the expansion (a `const _` block) is not valid
// there. The first line still points at the `#[handler]`.
use zinx_cluster::prelude::*;

struct Chat;

// Handlers are free functions: not even an associated fn without `self`.
impl Chat {
    #[handler(msg_id = 3, group = "im")]
    async fn send(_ctx: &mut Ctx) {}
}

fn main() {}
