//! The `im` group: chat lines between users. Any im node serves any
//! session: the uid bound at login travels with every message, and
//! `push_to_uid` / `broadcast` reach sessions on whichever gate holds them.

use demo::{Answer, Chat, Delivery, Shout};
use zinx_cluster::prelude::*;

/// 3 send `{"to":"bob","text":"hi"}`: bob gets `{"from":"alice","text":"hi"}`
/// on 3; the sender gets `{"ok":true}`, or `{"ok":false,"error":".."}` when
/// bob is not online or the sender has not logged in.
#[handler(msg_id = 3, group = "im")]
async fn send(ctx: &mut Ctx, Json(chat): Json<Chat>) -> Result<Json<Answer>, HandlerError> {
    let Some(from) = ctx.uid() else {
        return Ok(Json(Answer::not_logged_in()));
    };
    let delivery = Delivery {
        from: from.to_string(),
        text: chat.text,
    };
    let answer = match ctx
        .push_to_uid(&chat.to, 3, serde_json::to_vec(&delivery)?)
        .await
    {
        Ok(()) => Answer::ok(),
        Err(SendError::NotOnline(who)) => Answer::error(format!("{who} is not online")),
        // The gate holding bob is unreachable, etc.: the framework's error
        // answer says so.
        Err(e) => return Err(e.into()),
    };
    Ok(Json(answer))
}

/// 4 broadcast `{"text":"hello"}`: every logged-in session, the sender
/// included, gets `{"from":"alice","text":"hello"}` on 4, exactly once.
/// Success has no other answer; a sender that has not logged in gets
/// `{"ok":false,"error":"not logged in"}`.
///
/// `broadcast_to_users` is one message per gate (not one per user); each
/// gate writes it to its sessions that are bound to a uid.
#[handler(msg_id = 4, group = "im")]
async fn broadcast(
    ctx: &mut Ctx,
    Json(shout): Json<Shout>,
) -> Result<Option<Json<Answer>>, HandlerError> {
    let Some(from) = ctx.uid() else {
        return Ok(Some(Json(Answer::not_logged_in())));
    };
    let delivery = Delivery {
        from: from.to_string(),
        text: shout.text,
    };
    ctx.broadcast_to_users(4, serde_json::to_vec(&delivery)?)?;
    Ok(None)
}

/// 6 echo: the same bytes back, from an im node (a round trip through the
/// cluster).
#[handler(msg_id = 6, group = "im")]
async fn echo(_ctx: &mut Ctx, data: Bytes) -> Bytes {
    data
}
