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
