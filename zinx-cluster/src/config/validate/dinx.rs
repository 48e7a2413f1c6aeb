//! `dinx.json`: the nodes, by group.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::{Map, Value};

use super::{
    describe, error, field, first_seen, int_field, name_suffix, parse_json, string_field, take,
    take_optional,
};
use crate::config::{ConfigError, DEFAULT_ADMIN_IP, NodeConfig, NodeId, NodeType};

pub(super) struct RawNode {
    pub(super) group: String,
    /// Position in its group, from 1: names the entry when its ID is bad.
    pub(super) index: usize,
    pub(super) id: Option<NodeId>,
    pub(super) name: Option<String>,
    pub(super) node_type: Option<NodeType>,
    pub(super) ip: Option<(String, IpAddr)>,
    pub(super) port: Option<u16>,
    /// `WsPort`.
    pub(super) ws_port: Option<u16>,
    /// `WsPath`, default `/`.
    pub(super) ws_path: String,
    /// `AdminPort`.
    pub(super) admin_port: Option<u16>,
    /// `AdminIP`: the default until the key says otherwise; `None` when the
    /// key is there but unusable.
    pub(super) admin_ip: Option<(String, IpAddr)>,
}

impl RawNode {
    /// `node ID 2 ("im-1")`, or `node #2 ("im-1")` when the ID is unusable.
    pub(super) fn short_label(&self) -> String {
        let name = name_suffix(self.name.as_deref());
        match self.id {
            Some(id) => format!("node ID {id}{name}"),
            None => format!("node #{}{name}", self.index),
        }
    }

    /// `group "im", node ID 2 ("im-1")`.
    pub(super) fn label(&self) -> String {
        format!("group {:?}, {}", self.group, self.short_label())
    }

    pub(super) fn build(self) -> Option<NodeConfig> {
        let (ip, _) = self.ip?;
        let (admin_ip, _) = self.admin_ip?;
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
            admin_ip,
        })
    }

    /// Every address this node binds, with its port's key, for the clash
    /// check (those whose IP is known).
    fn bound_addrs(&self) -> impl Iterator<Item = (&'static str, SocketAddr)> {
        let ip = self.ip.as_ref().map(|(_, ip)| *ip);
        let admin_ip = self.admin_ip.as_ref().map(|(_, ip)| *ip);
        [
            ("Port", ip, self.port),
            ("WsPort", ip, self.ws_port),
            ("AdminPort", admin_ip, self.admin_port),
        ]
        .into_iter()
        .filter_map(|(key, ip, port)| Some((key, SocketAddr::new(ip?, port?))))
    }
}

/// Whether two listening addresses cannot both be bound on one host: the
/// same port on the same address, or on a wildcard address that covers the
/// other (`0.0.0.0` covers every IPv4 address; `::` every address, IPv4 too
/// on a dual-stack system).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    let covers = |w: IpAddr, x: IpAddr| w.is_unspecified() && (w.is_ipv6() || x.is_ipv4());
    a.port() == b.port() && (a.ip() == b.ip() || covers(a.ip(), b.ip()) || covers(b.ip(), a.ip()))
}

/// An address every host has its own of: loopback, or a wildcard.
fn host_local(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified()
}

/// Whether `a` (bound by a node whose `IP` is `a_node`) and `b` (likewise)
/// cannot both be bound. A host-local address (the default `AdminIP`
/// 127.0.0.1) clashes only with one of a node that may run on the same
/// host: the same `IP`, or an `IP` only its own host can reach (loopback,
/// wildcard). Nodes on different hosts share `AdminPort` 9100 freely.
fn clashes(a: SocketAddr, a_node: Option<IpAddr>, b: SocketAddr, b_node: Option<IpAddr>) -> bool {
    if !overlaps(a, b) {
        return false;
    }
    if !host_local(a.ip()) && !host_local(b.ip()) {
        // The same specific address: the same host.
        return true;
    }
    match (a_node, b_node) {
        (Some(x), Some(y)) => x == y || host_local(x) || host_local(y),
        // An unusable IP is reported already.
        _ => false,
    }
}

/// What `dinx.json` said, as far as it could be read.
pub(super) struct Dinx {
    /// Every group key, in file order (also groups with bad entries).
    pub(super) groups: Vec<String>,
    pub(super) nodes: Vec<RawNode>,
}

