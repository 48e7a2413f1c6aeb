//! Loading and validating `dinx.json`, `route.json` and `settings.json`:
//! what a user sees for good files and for every kind of mistake.
//!
//! | file | what |
//! |---|---|
//! | `main.rs` | the helpers; good files, missing files, syntax errors, every problem at once, arbitrary input |
//! | `dinx.rs` | `dinx.json`: node entries, ids, addresses, groups, WebSocket and admin ports |
//! | `routes.rs` | `route.json`: msg_ids, groups, internal routes |
//! | `settings.rs` | `settings.json`, and the environment variables that override it |

mod dinx;
mod routes;
mod settings;

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use zinx_cluster::config::{ClusterConfig, NodeConfig, NodeType, RouteConfig};

/// A small valid cluster: one gate, two im backends.
const DINX: &str = r#"{
  "gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 10000}],
  "im": [
    {"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 20000},
    {"ID": 3, "Name": "im-2", "Type": 2, "IP": "127.0.0.1", "Port": 21000}
  ]
}"#;

const ROUTE: &str = r#"{
  "gate": [{"MsgID": 1, "Name": "login"}],
  "im": [{"MsgID": 3, "Name": "send"}]
}"#;

/// A dinx.json whose `im` group holds `im_nodes` (a JSON list body).
fn dinx_with_im(im_nodes: &str) -> String {
    format!(
        r#"{{"gate": [{{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 10000}}],
            "im": [{im_nodes}]}}"#
    )
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn load_ok(dinx: &str, route: &str, settings: Option<&str>) -> ClusterConfig {
    match ClusterConfig::from_strs("conf", dinx, route, settings) {
        Ok(config) => config,
        Err(e) => panic!("expected the configuration to load, got:\n{e}"),
    }
}

/// Every problem reported, as displayed.
fn problems(dinx: &str, route: &str, settings: Option<&str>) -> Vec<String> {
    match ClusterConfig::from_strs("conf", dinx, route, settings) {
        Ok(config) => panic!("expected problems, the configuration loaded: {config:?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[track_caller]
fn assert_only(problems: &[String], expected: &str) {
    assert_eq!(problems, &[expected.to_string()]);
}

fn node(id: u16, name: &str, group: &str, node_type: NodeType, ip: &str, port: u16) -> NodeConfig {
    NodeConfig {
        id,
        name: name.into(),
        group: group.into(),
        node_type,
        ip: ip.into(),
        port,
        ws_port: None,
        ws_path: "/".into(),
        admin_port: None,
        admin_ip: "127.0.0.1".into(),
    }
}

fn route(msg_id: u32, name: &str, group: &str) -> RouteConfig {
    RouteConfig {
        msg_id,
        name: name.into(),
        group: group.into(),
        internal: false,
    }
}

// ---------------------------------------------------------------- good files

#[test]
fn seed_multiprocess_files_load_as_the_go_original_wrote_them() {
    let dir = fixture("seed-multiprocess");
    let config = ClusterConfig::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.dir, dir);
    assert_eq!(
        config.nodes,
        [
            node(1, "gate-1", "gate", NodeType::Gate, "0.0.0.0", 10000),
            node(2, "im-1", "im", NodeType::Backend, "0.0.0.0", 20000),
            node(3, "im-2", "im", NodeType::Backend, "0.0.0.0", 21000),
        ]
    );
    assert_eq!(
        config.routes,
        [
            route(1, "登录", "gate"),
            route(2, "退出", "gate"),
            route(3, "单送", "im"),
            route(4, "群发", "im"),
        ]
    );
    assert_eq!(config.settings, zinx_cluster::Settings::default());
    assert_eq!(config.gates().count(), 1);
    assert_eq!(config.group_nodes("im").count(), 2);
    assert_eq!(config.route_table().get(&3), Some(&"im"));
}

#[test]
fn seed_article_files_with_line_comments_load() {
    let config = ClusterConfig::load(fixture("seed-commented")).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<_> = config.nodes.iter().map(|n| (n.id, n.port)).collect();
    assert_eq!(ids, [(1, 10000), (2, 20000), (3, 21000)]);
    assert_eq!(
        config.routes,
        [
            route(1, "登录", "gate"),
            route(2, "发送", "im"),
            route(3, "转发", "im")
        ]
    );
}

#[test]
fn two_gate_demo_conf_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/two-gates");
    let config = ClusterConfig::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.gates().count(), 2);
    assert_eq!(
        config.settings.redis_url.as_deref(),
        Some("redis://127.0.0.1:6379/0")
    );
    let shipped = ClusterConfig::load(dir.join("..")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.routes, shipped.routes, "same routes as conf/");
}

