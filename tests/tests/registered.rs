//! Handlers defined in a crate that depends on zinx-cluster are registered,
//! validated against a route.json, and looked up by msg_id; the expansion
//! passes `cargo clippy --all-targets -- -D warnings` in a user crate.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use zinx_cluster::config::RouteConfig;
use zinx_cluster::prelude::*;
use zinx_cluster::registry::{HandlerTable, RegistryError, registered, validate_handlers};

#[derive(Deserialize, Serialize)]
struct Chat {
    to: String,
    text: String,
}

mod ids {
    pub(crate) const SEND: u32 = 3;
}

#[handler(msg_id = 1, group = "gate")]
async fn login(_ctx: &mut Ctx, name: String) -> Result<String, HandlerError> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    Ok(name)
}

#[handler(msg_id = 2, group = "gate")]
async fn logout(_ctx: &Ctx) {}

#[handler(msg_id = ids::SEND, group = "im")]
async fn send(_ctx: &mut Ctx, Json(chat): Json<Chat>) -> Option<Json<Chat>> {
    (!chat.to.is_empty()).then_some(Json(chat))
}

#[handler(msg_id = 4, group = "im")]
async fn echo(_ctx: &mut Ctx, data: Bytes) -> Bytes {
    data
}

#[handler(msg_id = 5, group = "im")]
async fn nothing(_ctx: &mut Ctx, _: Vec<u8>) -> () {}

fn route_json() -> Vec<RouteConfig> {
    [
        (1, "login", "gate"),
        (2, "logout", "gate"),
        (3, "send", "im"),
        (4, "echo", "im"),
        (5, "nothing", "im"),
    ]
    .into_iter()
    .map(|(msg_id, name, group)| RouteConfig {
        msg_id,
        name: name.into(),
        group: group.into(),
        internal: false,
    })
    .collect()
}

#[test]
fn registered_sees_the_handlers_of_this_crate() {
    let mut found: Vec<(u32, &str, &str)> =
        registered().map(|r| (r.msg_id, r.group, r.name)).collect();
    found.sort();
    assert_eq!(
        found,
        [
            (1, "gate", "login"),
            (2, "gate", "logout"),
            (3, "im", "send"),
            (4, "im", "echo"),
            (5, "im", "nothing"),
        ]
    );
    let send = registered().find(|r| r.name == "send").unwrap();
    assert_eq!(send.module, "registered");
    assert_eq!(send.file, "tests/tests/registered.rs");

    // The functions stay plain functions.
    let _ = (login, logout, send, echo, nothing);
}

#[test]
fn validation_builds_the_table_of_the_served_group() {
    let table = validate_handlers(registered(), &route_json(), &["im"]).unwrap();
    let ids: Vec<u32> = table.iter().map(|r| r.msg_id).collect();
    assert_eq!(ids, [3, 4, 5]);
    assert_eq!(table.get(3).map(|r| r.name), Some("send"));
    assert!(table.get(1).is_none(), "gate routes are not served here");
}

#[test]
fn validation_reports_a_route_json_that_disagrees() {
    let mut config = route_json();
    config.retain(|r| r.msg_id != 4);
    config.push(RouteConfig {
        msg_id: 6,
        name: "kick".into(),
        group: "im".into(),
        internal: false,
    });
    let errors = validate_handlers(registered(), &config, &["gate", "im"]).unwrap_err();
    assert!(
        matches!(errors.0.as_slice(), [
            RegistryError::UnknownMsgId { handler },
            RegistryError::MissingHandler { route },
        ] if handler.msg_id == 4 && route.msg_id == 6),
        "{errors}"
    );
    let text = errors.to_string();
    assert!(
        text.contains("handler registered::echo (tests/tests/registered.rs:"),
        "{text}"
    );
}

#[test]
fn table_from_explicit_routes() {
    let table = HandlerTable::from_routes(registered().filter(|r| r.group == "gate")).unwrap();
    assert_eq!(table.len(), 2);
    assert_eq!(table.get(2).map(|r| r.name), Some("logout"));
}