impl Dinx {
    pub(super) fn has_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

const NODE_EXAMPLE: &str =
    r#"{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 10000}"#;

pub(super) fn parse_dinx(file: &str, text: &str, errors: &mut Vec<ConfigError>) -> Option<Dinx> {
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
    // Every bound address (Port, WsPort, AdminPort) with its node index and
    // key, in file order; wildcards make it a list, not a map.
    let mut bound: Vec<(SocketAddr, usize, &'static str)> = Vec::new();
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
            let node_ip = node.ip.as_ref().map(|(_, ip)| *ip);
            for (key, addr) in node.bound_addrs() {
                let clash = bound.iter().find(|(other, first, _)| {
                    let first_ip = if *first == at {
                        node_ip
                    } else {
                        dinx.nodes[*first].ip.as_ref().map(|(_, ip)| *ip)
                    };
                    clashes(*other, first_ip, addr, node_ip)
                });
                let Some(&(other, first, first_key)) = clash else {
                    bound.push((addr, at, key));
                    continue;
                };
                let also = if first == at {
                    format!("its {first_key}")
                } else if first_key == "Port" {
                    dinx.nodes[first].label()
                } else {
                    format!("{} ({first_key})", dinx.nodes[first].label())
                };
                let on = if other == addr {
                    String::new()
                } else {
                    format!(", on {other}")
                };
                let message = match key {
                    "Port" => format!("address {addr} is also used by {also}{on}"),
                    _ => format!("{key}: address {addr} is also used by {also}{on}"),
                };
                errors.push(error(file, Some(node.label()), message));
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
pub(super) fn check_group_kind(
    file: &str,
    group: &str,
    nodes: &[RawNode],
    errors: &mut Vec<ConfigError>,
) {
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

pub(super) fn parse_node(
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
        admin_ip: Some((
            DEFAULT_ADMIN_IP.to_string(),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        )),
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
    let ip = string_field(obj, "IP").and_then(|text| ip_value("IP", text));
    take(ip, &mut node.ip, &mut problems);
    let port = int_field(obj, "Port").and_then(|port| match u16::try_from(port) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("Port {port} is out of range 1..=65535")),
    });
    take(port, &mut node.port, &mut problems);
    parse_client_ports(obj, &mut node, &mut problems);

    let label = node.label();
    errors.extend(
        problems
            .into_iter()
            .map(|message| error(file, Some(label.clone()), message)),
    );
    node
}

/// `IP` or `AdminIP`: an IP address, not a hostname; with its text as written.
fn ip_value(key: &str, text: String) -> Result<(String, IpAddr), String> {
    if text.trim().is_empty() {
        return Err(format!("empty {key}"));
    }
    match text.parse::<IpAddr>() {
        Ok(ip) => Ok((text, ip)),
        Err(_) => Err(format!(
            "{key} {text:?} is not an IP address (hostnames are not supported; write an \
             address such as 127.0.0.1 or ::1)"
        )),
    }
}

/// `WsPort`, `WsPath`, `AdminPort` and `AdminIP`: optional, zinx's names
/// and defaults (`AdminIP` is ours: loopback unless said otherwise).
fn parse_client_ports(obj: &Map<String, Value>, node: &mut RawNode, problems: &mut Vec<String>) {
    let optional_port = |key: &str| match field(obj, key) {
        Err(_) => Ok(None),
        Ok(_) => int_field(obj, key).and_then(|port| match u16::try_from(port) {
            Ok(p) if p > 0 => Ok(Some(p)),
            _ => Err(format!("{key} {port} is out of range 1..=65535")),
        }),
    };
    take_optional(optional_port("WsPort"), &mut node.ws_port, problems);
    take_optional(optional_port("AdminPort"), &mut node.admin_port, problems);
    if field(obj, "AdminIP").is_ok() {
        match string_field(obj, "AdminIP").and_then(|text| ip_value("AdminIP", text)) {
            Ok(ip) => node.admin_ip = Some(ip),
            Err(message) => {
                node.admin_ip = None;
                problems.push(message);
            }
        }
        if node.admin_port.is_none() && field(obj, "AdminPort").is_err() {
            problems.push("AdminIP without AdminPort: add the admin port".to_string());
        }
    }
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
}