#[test]
fn demo_conf_of_the_workspace_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
    let config = ClusterConfig::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.nodes,
        [
            NodeConfig {
                ws_port: Some(9000),
                admin_port: Some(9100),
                ..node(1, "gate-1", "gate", NodeType::Gate, "127.0.0.1", 10000)
            },
            NodeConfig {
                admin_port: Some(9101),
                ..node(2, "im-1", "im", NodeType::Backend, "127.0.0.1", 20000)
            },
            NodeConfig {
                admin_port: Some(9102),
                ..node(3, "im-2", "im", NodeType::Backend, "127.0.0.1", 21000)
            },
        ]
    );
    assert_eq!(
        config.routes,
        [
            route(1, "login", "gate"),
            route(2, "logout", "gate"),
            route(5, "echo", "gate"),
            route(7, "join", "gate"),
            route(8, "leave", "gate"),
            route(21, "stats", "gate"),
            route(3, "send", "im"),
            route(4, "broadcast", "im"),
            route(6, "echo", "im"),
            route(9, "say", "im"),
            route(11, "remind", "im"),
            RouteConfig {
                internal: true,
                ..route(20, "stats", "im")
            },
        ]
    );
}

#[test]
fn keys_match_case_insensitively_like_go() {
    let config = load_ok(
        r#"{"gate": [{"id": 1, "name": "g", "type": 1, "ip": "127.0.0.1", "port": 10000}],
            "im": [{"Id": 2, "NAME": "i", "tYpE": 2, "Ip": "::1", "pOrt": 20000, "ispass": 0}]}"#,
        r#"{"gate": [{"msgid": 1, "name": "a"}], "im": [{"MsgId": 2, "NAME": "b"}]}"#,
        None,
    );
    assert_eq!(
        config.nodes,
        [
            node(1, "g", "gate", NodeType::Gate, "127.0.0.1", 10000),
            node(2, "i", "im", NodeType::Backend, "::1", 20000),
        ]
    );
    assert_eq!(config.nodes[1].addr(), "[::1]:20000");
    assert_eq!(config.routes, [route(1, "a", "gate"), route(2, "b", "im")]);
}

#[test]
fn of_two_spellings_of_a_key_the_last_wins_like_go() {
    let config = load_ok(
        r#"{"gate": [{"ID": 7, "Name": "g", "Type": 1, "IP": "127.0.0.1", "Port": 1, "id": 1}]}"#,
        r#"{"gate": [{"MsgID": 1, "Name": "a"}]}"#,
        None,
    );
    assert_eq!(config.nodes[0].id, 1);
}

#[test]
fn is_pass_and_unknown_entry_keys_are_ignored() {
    let config = load_ok(
        &dinx_with_im(
            r#"{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 20000,
                "IsPass": 1, "Weight": [1, 2], "Comment": {"x": null}}"#,
        ),
        r#"{"im": [{"MsgID": 3, "Name": "send", "Timeout": 5}]}"#,
        None,
    );
    assert_eq!(config.nodes.len(), 2);
    assert_eq!(config.routes, [route(3, "send", "im")]);
}

