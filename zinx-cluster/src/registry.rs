//! The routes that `#[handler]` registers at compile time, and their
//! validation against `route.json`.
//!
//! Every `#[handler(msg_id = N, group = "g")]` submits a [`Route`] through
//! `inventory`. At start the runtime compares them with the configuration and
//! refuses to start, naming every problem, when they disagree.

use crate::handler::HandlerFn;

/// One registered handler: what `#[handler]` submits.
#[derive(Clone, Copy)]
pub struct Route {
    /// The msg_id it serves.
    pub msg_id: u32,
    /// The group it belongs to (must match `route.json`).
    pub group: &'static str,
    /// The handler function's name.
    pub name: &'static str,
    /// `module_path!()` where it was declared.
    pub module: &'static str,
    /// `file!()` where it was declared.
    pub file: &'static str,
    /// `line!()` where it was declared.
    pub line: u32,
    /// The type-erased entry point.
    pub entry: HandlerFn,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("msg_id", &self.msg_id)
            .field("group", &self.group)
            .field("name", &self.name)
            .field("module", &self.module)
            .field("file", &self.file)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

impl Route {
    /// `module::name (file:line)`, for messages.
    pub fn location(&self) -> String {
        format!("{}::{} ({}:{})", self.module, self.name, self.file, self.line)
    }
}

inventory::collect!(Route);

/// Every route registered in this binary.
pub fn registered() -> impl Iterator<Item = &'static Route> {
    inventory::iter::<Route>.into_iter()
}

// TEMPORARY until the macros branch lands: minimal table and validation.
use crate::config::RouteConfig;

/// msg_id → handler, built once at start.
#[derive(Debug, Default)]
pub struct HandlerTable {
    routes: Vec<&'static Route>,
}

impl HandlerTable {
    /// The handler of a msg_id.
    pub fn get(&self, msg_id: u32) -> Option<&'static Route> {
        self.routes
            .binary_search_by_key(&msg_id, |r| r.msg_id)
            .ok()
            .map(|i| self.routes[i])
    }
    /// Number of handlers.
    pub fn len(&self) -> usize {
        self.routes.len()
    }
    /// Every handler, by msg_id.
    pub fn iter(&self) -> impl Iterator<Item = &'static Route> + '_ {
        self.routes.iter().copied()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// Problems found comparing handlers and routes.
#[derive(Debug, Clone)]
pub struct RegistryErrors(pub Vec<String>);

impl std::fmt::Display for RegistryErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RegistryErrors {}

/// Validates handlers of the served groups against the routes.
pub fn validate(
    routes: &[&'static Route],
    config_routes: &[RouteConfig],
    served_groups: &[&str],
) -> Result<HandlerTable, RegistryErrors> {
    let mut errors = Vec::new();
    let mut table: Vec<&'static Route> = Vec::new();
    for r in config_routes.iter().filter(|r| served_groups.contains(&r.group.as_str())) {
        match routes.iter().find(|h| h.msg_id == r.msg_id) {
            Some(h) => table.push(h),
            None => errors.push(format!("route {} has no handler", r.msg_id)),
        }
    }
    table.sort_by_key(|r| r.msg_id);
    if errors.is_empty() {
        Ok(HandlerTable { routes: table })
    } else {
        Err(RegistryErrors(errors))
    }
}
