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

/// A cluster of a gate and an im node whose route.json is `routes`.
fn config_with(routes: &str) -> Result<zinx_cluster::config::ClusterConfig, String> {
    let dinx = r#"{
        "gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 10000}],
        "im": [{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 20000}],
        "rank": [{"ID": 3, "Name": "rank-1", "Type": 2, "IP": "127.0.0.1", "Port": 30000}]
    }"#;
    zinx_cluster::config::ClusterConfig::from_strs("conf", dinx, routes, None)
        .map_err(|e| e.to_string())
}

/// `check_handlers`, the check the docs tell users to call from a test of
/// their own: this crate's handlers against a route.json, every group
/// served, every problem at once.
#[test]
fn check_handlers_passes_a_matching_route_json_and_lists_every_mismatch() {
    let matching = config_with(
        r#"{"gate": [{"MsgID": 1, "Name": "login"}, {"MsgID": 2, "Name": "logout"}],
            "im": [{"MsgID": 3, "Name": "send"}, {"MsgID": 4, "Name": "echo"},
                   {"MsgID": 5, "Name": "nothing"}]}"#,
    )
    .unwrap();
    zinx_cluster::check_handlers(&matching).unwrap();

    // echo (4) is not routed, 6 has no handler, 5 is routed to the gate
    // group, and "rank" has routes but no handler at all.
    let wrong = config_with(
        r#"{"gate": [{"MsgID": 1, "Name": "login"}, {"MsgID": 2, "Name": "logout"},
                     {"MsgID": 5, "Name": "nothing"}],
            "im": [{"MsgID": 3, "Name": "send"}, {"MsgID": 6, "Name": "kick"}],
            "rank": [{"MsgID": 20, "Name": "top"}]}"#,
    )
    .unwrap();
    let errors = zinx_cluster::check_handlers(&wrong).unwrap_err();
    let mut kinds: Vec<String> = errors
        .0
        .iter()
        .map(|e| match e {
            RegistryError::UnknownMsgId { handler } => format!("unknown {}", handler.msg_id),
            RegistryError::MissingHandler { route } => format!("missing {}", route.msg_id),
            RegistryError::WrongGroup { handler, route } => {
                format!(
                    "group {} {}->{}",
                    handler.msg_id, handler.group, route.group
                )
            }
            RegistryError::GroupNotLinked { group, .. } => format!("not linked {group}"),
            other => format!("other {other}"),
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "group 5 im->gate",
            "missing 6",
            "not linked rank",
            "unknown 4"
        ],
        "{errors}"
    );
    // Displayed under a heading, one per line, each naming the handler or
    // the route and what to do.
    let text = errors.to_string();
    assert!(
        text.starts_with("handlers do not match route.json (4 problem(s)):"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("  - ")).count(),
        4,
        "{text}"
    );
    assert!(
        text.contains("handler registered::echo (tests/tests/registered.rs:"),
        "{text}"
    );
}