#[test]
fn nodes_and_routes_keep_file_order() {
    let config = load_ok(
        r#"{"zeta": [{"ID": 9, "Name": "z", "Type": 1, "IP": "127.0.0.1", "Port": 9}],
            "alpha": [{"ID": 5, "Name": "a2", "Type": 2, "IP": "127.0.0.1", "Port": 5},
                      {"ID": 4, "Name": "a1", "Type": 2, "IP": "127.0.0.1", "Port": 4}]}"#,
        r#"{"zeta": [{"MsgID": 9, "Name": ""}], "alpha": [{"MsgID": 8, "Name": ""}, {"MsgID": 1, "Name": ""}]}"#,
        None,
    );
    let ids: Vec<_> = config.nodes.iter().map(|n| n.id).collect();
    assert_eq!(ids, [9, 5, 4]);
    let msg_ids: Vec<_> = config.routes.iter().map(|r| r.msg_id).collect();
    assert_eq!(msg_ids, [9, 8, 1]);
}

#[test]
fn comment_markers_inside_strings_are_not_comments() {
    let config = load_ok(
        DINX,
        r#"{"gate": [{"MsgID": 1, "Name": "http://a//b"}], // the gate
            "im": [{"MsgID": 3, "Name": "\"//\""}]}"#,
        None,
    );
    assert_eq!(config.routes[0].name, "http://a//b");
    assert_eq!(config.routes[1].name, "\"//\"");
}

// ------------------------------------------------------ missing files and dirs

#[test]
fn missing_directory_is_one_clear_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = ClusterConfig::load(&missing).unwrap_err();
    assert_eq!(
        err.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [format!(
            "{}: configuration directory not found (expected dinx.json and route.json in it)",
            missing.display()
        )]
    );
}

#[test]
fn a_file_given_as_the_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dinx.json");
    std::fs::write(&file, DINX).unwrap();
    let err = ClusterConfig::load(&file).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].file, file.display().to_string());
    assert!(err.0[0].message.starts_with("not a directory"), "{err}");
}

#[test]
fn missing_dinx_still_reports_route_problems() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("route.json"),
        r#"{"im": [{"MsgID": 99999, "Name": "hb"}]}"#,
    )
    .unwrap();
    let err = ClusterConfig::load(dir.path()).unwrap_err();
    let d = dir.path().display();
    let got: Vec<_> = err.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            format!("{d}/dinx.json: file not found (it lists the cluster's nodes)"),
            format!(
                "{d}/route.json: group \"im\", route MsgID 99999 (\"hb\"): MsgID 99999 is the zinx \
                 heartbeat: zinx clients send it to keep their connection alive and gates never \
                 route it"
            ),
        ]
    );
}

#[test]
fn missing_route_is_reported_with_dinx_problems() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dinx.json"), r#"{"gate": []}"#).unwrap();
    let err = ClusterConfig::load(dir.path()).unwrap_err();
    let d = dir.path().display();
    let got: Vec<_> = err.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            format!("{d}/dinx.json: group \"gate\": no nodes (the list is empty)"),
            format!(
                "{d}/dinx.json: no gate node (Type 1): clients connect to gates, so a cluster needs at least one"
            ),
            format!("{d}/route.json: file not found (it maps each MsgID to a group)"),
        ]
    );
}

#[test]
fn a_file_that_is_not_utf8_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dinx.json"),
        b"{\n  \"gate\": [{\"Name\": \"\xff\"}]}",
    )
    .unwrap();
    std::fs::write(dir.path().join("route.json"), ROUTE).unwrap();
    let err = ClusterConfig::load(dir.path()).unwrap_err();
    assert_eq!(
        err.0[0].to_string(),
        format!(
            "{}/dinx.json: line 2, column 22: not valid UTF-8 (save the file as UTF-8)",
            dir.path().display()
        )
    );
}

// ------------------------------------------------------------ syntax errors

#[test]
fn dinx_syntax_error_names_line_and_column() {
    let p = problems("{\n  \"gate\": [\n    {\"ID\": 1,}\n  ]\n}", ROUTE, None);
    assert_only(
        &p,
        "conf/dinx.json: line 3, column 14: JSON syntax error: trailing comma",
    );
}

#[test]
fn route_syntax_error_names_line_and_column_after_comments() {
    // The comment is blanked, not removed: the position is the editor's.
    let p = problems(
        DINX,
        "// routes\n{\"gate\": [{\"MsgID\": 1 \"Name\": \"a\"}]}",
        None,
    );
    assert_only(
        &p,
        "conf/route.json: line 2, column 23: JSON syntax error: expected `,` or `}`",
    );
}

