//! The expansion is clean under a strict crate: no unsafe code reported, no
//! warning, nothing public added.
#![forbid(unsafe_code)]
#![deny(warnings, missing_docs, unreachable_pub, rust_2018_idioms, unused)]
#![deny(non_upper_case_globals, non_snake_case, unused_qualifications)]

use zinx_cluster::prelude::*;

/// A handler of a crate that forbids unsafe code.
#[handler(msg_id = 1, group = "g")]
pub async fn strict(_ctx: &mut Ctx, text: String) -> Result<String, HandlerError> {
    Ok(text)
}

#[handler(msg_id = 2, group = "g")]
async fn private(_ctx: &mut Ctx) {}

/// A message of a strict crate.
#[derive(Message)]
#[message(id = 3, codec = "raw")]
pub struct Text(pub String);

#[handler(group = "g", internal)]
async fn typed(_ctx: &mut Ctx, text: Text) -> Text {
    text
}

/// A message whose handler also names its msg_id.
#[derive(Message)]
#[message(id = 4, codec = "raw")]
pub struct Blob(pub Bytes);

#[handler(msg_id = 4, group = "g")]
async fn both(_ctx: &mut Ctx, blob: Blob) -> Blob {
    blob
}

fn main() {
    let _ = (strict, private, typed, both);
    assert_eq!(zinx_cluster::registry::registered().count(), 4);
    assert_eq!(zinx_cluster::message::registered_messages().count(), 2);
}
