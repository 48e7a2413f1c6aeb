//! The `gate` group: log in, log out, echo. The gate node runs these
//! handlers itself; every other msg_id it forwards to the group that
//! `route.json` names.

use demo::{Answer, Login};
use tracing::info;
use zinx_cluster::prelude::*;

/// The notice a session gets when the same name logs in elsewhere, just
/// before it is closed.
fn replaced() -> Answer {
    Answer::error("logged in elsewhere")
}

/// 1 login `{"name":"alice"}` → `{"ok":true,"name":"alice"}`.
///
/// A name has one session: logging in again (from another connection, on
/// any gate) closes the older session.
#[handler(msg_id = 1, group = "gate")]
async fn login(ctx: &mut Ctx, Json(login): Json<Login>) -> Result<Json<Answer>, HandlerError> {
    let name = login.name;
    if ctx.uid() == Some(name.as_str()) {
        return Ok(Json(Answer::logged_in(name)));
    }
    // Tell the older session why it is about to go. `bind` kicks it, and a
    // kicked session still receives what was queued for it before closing.
    match ctx
        .push_to_uid(&name, 1, serde_json::to_vec(&replaced())?)
        .await
    {
        Ok(()) | Err(SendError::NotOnline(_)) => {}
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
