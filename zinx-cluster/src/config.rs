//! Loading and validating `dinx.json`, `route.json` and the optional
//! `settings.json` of a cluster.
//!
//! The three files live in one directory (`conf/` by convention):
//!
//! - **`dinx.json`**: the nodes. An object mapping a group name to the list
//!   of its nodes; each node has `ID` (1..=65535, unique in the cluster),
//!   `Name` (not empty), `Type` (1 gate: accepts zinx clients; 2 backend),
//!   `IP` and `Port` (the address the node binds and its peers dial; no two
//!   nodes share one). `IP` must be an IP address such as `127.0.0.1` or
//!   `::1`: hostnames are not supported. A group is either all gates or all
//!   backends, and the cluster needs at least one gate.
//!
//!   Optional keys (zinx's names): `WsPort` (a gate also serves zinx
//!   frames over WebSocket on this port) with `WsPath` (the upgrade path,
//!   default `/`), and `AdminPort` (any node: `/metrics`, `/healthz`,
//!   `/readyz` over HTTP) with `AdminIP`. `WsPort` binds the node's `IP`
//!   like `Port`; `AdminPort` binds `AdminIP`, which defaults to
//!   `127.0.0.1` whatever the node's `IP` (so `"IP": "0.0.0.0"` does not
//!   make the metrics public; write `"AdminIP": "0.0.0.0"` or an interface's
//!   address to scrape it from elsewhere, with `admin_token` set). No two
//!   ports of the cluster may share an address (a wildcard address such as
//!   `0.0.0.0` shares it with every address of its family). Loopback and
//!   wildcard addresses are per host: nodes with different `IP`s may each
//!   use `127.0.0.1:9100`; nodes with the same `IP`, or on loopback or
//!   wildcard `IP`s, share a host.
//!
//!   ```json
//!   {
//!     "gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 10000,
//!               "WsPort": 9000, "WsPath": "/", "AdminPort": 9100, "AdminIP": "10.0.0.5"}],
//!     "im": [{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 20000}]
//!   }
//!   ```
//!
//! - **`route.json`**: which group serves each message. An object mapping a
//!   group name (one of `dinx.json`'s) to the list of its routes, each
//!   `{"MsgID": 3, "Name": "send"}`: `MsgID` (a u32, unique across all
//!   groups) and `Name` (a label for logs, may be empty). 99999 (the zinx
//!   client heartbeat) is never a route, nor is `error_msg_id` while
//!   `error_reply` is `frame`. `"Internal": true` marks a route that only
//!   other nodes may use (`ctx.call` / `ctx.cast`): clients never reach it.
//!
//!   ```json
//!   { "gate": [{"MsgID": 1, "Name": "login"}],
//!     "im": [{"MsgID": 3, "Name": "send"}, {"MsgID": 20, "Name": "stats", "Internal": true}] }
//!   ```
//!
//! - **`settings.json`** (optional): tuning knobs; see
//!   [`Settings`]. Its keys are exact (snake_case) and an
//!   unknown key is an error.
//!
//! The files are accepted exactly as the Go original wrote them: the keys of
//! nodes and routes are matched case-insensitively like Go's
//! `encoding/json` (`"ID"`, `"id"` and `"Id"` are the same key; if several
//! spellings appear, the last wins), `IsPass` is accepted and ignored, as is
//! any other unknown key in an entry. Numbers must be integers (`1`, not
//! `1.0` or `"1"`). `//` line comments, as the original's articles write
//! them, are allowed in all three files. Nodes and routes keep file order.
//!
//! Every problem is reported at once ([`ConfigErrors`]), each naming its
//! file and entry, e.g.
//!
//! ```text
//! conf/dinx.json: group "im", node ID 3 ("im-2"): duplicate node ID 3 (also group "gate", node ID 3 ("gate-1"))
//! conf/route.json: line 4, column 7: JSON syntax error: expected `,` or `]`
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

mod jsonc;
mod validate;

pub use crate::settings::{Balance, ErrorReply, REDIS_URL_ENV, SECRET_ENV, Settings};

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
    /// `WsPort`: a gate's WebSocket port, if it serves one.
    pub ws_port: Option<u16>,
    /// `WsPath`: the path WebSocket clients upgrade on (default `/`).
    pub ws_path: String,
    /// `AdminPort`: the node's HTTP admin endpoint, if any.
    pub admin_port: Option<u16>,
    /// `AdminIP`: the address the admin endpoint binds; default
    /// `127.0.0.1` whatever `IP` is.
    pub admin_ip: String,
}

impl NodeConfig {
    /// `IP:Port`, with IPv6 addresses bracketed.
    pub fn addr(&self) -> String {
        self.addr_on(self.port)
    }

    /// `IP:WsPort`, when the node serves WebSocket.
    pub fn ws_addr(&self) -> Option<String> {
        self.ws_port.map(|p| self.addr_on(p))
    }

