//! Loading and validating `dinx.json`, `route.json` and the optional
//! `settings.json` of a cluster.
//!
//! The files are accepted exactly as the Go original wrote them: keys `ID`,
//! `Name`, `Type` (1 gate, 2 backend), `IP`, `Port`, matched
//! case-insensitively like Go's `encoding/json`; `IsPass` accepted and
//! ignored; route entries `{"MsgID": 3, "Name": "..."}`. Every problem is
//! reported at once, each naming its file and entry.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::settings::Settings;

/// File name of the node list.
pub const DINX_FILE: &str = "dinx.json";
/// File name of the msg_id → group routes.
pub const ROUTE_FILE: &str = "route.json";
/// File name of the optional settings.
pub const SETTINGS_FILE: &str = "settings.json";

/// Node id as written in `dinx.json` (`ID`), 1..=65535.
pub type NodeId = u16;

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeType {
    /// `Type: 1`: accepts zinx clients.
    Gate,
    /// `Type: 2`: accepts internal links from other nodes only.
    Backend,
}

/// One node of `dinx.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// `ID`: unique in the cluster.
    pub id: NodeId,
    /// `Name`, e.g. `gate-1`.
    pub name: String,
    /// The group (the key of the list the node appears in).
    pub group: String,
    /// `Type`.
    pub node_type: NodeType,
    /// `IP`: the address the node binds and its peers dial.
    pub ip: String,
    /// `Port`.
    pub port: u16,
}

impl NodeConfig {
    /// `IP:Port`, with IPv6 addresses bracketed.
    pub fn addr(&self) -> String {
        if self.ip.contains(':') {
            format!("[{}]:{}", self.ip, self.port)
        } else {
            format!("{}:{}", self.ip, self.port)
        }
    }
}

/// One route of `route.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// `MsgID`.
    pub msg_id: u32,
    /// `Name`: a label for logs.
    pub name: String,
    /// The group that serves it (the key of the list it appears in).
    pub group: String,
}

/// A loaded and validated cluster configuration.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The directory the files came from (for messages).
    pub dir: PathBuf,
    /// Every node, in file order.
    pub nodes: Vec<NodeConfig>,
    /// Every route, in file order.
    pub routes: Vec<RouteConfig>,
    /// `settings.json`, or the defaults.
    pub settings: Settings,
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, e.g. `conf/dinx.json`.
    pub file: String,
    /// The entry, e.g. `group "im" node ID 2`, when the problem has one.
    pub entry: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entry {
            Some(entry) => write!(f, "{}: {}: {}", self.file, entry, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found in a configuration, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid cluster configuration ({} problem(s)):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ClusterConfig {
    /// Loads and validates `dinx.json`, `route.json` and, when present,
    /// `settings.json` from `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, ConfigErrors> {
        let _ = dir;
        todo!("config loader")
    }

    /// Parses and validates the files' contents; `dir` is used in messages.
    pub fn from_strs(
        dir: impl AsRef<Path>,
        dinx: &str,
        route: &str,
        settings: Option<&str>,
    ) -> Result<Self, ConfigErrors> {
        let _ = (dir, dinx, route, settings);
        todo!("config parser")
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The nodes of a group, in file order.
    pub fn group_nodes<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a NodeConfig> + 'a {
        self.nodes.iter().filter(move |n| n.group == group)
    }

    /// The gate nodes.
    pub fn gates(&self) -> impl Iterator<Item = &NodeConfig> {
        self.nodes.iter().filter(|n| n.node_type == NodeType::Gate)
    }

    /// The route of a msg_id.
    pub fn route(&self, msg_id: u32) -> Option<&RouteConfig> {
        self.routes.iter().find(|r| r.msg_id == msg_id)
    }

    /// msg_id → group, for every route.
    pub fn route_table(&self) -> BTreeMap<u32, &str> {
        self.routes.iter().map(|r| (r.msg_id, r.group.as_str())).collect()
    }
}
