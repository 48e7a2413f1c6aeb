//! Typed messages: a message type says its id once; handlers take and
//! return messages, with no msg_id literal outside `#[message(..)]`.

use serde::{Deserialize, Serialize};
use zinx_cluster::prelude::*;
use zinx_cluster::message::{Codec, registered_messages};
use zinx_cluster::registry::registered;

#[derive(Message, Serialize, Deserialize)]
#[message(id = 3)]
struct Chat {
    to: String,
    text: String,
}

// A second type on the same id: the push a chat causes.
#[derive(Message, Serialize, Deserialize)]
#[message(id = 3)]
struct Delivery {
    from: String,
    text: String,
}

#[derive(Clone, PartialEq, prost::Message, zinx_cluster::Message)]
#[message(id = 30, codec = "protobuf")]
struct Move {
    #[prost(int32, tag = "1")]
    x: i32,
    #[prost(int32, tag = "2")]
    y: i32,
}

#[derive(Message)]
#[message(id = 31, codec = "raw")]
struct Blob(Bytes);

#[derive(Message)]
#[message(id = ids::NOTE, codec = "raw")]
struct Note {
    text: String,
}

mod ids {
    pub const NOTE: u32 = 32;
    pub const STATS: u32 = 20;
}

#[derive(Serialize, Deserialize)]
struct Stats {
    node: String,
}

#[handler(group = "im")]
async fn send(_ctx: &mut Ctx, chat: Chat) -> Result<Delivery, HandlerError> {
    if chat.to.is_empty() {
        return Err(HandlerError::new("no_recipient", "to whom?"));
    }
    Ok(Delivery {
        from: "a".into(),
        text: chat.text,
    })
}

#[handler(group = "game")]
async fn step(_ctx: &mut Ctx, m: Move) -> Move {
    Move { x: m.x + 1, y: m.y }
}

#[handler(group = "game")]
async fn blob(_ctx: &mut Ctx, b: Blob) -> Option<Blob> {
    (!b.0.is_empty()).then_some(b)
}

// Both given, and agreeing: fine.
#[handler(msg_id = 32, group = "game")]
async fn note(_ctx: &Ctx, n: Note) -> Note {
    n
}

#[handler(msg_id = ids::STATS, group = "im", internal)]
async fn stats(ctx: &mut Ctx) -> Json<Stats> {
    Json(Stats {
        node: ctx.node_name().to_string(),
    })
}

fn main() {
    let _ = (send, step, blob, note, stats);
    let mut routes: Vec<(u32, &str, bool)> = registered()
        .map(|r| (r.msg_id, r.name, r.internal))
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            (3, "send", false),
            (20, "stats", true),
            (30, "step", false),
            (31, "blob", false),
            (32, "note", false),
        ]
    );
    let mut messages: Vec<(u32, &str, Codec)> = registered_messages()
        .map(|m| (m.id, m.name, m.codec))
        .collect();
    messages.sort_by_key(|m| (m.0, m.1));
    assert_eq!(
        messages,
        [
            (3, "Chat", Codec::Json),
            (3, "Delivery", Codec::Json),
            (30, "Move", Codec::Protobuf),
            (31, "Blob", Codec::Raw),
            (32, "Note", Codec::Raw),
        ]
    );

    let m = Move { x: 1, y: 2 };
    let bytes = m.to_bytes().unwrap();
    assert_eq!(Move::from_bytes(bytes).unwrap(), m);
    assert!(Move::from_bytes(Bytes::from_static(b"\xff")).is_err());
}