    /// `AdminIP:AdminPort`, when the node has an admin endpoint: where it
    /// listens (`127.0.0.1:AdminPort` unless `AdminIP` says otherwise).
    pub fn admin_addr(&self) -> Option<String> {
        self.admin_port.map(|p| host_port(&self.admin_ip, p))
    }

    /// `IP:port`, with IPv6 addresses bracketed.
    fn addr_on(&self, port: u16) -> String {
        host_port(&self.ip, port)
    }
}

/// The `AdminIP` of a node that does not name one: loopback, so that the
/// metrics and the admin actions are not public by default.
pub(crate) const DEFAULT_ADMIN_IP: &str = "127.0.0.1";

/// `ip:port`, with an IPv6 address bracketed.
fn host_port(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
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
    /// `Internal` (optional, default `false`): only other nodes reach it,
    /// through `call`/`cast`; a gate answers a client that sends it exactly
    /// as it answers an unknown msg_id. Its handler must be declared
    /// `#[handler(.., internal)]`.
    pub internal: bool,
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
    /// Where in the file, when the problem has a place: the entry, e.g.
    /// `group "im", node ID 2 ("im-1")`, `group "im", route MsgID 3
    /// ("send")`, `group "im"`, a settings key such as `max_frame_len`; or,
    /// for a JSON error, `line 3, column 14` (column in characters).
    /// Entries whose `ID` / `MsgID` is unusable are named by position in
    /// their group: `node #2`, `route #2`.
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
        writeln!(
            f,
            "invalid cluster configuration ({} problem(s)):",
            self.0.len()
        )?;
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
    ///
    /// On failure every problem found is returned, not only the first: a
    /// missing or unreadable file does not stop the others being checked.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, ConfigErrors> {
        let dir = dir.as_ref();
        let not_dir = match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => None,
            Ok(_) => Some(format!(
                "not a directory (expected a directory holding {DINX_FILE} and {ROUTE_FILE})"
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
                "configuration directory not found (expected {DINX_FILE} and {ROUTE_FILE} in it)"
            )),
            Err(e) => Some(format!("cannot read the configuration directory: {e}")),
        };
        if let Some(message) = not_dir {
            return Err(ConfigErrors(vec![ConfigError {
                file: dir.display().to_string(),
                entry: None,
                message,
            }]));
        }

        let dinx = read_file(dir, DINX_FILE, "it lists the cluster's nodes");
        let route = read_file(dir, ROUTE_FILE, "it maps each MsgID to a group");
        let settings = match read_file(dir, SETTINGS_FILE, "") {
            Ok(text) => Ok(Some(text)),
            Err(ReadError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        };
        validate::check(
            dir,
            validate::Inputs {
                dinx: dinx.as_deref().map_err(ReadError::to_config_error),
                route: route.as_deref().map_err(ReadError::to_config_error),
                settings: settings
                    .as_ref()
                    .map(Option::as_deref)
                    .map_err(ReadError::to_config_error),
            },
        )
    }

    /// Parses and validates the files' contents; `dir` is used in messages.
    ///
    /// `settings` is `None` when there is no `settings.json` (defaults).
    pub fn from_strs(
        dir: impl AsRef<Path>,
        dinx: &str,
        route: &str,
        settings: Option<&str>,
    ) -> Result<Self, ConfigErrors> {
        validate::check(
            dir.as_ref(),
            validate::Inputs {
                dinx: Ok(dinx),
                route: Ok(route),
                settings: Ok(settings),
            },
        )
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

    /// msg_id → group, for every route (internal ones included).
    pub fn route_table(&self) -> BTreeMap<u32, &str> {
        self.routes
            .iter()
            .map(|r| (r.msg_id, r.group.as_str()))
            .collect()
    }

    /// The route a client may use for this msg_id: `None` for an unknown
    /// msg_id and for an internal route alike, so that a gate answers both
    /// the same way.
    pub fn client_route(&self, msg_id: u32) -> Option<&RouteConfig> {
        self.route(msg_id).filter(|r| !r.internal)
    }
}

/// Why a file could not be read.
enum ReadError {
    /// Absent (an error for the two required files).
    NotFound(ConfigError),
    /// Unreadable or not UTF-8.
    Other(ConfigError),
}

impl ReadError {
    fn to_config_error(&self) -> ConfigError {
        match self {
            ReadError::NotFound(e) | ReadError::Other(e) => e.clone(),
        }
    }
}

/// Reads `dir/name` as UTF-8; `why` says what the file is for when missing.
fn read_file(dir: &Path, name: &str, why: &str) -> Result<String, ReadError> {
    let path = dir.join(name);
    let file = path.display().to_string();
    let fail = |entry: Option<String>, message: String| ConfigError {
        file: file.clone(),
        entry,
        message,
    };
    match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
            let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let column = 1 + String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count();
            ReadError::Other(fail(
                Some(format!("line {line}, column {column}")),
                "not valid UTF-8 (save the file as UTF-8)".to_string(),
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ReadError::NotFound(fail(
            None,
            format!("file not found ({why})"),
        ))),
        Err(e) => Err(ReadError::Other(fail(None, format!("cannot read: {e}")))),
    }
}
