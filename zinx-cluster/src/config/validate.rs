//! Parsing and checking of the three files behind
//! [`ClusterConfig::load`](super::ClusterConfig::load).
//!
//! Everything is checked before anything is refused: each file is parsed as
//! far as it goes, each entry is checked on its own, then against the other
//! entries and files; every problem becomes one [`ConfigError`]. Checks that
//! need another file (a route's group in `dinx.json`, a route on the error
//! msg_id of `settings.json`) are skipped when that file could not be read,
//! so one mistake is reported once, not once per consequence.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde_json::error::Category;
use serde_json::{Map, Value};

use super::jsonc;
use super::{
    ClusterConfig, ConfigError, ConfigErrors, DINX_FILE, NodeConfig, NodeId, NodeType, ROUTE_FILE,
    RouteConfig, SETTINGS_FILE,
};
use crate::frame::ZINX_HEARTBEAT_MSG_ID;
use crate::settings::{ErrorReply, Settings};

/// Smallest accepted `directory_ttl_ms`: a live gate's bindings must not
/// expire between two of its refreshes.
pub(super) const MIN_DIRECTORY_TTL_MS: u64 = 3_000;

/// The three files' contents, or why one could not be read (already a
/// problem to report). `settings` is `Ok(None)` when the file is absent.
pub(super) struct Inputs<'a> {
    pub(super) dinx: Result<&'a str, ConfigError>,
    pub(super) route: Result<&'a str, ConfigError>,
    pub(super) settings: Result<Option<&'a str>, ConfigError>,
}

/// Parses and checks everything; the configuration, or every problem found.
pub(super) fn check(dir: &Path, inputs: Inputs<'_>) -> Result<ClusterConfig, ConfigErrors> {
    let dinx_file = dir.join(DINX_FILE).display().to_string();
    let route_file = dir.join(ROUTE_FILE).display().to_string();
    let settings_file = dir.join(SETTINGS_FILE).display().to_string();
    let mut errors = Vec::new();

    // Settings first: route checks depend on them. Their problems are
    // reported last, after the two main files.
    let mut settings_errors = Vec::new();
    let settings = match inputs.settings {
        Ok(None) => Some(Settings::default()),
        Ok(Some(text)) => parse_settings(&settings_file, text, &mut settings_errors),
        Err(e) => {
            settings_errors.push(e);
            None
        }
    };

    let dinx = match inputs.dinx {
        Ok(text) => parse_dinx(&dinx_file, text, &mut errors),
        Err(e) => {
            errors.push(e);
            None
        }
    };

    let routes = match inputs.route {
        Ok(text) => {
            let known = Known {
                dinx_file: &dinx_file,
                dinx: dinx.as_ref(),
                settings: settings.as_ref(),
            };
            parse_routes(&route_file, text, &known, &mut errors)
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };

    if let Some(settings) = &settings {
        check_settings(
            &settings_file,
            settings,
            &dinx_file,
            dinx.as_ref(),
            &mut settings_errors,
        );
    }
    errors.append(&mut settings_errors);

    match (dinx, routes, settings) {
        (Some(dinx), Some(routes), Some(settings)) if errors.is_empty() => Ok(ClusterConfig {
            dir: dir.to_path_buf(),
            nodes: dinx.nodes.into_iter().filter_map(RawNode::build).collect(),
            routes: routes.into_iter().filter_map(RawRoute::build).collect(),
            settings,
        }),
        _ => Err(ConfigErrors(errors)),
    }
}

fn error(file: &str, entry: Option<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        entry,
        message: message.into(),
    }
}

/// Parses `text` as JSON (with `//` comments); a syntax error is reported
/// with its line and column.
fn parse_json(file: &str, text: &str, errors: &mut Vec<ConfigError>) -> Option<Value> {
    let text = jsonc::strip_line_comments(text);
    match serde_json::from_str(&text) {
        Ok(value) => Some(value),
        Err(e) => {
            errors.push(json_error(file, &text, &e));
            None
        }
    }
}

