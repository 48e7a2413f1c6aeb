//! `route.json`: msg_ids unique across groups, groups that exist, the
//! reserved msg_ids, internal routes.

use crate::{DINX, assert_only, dinx_with_im, load_ok, problems, route};

#[test]
fn wrong_types_in_routes() {
    let p = problems(
        DINX,
        r#"{"gate": [{"MsgID": "1", "Name": "login"}, {"MsgID": 2, "Name": 7},
                     {"Name": "x"}, {"MsgID": -1, "Name": "neg"}, 3]}"#,
        None,
    );
    assert_eq!(
        p,
        [
            r#"conf/route.json: group "gate", route #1 ("login"): "MsgID": expected an integer, found string "1""#,
            r#"conf/route.json: group "gate", route MsgID 2: "Name": expected a string, found number 7"#,
            r#"conf/route.json: group "gate", route #3 ("x"): missing key "MsgID""#,
            r#"conf/route.json: group "gate", route #4 ("neg"): MsgID -1 is out of range 0..=4294967295"#,
            r#"conf/route.json: group "gate", route #5: expected an object like {"MsgID": 3, "Name": "send"}, found number 3"#,
        ]
    );
}

#[test]
fn duplicate_msg_id_within_a_group() {
    let p = problems(
        DINX,
        r#"{"gate": [{"MsgID": 1, "Name": "login"}, {"MsgID": 1, "Name": "logout"}]}"#,
        None,
    );
    assert_only(
        &p,
        r#"conf/route.json: group "gate", route MsgID 1 ("logout"): duplicate MsgID 1 (also group "gate", route MsgID 1 ("login"))"#,
    );
}

#[test]
fn duplicate_msg_id_across_groups() {
    let p = problems(
        DINX,
        r#"{"gate": [{"MsgID": 1, "Name": "login"}], "im": [{"MsgID": 1, "Name": "send"}]}"#,
        None,
    );
    assert_only(
        &p,
        r#"conf/route.json: group "im", route MsgID 1 ("send"): duplicate MsgID 1 (also group "gate", route MsgID 1 ("login"))"#,
    );
}

#[test]
fn route_group_without_nodes() {
    let p = problems(
        DINX,
        r#"{"gate": [{"MsgID": 1, "Name": "login"}], "chat": [{"MsgID": 7, "Name": "say"}]}"#,
        None,
    );
    assert_only(
        &p,
        r#"conf/route.json: group "chat": no such group in conf/dinx.json: no node could serve its routes"#,
    );
}

#[test]
fn group_with_an_empty_route_list() {
    let p = problems(
        DINX,
        r#"{"gate": [{"MsgID": 1, "Name": "login"}], "im": []}"#,
        None,
    );
    assert_only(
        &p,
        r#"conf/route.json: group "im": no routes (the list is empty)"#,
    );
}

#[test]
fn heartbeat_msg_id_is_never_a_route() {
    let p = problems(DINX, r#"{"im": [{"MsgID": 99999, "Name": "ping"}]}"#, None);
    assert_only(
        &p,
        r#"conf/route.json: group "im", route MsgID 99999 ("ping"): MsgID 99999 is the zinx heartbeat: zinx clients send it to keep their connection alive and gates never route it"#,
    );
}

#[test]
fn route_on_the_error_msg_id_while_errors_are_frames() {
    // Default settings: error_msg_id 0, error_reply "frame".
    let p = problems(DINX, r#"{"gate": [{"MsgID": 0, "Name": "zero"}]}"#, None);
    assert_only(
        &p,
        r#"conf/route.json: group "gate", route MsgID 0 ("zero"): MsgID 0 is reserved for error frames (settings: error_msg_id 0, error_reply "frame"); use another MsgID or change error_msg_id"#,
    );

    let p = problems(
        DINX,
        r#"{"gate": [{"MsgID": 1, "Name": "login"}], "im": [{"MsgID": 3, "Name": "send"}]}"#,
        Some(r#"{"error_msg_id": 3}"#),
    );
    assert_only(
        &p,
        r#"conf/route.json: group "im", route MsgID 3 ("send"): MsgID 3 is reserved for error frames (settings: error_msg_id 3, error_reply "frame"); use another MsgID or change error_msg_id"#,
    );
}

#[test]
fn route_on_the_error_msg_id_is_fine_without_error_frames() {
    let config = load_ok(
        DINX,
        r#"{"gate": [{"MsgID": 0, "Name": "zero"}]}"#,
        Some(r#"{"error_reply": "none"}"#),
    );
    assert_eq!(config.routes, [route(0, "zero", "gate")]);
}

#[test]
fn internal_routes_are_marked_in_any_key_case() {
    let config = load_ok(
        &dinx_with_im(r#"{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 20000}"#),
        r#"{"im": [{"MsgID": 3, "Name": "send"},
                   {"MsgID": 20, "Name": "stats", "Internal": true},
                   {"msgid": 21, "name": "top", "internal": true},
                   {"MsgID": 22, "Name": "open", "INTERNAL": false}]}"#,
        None,
    );
    let internal: Vec<(u32, bool)> = config
        .routes
        .iter()
        .map(|r| (r.msg_id, r.internal))
        .collect();
    assert_eq!(internal, [(3, false), (20, true), (21, true), (22, false)]);
    // What a gate may route for a client: internal routes look unknown.
    assert!(config.client_route(3).is_some());
    assert!(config.client_route(20).is_none());
    assert!(config.client_route(99).is_none());
    assert_eq!(config.route(20).map(|r| r.name.as_str()), Some("stats"));
}

#[test]
fn internal_must_be_a_boolean() {
    let p = problems(
        &dinx_with_im(r#"{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 20000}"#),
        r#"{"im": [{"MsgID": 20, "Name": "stats", "Internal": "yes"},
                   {"MsgID": 21, "Name": "top", "Internal": 1}]}"#,
        None,
    );
    assert_eq!(
        p,
        [
            r#"conf/route.json: group "im", route MsgID 20 ("stats"): "Internal": expected true or false, found string "yes""#,
            r#"conf/route.json: group "im", route MsgID 21 ("top"): "Internal": expected true or false, found number 1"#,
        ]
    );
}
