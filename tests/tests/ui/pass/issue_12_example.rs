//! The example of issue 12, verbatim: no msg_id literal outside
//! `#[message(..)]`, and it registers the handler on msg_id 3.

use zinx_cluster::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Message, Serialize, Deserialize)] #[message(id = 3)]
struct Chat { to: String, text: String }
#[derive(Message, Serialize, Deserialize)] #[message(id = 3)]
struct Delivery { from: String, text: String }
#[handler(group = "im")]
async fn send(ctx: &mut Ctx, chat: Chat) -> Result<(), HandlerError> {
    ctx.push_to_uid(&chat.to, &Delivery { from: "a".into(), text: chat.text }).await?;
    Ok(())
}

fn main() {
    let _ = send;
    let route = zinx_cluster::registry::registered().next().expect("registered");
    assert_eq!((route.msg_id, route.group, route.name), (3, "im", "send"));
    assert_eq!(zinx_cluster::message::registered_messages().count(), 2);
}
