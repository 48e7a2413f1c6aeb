//! A handler declared inside a function body still registers (the
//! expansion is items only).

fn main() {
    use zinx_cluster::prelude::*;

    #[handler(msg_id = 7, group = "g")]
    async fn local(_ctx: &mut Ctx, text: String) -> String {
        text
    }

    let _ = local;
    let route = zinx_cluster::registry::registered().next().unwrap();
    assert_eq!((route.msg_id, route.name), (7, "local"));
}