#[test]
fn syntax_error_column_counts_characters_not_bytes() {
    let p = problems(DINX, "{\"gate\": [{\"Name\": \"登录\", x}]}", None);
    assert_only(
        &p,
        "conf/route.json: line 1, column 26: JSON syntax error: key must be a string",
    );
}

#[test]
fn truncated_file_is_a_syntax_error() {
    let p = problems(DINX, "{\"gate\": [", None);
    assert_only(
        &p,
        "conf/route.json: line 1, column 10: JSON syntax error: EOF while parsing a list",
    );
}

#[test]
fn truncated_file_ending_in_a_line_break_names_the_last_line() {
    let p = problems(DINX, "{\n  \"gate\": [\n", None);
    assert_only(
        &p,
        "conf/route.json: line 3: JSON syntax error: EOF while parsing a list",
    );
}

#[test]
fn dinx_syntax_error_still_reports_route_problems() {
    let p = problems(
        "{",
        r#"{"gate": [{"MsgID": 1, "Name": "a"}, {"MsgID": 1, "Name": "b"}]}"#,
        None,
    );
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(p[0].starts_with("conf/dinx.json: line 1, column 1: JSON syntax error"));
    assert_eq!(
        p[1],
        r#"conf/route.json: group "gate", route MsgID 1 ("b"): duplicate MsgID 1 (also group "gate", route MsgID 1 ("a"))"#
    );
}

// ------------------------------------------------------- shapes of the files

#[test]
fn wrong_shapes_of_the_files() {
    let p = problems(r#"[1, 2]"#, r#""routes""#, None);
    assert_eq!(
        p,
        [
            "conf/dinx.json: expected an object of group name -> list of nodes, found an array",
            r#"conf/route.json: expected an object of group name -> list of routes, found string "routes""#,
        ]
    );

    let p = problems(
        r#"{"gate": [{"ID": 1, "Name": "g", "Type": 1, "IP": "127.0.0.1", "Port": 1}, "im-1"],
            "im": {"ID": 2}}"#,
        r#"{"gate": {"MsgID": 1}}"#,
        None,
    );
    assert_eq!(
        p,
        [
            r#"conf/dinx.json: group "gate", node #2: expected an object like {"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 10000}, found string "im-1""#,
            r#"conf/dinx.json: group "im": expected a list of nodes, found an object"#,
            r#"conf/route.json: group "gate": expected a list of routes, found an object"#,
        ]
    );
}

// ------------------------------------------------------------ all at once

