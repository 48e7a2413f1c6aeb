//! Every accepted handler signature form, each registered and callable.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use zinx_cluster::prelude::*;
use zinx_cluster::{FromPayload, IntoReply, PayloadError};

#[derive(Deserialize, Serialize)]
struct Chat {
    to: String,
    text: String,
}

#[derive(Serialize)]
struct Ack {
    ok: bool,
}

// Context only, nothing returned.
#[handler(msg_id = 1, group = "g")]
async fn ping(_ctx: &mut Ctx) {}

// A shared context works too.
#[handler(msg_id = 2, group = "g")]
async fn peek(_ctx: &Ctx) {}

// An explicit `()`.
#[handler(msg_id = 3, group = "g")]
async fn unit(_ctx: &mut Ctx) -> () {}

// Each built-in extractor, each built-in reply.
#[handler(msg_id = 4, group = "g")]
async fn raw(_ctx: &mut Ctx, data: Bytes) -> Bytes {
    data
}

#[handler(msg_id = 5, group = "g")]
async fn text(_ctx: &mut Ctx, text: String) -> String {
    text
}

#[handler(msg_id = 6, group = "g")]
async fn vec(_ctx: &mut Ctx, data: Vec<u8>) -> Vec<u8> {
    data
}

#[handler(msg_id = 7, group = "g")]
async fn json(_ctx: &mut Ctx, msg: Json<Chat>) -> Json<Ack> {
    Json(Ack {
        ok: !msg.0.text.is_empty(),
    })
}

#[handler(msg_id = 8, group = "g")]
async fn fixed(_ctx: &mut Ctx) -> &'static str {
    "pong"
}

#[handler(msg_id = 9, group = "g")]
async fn maybe(_ctx: &mut Ctx, text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

// Results with our error, with anything `Into<HandlerError>`.
#[handler(msg_id = 10, group = "g")]
async fn send(_ctx: &mut Ctx, Json(chat): Json<Chat>) -> Result<(), HandlerError> {
    if chat.to.is_empty() {
        return Err(HandlerError::msg("no recipient"));
    }
    Ok(())
}

#[handler(msg_id = 11, group = "g")]
async fn parse(_ctx: &mut Ctx, text: String) -> Result<Json<Chat>, serde_json::Error> {
    serde_json::from_str(&text).map(Json)
}

#[handler(msg_id = 12, group = "g")]
async fn refuse(_ctx: &mut Ctx) -> Result<Option<Bytes>, &'static str> {
    Err("not now")
}

// Patterns in argument position.
#[handler(msg_id = 13, group = "g")]
async fn destructure(_: &mut Ctx, Json(Chat { to, text: _ }): Json<Chat>) -> String {
    to
}

#[handler(msg_id = 14, group = "g")]
async fn ignore(_ctx: &mut Ctx, _: Bytes) {}

#[handler(msg_id = 15, group = "g")]
async fn mutable(_ctx: &mut Ctx, mut text: String) -> String {
    text.push('!');
    text
}

// An opaque reply type.
#[handler(msg_id = 16, group = "g")]
async fn opaque(_ctx: &mut Ctx) -> impl IntoReply {
    "opaque"
}

// A payload type of the user's own.
struct Upper(String);

impl FromPayload for Upper {
    fn from_payload(data: Bytes) -> Result<Self, PayloadError> {
        String::from_payload(data).map(|s| Upper(s.to_uppercase()))
    }
}

#[handler(msg_id = 17, group = "g")]
async fn custom(_ctx: &mut Ctx, Upper(text): Upper) -> String {
    text
}

// Visibility, docs and other attributes stay on the function.
/// Documented, public, with an attribute.
#[handler(msg_id = 18, group = "g")]
#[allow(clippy::needless_pass_by_ref_mut)]
pub async fn public(_ctx: &mut Ctx) {}

// A raw identifier; a fully qualified context type.
#[handler(msg_id = 19, group = "g")]
pub(crate) async fn r#type(_ctx: &mut zinx_cluster::Ctx) {}

// A handler in a nested module.
mod nested {
    use zinx_cluster::prelude::*;

    #[handler(msg_id = 20, group = "other")]
    pub(super) async fn inner(_ctx: &mut Ctx, _text: String) {}
}

fn main() {
    // The functions stay callable as written: name them as plain values.
    let _ = (ping, peek, unit, raw, text, vec, json, fixed, maybe, send);
    let _ = (parse, refuse, destructure, ignore, mutable, opaque, custom);
    let _ = (public, r#type, nested::inner);

    let mut ids: Vec<u32> = zinx_cluster::registry::registered().map(|r| r.msg_id).collect();
    ids.sort();
    assert_eq!(ids, (1..=20).collect::<Vec<u32>>());
    let raw_name = zinx_cluster::registry::registered().find(|r| r.msg_id == 19).unwrap();
    assert_eq!(raw_name.name, "type");
    let inner = zinx_cluster::registry::registered().find(|r| r.msg_id == 20).unwrap();
    assert!(inner.module.ends_with("::nested"), "{}", inner.module);
    assert_eq!(inner.group, "other");
}
