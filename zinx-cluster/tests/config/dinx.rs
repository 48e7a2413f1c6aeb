//! `dinx.json`: node entries (keys, types, values), ids, addresses,
//! groups, and the WebSocket and admin ports of gates.

use crate::{ROUTE, assert_only, dinx_with_im, load_ok, problems};

#[test]
fn port_that_is_a_string_is_a_type_error() {
    let p = problems(
        &dinx_with_im(r#"{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": "abc"}"#),
        ROUTE,
        None,
    );
    assert_only(
        &p,
        r#"conf/dinx.json: group "im", node ID 2 ("im-1"): "Port": expected an integer, found string "abc""#,
    );
}

#[test]
fn id_that_is_not_an_integer_names_the_entry_by_position() {
    let p = problems(
        &dinx_with_im(
            r#"{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 20000},
               {"ID": 1.5, "Name": "im-2", "Type": 2, "IP": "127.0.0.1", "Port": 21000},
               {"ID": "4", "Name": "im-3", "Type": 2, "IP": "127.0.0.1", "Port": 22000}"#,
        ),
        ROUTE,
        None,
    );
    assert_eq!(
        p,
        [
            r#"conf/dinx.json: group "im", node #2 ("im-2"): "ID": expected an integer, found number 1.5"#,
            r#"conf/dinx.json: group "im", node #3 ("im-3"): "ID": expected an integer, found string "4""#,
        ]
    );
}

#[test]
fn missing_keys_are_each_reported() {
    let p = problems(&dinx_with_im(r#"{"ID": 2, "IsPass": 1}"#), ROUTE, None);
    assert_eq!(
        p,
        [
            r#"conf/dinx.json: group "im", node ID 2: missing key "Name""#,
            r#"conf/dinx.json: group "im", node ID 2: missing key "Type""#,
            r#"conf/dinx.json: group "im", node ID 2: missing key "IP""#,
            r#"conf/dinx.json: group "im", node ID 2: missing key "Port""#,
        ]
    );
}

#[test]
fn other_wrong_types_in_nodes() {
    let p = problems(
        &dinx_with_im(r#"{"ID": 2, "Name": 5, "Type": "2", "IP": null, "Port": true}"#),
        ROUTE,
        None,
    );
    assert_eq!(
        p,
        [
            r#"conf/dinx.json: group "im", node ID 2: "Name": expected a string, found number 5"#,
            r#"conf/dinx.json: group "im", node ID 2: "Type": expected an integer, found string "2""#,
            r#"conf/dinx.json: group "im", node ID 2: "IP": expected a string, found null"#,
            r#"conf/dinx.json: group "im", node ID 2: "Port": expected an integer, found boolean true"#,
        ]
    );
}

#[test]
fn duplicate_node_id_names_both_entries() {
    let p = problems(
        r#"{"gate": [{"ID": 3, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 10000}],
            "im": [{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 20000},
                   {"ID": 3, "Name": "im-2", "Type": 2, "IP": "127.0.0.1", "Port": 21000}]}"#,
        ROUTE,
        None,
    );
    assert_only(
        &p,
        r#"conf/dinx.json: group "im", node ID 3 ("im-2"): duplicate node ID 3 (also group "gate", node ID 3 ("gate-1"))"#,
    );
}

#[test]
fn two_nodes_on_one_address_name_both_entries() {
    let p = problems(
        &dinx_with_im(
            r#"{"ID": 2, "Name": "im-1", "Type": 2, "IP": "::1", "Port": 20000},
               {"ID": 3, "Name": "im-2", "Type": 2, "IP": "0:0:0:0:0:0:0:1", "Port": 20000},
               {"ID": 4, "Name": "im-3", "Type": 2, "IP": "127.0.0.1", "Port": 10000}"#,
        ),
        ROUTE,
        None,
    );
    assert_eq!(
        p,
        [
            r#"conf/dinx.json: group "im", node ID 3 ("im-2"): address [::1]:20000 is also used by group "im", node ID 2 ("im-1")"#,
            r#"conf/dinx.json: group "im", node ID 4 ("im-3"): address 127.0.0.1:10000 is also used by group "gate", node ID 1 ("gate-1")"#,
        ]
    );
}

#[test]
fn the_same_port_on_different_ips_is_fine() {
    let config = load_ok(
        &dinx_with_im(r#"{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.2", "Port": 10000}"#),
        ROUTE,
        None,
    );
    assert_eq!(config.nodes.len(), 2);
}

#[test]
fn port_zero_and_out_of_range_ports() {
    let p = problems(
        &dinx_with_im(
            r#"{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 0},
               {"ID": 3, "Name": "im-2", "Type": 2, "IP": "127.0.0.1", "Port": 65536},
               {"ID": 4, "Name": "im-3", "Type": 2, "IP": "127.0.0.1", "Port": -80}"#,
        ),
        ROUTE,
        None,
    );
    assert_eq!(
        p,
        [
            r#"conf/dinx.json: group "im", node ID 2 ("im-1"): Port 0 is out of range 1..=65535"#,
            r#"conf/dinx.json: group "im", node ID 3 ("im-2"): Port 65536 is out of range 1..=65535"#,
            r#"conf/dinx.json: group "im", node ID 4 ("im-3"): Port -80 is out of range 1..=65535"#,
        ]
    );
}

#[test]
fn node_id_zero_and_above_65535() {
    let p = problems(
        &dinx_with_im(
            r#"{"ID": 0, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 20000},
               {"ID": 65536, "Name": "im-2", "Type": 2, "IP": "127.0.0.1", "Port": 21000}"#,
        ),
        ROUTE,
        None,
    );
    let why = "(node ids are 16-bit: session ids carry the gate's id)";
    assert_eq!(
        p,
        [
            format!(
                r#"conf/dinx.json: group "im", node #1 ("im-1"): ID 0 is out of range 1..=65535 {why}"#
            ),
            format!(
                r#"conf/dinx.json: group "im", node #2 ("im-2"): ID 65536 is out of range 1..=65535 {why}"#
            ),
        ]
    );
}

#[test]
fn node_id_65535_is_the_largest_allowed() {
    let config = load_ok(
        &dinx_with_im(
            r#"{"ID": 65535, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 20000}"#,
        ),
        ROUTE,
        None,
    );
    assert!(config.node(65535).is_some());
}

#[test]
fn unknown_node_type() {
    let p = problems(
        &dinx_with_im(
            r#"{"ID": 2, "Name": "im-1", "Type": 3, "IP": "127.0.0.1", "Port": 20000},
               {"ID": 3, "Name": "im-2", "Type": 0, "IP": "127.0.0.1", "Port": 21000}"#,
        ),
        ROUTE,
        None,
    );
    assert_eq!(
        p,
        [
            r#"conf/dinx.json: group "im", node ID 2 ("im-1"): unknown Type 3 (1 = gate, 2 = backend)"#,
            r#"conf/dinx.json: group "im", node ID 3 ("im-2"): unknown Type 0 (1 = gate, 2 = backend)"#,
        ]
    );
}

#[test]
fn empty_name() {
    let p = problems(
        &dinx_with_im(r#"{"ID": 2, "Name": " ", "Type": 2, "IP": "127.0.0.1", "Port": 20000}"#),
        ROUTE,
        None,
    );
    assert_only(&p, r#"conf/dinx.json: group "im", node ID 2: empty Name"#);
}

#[test]
fn empty_ip() {
    let p = problems(
        &dinx_with_im(r#"{"ID": 2, "Name": "im-1", "Type": 2, "IP": "", "Port": 20000}"#),
        ROUTE,
        None,
    );
    assert_only(
        &p,
        r#"conf/dinx.json: group "im", node ID 2 ("im-1"): empty IP"#,
    );
}

#[test]
fn hostname_is_not_an_ip_address() {
    let p = problems(
        &dinx_with_im(r#"{"ID": 2, "Name": "im-1", "Type": 2, "IP": "localhost", "Port": 20000}"#),
        ROUTE,
        None,
    );
    assert_only(
        &p,
        r#"conf/dinx.json: group "im", node ID 2 ("im-1"): IP "localhost" is not an IP address (hostnames are not supported; write an address such as 127.0.0.1 or ::1)"#,
    );
}

#[test]
fn no_gate_node() {
    let p = problems(
        r#"{"im": [{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 20000}]}"#,
        r#"{"im": [{"MsgID": 3, "Name": "send"}]}"#,
        None,
    );
    assert_only(
        &p,
        "conf/dinx.json: no gate node (Type 1): clients connect to gates, so a cluster needs at least one",
    );
}

#[test]
fn no_gate_is_not_claimed_when_a_type_could_not_be_read() {
    let p = problems(
        r#"{"gate": [{"ID": 1, "Name": "gate-1", "Type": "1", "IP": "127.0.0.1", "Port": 10000}]}"#,
        r#"{"gate": [{"MsgID": 1, "Name": "login"}]}"#,
        None,
    );
    assert_only(
        &p,
        r#"conf/dinx.json: group "gate", node ID 1 ("gate-1"): "Type": expected an integer, found string "1""#,
    );
}

#[test]
fn group_mixing_gates_and_backends() {
    let p = problems(
        &dinx_with_im(
            r#"{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 20000},
               {"ID": 3, "Name": "im-2", "Type": 1, "IP": "127.0.0.1", "Port": 21000},
               {"ID": 4, "Name": "im-3", "Type": 2, "IP": "127.0.0.1", "Port": 22000}"#,
        ),
        ROUTE,
        None,
    );
    assert_only(
        &p,
        r#"conf/dinx.json: group "im": mixes gate nodes (node ID 3 ("im-2")) and backend nodes (node ID 2 ("im-1"), node ID 4 ("im-3")); a group is either all gates (Type 1) or all backends (Type 2)"#,
    );
}

#[test]
fn group_with_an_empty_node_list() {
    let p = problems(
        r#"{"gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 10000}],
            "im": []}"#,
        r#"{"gate": [{"MsgID": 1, "Name": "login"}]}"#,
        None,
    );
    assert_only(
        &p,
        r#"conf/dinx.json: group "im": no nodes (the list is empty)"#,
    );
}

#[test]
fn empty_group_name() {
    let p = problems(
        r#"{"gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 10000}],
            "": [{"ID": 2, "Name": "x", "Type": 2, "IP": "127.0.0.1", "Port": 20000}]}"#,
        r#"{"gate": [{"MsgID": 1, "Name": "login"}]}"#,
        None,
    );
    assert_only(&p, r#"conf/dinx.json: group "": empty group name"#);
}

#[test]
fn ws_and_admin_ports_load_with_zinx_defaults() {
    let config = load_ok(
        r#"{"gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 10000,
                      "wsport": 9000, "AdminPort": 9100}],
            "im": [{"ID": 2, "Name": "im-1", "Type": 2, "IP": "::1", "Port": 20000,
                    "AdminPort": 9101}]}"#,
        ROUTE,
        None,
    );
    let gate = config.node(1).unwrap();
    assert_eq!(gate.ws_port, Some(9000));
    assert_eq!(gate.ws_path, "/");
    assert_eq!(gate.ws_addr().as_deref(), Some("127.0.0.1:9000"));
    assert_eq!(gate.admin_addr().as_deref(), Some("127.0.0.1:9100"));
    let im = config.node(2).unwrap();
    assert_eq!(im.ws_port, None);
    // AdminIP defaults to 127.0.0.1 whatever IP is (see tests/admin.rs).
    assert_eq!(im.admin_addr().as_deref(), Some("127.0.0.1:9101"));
    let config = load_ok(
        r#"{"gate": [{"ID": 1, "Name": "g", "Type": 1, "IP": "127.0.0.1", "Port": 10000,
                      "WsPort": 9000, "WsPath": "/chat"}],
            "im": [{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 20000}]}"#,
        ROUTE,
        None,
    );
    assert_eq!(config.node(1).unwrap().ws_path, "/chat");
}

#[test]
fn port_clashes_among_all_ports_name_both_keys() {
    let p = problems(
        r#"{"gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 10000,
                      "WsPort": 10000, "AdminPort": 9100}],
            "im": [{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 9100},
                   {"ID": 3, "Name": "im-2", "Type": 2, "IP": "127.0.0.1", "Port": 21000,
                    "AdminPort": 21000}]}"#,
        ROUTE,
        None,
    );
    assert_eq!(
        p,
        [
            r#"conf/dinx.json: group "gate", node ID 1 ("gate-1"): WsPort: address 127.0.0.1:10000 is also used by its Port"#,
            r#"conf/dinx.json: group "im", node ID 2 ("im-1"): address 127.0.0.1:9100 is also used by group "gate", node ID 1 ("gate-1") (AdminPort)"#,
            r#"conf/dinx.json: group "im", node ID 3 ("im-2"): AdminPort: address 127.0.0.1:21000 is also used by its Port"#,
        ]
    );
}

#[test]
fn bad_ws_keys_are_reported() {
    let p = problems(
        r#"{"gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 10000,
                      "WsPort": 70000, "WsPath": "chat", "AdminPort": "9100"}],
            "im": [{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 20000,
                    "WsPort": 9000},
                   {"ID": 3, "Name": "im-2", "Type": 2, "IP": "127.0.0.1", "Port": 21000,
                    "WsPath": "/x"}]}"#,
        ROUTE,
        None,
    );
    assert_eq!(
        p,
        [
            r#"conf/dinx.json: group "gate", node ID 1 ("gate-1"): WsPort 70000 is out of range 1..=65535"#,
            r#"conf/dinx.json: group "gate", node ID 1 ("gate-1"): "AdminPort": expected an integer, found string "9100""#,
            r#"conf/dinx.json: group "gate", node ID 1 ("gate-1"): WsPath "chat" must start with "/" (e.g. "/" or "/ws")"#,
            r#"conf/dinx.json: group "im", node ID 2 ("im-1"): WsPort on a backend node: only gates (Type 1) accept clients"#,
            r#"conf/dinx.json: group "im", node ID 3 ("im-2"): WsPath without WsPort: add the WebSocket port"#,
        ]
    );
}
