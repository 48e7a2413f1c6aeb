//! The `gate` group: log in, log out, echo, stats. The gate node runs these
//! handlers itself; every other msg_id it forwards to the group that
//! `route.json` names.

use demo::{Answer, Login, Replaced, Stats, StatsQuery};
use tracing::info;
use zinx_cluster::prelude::*;

/// 1 login `{"name":"alice"}` → `{"ok":true,"name":"alice"}`.
///
/// A name has one session: logging in again (from another connection, on
/// any gate) closes the older session.
#[handler(group = "gate")]
async fn login(ctx: &mut Ctx, login: Login) -> Result<Json<Answer>, HandlerError> {
    let name = login.name;
    if ctx.uid() == Some(name.as_str()) {
        return Ok(Json(Answer::logged_in(name)));
    }
    // Tell the older session why it is about to go. `bind` kicks it, and a
    // kicked session still receives what was queued for it before closing.
    match ctx.push_to_uid(&name, &Replaced::default()).await {
        Ok(()) | Err(SendError::NotOnline { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let session = ctx.session().map(|s| s.to_string()).unwrap_or_default();
    if let Some(older) = ctx.bind(&name).await? {
        info!(uid = %name, %session, %older, "logged in again: older session closed");
    } else {
        info!(uid = %name, %session, "logged in");
    }
    Ok(Json(Answer::logged_in(name)))
}

/// 2 logout `{}` → `{"ok":true}`. The connection stays open.
#[handler(msg_id = 2, group = "gate")]
async fn logout(ctx: &mut Ctx) -> Result<Json<Answer>, HandlerError> {
    if let Some(uid) = ctx.uid() {
        let session = ctx.session().map(|s| s.to_string()).unwrap_or_default();
        info!(uid = %uid, %session, "logged out");
    }
    ctx.unbind().await?;
    Ok(Json(Answer::ok()))
}

/// 5 echo: the same bytes back, answered by the gate without leaving it.
#[handler(msg_id = 5, group = "gate")]
async fn echo(_ctx: &mut Ctx, data: Bytes) -> Bytes {
    data
}

/// 21 stats, anything → `{"node":"im-1","handled":3}`: asks an im node, with the
/// internal [`StatsQuery`] on 20, which node it is, and answers with its
/// answer. Shows `call` between groups, and an internal handler.
#[handler(msg_id = 21, group = "gate")]
async fn stats(ctx: &mut Ctx) -> Result<Stats, HandlerError> {
    Ok(ctx.call("im", &StatsQuery).await?)
}