#[test]
fn every_problem_is_reported_at_once() {
    let dinx = r#"{
      "gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 10000}],
      "im": [
        {"ID": 1, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 10000},
        {"ID": 3, "Name": "", "Type": 5, "IP": "im.local", "Port": 0}
      ],
      "empty": []
    }"#;
    let route = r#"{
      "gate": [{"MsgID": 1, "Name": "login"}],
      "im": [{"MsgID": 1, "Name": "send"}, {"MsgID": 99999, "Name": "ping"}],
      "chat": []
    }"#;
    let err =
        ClusterConfig::from_strs("conf", dinx, route, Some(r#"{"link_queue": 0}"#)).unwrap_err();
    let got: Vec<_> = err.0.iter().map(ToString::to_string).collect();
    let expected = [
        r#"conf/dinx.json: group "im", node ID 1 ("im-1"): duplicate node ID 1 (also group "gate", node ID 1 ("gate-1"))"#,
        r#"conf/dinx.json: group "im", node ID 1 ("im-1"): address 127.0.0.1:10000 is also used by group "gate", node ID 1 ("gate-1")"#,
        r#"conf/dinx.json: group "im", node ID 3: empty Name"#,
        r#"conf/dinx.json: group "im", node ID 3: unknown Type 5 (1 = gate, 2 = backend)"#,
        r#"conf/dinx.json: group "im", node ID 3: IP "im.local" is not an IP address (hostnames are not supported; write an address such as 127.0.0.1 or ::1)"#,
        r#"conf/dinx.json: group "im", node ID 3: Port 0 is out of range 1..=65535"#,
        r#"conf/dinx.json: group "empty": no nodes (the list is empty)"#,
        r#"conf/route.json: group "im", route MsgID 1 ("send"): duplicate MsgID 1 (also group "gate", route MsgID 1 ("login"))"#,
        r#"conf/route.json: group "im", route MsgID 99999 ("ping"): MsgID 99999 is the zinx heartbeat: zinx clients send it to keep their connection alive and gates never route it"#,
        r#"conf/route.json: group "chat": no such group in conf/dinx.json: no node could serve its routes"#,
        r#"conf/route.json: group "chat": no routes (the list is empty)"#,
        "conf/settings.json: link_queue: 0 is not allowed: no message could be queued on a link",
    ];
    assert_eq!(got, expected);

    // Displayed as one list, one problem a line.
    let shown = err.to_string();
    assert!(
        shown.starts_with("invalid cluster configuration (12 problem(s)):\n  - conf/dinx.json: ")
    );
    assert_eq!(shown.lines().count(), 13);
}

#[test]
fn errors_carry_file_entry_and_message_separately() {
    let err = ClusterConfig::from_strs(
        "conf",
        &dinx_with_im(r#"{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 0}"#),
        ROUTE,
        None,
    )
    .unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].file, "conf/dinx.json");
    assert_eq!(
        err.0[0].entry.as_deref(),
        Some(r#"group "im", node ID 2 ("im-1")"#)
    );
    assert_eq!(err.0[0].message, "Port 0 is out of range 1..=65535");
}

// --------------------------------------------------------------- robustness

/// JSON values shaped somewhat like the real files, so generated cases reach
/// the entry checks rather than stopping at the top level.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let key = prop_oneof![
        Just("ID".to_string()),
        Just("id".to_string()),
        Just("Name".to_string()),
        Just("Type".to_string()),
        Just("IP".to_string()),
        Just("Port".to_string()),
        Just("IsPass".to_string()),
        Just("MsgID".to_string()),
        Just("gate".to_string()),
        Just("im".to_string()),
        Just("balance".to_string()),
        Just("error_msg_id".to_string()),
        Just("max_frame_len".to_string()),
        ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(2),
            Just(3),
            Just(65535),
            Just(65536),
            Just(99999),
            Just(-1),
            any::<i64>(),
        ]
        .prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            Just("127.0.0.1".to_string()),
            Just("::1".to_string()),
            Just("0.0.0.0".to_string()),
            Just(String::new()),
            Just("round_robin".to_string()),
            ".{0,12}",
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(
        dinx in ".{0,200}",
        route in ".{0,200}",
        settings in proptest::option::of(".{0,100}"),
    ) {
        let _ = ClusterConfig::from_strs("conf", &dinx, &route, settings.as_deref());
    }

    #[test]
    fn arbitrary_json_never_panics_and_loads_only_consistent_configs(
        dinx in json_value(),
        route in json_value(),
        settings in proptest::option::of(json_value()),
    ) {
        let settings = settings.map(|s| s.to_string());
        match ClusterConfig::from_strs("conf", &dinx.to_string(), &route.to_string(), settings.as_deref()) {
            Ok(config) => {
                let mut ids: Vec<_> = config.nodes.iter().map(|n| n.id).collect();
                ids.sort_unstable();
                ids.dedup();
                prop_assert_eq!(ids.len(), config.nodes.len());
                prop_assert!(config.gates().count() > 0);
            }
            Err(errors) => prop_assert!(!errors.0.is_empty()),
        }
    }

    #[test]
    fn valid_files_with_arbitrary_comments_still_load(comment in "[^\n]{0,40}") {
        let dinx = DINX.replace("\n", &format!(" //{comment}\n"));
        let route = format!("//{comment}\n{ROUTE} //{comment}");
        prop_assert!(ClusterConfig::from_strs("conf", &dinx, &route, None).is_ok());
    }
}
