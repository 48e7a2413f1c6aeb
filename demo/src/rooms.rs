//! Rooms and reminders: the gate's `join` / `leave`, the im nodes' `say`
//! (a publish to a room across every gate) and `remind` (a task that
//! pushes later through a `ClusterHandle`).

use std::sync::Arc;
use std::time::Duration;

use demo::{Answer, ImStats, Join, Leave, MAX_REMIND_MS, Remind, Reminder, Said, Say};
use tracing::debug;
use zinx_cluster::prelude::*;

/// 7 join `{"room":"r1"}` → `{"ok":true}`. Membership lives on this gate,
/// with the session; it ends with `leave` or when the session closes.
#[handler(group = "gate")]
async fn join(ctx: &mut Ctx, join: Join) -> Result<Json<Answer>, HandlerError> {
    ctx.join(&join.room).await?;
    Ok(Json(Answer::ok()))
}

/// 8 leave `{"room":"r1"}` → `{"ok":true}` (also when not a member).
#[handler(group = "gate")]
async fn leave(ctx: &mut Ctx, leave: Leave) -> Result<Json<Answer>, HandlerError> {
    ctx.leave(&leave.room).await?;
    Ok(Json(Answer::ok()))
}

/// 9 say `{"room":"r1","text":"hi"}`: every member of r1 on every gate,
/// the sender included when a member, gets
/// `{"room":"r1","from":"alice","text":"hi"}` on 9, once; the sender gets
/// `{"ok":true}` on 9 (or `not logged in`).
#[handler(group = "im")]
async fn say(
    ctx: &mut Ctx,
    State(stats): State<Arc<ImStats>>,
    say: Say,
) -> Result<Json<Answer>, HandlerError> {
    stats.count();
    let Some(from) = ctx.uid() else {
        return Ok(Json(Answer::not_logged_in()));
    };
    let said = Said {
        room: say.room,
        from: from.to_string(),
        text: say.text,
    };
    ctx.publish(&said.room, &said)?;
    Ok(Json(Answer::ok()))
}

/// 11 remind `{"after_ms":500,"text":"tea"}` → `{"ok":true}` at once; after
/// `after_ms` the user gets `{"remind":"tea"}` on 11, pushed to the uid by
/// a task through the handle: it arrives on whichever gate the user is by
/// then (and is dropped when the user is offline).
#[handler(group = "im")]
async fn remind(
    ctx: &mut Ctx,
    State(stats): State<Arc<ImStats>>,
    remind: Remind,
) -> Result<Json<Answer>, HandlerError> {
    stats.count();
    let Some(uid) = ctx.uid() else {
        return Ok(Json(Answer::not_logged_in()));
    };
    if remind.after_ms > MAX_REMIND_MS {
        return Ok(Json(Answer::error(format!(
            "after_ms is at most {MAX_REMIND_MS}"
        ))));
    }
    let uid = uid.to_string();
    let reminder = Reminder {
        remind: remind.text,
    };
    let handle = ctx.handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(remind.after_ms)).await;
        if let Err(e) = handle.push_to_uid(&uid, &reminder).await {
            debug!(%uid, error = %e, "reminder not delivered");
        }
    });
    Ok(Json(Answer::ok()))
}