/// A serde_json error as `file: line L, column C: message`, the column
/// counted in characters like an editor does.
fn json_error(file: &str, text: &str, e: &serde_json::Error) -> ConfigError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full);
    let message = match e.classify() {
        Category::Syntax | Category::Eof => format!("JSON syntax error: {message}"),
        Category::Data | Category::Io => message.to_string(),
    };
    // serde_json says column 0 for the end of a file that ends with a line
    // break: name the line alone then.
    let entry = match (e.line(), e.column()) {
        (0, _) => None,
        (line, 0) => Some(format!("line {line}")),
        (line, column) => Some(format!(
            "line {line}, column {}",
            jsonc::char_column(text, line, column)
        )),
    };
    error(file, entry, message)
}

fn parse_settings(file: &str, text: &str, errors: &mut Vec<ConfigError>) -> Option<Settings> {
    let text = jsonc::strip_line_comments(text);
    match serde_json::from_str(&text) {
        Ok(settings) => Some(settings),
        Err(e) => {
            errors.push(json_error(file, &text, &e));
            None
        }
    }
}

/// A short description of a JSON value for "expected X, found Y".
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > 40 => {
            let head: String = s.chars().take(40).collect();
            format!("string {head:?}...")
        }
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// The value of `key` in `obj`, matched ASCII-case-insensitively like Go's
/// `encoding/json`; of several matching keys the last one wins, as in Go.
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a Value, String> {
    obj.iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
        .ok_or_else(|| format!("missing key \"{key}\""))
}

/// An integer field (Go's `int`: a JSON number without fraction or
/// exponent), unchecked for range.
fn int_field(obj: &Map<String, Value>, key: &str) -> Result<i128, String> {
    let v = field(obj, key)?;
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
        .ok_or_else(|| format!("\"{key}\": expected an integer, found {}", describe(v)))
}

fn string_field(obj: &Map<String, Value>, key: &str) -> Result<String, String> {
    match field(obj, key)? {
        Value::String(s) => Ok(s.clone()),
        v => Err(format!(
            "\"{key}\": expected a string, found {}",
            describe(v)
        )),
    }
}

/// Stores the `Ok` value in `slot`, or the message in `problems`.
fn take<T>(result: Result<T, String>, slot: &mut Option<T>, problems: &mut Vec<String>) {
    match result {
        Ok(v) => *slot = Some(v),
        Err(message) => problems.push(message),
    }
}

/// Like [`take`] for an optional value: `Ok(None)` leaves `slot` alone.
fn take_optional<T>(
    result: Result<Option<T>, String>,
    slot: &mut Option<T>,
    problems: &mut Vec<String>,
) {
    match result {
        Ok(v) => *slot = v,
        Err(message) => problems.push(message),
    }
}

/// `" (\"name\")"` for labels, or nothing when the name is unknown or empty.
fn name_suffix(name: Option<&str>) -> String {
    match name {
        Some(n) if !n.trim().is_empty() => format!(" ({n:?})"),
        _ => String::new(),
    }
}

/// One entry of `dinx.json`, with whatever of it is valid.
struct RawNode {
    group: String,
    /// Position in its group, from 1: names the entry when its ID is bad.
    index: usize,
    id: Option<NodeId>,
    name: Option<String>,
    node_type: Option<NodeType>,
    ip: Option<(String, IpAddr)>,
    port: Option<u16>,
    /// `WsPort` (absent: `Ok(None)`).
    ws_port: Option<u16>,
    /// `WsPath`, default `/`.
    ws_path: String,
    /// `AdminPort`.
    admin_port: Option<u16>,
}

impl RawNode {
    /// `node ID 2 ("im-1")`, or `node #2 ("im-1")` when the ID is unusable.
    fn short_label(&self) -> String {
        let name = name_suffix(self.name.as_deref());
        match self.id {
            Some(id) => format!("node ID {id}{name}"),
            None => format!("node #{}{name}", self.index),
        }
    }

    /// `group "im", node ID 2 ("im-1")`.
    fn label(&self) -> String {
        format!("group {:?}, {}", self.group, self.short_label())
    }

    fn build(self) -> Option<NodeConfig> {
        let (ip, _) = self.ip?;
        Some(NodeConfig {
            id: self.id?,
            name: self.name?,
            group: self.group,
            node_type: self.node_type?,
            ip,
            port: self.port?,
            ws_port: self.ws_port,
            ws_path: self.ws_path,
            admin_port: self.admin_port,
        })
    }

