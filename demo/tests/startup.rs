//! The demo refuses to start, naming every problem, before it opens any
//! port.

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use serde_json::Value;
use zinx_test_support::conf::{Conf, DEMO_ROUTES};
use zinx_test_support::process::Proc;

/// The demo server built for this test run.
const DEMO: &str = env!("CARGO_BIN_EXE_demo");

/// Runs `demo` on `conf` with `args`, which must refuse to start: exit code
/// 2, no port opened. Returns what it printed.
fn refused(conf: &Conf, args: &[&str]) -> String {
    // Hold the gate's port: a demo that opened ports before checking would
    // fail with "cannot listen" instead of naming the problem.
    let held = TcpListener::bind(("127.0.0.1", conf.ports[0])).unwrap();
    let mut demo = Proc::demo(DEMO, "demo", conf, args);
    let status = demo.wait_exit(Duration::from_secs(10));
    let out = demo.log();
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(!out.contains("cannot listen"), "{out}");
    assert!(!out.contains("handlers ["), "a node started:\n{out}");
    drop(held);
    for port in &conf.ports[1..] {
        assert!(
            TcpStream::connect(("127.0.0.1", *port)).is_err(),
            "port {port} is open"
        );
    }
    out
}

/// route.json with its JSON edited by `edit`.
fn routes_edited(edit: impl FnOnce(&mut Value)) -> String {
    let mut routes: Value = serde_json::from_str(DEMO_ROUTES).unwrap();
    edit(&mut routes);
    routes.to_string()
}

/// The line of `out` that contains every one of `parts`.
fn line_with<'a>(out: &'a str, parts: &[&str]) -> &'a str {
    out.lines()
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .unwrap_or_else(|| panic!("no line with {parts:?} in:\n{out}"))
}

#[test]
fn a_route_without_a_handler_is_refused() {
    let conf = Conf::with_routes(&routes_edited(|r| {
        r["im"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"MsgID": 70, "Name": "whisper"}));
    }));
    let out = refused(&conf, &[]);
    line_with(&out, &["MsgID 70", "whisper", "no handler"]);
}

#[test]
fn a_handler_without_a_route_is_refused() {
    let conf = Conf::with_routes(&routes_edited(|r| {
        r["im"].as_array_mut().unwrap().retain(|x| x["MsgID"] != 6);
    }));
    let out = refused(&conf, &[]);
    line_with(&out, &["msg_id 6", "im::echo", "not in route.json"]);
}

#[test]
fn every_problem_is_named_on_its_own_line() {
    let conf = Conf::with_routes(&routes_edited(|r| {
        let im = r["im"].as_array_mut().unwrap();
        im.retain(|x| x["MsgID"] != 6);
        im.push(serde_json::json!({"MsgID": 70, "Name": "whisper"}));
    }));
    // Running only im-1 checks every handler all the same.
    let out = refused(&conf, &["--id", "2"]);
    let missing = line_with(&out, &["MsgID 70", "whisper"]);
    let unrouted = line_with(&out, &["msg_id 6", "im::echo"]);
    assert_ne!(missing, unrouted);
}

#[test]
fn an_unknown_node_id_is_refused() {
    let conf = Conf::new();
    let out = refused(&conf, &["--id", "9"]);
    line_with(&out, &["no node with ID 9"]);
}

#[test]
fn a_missing_configuration_is_refused() {
    let conf = Conf::new();
    std::fs::remove_file(conf.path().join("dinx.json")).unwrap();
    let out = refused(&conf, &[]);
    line_with(&out, &["dinx.json"]);
}

#[test]
fn an_internal_handler_whose_route_is_not_marked_internal_is_refused() {
    let conf = Conf::with_routes(&routes_edited(|r| {
        for route in r["im"].as_array_mut().unwrap() {
            if route["MsgID"] == 20 {
                route.as_object_mut().unwrap().remove("Internal");
            }
        }
    }));
    let out = refused(&conf, &[]);
    line_with(&out, &["stats", "declared `internal`", "MsgID 20"]);
}
