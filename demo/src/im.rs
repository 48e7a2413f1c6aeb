//! The `im` group: chat lines between users. Any im node serves any
//! session: the uid bound at login travels with every message, and
//! `push_to_uid` / `broadcast` reach sessions on whichever gate holds them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use demo::{Answer, Chat, Delivery, ImStats, Shout, Shouted, Stats};
use zinx_cluster::prelude::*;

/// 3 send `{"to":"bob","text":"hi"}`: bob gets `{"from":"alice","text":"hi"}`
/// on 3; the sender gets `{"ok":true}`, or `{"ok":false,"error":".."}` when
/// bob is not online or the sender has not logged in.
#[handler(group = "im")]
async fn send(
    ctx: &mut Ctx,
    State(stats): State<Arc<ImStats>>,
    chat: Chat,
) -> Result<Json<Answer>, HandlerError> {
    stats.count();
    let Some(from) = ctx.uid() else {
        return Ok(Json(Answer::not_logged_in()));
    };
    let delivery = Delivery {
        from: from.to_string(),
        text: chat.text,
    };
    let answer = match ctx.push_to_uid(&chat.to, &delivery).await {
        Ok(()) => Answer::ok(),
        Err(SendError::NotOnline { uid }) => Answer::error(format!("{uid} is not online")),
        // The gate holding bob is unreachable, etc.: the framework's error
        // answer says so, with its code.
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
#[handler(group = "im")]
async fn broadcast(
    ctx: &mut Ctx,
    State(stats): State<Arc<ImStats>>,
    shout: Shout,
) -> Result<Option<Json<Answer>>, HandlerError> {
    stats.count();
    let Some(from) = ctx.uid() else {
        return Ok(Some(Json(Answer::not_logged_in())));
    };
    ctx.broadcast_to_users(&Shouted {
        from: from.to_string(),
        text: shout.text,
    })?;
    Ok(None)
}

/// 6 echo: the same bytes back, from an im node (a round trip through the
/// cluster).
#[handler(msg_id = 6, group = "im")]
async fn echo(_ctx: &mut Ctx, State(stats): State<Arc<ImStats>>, data: Bytes) -> Bytes {
    stats.count();
    data
}

/// 20 stats, internal: which im node this is and how many client messages
/// the im handlers of its process handled, `{"node":"im-1","handled":3}`. Only other
/// nodes reach it (the gate's 21 calls it); a client sending 20 gets the
/// `unknown_msg_id` answer, like for a msg_id that does not exist.
#[handler(msg_id = 20, group = "im", internal)]
async fn stats(ctx: &mut Ctx, State(stats): State<Arc<ImStats>>) -> Stats {
    Stats {
        node: ctx.node_name().to_string(),
        handled: stats.handled.load(Ordering::Relaxed),
    }
}