    /// Every port this node binds, with its key, for the clash check.
    fn bound_ports(&self) -> impl Iterator<Item = (&'static str, u16)> {
        [
            ("Port", self.port),
            ("WsPort", self.ws_port),
            ("AdminPort", self.admin_port),
        ]
        .into_iter()
        .filter_map(|(key, port)| Some((key, port?)))
    }
}

/// What `dinx.json` said, as far as it could be read.
struct Dinx {
    /// Every group key, in file order (also groups with bad entries).
    groups: Vec<String>,
    nodes: Vec<RawNode>,
}

impl Dinx {
    fn has_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

const NODE_EXAMPLE: &str =
    r#"{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 10000}"#;

fn parse_dinx(file: &str, text: &str, errors: &mut Vec<ConfigError>) -> Option<Dinx> {
    let value = parse_json(file, text, errors)?;
    let Value::Object(groups) = value else {
        errors.push(error(
            file,
            None,
            format!(
                "expected an object of group name -> list of nodes, found {}",
                describe(&value)
            ),
        ));
        return None;
    };

    let mut dinx = Dinx {
        groups: Vec::new(),
        nodes: Vec::new(),
    };
    // Index into dinx.nodes of the first node with an ID / address.
    let mut by_id: HashMap<NodeId, usize> = HashMap::new();
    // Every bound address (Port, WsPort, AdminPort) → (node index, key).
    let mut by_addr: HashMap<SocketAddr, (usize, &'static str)> = HashMap::new();
    // Whether some entry's Type could not be read: then "no gate" may be a
    // consequence of that mistake and is not reported.
    let mut type_unknown = false;

    for (group, list) in &groups {
        dinx.groups.push(group.clone());
        let group_entry = Some(format!("group {group:?}"));
        if group.is_empty() {
            errors.push(error(file, group_entry.clone(), "empty group name"));
        }
        let Value::Array(list) = list else {
            errors.push(error(
                file,
                group_entry,
                format!("expected a list of nodes, found {}", describe(list)),
            ));
            type_unknown = true;
            continue;
        };
        if list.is_empty() {
            errors.push(error(
                file,
                group_entry.clone(),
                "no nodes (the list is empty)",
            ));
        }
        let first_of_group = dinx.nodes.len();
        for (i, value) in list.iter().enumerate() {
            let node = parse_node(file, group, i + 1, value, errors);
            type_unknown |= node.node_type.is_none();
            let at = dinx.nodes.len();
            if let Some(id) = node.id {
                if let Some(first) = first_seen(&mut by_id, id, at) {
                    let also = dinx.nodes[first].label();
                    let message = format!("duplicate node ID {id} (also {also})");
                    errors.push(error(file, Some(node.label()), message));
                }
            }
            if let Some((_, ip)) = &node.ip {
                for (key, port) in node.bound_ports() {
                    let addr = SocketAddr::new(*ip, port);
                    if let Some((first, first_key)) = first_seen(&mut by_addr, addr, (at, key)) {
                        let also = if first == at {
                            format!("its {first_key}")
                        } else if first_key == "Port" {
                            dinx.nodes[first].label()
                        } else {
                            format!("{} ({first_key})", dinx.nodes[first].label())
                        };
                        let message = match key {
                            "Port" => format!("address {addr} is also used by {also}"),
                            _ => format!("{key}: address {addr} is also used by {also}"),
                        };
                        errors.push(error(file, Some(node.label()), message));
                    }
                }
            }
            dinx.nodes.push(node);
        }
        check_group_kind(file, group, &dinx.nodes[first_of_group..], errors);
    }

    let has_gate = dinx
        .nodes
        .iter()
        .any(|n| n.node_type == Some(NodeType::Gate));
    if !has_gate && !type_unknown {
        errors.push(error(
            file,
            None,
            "no gate node (Type 1): clients connect to gates, so a cluster needs at least one",
        ));
    }
    Some(dinx)
}

/// A group is either all gates or all backends.
fn check_group_kind(file: &str, group: &str, nodes: &[RawNode], errors: &mut Vec<ConfigError>) {
    let list = |kind: NodeType| {
        nodes
            .iter()
            .filter(|n| n.node_type == Some(kind))
            .map(RawNode::short_label)
            .collect::<Vec<_>>()
    };
    let gates = list(NodeType::Gate);
    let backends = list(NodeType::Backend);
    if !gates.is_empty() && !backends.is_empty() {
        errors.push(error(
            file,
            Some(format!("group {group:?}")),
            format!(
                "mixes gate nodes ({}) and backend nodes ({}); a group is either all gates \
                 (Type 1) or all backends (Type 2)",
                gates.join(", "),
                backends.join(", ")
            ),
        ));
    }
}

fn parse_node(
    file: &str,
    group: &str,
    index: usize,
    value: &Value,
    errors: &mut Vec<ConfigError>,
) -> RawNode {
    let mut node = RawNode {
        group: group.to_string(),
        index,
        id: None,
        name: None,
        node_type: None,
        ip: None,
        port: None,
        ws_port: None,
        ws_path: "/".to_string(),
        admin_port: None,
    };
    let Value::Object(obj) = value else {
        errors.push(error(
            file,
            Some(node.label()),
            format!(
                "expected an object like {NODE_EXAMPLE}, found {}",
                describe(value)
            ),
        ));
        return node;
    };

    // `IsPass` and any other key are ignored, as Go's encoding/json does.
    let mut problems = Vec::new();
    let id = int_field(obj, "ID").and_then(|id| match NodeId::try_from(id) {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(format!(
            "ID {id} is out of range 1..=65535 (node ids are 16-bit: session ids carry the \
             gate's id)"
        )),
    });
    take(id, &mut node.id, &mut problems);
    let name = string_field(obj, "Name").and_then(|name| {
        if name.trim().is_empty() {
            Err("empty Name".to_string())
        } else {
            Ok(name)
        }
    });
    take(name, &mut node.name, &mut problems);
    let node_type = int_field(obj, "Type").and_then(|t| match t {
        1 => Ok(NodeType::Gate),
        2 => Ok(NodeType::Backend),
        t => Err(format!("unknown Type {t} (1 = gate, 2 = backend)")),
    });
    take(node_type, &mut node.node_type, &mut problems);
    let ip = string_field(obj, "IP").and_then(|text| {
        if text.trim().is_empty() {
            return Err("empty IP".to_string());
        }
        match text.parse::<IpAddr>() {
            Ok(ip) => Ok((text, ip)),
            Err(_) => Err(format!(
                "IP {text:?} is not an IP address (hostnames are not supported; write an \
                 address such as 127.0.0.1 or ::1)"
            )),
        }
    });
    take(ip, &mut node.ip, &mut problems);
    let port = int_field(obj, "Port").and_then(|port| match u16::try_from(port) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("Port {port} is out of range 1..=65535")),
    });
    take(port, &mut node.port, &mut problems);
    let optional_port = |key: &str| match field(obj, key) {
        Err(_) => Ok(None),
        Ok(_) => int_field(obj, key).and_then(|port| match u16::try_from(port) {
            Ok(p) if p > 0 => Ok(Some(p)),
            _ => Err(format!("{key} {port} is out of range 1..=65535")),
        }),
    };
    take_optional(optional_port("WsPort"), &mut node.ws_port, &mut problems);
    take_optional(
        optional_port("AdminPort"),
        &mut node.admin_port,
        &mut problems,
    );
    if field(obj, "WsPath").is_ok() {
        let path = string_field(obj, "WsPath").and_then(|path| {
            if !path.starts_with('/') {
                Err(format!(
                    "WsPath {path:?} must start with \"/\" (e.g. \"/\" or \"/ws\")"
                ))
            } else if path.contains(|c: char| c.is_whitespace() || c == '?' || c == '#') {
                Err(format!(
                    "WsPath {path:?}: a path without spaces, '?' or '#'"
                ))
            } else {
                Ok(path)
            }
        });
        match path {
            Ok(p) => node.ws_path = p,
            Err(message) => problems.push(message),
        }
        if node.ws_port.is_none() && field(obj, "WsPort").is_err() {
            problems.push("WsPath without WsPort: add the WebSocket port".to_string());
        }
    }
    if node.ws_port.is_some() && node.node_type == Some(NodeType::Backend) {
        problems.push("WsPort on a backend node: only gates (Type 1) accept clients".to_string());
    }

    let label = node.label();
    errors.extend(
        problems
            .into_iter()
            .map(|message| error(file, Some(label.clone()), message)),
    );
    node
}

/// One entry of `route.json`, with whatever of it is valid.
struct RawRoute {
    group: String,
    /// Position in its group, from 1: names the entry when its MsgID is bad.
    index: usize,
    msg_id: Option<u32>,
    name: Option<String>,
}

impl RawRoute {
    /// `group "im", route MsgID 3 ("send")`, or `route #2` when the MsgID is
    /// unusable.
    fn label(&self) -> String {
        let name = name_suffix(self.name.as_deref());
        match self.msg_id {
            Some(id) => format!("group {:?}, route MsgID {id}{name}", self.group),
            None => format!("group {:?}, route #{}{name}", self.group, self.index),
        }
    }

    fn build(self) -> Option<RouteConfig> {
        Some(RouteConfig {
            msg_id: self.msg_id?,
            name: self.name?,
            group: self.group,
        })
    }
}

/// What the route checks may rely on from the other files (`None`: that
/// file could not be read, skip the checks that need it).
struct Known<'a> {
    dinx_file: &'a str,
    dinx: Option<&'a Dinx>,
    settings: Option<&'a Settings>,
}

fn parse_routes(
    file: &str,
    text: &str,
    known: &Known<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<Vec<RawRoute>> {
    let value = parse_json(file, text, errors)?;
    let Value::Object(groups) = value else {
        errors.push(error(
            file,
            None,
            format!(
                "expected an object of group name -> list of routes, found {}",
                describe(&value)
            ),
        ));
        return None;
    };

    let mut routes: Vec<RawRoute> = Vec::new();
    // Index into routes of the first route with a MsgID.
    let mut by_msg_id: HashMap<u32, usize> = HashMap::new();
    for (group, list) in &groups {
        let group_entry = Some(format!("group {group:?}"));
        if group.is_empty() {
            errors.push(error(file, group_entry.clone(), "empty group name"));
        }
        if let Some(dinx) = known.dinx {
            if !dinx.has_group(group) {
                errors.push(error(
                    file,
                    group_entry.clone(),
                    format!(
                        "no such group in {}: no node could serve its routes",
                        known.dinx_file
                    ),
                ));
            }
        }
        let Value::Array(list) = list else {
            errors.push(error(
                file,
                group_entry,
                format!("expected a list of routes, found {}", describe(list)),
            ));
            continue;
        };
        if list.is_empty() {
            errors.push(error(file, group_entry, "no routes (the list is empty)"));
        }
        for (i, value) in list.iter().enumerate() {
            let route = parse_route(file, group, i + 1, value, known.settings, errors);
            if let Some(msg_id) = route.msg_id {
                if let Some(first) = first_seen(&mut by_msg_id, msg_id, routes.len()) {
                    let also = routes[first].label();
                    let message = format!("duplicate MsgID {msg_id} (also {also})");
                    errors.push(error(file, Some(route.label()), message));
                }
            }
            routes.push(route);
        }
    }
    Some(routes)
}

fn parse_route(
    file: &str,
    group: &str,
    index: usize,
    value: &Value,
    settings: Option<&Settings>,
    errors: &mut Vec<ConfigError>,
) -> RawRoute {
    let mut route = RawRoute {
        group: group.to_string(),
        index,
        msg_id: None,
        name: None,
    };
    let Value::Object(obj) = value else {
        errors.push(error(
            file,
            Some(route.label()),
            format!(
                r#"expected an object like {{"MsgID": 3, "Name": "send"}}, found {}"#,
                describe(value)
            ),
        ));
        return route;
    };

    let mut problems = Vec::new();
    let msg_id = int_field(obj, "MsgID").and_then(|id| {
        u32::try_from(id).map_err(|_| format!("MsgID {id} is out of range 0..={}", u32::MAX))
    });
    take(msg_id, &mut route.msg_id, &mut problems);
    // Name is only a label: it must be there (a misspelt key is a likely
    // mistake) but may be empty.
    take(string_field(obj, "Name"), &mut route.name, &mut problems);

    if route.msg_id == Some(ZINX_HEARTBEAT_MSG_ID) {
        problems.push(format!(
            "MsgID {ZINX_HEARTBEAT_MSG_ID} is the zinx heartbeat: zinx clients send it to keep \
             their connection alive and gates never route it"
        ));
    }
    if let (Some(msg_id), Some(settings)) = (route.msg_id, settings) {
        if settings.error_reply == ErrorReply::Frame && msg_id == settings.error_msg_id {
            problems.push(format!(
                "MsgID {msg_id} is reserved for error frames (settings: error_msg_id {msg_id}, \
                 error_reply \"frame\"); use another MsgID or change error_msg_id"
            ));
        }
    }

    let label = route.label();
    errors.extend(
        problems
            .into_iter()
            .map(|message| error(file, Some(label.clone()), message)),
    );
    route
}

/// Values that parse but would break the runtime.
fn check_settings(
    file: &str,
    s: &Settings,
    dinx_file: &str,
    dinx: Option<&Dinx>,
    errors: &mut Vec<ConfigError>,
) {
    let mut problem = |key: &str, message: String| {
        errors.push(error(file, Some(key.to_string()), message));
    };
    let at_least_one = [
        (
            "max_frame_len",
            s.max_frame_len == 0,
            "every frame with data would be refused",
        ),
        (
            "session_queue",
            s.session_queue == 0,
            "no frame could be queued towards a client",
        ),
        (
            "link_queue",
            s.link_queue == 0,
            "no message could be queued on a link",
        ),
        (
            "node_session_queue",
            s.node_session_queue == 0,
            "no message could be queued for a session",
        ),
        (
            "heartbeat_interval_ms",
            s.heartbeat_interval_ms == 0,
            "links would send heartbeats without pause",
        ),
        (
            "reconnect_min_ms",
            s.reconnect_min_ms == 0,
            "a dead peer would be redialled without pause",
        ),
        (
            "trace_every",
            s.trace_every == 0,
            "write 1 to trace every message (tracing is off without otlp_endpoint)",
        ),
    ];
    for (key, is_zero, why) in at_least_one {
        if is_zero {
            problem(key, format!("0 is not allowed: {why}"));
        }
    }
    if s.heartbeat_interval_ms > 0 && s.heartbeat_timeout_ms <= s.heartbeat_interval_ms {
        problem(
            "heartbeat_timeout_ms",
            format!(
                "{} must be greater than heartbeat_interval_ms ({}), or a quiet link is declared \
                 dead before its heartbeat is due",
                s.heartbeat_timeout_ms, s.heartbeat_interval_ms
            ),
        );
    }
    if s.reconnect_min_ms > s.reconnect_max_ms {
        problem(
            "reconnect_min_ms",
            format!(
                "{} is greater than reconnect_max_ms ({})",
                s.reconnect_min_ms, s.reconnect_max_ms
            ),
        );
    }
    if s.directory_ttl_ms < MIN_DIRECTORY_TTL_MS {
        problem(
            "directory_ttl_ms",
            format!(
                "{} is below the minimum of {MIN_DIRECTORY_TTL_MS}: a live gate's bindings would \
                 expire between its refreshes",
                s.directory_ttl_ms
            ),
        );
    }
    if let Some(url) = &s.otlp_endpoint {
        if let Err(e) = crate::trace::check_endpoint(url) {
            problem("otlp_endpoint", format!("{url:?}: {}", e.why));
        }
    }
    match (&s.tls_cert, &s.tls_key) {
        (Some(_), None) => problem(
            "tls_cert",
            "tls_cert without tls_key: TLS needs both PEM files".to_string(),
        ),
        (None, Some(_)) => problem(
            "tls_key",
            "tls_key without tls_cert: TLS needs both PEM files".to_string(),
        ),
        _ => {}
    }
    if let Some(dinx) = dinx {
        for group in s.balance.keys() {
            if !dinx.has_group(group) {
                problem("balance", format!("group {group:?} is not in {dinx_file}"));
            }
        }
    }
}

/// Records that `key` is first seen at index `at`; when it was seen before,
/// returns that earlier index instead (for "duplicate ... (also ...)").
fn first_seen<K: Eq + Hash, V: Copy>(seen: &mut HashMap<K, V>, key: K, at: V) -> Option<V> {
    match seen.entry(key) {
        Entry::Occupied(first) => Some(*first.get()),
        Entry::Vacant(slot) => {
            slot.insert(at);
            None
        }
    }
}
